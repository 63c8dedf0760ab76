"""The real hermes-agent's approvals and clarify questions (run in this process, its model the
loopback SSE server): a dangerous command waits for the person's answer on its run's broker, a
session approval lasts for the run or the notebook session, Stop answers a waiting prompt, two
runs asking at once each get their own answer, ``approvals = "deny"/"allow"`` decide without
asking, and without an asker nothing is approved; then which answers approve and what the card
says. Shared fixtures: ``hermes_agent_support.py``.
"""

from __future__ import annotations

import json
import threading
import time

import anyio
import pytest
from hermes_agent_support import (
    KEY,
    agent_profile,
    agent_threads,
    delete_script,
    events,
    fixture_agent,  # noqa: F401  (agent: the hermes-agent fixture)
    fixture_offline,  # noqa: F401  (offline: host lookups refused)
    make_home,
    tool_message,
    wait_for_prompt,
)
from sse_server import RecordedRequest, Reply, finish, tool_call

from hermes_nb import chat
from hermes_nb.core.events import RunState
from hermes_nb.core.profiles import Secret
from hermes_nb.core.prompts import APPROVAL_VALUES
from hermes_nb.providers._agent_approvals import _approval_choice, _approval_text
from hermes_nb.providers.base import ProviderRequest
from hermes_nb.providers.hermes_agent import HermesAgentProvider


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
