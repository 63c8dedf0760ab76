"""A turn through the tool loop, as the session store keeps it: steps stored in order, a valid
history for the next turn (also on the wire), Stop mid-loop, the rules of settle with steps, and
the prompts (approvals, questions) recorded on the reply and in the exports."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sse_server import Reply, SSEServer, content, finish, tool_call
from tool_turns import ECHO, WAIT, _assert_valid, _recording, _tool_turn, double

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.turn import TurnOutcome
from hermes_nb.store import NewMessage, get_store
from hermes_nb.store.sessions import Session, SessionTranscript

pytestmark = pytest.mark.usefixtures("stores_closed")


@hermes_nb.tool(ask=True)
def wipe(path: str) -> str:
    """Delete a directory (pretend)."""
    return f"wiped {path}"


_slow_started = threading.Event()
_slow_release = threading.Event()


@hermes_nb.tool
def slow(seconds: float) -> str:
    """Wait (a tool Stop abandons)."""
    _slow_started.set()
    _slow_release.wait(seconds)
    return "late"


def _until(condition: Callable[[], object], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)
    return value


# -- a turn through the tool loop ------------------------------------------------------------------


def test_a_tool_loop_turn_stores_user_assistant_tool_assistant_in_order() -> None:
    session = Session.new(profile=ECHO)
    run = _tool_turn(session)
    user, step, result, reply = session.messages
    assert [m.role for m in session.messages] == ["user", "assistant", "tool", "assistant"]
    assert [m.position for m in session.messages] == [1, 2, 3, 4]
    assert {m.run_id for m in session.messages} == {run.run_id}
    assert user.content == "x"
    assert step.content == "" and not step.partial and step.tool_calls
    (call,) = step.tool_calls
    assert (call["id"], call["name"], json.loads(call["arguments"])) == (
        "call_0",
        "double",
        {"x": 2},
    )
    assert call["result"] == "doubled to 4" and call["error"] is False
    assert result.content == "doubled to 4"
    assert result.metadata == {"tool_call_id": "call_0", "name": "double"}
    assert reply.content.endswith("- `call_0`: doubled to 4\n") and not reply.partial
    assert reply.metadata and reply.metadata["model"] == "echo" and "usage" in reply.metadata
    assert get_store().get_run(run.run_id).state == "done"
    assert get_store().get_session(session.id).active_stream_id is None


def test_two_steps_with_parallel_calls_keep_each_group_together() -> None:
    session = Session.new(profile=ECHO)
    _tool_turn(
        session,
        tool_calls=None,
        tool_steps=[
            [
                {"name": "double", "arguments": {"x": 1}},
                {"name": "double", "arguments": {"x": 5}},
            ],
            [{"name": "double", "arguments": {"x": 7}}],
        ],
    )
    described = [
        (m.role, [c["id"] for c in m.tool_calls or ()], (m.metadata or {}).get("tool_call_id"))
        for m in session.messages
    ]
    assert described == [
        ("user", [], None),
        ("assistant", ["call_0", "call_1"], None),
        ("tool", [], "call_0"),
        ("tool", [], "call_1"),
        ("assistant", ["call_1_0"], None),
        ("tool", [], "call_1_0"),
        ("assistant", [], None),
    ]
    assert [m.content for m in session.messages if m.role == "tool"] == [
        "doubled to 2",
        "doubled to 10",
        "doubled to 14",
    ]


def test_the_next_turn_sends_a_valid_history_with_the_tool_messages() -> None:
    session = Session.new(profile=ECHO)
    _tool_turn(session, "first")
    session.chat("plain", profile=ECHO).wait(WAIT)
    _tool_turn(session, "second", tool_calls=[{"name": "double", "arguments": {"x": 3}}])
    # An agent's own call (result in its record, no tool message) is shown, never sent as a call.
    session.chat(
        "agent",
        profile=ECHO,
        reply="ran it myself",
        tool_calls=[{"name": "terminal", "arguments": {"c": "ls"}, "result": "a.txt"}],
    ).wait(WAIT)
    profile, seen = _recording()
    session.chat("next", profile=profile).wait(WAIT)
    (sent,) = seen
    _assert_valid(sent)
    assert [m["role"] for m in sent] == [
        *("user", "assistant", "tool", "assistant"),
        *("user", "assistant"),
        *("user", "assistant", "tool", "assistant"),
        *("user", "assistant"),
        "user",
    ]
    calls = [m for m in sent if m.get("tool_calls")]
    assert calls[0]["tool_calls"] == [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "double", "arguments": '{"x": 2}'},
        }
    ]
    tools = [m for m in sent if m["role"] == "tool"]
    assert tools == [
        {"role": "tool", "tool_call_id": "call_0", "content": "doubled to 4"},
        {"role": "tool", "tool_call_id": "call_0", "content": "doubled to 6"},
    ]
    assert {"role": "assistant", "content": "ran it myself"} in sent


def test_the_next_turn_on_the_wire_is_valid_for_an_openai_server(sse_server: SSEServer) -> None:
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    sse_server.enqueue(
        Reply(
            chunks=[
                content("Adding."),
                tool_call(0, id="c1", name="add", arguments='{"a": 1, "b": 2}'),
                tool_call(1, id="c2", name="add", arguments='{"a": 3, "b": 4}'),
                finish("tool_calls"),
            ]
        ),
        Reply.text("3 and 7."),
        Reply.text("Second answer."),
    )
    profile = Profile(name="t", provider="openai", base_url=sse_server.url, model="m")
    session = Session.new(name="wire")
    get_store().set_title(session.id, "Sums")  # no title job: every request here is a turn
    assert session.chat("sums?", profile=profile, tools=[add]).wait(WAIT).status == "done"
    assert session.chat("and now?", profile=profile).wait(WAIT).status == "done"
    body = sse_server.chat_requests[2].body
    assert [m["role"] for m in body["messages"]] == [
        *("user", "assistant", "tool", "tool", "assistant", "user"),
    ]
    assert body["messages"][1]["content"] == "Adding."
    assert body["messages"][2:4] == [
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
        {"role": "tool", "tool_call_id": "c2", "content": "7"},
    ]
    _assert_valid(body["messages"])


def test_a_stop_during_a_tool_keeps_the_completed_steps_and_marks_the_partial() -> None:
    _slow_started.clear()
    _slow_release.clear()
    session = Session.new(profile=ECHO)
    run = session.chat(
        "go",
        profile=ECHO,
        tools=[double, slow],
        tool_steps=[
            [{"name": "double", "arguments": {"x": 4}}],
            [{"name": "slow", "arguments": {"seconds": 30}}],
        ],
    )
    try:
        _until(_slow_started.is_set)
        assert run.cancel()
        run.wait(WAIT)
    finally:
        _slow_release.set()
    assert run.status is RunState.STOPPED
    roles = [(m.role, m.partial) for m in session.messages]
    assert roles == [
        ("user", False),
        ("assistant", False),  # step 1: complete
        ("tool", False),
        ("assistant", True),  # step 2's call, cut off by Stop
        ("notice", False),
    ]
    step, partial = session.messages[1], session.messages[3]
    assert step.tool_calls and step.tool_calls[0]["result"] == "doubled to 8"
    assert partial.tool_calls and partial.tool_calls[0]["name"] == "slow"
    assert session.messages[-1].metadata == {"kind": "cancel"}
    assert get_store().get_run(run.run_id).state == "stopped"
    # The unanswered call is not sent; the completed step is.
    profile, seen = _recording()
    session.chat("next", profile=profile).wait(WAIT)
    _assert_valid(seen[0])
    assert [m["role"] for m in seen[0]] == ["user", "assistant", "tool", "user"]


def test_a_stop_while_the_final_reply_streams_keeps_the_steps_and_the_partial_text() -> None:
    session = Session.new(profile=ECHO)
    run = session.chat(
        "go",
        profile=ECHO,
        tools=[double],
        tool_calls=[{"name": "double", "arguments": {"x": 1}}],
        reply="word " * 400,
        delay=0.01,
    )
    _until(lambda: run.text)
    assert run.cancel()
    run.wait(WAIT)
    assert [(m.role, m.partial) for m in session.messages] == [
        ("user", False),
        ("assistant", False),
        ("tool", False),
        ("assistant", True),
        ("notice", False),
    ]
    partial = session.messages[3]
    assert partial.content and ("word " * 400).startswith(partial.content)
    assert not partial.tool_calls


# -- the rules of settle, with steps -------------------------------------------------------------


def _manual_run(run_id: str) -> Any:
    return SimpleNamespace(
        run_id=run_id,
        stream_id=f"stream-{run_id}",
        request=SimpleNamespace(prompt="go"),
        profile=Profile(),
        events=lambda after_seq=0: [],  # nothing journaled
    )


_STEP = [
    {
        "role": "assistant",
        "content": "Looking.",
        "reasoning": "need data",
        "tool_calls": [
            {
                "id": "c1",
                "name": "double",
                "arguments": '{"x": 1}',
                "result": "doubled to 2",
                "error": False,
                "duration_ms": 1.0,
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "name": "double", "content": "doubled to 2"},
]


def test_invariant_14_a_turn_whose_only_output_is_steps_is_not_an_empty_reply() -> None:
    session = Session.new(profile="echo")
    transcript = SessionTranscript(session.id, auto_title=False, auto_compress=False)
    run = _manual_run("r1")
    transcript.begin(run)
    outcome = TurnOutcome(state=RunState.DONE, steps=[dict(m) for m in _STEP])
    assert transcript.settle(run, outcome)
    assert [m.role for m in session.messages] == ["user", "assistant", "tool"]
    assert session.messages[1].reasoning == "need data"
    assert get_store().get_run("r1").state == "done"
    # The next turn says nothing at all: an error, however many steps came before.
    run2 = _manual_run("r2")
    transcript.begin(run2)
    assert transcript.settle(run2, TurnOutcome(state=RunState.DONE))
    assert [m.role for m in session.messages][-2:] == ["user", "error"]
    assert get_store().get_run("r2").state == "error"


def test_invariant_10_a_superseded_run_writes_none_of_its_steps() -> None:
    session = Session.new(profile="echo")
    old = SessionTranscript(session.id, auto_title=False, auto_compress=False)
    new = SessionTranscript(session.id, auto_title=False, auto_compress=False)
    old.begin(_manual_run("old"))
    new.begin(_manual_run("new"))  # claims the session
    outcome = TurnOutcome(state=RunState.STOPPED, text="half", steps=[dict(m) for m in _STEP])
    assert old.settle(_manual_run("old"), outcome) is False
    assert [m.role for m in session.messages] == ["user", "user"]
    assert get_store().get_run("old").state == "stopped"


def test_invariant_9_partial_dedup_leaves_the_steps_alone() -> None:
    session = Session.new(profile="echo")
    store = get_store()
    transcript = SessionTranscript(session.id, store=store, auto_title=False)
    run = _manual_run("r1")
    transcript.begin(run)
    store.append_messages(session.id, [NewMessage("assistant", "half", partial=True)], run_id="r1")
    outcome = TurnOutcome(state=RunState.STOPPED, text=" half ", steps=[dict(m) for m in _STEP])
    assert transcript.settle(run, outcome)
    assert [(m.role, m.content, m.partial) for m in session.messages] == [
        ("user", "go", False),
        ("assistant", "half", True),  # the checkpoint; the same partial is not written twice
        ("assistant", "Looking.", False),
        ("tool", "doubled to 2", False),
        ("notice", session.messages[-1].content, False),
    ]


# -- prompts ---------------------------------------------------------------------------------------


def test_an_approval_is_recorded_on_the_reply_and_in_both_exports() -> None:
    session = Session.new(profile=ECHO)
    run = session.chat(
        "clean up",
        profile=ECHO,
        tools=[wipe],
        tool_calls=[{"name": "wipe", "arguments": {"path": "/tmp/x"}}],
    )
    prompt = _until(lambda: run.pending)[0]
    assert run.answer(prompt.id, "once")
    run.wait(WAIT)
    assert run.status is RunState.DONE
    reply = session.messages[-1]
    assert reply.role == "assistant" and reply.metadata
    (recorded,) = reply.metadata["prompts"]
    assert recorded["id"] == prompt.id and recorded["kind"] == "approval"
    assert recorded["detail"] == "wipe(path='/tmp/x')"
    assert (recorded["value"], recorded["by"]) == ("once", "api")
    assert session.messages[2].content == "wiped /tmp/x"
    md = session.export("md")
    assert "> **Approval:** Allow the tool wipe to run?" in md
    assert "> wipe(path='/tmp/x')" in md
    assert "> **Answer:** Allowed once — by you" in md
    data = json.loads(session.export("json"))
    assert data["messages"][-1]["metadata"]["prompts"][0]["value"] == "once"
    assert [m["role"] for m in data["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert data["messages"][2]["metadata"] == {"tool_call_id": "call_0", "name": "wipe"}


def test_a_question_and_its_answer_are_recorded() -> None:
    session = Session.new(profile=ECHO)
    run = session.chat(
        "pick",
        profile=ECHO,
        tools=["ask_user"],
        tool_calls=[
            {"name": "ask_user", "arguments": {"question": "Which?", "choices": ["a", "b"]}}
        ],
    )
    prompt = _until(lambda: run.pending)[0]
    assert run.answer(prompt.id, "b, please")
    run.wait(WAIT)
    assert session.messages[2].role == "tool" and session.messages[2].content == "b, please"
    (recorded,) = (session.messages[-1].metadata or {})["prompts"]
    assert (recorded["kind"], recorded["text"], recorded["choices"]) == (
        "question",
        "Which?",
        ["a", "b"],
    )
    md = session.export("md")
    assert "> **Question:** Which?" in md and "> Choices: a, b" in md
    assert "> **Answer:** b, please — by you" in md


def test_prompts_go_on_the_notice_when_there_is_no_reply_message() -> None:
    session = Session.new(profile=ECHO)
    run = session.chat(
        "clean up",
        profile=ECHO,
        tools=[wipe],
        tool_calls=[{"name": "wipe", "arguments": {"path": "/tmp/y"}}],
        max_steps=1,  # the loop ends after the call ran: no reply, the max_steps notice
    )
    prompt = _until(lambda: run.pending)[0]
    assert run.answer(prompt.id, "deny")
    run.wait(WAIT)
    assert run.status is RunState.DONE
    assert [m.role for m in session.messages] == ["user", "assistant", "tool", "notice"]
    notice = session.messages[-1]
    assert notice.metadata and notice.metadata["kind"] == "truncated"
    assert notice.metadata["prompts"][0]["value"] == "deny"
    assert session.messages[2].content.startswith("Not run: the person denied it.")
    assert "> **Answer:** Denied — by you" in session.export("md")
