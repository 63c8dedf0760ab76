"""``provider = "acp"`` with the real ``hermes acp`` (from ``.venv-agents/hermes-acp/``, built by
``tests/agent_envs.py``; skipped if it cannot be built, failed in CI) talking to the loopback
OpenAI-style server: a reply streams and the agent's session remembers, a kept session loads after
the agent restarts, Stop cancels the model request, and a dangerous command goes through the
approval card. Shared helpers: ``acp_support.py``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from acp_support import (
    WAIT,
    events,
    fixture_folder,  # noqa: F401  (folder: a work folder)
    wait_until,
)
from agent_envs import AgentEnvError, hermes_acp, hermes_acp_profile
from ci_env import unavailable
from sse_server import Pause, RecordedRequest, Reply, SSEServer, content, finish, tool_call

import hermes_nb
from hermes_nb.engine.runtime import get_runtime
from hermes_nb.providers.acp import restart_agents

pytestmark = pytest.mark.usefixtures("agents_closed")


# -- the real hermes acp ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def hermes_program() -> Path:
    """``hermes`` from ``.venv-agents/hermes-acp/`` (built on first use; CI must have it)."""
    try:
        return hermes_acp()
    except AgentEnvError as exc:
        unavailable(f"The hermes-acp environment cannot be built here: {exc}", "CI must build it")


@pytest.fixture
def hermes_profile(hermes_program: Path, tmp_path: Path, folder: Path, sse_server: SSEServer):
    """``hermes acp`` with a home whose model is the loopback server; every other host goes
    through a proxy that refuses, so the agent stays offline even where CI has a network."""
    return hermes_acp_profile(
        hermes_program, tmp_path / "hermes-agent-home", sse_server.url, folder
    )


def _hello_then_recall(request: RecordedRequest) -> Reply:
    """The loopback model of the two-turn tests: a greeting, then what the first turn said."""
    if "What did I say" in request.last_user_text():
        return Reply.text("You ", "said ", "hello.")
    return Reply.text("Hello ", "from ", "the loopback.")


def test_hermes_acp_streams_a_reply_and_remembers_the_session(hermes_profile, sse_server) -> None:
    sse_server.enqueue(*[_hello_then_recall] * 6)
    session = hermes_nb.Session.new("hermes-acp", profile=hermes_profile)
    first = session.chat("Say hello", profile=hermes_profile).wait(120)
    assert first.status == "done", first.error
    assert first.text == "Hello from the loopback."
    assert events(first, "token")
    second = session.chat("What did I say first?", profile=hermes_profile).wait(60)
    assert second.status == "done", second.error
    assert second.text == "You said hello."
    asked = [r for r in sse_server.chat_requests if "What did I say" in r.last_user_text()]
    assert asked, "the second prompt never reached the model"
    said = [(m["role"], m.get("content")) for m in asked[-1].body["messages"]]
    # The agent's own ACP session kept the first turn: it sends it with the second.
    assert ("user", "Say hello") in said
    assert ("assistant", "Hello from the loopback.") in said


def test_hermes_acp_loads_the_kept_session_after_a_restart(hermes_profile, sse_server) -> None:
    """hermes acp 0.19 advertises loadSession: after the agent restarted, the stored session's
    next turn loads the agent's own session (its history, kept in HERMES_HOME) instead of
    telling a new one the transcript; the history it replays does not stream into the run."""

    sse_server.enqueue(*[_hello_then_recall] * 6)
    session = hermes_nb.Session.new("hermes-acp-load", profile=hermes_profile)
    first = session.chat("Say hello", profile=hermes_profile).wait(120)
    assert first.status == "done", first.error
    (made,) = [d for e, d in events(first, "agent_session")]
    assert made["loaded"] is False
    assert get_runtime().submit(restart_agents).result(30) == ["hermes"]
    second = session.chat("What did I say first?", profile=hermes_profile).wait(120)
    assert second.status == "done", second.error
    assert second.text == "You said hello."  # the replayed "Hello from the loopback." is not
    assert second.reasoning == "" and second.tool_calls == {}
    (loaded,) = [d for e, d in events(second, "agent_session")]
    assert loaded == {**made, "loaded": True}
    asked = [r for r in sse_server.chat_requests if "What did I say" in r.last_user_text()]
    assert asked, "the second prompt never reached the model"
    said = [(m["role"], m.get("content")) for m in asked[-1].body["messages"]]
    assert ("user", "Say hello") in said
    assert ("assistant", "Hello from the loopback.") in said
    assert asked[-1].last_user_text() == "What did I say first?"  # no transcript in the prompt


def test_hermes_acp_stop_cancels_the_model_request(hermes_profile, sse_server) -> None:
    sse_server.enqueue(Reply(chunks=[content("partial "), Pause(30), content("never")]))
    run = hermes_nb.chat("Tell me a long story", profile=hermes_profile)
    wait_until(lambda: run.text == "partial ", timeout=120)
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    assert run.text == "partial "
    # session/cancel reached hermes, which closed its request to the model: generation stopped.
    assert sse_server.wait_for_disconnect(timeout=10)
    sse_server.enqueue(Reply.text("Still ", "here."))
    after = hermes_nb.chat("Are you there?", profile=hermes_profile).wait(120)
    assert after.text == "Still here."


@pytest.mark.parametrize("value", ["once", "deny"])
def test_hermes_acp_a_dangerous_command_goes_through_the_card(
    hermes_profile, sse_server, folder, value
) -> None:
    victim = folder / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me?\n")
    command = f"rm -rf {victim}"

    def reply(request: RecordedRequest) -> Reply:
        if request.body["messages"][-1]["role"] == "tool":
            return Reply.text("The tool answered.")
        arguments = json.dumps({"command": command})
        call = tool_call(0, id="call_1", name="terminal", arguments=arguments)
        return Reply(chunks=[call, finish("tool_calls")])

    sse_server.enqueue(*[reply] * 4)
    run = hermes_nb.chat("Delete the victim folder", profile=hermes_profile)
    wait_until(lambda: bool(run.pending) or run.settled, timeout=120)
    assert run.pending, run.error
    prompt = run.pending[0]
    assert prompt.detail == command  # what will run, verbatim
    assert command in prompt.text
    run.answer(prompt.id, value)
    run.wait(60)
    assert run.status == "done", run.error
    assert run.text.strip() == "The tool answered."
    (call,) = run.tool_calls.values()
    assert call["error"] is (value == "deny")
    assert victim.exists() is (value == "deny")  # approved: it ran; denied: it did not
