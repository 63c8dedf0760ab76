"""An ACP agent's session id kept in the store (issue 22): a stored session's next turn after an
agent restart — or a kernel restart — loads the agent's own session (``session/load``) instead
of starting a new one told the transcript; its replay never streams into the run; an agent that
cannot load it starts over, told the recent conversation, and the run says so in a notice.

Against the scripted agent ``tests/acp_agent.py`` with ``--sessions FILE`` (its sessions outlive
its process) and ``--load`` (it advertises ``loadSession``); the real ``hermes acp`` is in
``tests/test_providers_acp_hermes.py``.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hermes_nb
from hermes_nb import view
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run, get_runtime
from hermes_nb.providers.acp import restart_agents
from hermes_nb.store import get_store
from hermes_nb.store.database import MIGRATIONS, Store
from hermes_nb.view import _blocks as view_blocks

AGENT = str(Path(__file__).with_name("acp_agent.py"))
WAIT = 20.0
COMMAND = f"{sys.executable} {AGENT}"


pytestmark = pytest.mark.usefixtures("agents_closed")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "notebook-folder"
    path.mkdir()
    return path


@pytest.fixture
def kept(tmp_path: Path) -> Path:
    """The scripted agent's own sessions file (what ``hermes acp`` keeps in its home)."""
    return tmp_path / "agent-sessions.json"


@pytest.fixture
def profile(folder: Path, kept: Path) -> Callable[..., Profile]:
    def make(*args: str, **fields: object) -> Profile:
        values: dict[str, object] = {
            "name": "scripted",
            "provider": "acp",
            "model": "agent",
            "command": (sys.executable, AGENT, "--sessions", str(kept), *args),
            "cwd": str(folder),
            "connect_timeout": 10.0,
            "titles": False,
            **fields,
        }
        return Profile(**values)  # type: ignore[arg-type]

    return make


def command_of(p: Profile) -> str:
    return " ".join(p.command)


def restart() -> None:
    assert get_runtime().submit(restart_agents).result(10)


def agent_sessions(run: Run) -> list[dict[str, Any]]:
    return [dict(d) for _, e, d in run.events() if e == "agent_session"]


def first_turn(session: hermes_nb.Session, p: Profile) -> str:
    """``echo first`` in a new agent session; the id the store kept for it."""
    run = session.chat("echo first", profile=p).wait(WAIT)
    assert run.status == "done", run.error
    (made,) = agent_sessions(run)
    assert made["loaded"] is False and "notice" not in made
    assert made["profile"] == "scripted"
    kept = get_store().agent_sessions(session.id, "scripted")
    assert kept == {made["command"]: made["id"]}
    return str(made["id"])


# -- loaded again ------------------------------------------------------------------------------


def test_the_next_turn_after_an_agent_restart_loads_the_kept_session(profile, kept) -> None:
    p = profile("--load")
    session = hermes_nb.Session.new("loaded", profile=p)
    made = first_turn(session, p)
    restart()
    run = session.chat("remember", profile=p).wait(WAIT)
    assert run.status == "done", run.error
    # The agent loaded its own session: it knows the first prompt, and was told no transcript.
    assert run.text == "echo first"
    (loaded,) = agent_sessions(run)
    assert loaded == {"profile": "scripted", "command": command_of(p), "id": made, "loaded": True}
    assert json.loads(kept.read_text())[made] == ["echo first", "remember"]
    # A third turn runs in the session this process now knows: no event, no load.
    third = session.chat("remember", profile=p).wait(WAIT)
    assert third.text == "echo first\nremember"
    assert agent_sessions(third) == []


def test_the_replay_of_a_loaded_session_does_not_stream_into_the_run(profile) -> None:
    p = profile("--load")
    session = hermes_nb.Session.new("replayed", profile=p)
    first_turn(session, p)
    for prompt in ("think", "plan", "chunks 50"):
        session.chat(prompt, profile=p).wait(WAIT)
    restart()
    run = session.chat("echo after the replay", profile=p).wait(WAIT)
    assert run.status == "done", run.error
    # Four prompts replayed as user chunks, thoughts, tool calls and 80 text chunks: none of it
    # is this turn's.
    assert run.text == "after the replay"
    assert run.reasoning == ""
    assert run.tool_calls == {}
    streamed = {e for _, e, _ in run.events() if e in ("token", "reasoning", "tool_start")}
    assert streamed == {"token"}  # the three chunks of "echo", in one event or a few


def test_a_kernel_restart_loads_the_kept_session(write_config, kept, folder, hermes_home) -> None:
    """Two kernels, one after the other (two processes), continue one named session."""
    command = json.dumps([sys.executable, AGENT, "--sessions", str(kept), "--load"])
    write_config(
        textwrap.dedent(
            f"""
            [profiles.scripted]
            provider = "acp"
            command = {command}
            cwd = {json.dumps(str(folder))}
            """
        )
    )
    script = textwrap.dedent(
        """
        import json, sys, hermes_nb
        session = hermes_nb.Session.open_or_create("kernel-restart", profile="scripted")
        run = session.chat(sys.argv[1]).wait(20)
        events = [d for _, e, d in run.events() if e == "agent_session"]
        print(json.dumps([str(run.status), run.text, events]))
        """
    )
    env = {**os.environ, "HERMES_NB_HOME": str(hermes_home)}

    def kernel(prompt: str) -> tuple[str, str, list[dict[str, Any]]]:
        done = subprocess.run(
            [sys.executable, "-c", script, prompt],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        status, text, events = json.loads(done.stdout.strip().splitlines()[-1])
        return status, text, events

    status, text, (made,) = kernel("echo before the restart")
    assert (status, text, made["loaded"]) == ("done", "before the restart", False)
    status, text, (loaded,) = kernel("remember")
    assert (status, text) == ("done", "echo before the restart")
    assert loaded["loaded"] is True and loaded["id"] == made["id"] and "notice" not in loaded


# -- starting over, and saying so --------------------------------------------------------------


def _started_over(run: Run, why: str, told: int = 2) -> dict[str, Any]:
    assert run.status == "done", run.error
    (made,) = agent_sessions(run)
    assert made["loaded"] is False
    assert made["notice"] == (
        f"The agent started a new session: it could not load the one it had for this "
        f"conversation ({why}), so the last {told} messages of this session were sent with "
        "your prompt."
    )
    # The new session's first prompt carried the transcript (the agent echoes it).
    assert run.text.startswith("Earlier in this conversation")
    assert "User: echo first\n\nAssistant: first" in run.text
    assert run.text.endswith("Now the user says:\n\nremember")
    return made


def test_an_agent_without_load_starts_over_with_the_transcript_and_a_notice(profile) -> None:
    p = profile()
    session = hermes_nb.Session.new("no-load", profile=p)
    old = first_turn(session, p)
    restart()
    run = session.chat("remember", profile=p).wait(WAIT)
    made = _started_over(run, "it does not offer session/load")
    assert made["id"] != old
    assert get_store().agent_sessions(session.id, "scripted") == {made["command"]: made["id"]}


def test_the_notice_shows_in_the_chat_view_in_the_saved_output_and_as_plain_text(
    profile,
) -> None:
    p = profile()
    session = hermes_nb.Session.new("notice-shown", profile=p)
    first_turn(session, p)
    restart()
    run = session.chat("remember", profile=p).wait(WAIT)
    (made,) = agent_sessions(run)
    blocks = view_blocks.Transcript(run).consume(run.events())
    kind, html = blocks["notice:agent"]
    assert kind == "notice" and "The agent started a new session" in html
    assert "The agent started a new session" in view.static_bundle(run)[0]["text/html"]
    out = io.StringIO()
    view.stream_plain(run, out)
    assert made["notice"] + "\n" in out.getvalue()


@pytest.mark.parametrize(
    ("flag", "why"),
    [
        ("--load-error", "it answered session/load with an error: Internal error"),
        ("--load-null", "it did not know that session"),
    ],
)
def test_a_load_that_fails_starts_over_with_a_notice(profile, flag, why) -> None:
    p = profile("--load", flag)
    session = hermes_nb.Session.new("load-fails", profile=p)
    first_turn(session, p)
    restart()
    _started_over(session.chat("remember", profile=p).wait(WAIT), why)


def test_a_session_the_agent_forgot_starts_over_with_a_notice(profile, kept) -> None:
    p = profile("--load")
    session = hermes_nb.Session.new("forgotten", profile=p)
    old = first_turn(session, p)
    restart()
    kept.unlink()  # the agent's own store was wiped
    run = session.chat("remember", profile=p).wait(WAIT)
    made = _started_over(run, "it answered session/load with an error: Resource not found")
    assert made["id"] != old


def test_the_notice_counts_the_messages_the_bounded_transcript_carried(profile) -> None:
    p = profile(context_window=1_000_000)  # no compression
    session = hermes_nb.Session.new("long", profile=p)
    first_turn(session, p)
    for n in range(3):
        session.chat(f"big {9_000 + n}", profile=p).wait(WAIT)
    restart()
    run = session.chat("remember", profile=p).wait(WAIT)
    (made,) = agent_sessions(run)
    # 20,000 characters hold the last two 9,000-character replies, their prompts and part of
    # the reply before them: five messages of the eight.
    assert "so the last 5 messages of this session were sent" in made["notice"]
    assert run.text.startswith(
        "Earlier in this conversation (for context; it happened before you joined):\n\n…xxx"
    )


# -- which session is kept ---------------------------------------------------------------------


def test_another_command_for_the_profile_starts_a_session_of_its_own(profile) -> None:
    session = hermes_nb.Session.new("new-command", profile=profile("--load"))
    old = first_turn(session, profile("--load"))
    restart()
    other = profile("--load", "--init-delay", "0")  # another command line: not that agent's
    run = session.chat("remember", profile=other).wait(WAIT)
    (made,) = agent_sessions(run)
    assert made["id"] != old and made["loaded"] is False
    assert "notice" not in made  # nothing kept for this command: nothing failed to load
    assert run.text.startswith("Earlier in this conversation")
    kept = get_store().agent_sessions(session.id, "scripted")
    assert kept == {made["command"]: made["id"]}


def test_each_profile_keeps_its_own_agent_session(profile) -> None:
    one, two = profile("--load"), profile("--load", name="second")
    session = hermes_nb.Session.new("two-profiles", profile=one)
    first_turn(session, one)
    session.chat("echo to the second", profile=two).wait(WAIT)
    restart()
    assert session.chat("remember", profile=one).wait(WAIT).text == "echo first"
    run = session.chat("remember", profile=two).wait(WAIT)
    # The second profile's agent remembers its own first prompt (which told it the first turn).
    assert run.text.endswith("Now the user says:\n\necho to the second")
    assert [d["loaded"] for d in agent_sessions(run)] == [True]
    store = get_store()
    assert {*store.agent_sessions(session.id, "scripted").values()} != {
        *store.agent_sessions(session.id, "second").values()
    }


def test_a_plain_history_keeps_nothing(profile) -> None:
    run = hermes_nb.chat("echo no session", profile=profile("--load")).wait(WAIT)
    assert run.status == "done"
    assert agent_sessions(run) == []


# -- the store ---------------------------------------------------------------------------------


def test_the_store_keeps_one_agent_session_per_profile_and_forgets_it_with_the_session(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "sessions.db")
    assert "007_agent_sessions" in [m.name for m in MIGRATIONS]
    record = store.create_session(profile="a")
    assert store.agent_sessions(record.id, "a") == {}
    store.keep_agent_session(record.id, "a", "hermes acp", "s-1")
    store.keep_agent_session(record.id, "b", "claude-agent-acp", "c-1")
    store.keep_agent_session(record.id, "a", "hermes acp", "s-2")  # replaces, per profile
    assert store.agent_sessions(record.id, "a") == {"hermes acp": "s-2"}
    assert store.agent_sessions(record.id, "b") == {"claude-agent-acp": "c-1"}
    branch = store.fork(record.id, 0)
    assert store.agent_sessions(branch.id, "a") == {}  # a branch is not the agent's conversation
    store.delete_session(record.id)
    assert store.dump()["agent_sessions"] == []
    store.close()
