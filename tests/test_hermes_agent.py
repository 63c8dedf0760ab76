"""The hermes-agent provider, running the real ``hermes-agent`` package in this process with its
model endpoint pointed at the loopback SSE server: replies, history, tool events, Stop, the home's
toolsets, background title requests, failures, two homes at once, and (without the agent running)
the missing extra, the home and the failure classification. Approvals and questions are in
``test_hermes_agent_approvals.py``; the shared fixtures in ``hermes_agent_support.py``.

Without the package (``pip install "hermes-nb[agent]"``) the agent tests skip with the reason —
except in CI (``CI=true``), which must install it, where they fail instead.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from hermes_agent_support import (
    KEY,
    agent_profile,
    agent_threads,
    events,
    fixture_agent,  # noqa: F401  (agent: the hermes-agent fixture)
    fixture_offline,  # noqa: F401  (offline: host lookups refused)
    make_home,
    system_prompt,
    tool_names,
)
from sse_server import Pause, RecordedRequest, Reply, content, finish, tool_call, usage

from hermes_nb import chat
from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import ConfigError, ErrorKind
from hermes_nb.core.profiles import ENV_LOCK, Profile, Secret
from hermes_nb.engine.turn import MemoryTranscript, cancel_marker
from hermes_nb.providers.hermes_agent import (
    MISSING_EXTRA,
    HermesAgentProvider,
    agent_home,
    classify_agent_failure,
)
from hermes_nb.store.titles import ask

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
