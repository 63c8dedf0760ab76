"""The kernel's process-wide state stays the kernel's when the real hermes-agent runs in process:
its stream wrappers and its logging set-up (``providers/_agent_guard.py``), checked against the
installed hermes-agent's own functions. ``tests/test_agent_kernel.py`` checks the same in a real
kernel, cell after cell."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from pathlib import Path

import pytest
from hermes_agent_support import (
    agent_profile,
    fixture_agent,  # noqa: F401  (agent: the hermes-agent fixture)
    fixture_offline,  # noqa: F401  (offline: host lookups refused)
    make_home,
)
from sse_server import Reply

from hermes_nb import chat
from hermes_nb.core.events import RunState
from hermes_nb.doctor import doctor_report
from hermes_nb.providers import _agent_guard
from hermes_nb.providers.hermes_agent import stream_guard_note


@pytest.fixture
def guarded(request: pytest.FixtureRequest) -> None:
    """The real hermes-agent (``hermes_agent_support``'s ``agent`` fixture: skipped without it,
    failed in CI), imported with hermes_nb's guard installed, as the provider does."""
    request.getfixturevalue("agent")
    _agent_guard.install()


def _streams() -> tuple[object, object]:
    return sys.stdout, sys.stderr


def test_the_safe_stdio_wrapper_never_replaces_the_process_streams(guarded) -> None:
    from agent.process_bootstrap import _install_safe_stdio, _SafeWriter

    before = _streams()
    seen: list[object] = []

    def in_an_agent_thread() -> None:
        _install_safe_stdio()
        seen.append(sys.stdout)

    worker = threading.Thread(target=in_an_agent_thread)
    worker.start()
    worker.join()
    _install_safe_stdio()  # the main thread, as AIAgent() called from a cell would

    assert _streams() == before
    assert seen == [before[0]]
    assert not isinstance(sys.stdout, _SafeWriter)


def test_a_thread_scoped_silence_leaves_the_streams_alone(guarded) -> None:
    from agent.thread_scoped_output import thread_scoped_silence

    before = _streams()
    with thread_scoped_silence():
        assert _streams() == before
    assert _streams() == before


def test_code_execution_swaps_streams_only_for_its_own_thread(guarded) -> None:
    """``tools.code_execution_tool`` assigns ``sys.stdout = devnull`` around a script's tool
    call: through the guard that binds the thread's own view, never the process's streams."""
    import tools.code_execution_tool as module

    before = _streams()
    sink = io.StringIO()
    module.sys.stdout = sink
    try:
        assert sys.stdout is before[0]
        assert module.sys.stdout is sink  # this thread, through that module
        other: list[object] = []
        thread = threading.Thread(target=lambda: other.append(module.sys.stdout))
        thread.start()
        thread.join()
        assert other == [before[0]]
        assert module.sys.executable == sys.executable  # everything else is sys itself
    finally:
        del module.sys.stdout
    assert module.sys.stdout is before[0]


def test_the_agents_logging_stays_off_the_root_logger(guarded, tmp_path: Path) -> None:
    import hermes_logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = logging.getLogger("openai")
    noisy.setLevel(logging.DEBUG)  # a person debugging a library keeps that level
    try:
        hermes_logging.setup_logging(hermes_home=tmp_path, force=True)

        assert root.handlers == handlers
        assert root.level == level
        assert noisy.level == logging.DEBUG
        agent_logger = logging.getLogger("agent")
        assert any(getattr(h, "_hermes_queue", False) for h in agent_logger.handlers)

        # What hermes-agent logs still reaches its own log file; a cell's record does not.
        logging.getLogger("agent.probe").info("from the agent %s", "a1b2")
        logging.getLogger("mycell").warning("from a cell c3d4")
        log_file = tmp_path / "logs" / "agent.log"
        deadline = time.monotonic() + 5
        while "a1b2" not in (log_file.read_text() if log_file.exists() else ""):
            assert time.monotonic() < deadline, "hermes-agent's record never reached agent.log"
            time.sleep(0.02)
        assert "c3d4" not in log_file.read_text()
    finally:
        noisy.setLevel(logging.NOTSET)


def test_a_wrapper_that_got_through_is_taken_off(guarded, caplog) -> None:
    from agent.process_bootstrap import _SafeWriter

    before = _streams()
    sys.stdout = _SafeWriter(_SafeWriter(before[0]))
    try:
        assert _agent_guard.restore_streams() == ["stdout"]
    finally:
        unwrapped = sys.stdout
        sys.stdout = before[0]
    assert unwrapped is before[0]
    assert "put the kernel's own back" in caplog.text
    assert _agent_guard.restore_streams() == []  # nothing to do: nothing said


def test_a_turn_leaves_the_streams_and_the_root_logger_as_they_were(
    guarded, tmp_path, sse_server
) -> None:
    root = logging.getLogger()
    before, handlers, level = _streams(), list(root.handlers), root.level
    home = make_home(tmp_path, "g")
    sse_server.enqueue(Reply.text("Fine."))
    run = chat("Hello?", profile=agent_profile("g", home, sse_server)).wait(60)
    assert run.status is RunState.DONE, run.error
    assert _streams() == before
    assert (root.handlers, root.level) == (handlers, level)


def test_doctor_says_the_streams_are_guarded(guarded, write_config, tmp_path) -> None:
    assert "keeps the kernel's own" in (stream_guard_note() or "")
    write_config(
        f'default_profile = "h"\n[profiles.h]\nprovider = "hermes-agent"\n'
        f'hermes_home = "{tmp_path}"\n'
    )
    text = doctor_report().text()
    assert "replaces sys.stdout/sys.stderr" in text
    assert "hermes_nb keeps the kernel's own" in text
