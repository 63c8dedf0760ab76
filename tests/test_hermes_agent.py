"""The hermes-agent provider, running the real ``hermes-agent`` package in this process with its
model endpoint pointed at the loopback SSE server.

Without the package (``pip install "hermes-nb[agent]"``) the agent tests skip with the reason —
except in CI (``CI=true``), which must install it, where they fail instead.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from sse_server import Pause, RecordedRequest, Reply, SSEServer, content, finish, tool_call, usage

from hermes_nb import chat
from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import ConfigError, ErrorKind
from hermes_nb.core.profiles import ENV_LOCK, Profile, Secret
from hermes_nb.core.prompts import APPROVAL_VALUES, Prompt
from hermes_nb.engine.turn import MemoryTranscript, cancel_marker
from hermes_nb.providers._agent_approvals import _approval_choice, _approval_text
from hermes_nb.providers.base import ProviderRequest
from hermes_nb.providers.hermes_agent import (
    MISSING_EXTRA,
    HermesAgentProvider,
    agent_available,
    agent_home,
    classify_agent_failure,
)
from hermes_nb.store.titles import ask

KEY = "sk-agent-test-4f1c9a"
KEY_VAR = "HNB_AGENT_TEST_KEY"

# Only what keeps a test home fast and offline: no retries (a failure is one request), no probe
# of the local Python toolchain, a context size so the agent does not probe the endpoint, no
# Tirith (asked for approval, hermes-agent would scan each command with it, downloading it first)
# and manual approvals (hermes-agent's default, "smart", first asks an auxiliary model, which
# here would be the loopback server eating a scripted reply).
_CONFIG = """\
agent:
  api_max_retries: 0
  environment_probe: false
model:
  context_length: 128000
security:
  tirith_enabled: false
approvals:
  mode: manual
"""


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name looked up that is not the loopback server, refused (the agent tolerates
    that: it is how it runs without a network). Tests stay offline even where CI has one."""
    refused: list[str] = []
    lookup = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in _LOOPBACK and not (isinstance(host, bytes) and host.decode() in _LOOPBACK):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no network in tests")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return refused


@pytest.fixture
def agent(monkeypatch: pytest.MonkeyPatch, offline: list[str]) -> Iterator[None]:
    """The real hermes-agent (skip without it, fail in CI), offline, with the key variable set,
    and the root logger put back afterwards (hermes-agent adds its log files to it)."""
    if not agent_available():
        reason = 'hermes-agent is not installed (pip install "hermes-nb[agent]")'
        if _ci():
            pytest.fail(f"{reason}; CI=true, and CI must install it.", pytrace=False)
        pytest.skip(reason)
    monkeypatch.setenv(KEY_VAR, KEY)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def make_home(root: Path, marker: str) -> Path:
    """A Hermes home whose SOUL.md, skill and .env say which home it is."""
    home = root / f"hermes-{marker}"
    (home / "skills" / "probe").mkdir(parents=True)
    (home / "config.yaml").write_text(_CONFIG, encoding="utf-8")
    (home / "SOUL.md").write_text(f"You are the assistant of home-{marker}.\n", encoding="utf-8")
    (home / "skills" / "probe" / "SKILL.md").write_text(
        f"---\nname: probe\ndescription: Says which home this is.\n---\n"
        f"This skill lives in home-{marker}.\n",
        encoding="utf-8",
    )
    (home / ".env").write_text(f"HNB_DOTENV_{marker.upper()}=from-{marker}\n", encoding="utf-8")
    return home


def agent_profile(name: str, home: Path, server: SSEServer, **options: object) -> Profile:
    """A profile for ``home`` whose model is the loopback server (``toolsets=None``: the home's)."""
    options = {"toolsets": ["todo", "skills"], "memory": False, **options}
    return Profile(
        name=name,
        provider="hermes-agent",
        model=f"model-{name}",
        base_url=server.url,
        api_key_env=KEY_VAR,
        hermes_home=str(home),
        options={k: v for k, v in options.items() if v is not None},
    )


def tool_names(request: RecordedRequest) -> list[str]:
    return sorted(t["function"]["name"] for t in request.body.get("tools") or [])


def system_prompt(request: RecordedRequest) -> str:
    return request.body["messages"][0]["content"]


def events(run, name: str) -> list[dict]:
    return [data for _, event, data in run.events() if event == name]


def agent_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hermes-agent:")]


def wait_for_prompt(run, timeout: float = 60) -> Prompt:
    """The run's one open prompt, once the agent (in its worker thread) has asked it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = run.pending
        if pending:
            assert len(pending) == 1, pending
            return pending[0]
        assert not run.settled, (run.status, run.error, run.text)
        time.sleep(0.02)
    raise AssertionError(f"the run asked nothing within {timeout} s")


def delete_script(victim: Path, call_id: str = "call_rm") -> tuple[str, list[Reply]]:
    """The command a scripted model runs through ``terminal`` (flagged "delete in root path"),
    and the replies: the tool call, then a closing text."""
    command = f"rm -rf {victim}"
    call = tool_call(0, id=call_id, name="terminal", arguments=json.dumps({"command": command}))
    return command, [Reply(chunks=[call, finish("tool_calls")]), Reply.text("Done.")]


def tool_message(request: RecordedRequest) -> dict:
    """The tool result a request carries back to the model (its last message)."""
    message = request.body["messages"][-1]
    assert message["role"] == "tool", message
    return message


# -- with the real agent -----------------------------------------------------------------------


def test_a_reply_streams_as_tokens_with_usage(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home = make_home(tmp_path, "a")
    sse_server.enqueue(Reply.text("Hello", " from", " the agent."))
    run = chat("Say hello.", profile=agent_profile("a", home, sse_server)).wait(60)

    assert run.status is RunState.DONE, run.error
    assert run.text == "Hello from the agent."
    assert [d["text"] for d in events(run, "token")] == ["Hello", " from", " the agent."]
    assert events(run, "usage")[-1] == {
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
    }
    (request,) = sse_server.chat_requests
    assert request.body["model"] == "model-a"
    assert request.body["messages"][-1] == {"role": "user", "content": "Say hello."}
    assert "home-a" in system_prompt(request)  # the agent read the profile's home (SOUL.md)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(run.events())
    assert current_env() == env_snapshot


def test_history_and_system_prompt_reach_the_agent(agent, tmp_path, sse_server) -> None:
    home = make_home(tmp_path, "a")
    sse_server.enqueue(Reply.text("Blue."))
    history = [
        {"role": "user", "content": "My favourite colour is blue."},
        {"role": "assistant", "content": "Noted."},
    ]
    run = chat(
        "What is my favourite colour?",
        profile=agent_profile("a", home, sse_server),
        history=history,
        system="Answer in one word.",
    ).wait(60)

    assert run.text == "Blue."
    messages = sse_server.chat_requests[0].body["messages"]
    assert messages[-3:] == [*history, {"role": "user", "content": "What is my favourite colour?"}]
    assert "Answer in one word." in system_prompt(sse_server.chat_requests[0])


def test_a_tool_call_shows_as_tool_events(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home = make_home(tmp_path, "a")
    plan = '{"todos": [{"id": "1", "content": "Profile the merge", "status": "pending"}]}'
    sse_server.enqueue(
        Reply(
            chunks=[
                tool_call(0, id="call_1", name="todo", arguments=plan),
                finish("tool_calls"),
                usage(5, 2),
            ]
        ),
        Reply.text("I made a plan."),
    )
    run = chat("Plan it.", profile=agent_profile("a", home, sse_server)).wait(60)

    assert run.status is RunState.DONE, run.error
    assert run.text.strip() == "I made a plan."
    kinds = [event for _, event, _ in run.events() if event in ("tool_start", "tool_end", "token")]
    assert kinds[:2] == ["tool_start", "tool_end"] and set(kinds[2:]) == {"token"}
    (start,) = events(run, "tool_start")
    assert start["id"] == "call_1" and start["name"] == "todo"
    assert "Profile the merge" in start["arguments"]
    (end,) = events(run, "tool_end")
    assert end["id"] == "call_1" and end["name"] == "todo" and end["error"] is False
    assert "Profile the merge" in end["result"] and '"pending"' in end["result"]
    assert isinstance(end["duration_ms"], float) and end["duration_ms"] >= 0
    assert run.tool_calls["call_1"]["result"] == end["result"]
    # The second request carries the tool's result back to the model.
    assert sse_server.chat_requests[1].body["messages"][-1]["role"] == "tool"
    assert current_env() == env_snapshot


def test_stop_mid_stream_keeps_the_partial_and_interrupts_the_agent(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home = make_home(tmp_path, "a")
    sse_server.enqueue(
        Reply(chunks=[content("Hello"), content(" partial"), Pause(30), content(" never")])
    )
    transcript = MemoryTranscript()
    run = chat("Talk slowly.", profile=agent_profile("a", home, sse_server), history=transcript)
    deadline = time.monotonic() + 60
    while "partial" not in run.text and not run.settled and time.monotonic() < deadline:
        time.sleep(0.02)
    assert run.text == "Hello partial"

    stopped_at = time.perf_counter()
    assert run.cancel()
    run.wait(10)
    # interrupt() ends the agent's run at once: far sooner than the provider's grace period,
    # which is all a Stop would get without it.
    assert time.perf_counter() - stopped_at < 2.0
    assert run.status is RunState.STOPPED and run.error is None
    assert run.text == "Hello partial"
    assert [e for _, e, _ in run.events()][-3:] == ["cancel", "status", "stream_end"]
    assert transcript.messages[-2:] == [
        {"role": "assistant", "content": "Hello partial", "partial": True},
        {"role": "notice", "content": cancel_marker("Hermes")},
    ]
    deadline = time.monotonic() + 5
    while agent_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent_threads() == []  # the worker returned: it was not left behind
    assert current_env() == env_snapshot


def test_the_homes_toolsets_apply_unless_the_profile_names_some(
    agent, tmp_path, sse_server
) -> None:
    home = make_home(tmp_path, "a")
    with (home / "config.yaml").open("a", encoding="utf-8") as config:
        config.write("platform_toolsets:\n  cli: [todo]\n")  # what `hermes tools` saves
    sse_server.enqueue(Reply.text("One."), Reply.text("Two."))
    chat("Hi.", profile=agent_profile("a", home, sse_server, toolsets=None)).wait(60)
    chat("Hi.", profile=agent_profile("a", home, sse_server, toolsets=["skills"])).wait(60)

    first, second = sse_server.chat_requests
    assert tool_names(first) == ["todo"]
    assert "todo" not in tool_names(second) and "skill_view" in tool_names(second)


def test_background_title_requests_run_the_agent_in_its_profile_context(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home = make_home(tmp_path, "a")
    profile = agent_profile("a", home, sse_server)
    sse_server.enqueue(Reply.text("Faster", " merges"))
    messages = [
        {"role": "system", "content": "Write a title."},
        {"role": "user", "content": "User: why is my merge slow?"},
    ]
    titled: dict[str, str] = {}
    # As sessions.py runs a title or compression job: in a thread of its own, through ask().
    worker = threading.Thread(
        target=lambda: titled.update(title=ask(profile, messages, timeout=60))
    )
    worker.start()
    worker.join(60)

    assert titled == {"title": "Faster merges"}
    (request,) = sse_server.chat_requests
    assert "home-a" in system_prompt(request) and "Write a title." in system_prompt(request)
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert current_env() == env_snapshot


@pytest.mark.parametrize("answer", ["once", "deny"])
def test_a_dangerous_command_waits_for_the_persons_answer(
    agent, tmp_path, sse_server, env_snapshot, current_env, answer
) -> None:
    home = make_home(tmp_path, "a")
    victim = tmp_path / "victim"
    (victim / "inner").mkdir(parents=True)
    command, replies = delete_script(victim)
    sse_server.enqueue(*replies)
    profile = agent_profile("a", home, sse_server, toolsets=["terminal"])  # approvals: "ask"
    run = chat("Clean up.", profile=profile)

    prompt = wait_for_prompt(run)
    assert prompt.kind == "approval" and prompt.choices == APPROVAL_VALUES
    assert prompt.detail == command  # exactly what would run, not a summary
    assert prompt.text == "Run a command the agent flags as dangerous (delete in root path)?"
    assert victim.exists() and len(sse_server.chat_requests) == 1  # the agent is waiting
    assert run.answer(prompt.id, answer)
    run.wait(60)

    assert run.status is RunState.DONE, run.error
    assert run.text.strip() == "Done."
    assert events(run, "prompt_answered") == [{"id": prompt.id, "value": answer, "by": "api"}]
    assert run.pending == []
    (end,) = events(run, "tool_end")
    result = tool_message(sse_server.chat_requests[1])["content"]
    if answer == "once":
        assert not victim.exists(), end
        assert "approved by the user" in result and "BLOCKED" not in result
    else:
        assert victim.exists() and (victim / "inner").is_dir()
        assert "BLOCKED" in result and "denied" in result, result
        assert "BLOCKED" in end["result"]
    assert current_env() == env_snapshot


def test_a_session_approval_covers_the_runs_later_commands_only(
    agent, tmp_path, sse_server
) -> None:
    home = make_home(tmp_path, "a")
    first, second, third = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    for victim in (first, second, third):
        victim.mkdir()
    _, (call_1, _) = delete_script(first, "call_1")
    _, (call_2, _) = delete_script(second, "call_2")
    command_3, (call_3, done) = delete_script(third, "call_3")
    sse_server.enqueue(call_1, call_2, Reply.text("Two gone."), call_3, done)
    profile = agent_profile("a", home, sse_server, toolsets=["terminal"])

    run = chat("Clean up.", profile=profile)
    assert run.answer(wait_for_prompt(run).id, "session")
    run.wait(60)
    assert run.status is RunState.DONE, run.error
    assert not first.exists() and not second.exists()  # the second did not ask again
    assert len(events(run, "prompt")) == 1

    # A later run has a session key of its own: the same pattern asks again.
    later = chat("And that one.", profile=profile)
    prompt = wait_for_prompt(later)
    assert prompt.detail == command_3
    assert later.answer(prompt.id, "deny")
    later.wait(60)
    assert later.status is RunState.DONE, later.error
    assert third.exists()


def test_a_session_approval_lasts_for_the_notebook_session(agent, tmp_path, sse_server) -> None:
    from hermes_nb import Session
    from hermes_nb.store import close_stores, join_background

    home = make_home(tmp_path, "a")
    first, second, third = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    for victim in (first, second, third):
        victim.mkdir()
    _, replies_1 = delete_script(first, "call_1")
    _, replies_2 = delete_script(second, "call_2")
    _, replies_3 = delete_script(third, "call_3")
    sse_server.enqueue(*replies_1, *replies_2, *replies_3)
    # No title request: it would take one of the scripted replies.
    profile = agent_profile("a", home, sse_server, toolsets=["terminal"]).with_overrides(
        titles=False
    )
    try:
        notebook = Session.new(name="notebook")
        run = notebook.chat("Clean up.", profile=profile)
        assert run.answer(wait_for_prompt(run).id, "session")
        assert run.wait(60).status is RunState.DONE, run.error
        # The next turn of the same session runs the same pattern without asking.
        again = notebook.chat("And the next.", profile=profile)
        assert again.wait(60).status is RunState.DONE, again.error
        assert events(again, "prompt") == [] and not second.exists()
        # Another session asks again.
        other = Session.new(name="other").chat("And that one.", profile=profile)
        prompt = wait_for_prompt(other)
        assert other.answer(prompt.id, "deny")
        other.wait(60)
        assert third.exists()
    finally:
        join_background(10)
        close_stores()


def test_the_agent_asks_its_clarify_question(agent, tmp_path, sse_server) -> None:
    home = make_home(tmp_path, "a")
    question = json.dumps({"question": "Which colour?", "choices": ["red", "blue"]})
    sse_server.enqueue(
        Reply(
            chunks=[
                tool_call(0, id="call_q", name="clarify", arguments=question),
                finish("tool_calls"),
            ]
        ),
        Reply.text("Blue it is."),
    )
    run = chat("Paint it.", profile=agent_profile("a", home, sse_server, toolsets=["clarify"]))

    prompt = wait_for_prompt(run)
    assert prompt.kind == "question"
    assert prompt.text == "Which colour?" and prompt.choices == ("red", "blue")
    assert run.answer(prompt.id, "blue")
    run.wait(60)

    assert run.status is RunState.DONE, run.error
    assert run.text.strip() == "Blue it is."
    result = tool_message(sse_server.chat_requests[1])["content"]
    assert '"user_response": "blue"' in result, result


def test_stop_while_the_agent_waits_for_approval_ends_the_run_at_once(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home = make_home(tmp_path, "a")
    victim = tmp_path / "victim"
    victim.mkdir()
    _, replies = delete_script(victim)
    sse_server.enqueue(*replies)
    run = chat("Clean up.", profile=agent_profile("a", home, sse_server, toolsets=["terminal"]))
    prompt = wait_for_prompt(run)

    stopped_at = time.perf_counter()
    assert run.cancel()
    run.wait(10)
    # Far sooner than the provider's grace: the prompt was answered for the person at once.
    assert time.perf_counter() - stopped_at < 2.0
    assert run.status is RunState.STOPPED and run.error is None
    assert victim.exists()
    assert run.pending == [] and run.prompts.pending == []
    assert events(run, "prompt_answered") == [{"id": prompt.id, "value": "deny", "by": "stop"}]
    assert not run.answer(prompt.id, "once")  # too late: Stop answered it
    deadline = time.monotonic() + 5
    while agent_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert agent_threads() == []  # the worker returned: it was not left behind
    assert victim.exists()
    assert current_env() == env_snapshot


def test_two_agents_asking_at_once_each_get_their_own_answer(agent, tmp_path, sse_server) -> None:
    home_a, home_b = make_home(tmp_path, "a"), make_home(tmp_path, "b")
    victims = {"model-a": tmp_path / "victim-a", "model-b": tmp_path / "victim-b"}
    for victim in victims.values():
        victim.mkdir()
    commands = {model: f"rm -rf {victim}" for model, victim in victims.items()}
    served: list[str] = []
    lock = threading.Lock()

    def script(request: RecordedRequest) -> Reply:
        model = request.body["model"]
        with lock:
            served.append(model)
            n = served.count(model)
        if n > 1:
            return Reply.text(f"{model} done.")
        arguments = json.dumps({"command": commands[model]})
        return Reply(
            chunks=[
                tool_call(0, id=f"call_{model}", name="terminal", arguments=arguments),
                finish("tool_calls"),
            ]
        )

    sse_server.default = script
    run_a = chat("Clean up.", profile=agent_profile("a", home_a, sse_server, toolsets=["terminal"]))
    run_b = chat("Clean up.", profile=agent_profile("b", home_b, sse_server, toolsets=["terminal"]))
    prompt_a, prompt_b = wait_for_prompt(run_a), wait_for_prompt(run_b)

    # Both wait at once, each on its own run's prompt.
    assert prompt_a.detail == commands["model-a"] and prompt_b.detail == commands["model-b"]
    assert run_a.pending == [prompt_a] and run_b.pending == [prompt_b]
    assert not run_a.answer(prompt_b.id, "once")  # another run's prompt is not this run's
    assert run_b.answer(prompt_b.id, "deny")
    run_b.wait(60)
    assert run_b.status is RunState.DONE, run_b.error
    assert not run_a.settled and run_a.pending == [prompt_a]  # still waiting for its own
    assert run_a.answer(prompt_a.id, "once")
    run_a.wait(60)
    assert run_a.status is RunState.DONE, run_a.error

    assert not victims["model-a"].exists()
    assert victims["model-b"].exists()
    assert run_a.text.strip() == "model-a done." and run_b.text.strip() == "model-b done."


@pytest.mark.parametrize("approvals", ["deny", "allow"])
def test_deny_and_allow_decide_without_asking(agent, tmp_path, sse_server, approvals) -> None:
    home = make_home(tmp_path, "a")
    victim = tmp_path / "victim"
    victim.mkdir()
    _, replies = delete_script(victim)
    sse_server.enqueue(*replies)
    options = {"toolsets": ["terminal"], "approvals": approvals}
    run = chat("Clean up.", profile=agent_profile("a", home, sse_server, **options)).wait(60)

    assert run.status is RunState.DONE, run.error
    assert events(run, "prompt") == []  # nobody was asked
    (end,) = events(run, "tool_end")
    assert end["name"] == "terminal"
    if approvals == "deny":
        assert victim.exists()
        assert "BLOCKED" in end["result"] and "denied" in end["result"], end
    else:
        assert not victim.exists(), end


def test_without_an_asker_ask_refuses_and_clarify_is_unavailable(
    agent, tmp_path, sse_server
) -> None:
    home = make_home(tmp_path, "a")
    victim = tmp_path / "victim"
    victim.mkdir()
    _, (call, _) = delete_script(victim)
    question = json.dumps({"question": "Which colour?", "choices": ["red", "blue"]})
    sse_server.enqueue(
        call,
        Reply(
            chunks=[
                tool_call(0, id="call_q", name="clarify", arguments=question),
                finish("tool_calls"),
            ]
        ),
        Reply.text("Done."),
    )
    profile = agent_profile("a", home, sse_server, toolsets=["terminal", "clarify"])
    request = ProviderRequest(
        profile=profile,
        messages=[{"role": "user", "content": "Clean up."}],
        model=profile.model,
        api_key=Secret(KEY),
    )

    async def drive() -> list[tuple[str, dict]]:
        return [item async for item in HermesAgentProvider(profile).stream(request)]

    # In a thread of its own, as titles.py asks: with a loop of its own, whatever this one has.
    streamed: list[tuple[str, dict]] = []
    worker = threading.Thread(target=lambda: streamed.extend(anyio.run(drive)))
    worker.start()
    worker.join(60)

    assert victim.exists()
    ends = [data for event, data in streamed if event == "tool_end"]
    assert [e["name"] for e in ends] == ["terminal", "clarify"]
    assert "BLOCKED" in ends[0]["result"]
    assert "not available" in tool_message(sse_server.chat_requests[2])["content"]


@pytest.mark.parametrize(
    ("value", "allow_permanent", "smart_denied", "given"),
    [
        ("once", True, False, "once"),
        ("session", True, False, "session"),
        ("always", True, False, "always"),
        ("always", False, False, "session"),  # hermes-agent offered no permanent approval
        ("always", True, True, "once"),  # overriding its smart DENY: this operation only
        ("session", False, True, "once"),
        ("deny", True, False, "deny"),
        # hermes-agent approves on anything but "deny": every other value must become one
        ("no answer; decide yourself", True, False, "deny"),
        ("", True, False, "deny"),
        ("yes", True, False, "deny"),
        ("Once", True, False, "deny"),
    ],
)
def test_only_an_approving_answer_approves(value, allow_permanent, smart_denied, given) -> None:
    assert (
        _approval_choice(value, allow_permanent=allow_permanent, smart_denied=smart_denied) == given
    )


def test_the_approval_text_says_what_is_approved() -> None:
    assert _approval_text("recursive delete") == (
        "Run a command the agent flags as dangerous (recursive delete)?"
    )
    assert _approval_text("Save to memory: my  name") == "Let the agent save to memory: my name?"
    assert _approval_text("") == "Run a command the agent flags as dangerous?"


@pytest.mark.parametrize(
    ("reply", "kind", "status"),
    [
        (Reply.error(401, f"Invalid API key {KEY}"), ErrorKind.AUTH, 401),
        (Reply.error(429, "Slow down", headers={"Retry-After": "1"}), ErrorKind.RATE_LIMIT, 429),
    ],
)
def test_failures_are_classified_never_blank(
    agent, tmp_path, sse_server, reply, kind, status
) -> None:
    home = make_home(tmp_path, "a")
    sse_server.enqueue(reply)
    run = chat("Hi.", profile=agent_profile("a", home, sse_server)).wait(60)

    assert run.status is RunState.ERROR
    assert run.error["kind"] == kind and run.error["status"] == status
    assert run.error["message"].startswith("The Hermes agent failed: ")
    assert run.text == ""
    assert KEY not in repr(run.events())


def test_two_homes_at_once_each_agent_sees_its_own_and_env_lock_stays_free(
    agent, tmp_path, sse_server, env_snapshot, current_env
) -> None:
    home_a, home_b = make_home(tmp_path, "a"), make_home(tmp_path, "b")
    b_asked, a_tool_done = threading.Event(), threading.Event()
    served: list[str] = []
    lock = threading.Lock()

    def script(request: RecordedRequest) -> Reply:
        model = request.body["model"]
        with lock:
            served.append(model)
            n = served.count(model)
        if model == "model-a" and n == 1:
            # A calls a tool only once B's turn (and B's HERMES_HOME) is live.
            b_asked.wait(30)
            probe = '{"name": "probe"}'
            return Reply(
                chunks=[
                    tool_call(0, id="call_a", name="skill_view", arguments=probe),
                    finish("tool_calls"),
                ]
            )
        if model == "model-a":
            a_tool_done.set()
            return Reply(chunks=[content("A is"), Pause(2.0), content(" done."), finish()])
        b_asked.set()
        a_tool_done.wait(30)  # B stays in flight until A's tool has run
        return Reply.text("B is", " done.")

    sse_server.default = script
    run_a = chat("Which home?", profile=agent_profile("a", home_a, sse_server))
    assert b_asked.wait(0) is False
    run_b = chat("Which home?", profile=agent_profile("b", home_b, sse_server))

    assert a_tool_done.wait(60), "A never came back after its tool call"
    # While agent A streams its long reply: the env lock is free, a third turn and a
    # title-like background worker (both with env overlays of their own) complete.
    assert ENV_LOCK.acquire(timeout=0.5)
    ENV_LOCK.release()
    third = chat(
        "Third.", profile=Profile(name="third", env={"HNB_THIRD": "on"}, options={"delay": 0})
    )
    titled: dict[str, str] = {}
    background = threading.Thread(
        target=lambda: titled.update(
            title=ask(
                Profile(name="bg", env={"HNB_BG": "on"}, options={"reply": "A title", "delay": 0}),
                [{"role": "user", "content": "Title this."}],
                timeout=10,
            )
        )
    )
    background.start()
    assert third.wait(10).status is RunState.DONE
    background.join(10)
    assert titled == {"title": "A title"}
    assert not run_a.settled, "agent A finished before the check could overlap it"

    run_a.wait(60)
    run_b.wait(60)
    assert run_a.status is RunState.DONE and run_b.status is RunState.DONE, (
        run_a.error,
        run_b.error,
    )
    assert run_a.text.strip() == "A is done." and run_b.text == "B is done."
    # Each agent built its prompt from its own home…
    by_model = {r.body["model"]: system_prompt(r) for r in sse_server.chat_requests}
    assert "home-a" in by_model["model-a"] and "home-b" not in by_model["model-a"]
    assert "home-b" in by_model["model-b"] and "home-a" not in by_model["model-b"]
    # …and A's tool, run while B's HERMES_HOME was the one in os.environ, read A's home.
    (end,) = events(run_a, "tool_end")
    assert end["name"] == "skill_view" and "home-a" in end["result"], end
    assert "home-b" not in end["result"]
    # Nothing of either profile (HERMES_HOME, the homes' .env, the agents' session and terminal
    # settings) is left in the process environment.
    assert current_env() == env_snapshot


# -- without the agent running -------------------------------------------------------------------


def test_a_missing_extra_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "run_agent", None)
    profile = Profile(name="agent", provider="hermes-agent")
    with pytest.raises(ConfigError) as err:
        HermesAgentProvider(profile)
    assert err.value.message == MISSING_EXTRA
    assert (
        MISSING_EXTRA
        == 'The hermes-agent provider needs the agent extra: pip install "hermes-nb[agent]".'
    )

    run = chat("Hi.", profile=profile).wait(10)
    assert run.status is RunState.ERROR
    assert run.error["message"] == MISSING_EXTRA


def test_the_home_follows_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERMES_HOME", raising=False)
    assert agent_home(Profile()) == Path.home() / ".hermes"
    monkeypatch.setenv("HERMES_HOME", "/srv/hermes")
    assert agent_home(Profile()) == Path("/srv/hermes")
    profile = Profile(hermes_home="~/.hermes/profiles/work")
    assert agent_home(profile) == Path.home() / ".hermes" / "profiles" / "work"
    profile = Profile(hermes_home="/a", env={"HERMES_HOME": "/b"})  # as profile_env applies it
    assert agent_home(profile) == Path("/b")


@pytest.mark.parametrize(
    ("result", "kind", "status"),
    [
        ({"failed": True, "error": "HTTP 401: Invalid API key"}, ErrorKind.AUTH, 401),
        ({"failed": True, "error": "Error code: 403 - forbidden"}, ErrorKind.AUTH, 403),
        (
            {"failed": True, "error": "HTTP 429: Slow down", "failure_reason": "rate_limit"},
            ErrorKind.RATE_LIMIT,
            429,
        ),
        ({"failed": True, "error": "HTTP 404: model not found"}, ErrorKind.NOT_FOUND, 404),
        (
            {"failed": True, "error": "Connection error.", "failure_reason": "timeout"},
            ErrorKind.NETWORK,
            None,
        ),
        (
            {"failed": True, "error": "quota", "failure_reason": "billing"},
            ErrorKind.RATE_LIMIT,
            None,
        ),
        (
            {"completed": False, "error": "Response truncated due to output length limit"},
            ErrorKind.SERVER,
            None,
        ),
    ],
)
def test_agent_failures_are_classified(result, kind, status) -> None:
    error = classify_agent_failure(result)
    assert error is not None
    assert (error.kind, error.status) == (kind, status)
    assert error.hint


def test_a_finished_run_is_no_failure_and_keys_are_redacted() -> None:
    assert classify_agent_failure({"completed": True, "final_response": "Hi."}) is None
    assert classify_agent_failure({"completed": True, "interrupted": True}) is None
    error = classify_agent_failure(
        {"failed": True, "error": f"HTTP 401: bad key {KEY}"}, [Secret(KEY)]
    )
    assert error is not None and KEY not in error.message and "***" in error.message


def test_bad_options_are_one_clear_sentence(agent) -> None:
    profile = Profile(name="x", provider="hermes-agent", options={"approvals": "maybe"})
    run = chat("Hi.", profile=profile).wait(10)
    assert run.status is RunState.ERROR
    assert run.error["message"] == (
        'The hermes-agent option approvals must be "ask", "deny" or "allow", not \'maybe\'.'
    )
