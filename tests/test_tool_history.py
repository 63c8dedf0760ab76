"""The tool loop in the session store: steps stored in order, a valid history for the next turn,
Stop mid-loop, prompts, export, compression, branches, search, and the 006 migration."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sse_server import Reply, SSEServer, content, finish, tool_call

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import HermesError, StoreError
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run
from hermes_nb.engine.turn import TurnOutcome
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, Store, get_store, sessions
from hermes_nb.store._schema import MIGRATIONS
from hermes_nb.store.compression import _split, _summary_request
from hermes_nb.store.sessions import Session, SessionTranscript

pytestmark = pytest.mark.usefixtures("stores_closed")

ECHO = Profile(name="echo-fast", provider="echo", options={"delay": 0})
WAIT = 15.0


@hermes_nb.tool
def double(x: int) -> str:
    """Double a whole number."""
    return f"doubled to {2 * x}"


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


def _rows(session: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in session.messages]


def _assert_valid(messages: list[dict[str, Any]]) -> None:
    """What OpenAI-compatible APIs require: every ``tool_calls`` entry of an assistant message
    is answered by the ``tool`` messages right after it (same ids), and no other message has
    the role ``tool``."""
    i = 0
    while i < len(messages):
        m = messages[i]
        assert m["role"] != "tool", f"a tool message without its call at {i}: {m}"
        ids = [c["id"] for c in m.get("tool_calls") or ()]
        assert all(ids), m
        following = messages[i + 1 : i + 1 + len(ids)]
        assert [x["role"] for x in following] == ["tool"] * len(ids), (i, messages)
        assert sorted(x["tool_call_id"] for x in following) == sorted(ids)
        i += 1 + len(ids)


class _Recorder:
    """Records the messages each request sends and answers "ok"."""

    name = "tool-recorder"

    def __init__(self, seen: list[list[dict[str, Any]]]) -> None:
        self.seen = seen

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        self.seen.append([dict(m) for m in request.messages])
        yield "token", {"text": "ok"}


def _recording() -> tuple[Profile, list[list[dict[str, Any]]]]:
    seen: list[list[dict[str, Any]]] = []
    register_provider("tool-recorder", lambda profile, client: _Recorder(seen))
    return Profile(name="r", provider="tool-recorder"), seen


def _tool_turn(session: Session, prompt: str = "x", **options: Any) -> Run:
    options.setdefault("tool_calls", [{"name": "double", "arguments": {"x": 2}}])
    run = session.chat(prompt, tools=[double], profile=ECHO, **options).wait(WAIT)
    assert run.status is RunState.DONE, run.error
    return run


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


# -- export, history view, search ------------------------------------------------------------------


def test_export_markdown_shows_the_call_with_its_arguments_then_the_result_cut_if_long() -> None:
    session = Session.new(profile=ECHO)
    _tool_turn(session, tool_calls=[{"name": "double", "arguments": {"x": 21}}])
    md = session.export("md")
    call = md.index("**Tool call** `double` (`call_0`")
    arguments = md.index('```json\n{\n  "x": 21\n}\n```', call)
    result = md.index(
        "**Result** of `double` (`call_0`):\n\n```text\ndoubled to 42\n```", arguments
    )
    assert result < md.index("the tools returned")
    # A long result with backticks in it: cut, and fenced so nothing in it closes the block.
    store = get_store()
    long = "```\n" + "z" * 5000
    store.append_messages(
        session.id,
        [
            NewMessage(
                "assistant",
                "",
                tool_calls=[{"id": "k", "name": "dump", "arguments": "{}"}],
            ),
            NewMessage("tool", long, metadata={"tool_call_id": "k", "name": "dump"}),
        ],
    )
    md = session.export("md")
    tail = md[md.index("**Result** of `dump`") :]
    assert tail.splitlines()[2] == "````text"
    assert "[… cut: 3,004 more characters]" in tail and "z" * 2001 not in tail


def test_search_finds_text_in_tool_results() -> None:
    session = Session.new(name="tools", profile=ECHO)
    _tool_turn(session, tool_calls=[{"name": "double", "arguments": {"x": 8}}])
    hits = [(h.session_id, h.position, h.role) for h in sessions.search("doubled 16")]
    assert (session.id, 3, "tool") in hits


def test_a_tool_message_is_refused_without_its_call_id() -> None:
    with pytest.raises(ValueError, match="tool_call_id"):
        NewMessage("tool", "result")
    with pytest.raises(ValueError, match="tool_call_id"):
        NewMessage("tool", "result", metadata={"name": "f"})


def test_history_drops_what_no_tool_message_answers(hermes_home: Path) -> None:
    store = get_store()
    record = store.create_session()
    call = {"id": "a", "name": "f", "arguments": "{}"}
    store.append_messages(
        record.id,
        [
            NewMessage("user", "q"),
            NewMessage("tool", "orphan", metadata={"tool_call_id": "zz", "name": "f"}),
            NewMessage("assistant", "", tool_calls=[call, {**call, "id": "b"}]),
            NewMessage("tool", "ra", metadata={"tool_call_id": "a", "name": "f"}),
            NewMessage("tool", "again", metadata={"tool_call_id": "a", "name": "f"}),
            NewMessage("notice", "stopped"),
            NewMessage("assistant", "", tool_calls=[{**call, "id": "c"}]),  # never answered
            NewMessage("assistant", "said", tool_calls=[{**call, "id": "d", "result": "own"}]),
        ],
    )
    assert store.history(record.id) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "a", "name": "f", "content": "ra"},
        {"role": "assistant", "content": "said"},
    ]


# -- compression ---------------------------------------------------------------------------------


def test_the_keep_last_split_never_separates_calls_from_their_results(hermes_home: Path) -> None:
    store = get_store()
    record = store.create_session()
    store.append_messages(
        record.id,
        [
            NewMessage("user", "q"),
            NewMessage(
                "assistant",
                "",
                tool_calls=[
                    {"id": "a", "name": "f", "arguments": "{}"},
                    {"id": "b", "name": "f", "arguments": "{}"},
                ],
            ),
            NewMessage("tool", "ra", metadata={"tool_call_id": "a", "name": "f"}),
            NewMessage("tool", "rb", metadata={"tool_call_id": "b", "name": "f"}),
            NewMessage("assistant", "final"),
        ],
    )
    messages = store.messages(record.id)
    assert _split(messages, 2) == 1  # would have cut between the two results
    assert _split(messages, 3) == 1  # would have kept the results without their call
    assert _split(messages, 1) == 4  # after the group: fine as it is
    assert _split(messages, 0) == 5
    continuation_messages = [
        NewMessage("system", "summary", metadata={"kind": "summary"}),
        *(NewMessage(m.role, m.content, tool_calls=m.tool_calls, metadata=m.metadata)
          for m in messages[1:]),
    ]  # fmt: skip
    other = store.create_session()
    store.append_messages(other.id, continuation_messages)  # a continuation: no user message
    assert _split(store.messages(other.id), 2) == 1


def test_compression_with_a_tool_group_at_the_boundary_keeps_it_whole_and_summarises_text() -> None:
    summaries: list[list[dict[str, Any]]] = []

    class Summariser:
        name = "summariser"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            summaries.append([dict(m) for m in request.messages])
            yield "token", {"text": "The summary."}

    register_provider("summariser", lambda profile, client: Summariser())
    summariser = Profile(name="s", provider="summariser")
    # One long turn of tool calls: its only user message is the first, so keep_last=2 would
    # cut between the two results; the split moves back to the call.
    session = Session.new(name="loop", profile=ECHO)
    _tool_turn(
        session,
        "use the tool",
        tool_calls=[
            {"name": "double", "arguments": {"x": 9}},
            {"name": "double", "arguments": {"x": 10}},
        ],
    )
    assert [m.role for m in session.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    continuation = session.compress(keep_last=2, profile=summariser)
    assert [m.role for m in continuation.messages] == [
        *("system", "assistant", "tool", "tool", "assistant"),
    ]
    assert (continuation.messages[0].metadata or {})["summarised_messages"] == 1
    assert [m["content"] for m in summaries[0][1:]] == [
        "use the tool",
        "Summarise our conversation so far, following the instructions.",
    ]
    # The continuation's history is valid for the next turn.
    profile, seen = _recording()
    continuation.chat("next", profile=profile).wait(WAIT)
    _assert_valid(seen[0])
    assert [m["role"] for m in seen[0]] == [
        *("system", "assistant", "tool", "tool", "assistant", "user"),
    ]
    # Summarising the loop itself: its calls and results become text, never tool messages.
    last = continuation.compress(keep_last=0, profile=summariser)
    assert [m.role for m in last.messages] == ["system"]
    request = summaries[-1]
    assert not any(m["role"] == "tool" or "tool_calls" in m for m in request)
    said = "\n".join(m["content"] for m in request)
    assert '[tool double called with {"x": 9}]' in said
    assert "[tool double returned: doubled to 18]" in said
    assert "[tool double returned: doubled to 20]" in said


def test_the_summary_request_writes_tool_calls_and_results_as_text(hermes_home: Path) -> None:
    store = get_store()
    record = store.create_session()
    store.append_messages(
        record.id,
        [
            NewMessage("user", "q"),
            NewMessage(
                "assistant",
                "Let me see.",
                tool_calls=[{"id": "a", "name": "f", "arguments": '{"n": 1}'}],
            ),
            NewMessage("tool", "r" * 5000, metadata={"tool_call_id": "a", "name": "f"}),
            NewMessage("assistant", "It is r."),
            NewMessage("user", "agent?"),
            NewMessage(
                "assistant",
                "done",
                tool_calls=[{"id": "t", "name": "terminal", "arguments": "ls", "result": "a.txt"}],
            ),
        ],
    )
    request = _summary_request(store.messages(record.id))
    assert [m["role"] for m in request] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    loop = request[2]["content"]
    assert loop.startswith('Let me see.\n[tool f called with {"n": 1}]\n\n[tool f returned: rrr')
    assert "[… 1,000 more characters]" in loop and loop.endswith("It is r.")
    assert (
        request[4]["content"]
        == "done\n[tool terminal called with ls]\n[tool terminal returned: a.txt]"
    )


# -- branches -----------------------------------------------------------------------------------


def test_a_branch_copies_tool_messages_and_refuses_to_cut_a_group() -> None:
    session = Session.new(profile=ECHO)
    _tool_turn(
        session,
        tool_calls=[
            {"name": "double", "arguments": {"x": 1}},
            {"name": "double", "arguments": {"x": 2}},
        ],
    )
    assert [m.role for m in session.messages] == ["user", "assistant", "tool", "tool", "assistant"]
    whole = session.branch(4)  # the call and both results
    assert [(m.role, m.content, m.metadata) for m in whole.messages] == [
        (m.role, m.content, m.metadata) for m in session.messages[:4]
    ]
    for k in (2, 3):  # between a call and its results, or between two results
        with pytest.raises(HermesError, match="tool call") as err:
            session.branch(k)
        assert "k=1" in (err.value.hint or "") and "k=4" in (err.value.hint or "")
    assert [m.role for m in session.branch(1).messages] == ["user"]
    profile, seen = _recording()
    whole.chat("next", profile=profile).wait(WAIT)
    _assert_valid(seen[0])
    assert [m["role"] for m in seen[0]] == ["user", "assistant", "tool", "tool", "user"]


def test_a_fork_cut_inside_a_group_sends_only_what_was_answered(hermes_home: Path) -> None:
    # Store.fork copies exactly what it is told (Session.branch refuses such a cut); the
    # history it leaves is still valid: the unanswered call is left out.
    session = Session.new(profile=ECHO)
    _tool_turn(
        session,
        tool_calls=[
            {"name": "double", "arguments": {"x": 1}},
            {"name": "double", "arguments": {"x": 2}},
        ],
    )
    fork = get_store().fork(session.id, 3)
    history = get_store().history(fork.id)
    assert [m["role"] for m in history] == ["user", "assistant", "tool"]
    assert [c["id"] for c in history[1]["tool_calls"]] == ["call_0"]


# -- the 006 migration -----------------------------------------------------------------------------


def _old_store(path: Path) -> None:
    """A store file as the code before 006 made it: MIGRATIONS[:5] applied by hand, with a live
    session, an archive and its continuation, and a run."""
    db = sqlite3.connect(str(path), isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("BEGIN IMMEDIATE")
        db.execute(
            "CREATE TABLE _hermes_migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        for migration in MIGRATIONS[:5]:
            for statement in migration.statements:
                db.execute(statement)
            db.execute("INSERT INTO _hermes_migrations VALUES (?, 0)", (migration.name,))
        db.execute("PRAGMA user_version = 5")
        sessions_rows = [
            ("live", "nb", None, "compression", 0),
            ("arch", None, None, "new", 0),
            ("other", "solo", None, "new", 0),
        ]
        for sid, name, parent, source, archived in sessions_rows:
            db.execute(
                "INSERT INTO sessions (id, name, parent_session_id, source, archived, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 1, 1)",
                (sid, name, parent, source, archived),
            )
        rows = [
            ("arch", 1, "user", "why is the merge slow", None),
            ("arch", 2, "assistant", "rebase conflicts", '{"model":"m"}'),
            ("live", 1, "system", "summary of the merge talk", '{"kind":"summary"}'),
            ("live", 2, "assistant", "rebase conflicts", None),
            ("other", 1, "user", "unrelated stash question", None),
            ("other", 2, "notice", "cancelled", '{"kind":"cancel"}'),
        ]
        for sid, position, role, text, metadata in rows:
            db.execute(
                "INSERT INTO messages (session_id, position, role, content, metadata, run_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, 'run-1', 1)",
                (sid, position, role, text, metadata),
            )
        db.execute("UPDATE sessions SET parent_session_id = 'arch' WHERE id = 'live'")
        db.execute("UPDATE sessions SET archived = 1 WHERE id = 'arch'")
        db.execute(
            "INSERT INTO runs (run_id, session_id, stream_id, state, started_at) "
            "VALUES ('run-1', 'other', 's', 'stopped', 1)"
        )
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # the old schema
            db.execute(
                "INSERT INTO messages (session_id, position, role, created_at) "
                "VALUES ('other', 3, 'tool', 1)"
            )
        db.execute("COMMIT")
    finally:
        db.close()


def test_a_store_from_before_006_is_migrated_with_everything_kept(hermes_home: Path) -> None:
    path = hermes_home / "sessions.db"
    _old_store(path)
    with sqlite3.connect(str(path)) as db:
        before = db.execute("SELECT * FROM messages ORDER BY id").fetchall()
    db.close()
    store = Store(path)
    try:
        with sqlite3.connect(str(path)) as db:
            assert db.execute("SELECT * FROM messages ORDER BY id").fetchall() == before
            assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert [r[0] for r in db.execute("SELECT name FROM _hermes_migrations")] == [
                m.name for m in MIGRATIONS
            ]
            schema = {
                r[0]: r[1]
                for r in db.execute("SELECT name, tbl_name FROM sqlite_master WHERE name != ''")
            }
            for name in (
                "messages_run",
                "messages_fts_insert",
                "messages_fts_delete",
                "messages_fts_update",
                "messages_archived_insert",
                "messages_archived_update",
                "messages_archived_delete",
                "sqlite_autoindex_messages_1",
            ):
                assert schema.get(name) == "messages", name
            assert "messages_006" not in schema
            # The external-content index still matches the table row for row.
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        # Everything readable, through the store.
        assert [m.content for m in store.messages("arch")] == [
            "why is the merge slow",
            "rebase conflicts",
        ]
        assert store.messages("arch")[1].metadata == {"model": "m"}
        assert store.get_session("arch").archived
        assert store.find_session("nb").id == "live"
        assert store.get_run("run-1").state == "stopped"
        # Search works on the old rows, and follows new ones.
        assert {(h.session_id, h.position) for h in store.search("merge")} == {
            ("arch", 1),
            ("live", 1),
        }
        # The archive guards still refuse every change to the archive.
        with pytest.raises(StoreError, match="archive"):
            store.append_messages("arch", [NewMessage("user", "more")])
        raw = sqlite3.connect(str(path), isolation_level=None)
        try:
            for statement in (
                "UPDATE messages SET content = 'edited' WHERE session_id = 'arch'",
                "DELETE FROM messages WHERE session_id = 'arch'",
                "INSERT INTO messages (session_id, position, role, content, created_at) "
                "VALUES ('arch', 9, 'user', 'sneaky', 0)",
            ):
                with pytest.raises(sqlite3.IntegrityError, match="archived sessions are read-only"):
                    raw.execute(statement)
            with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
                raw.execute(
                    "INSERT INTO messages (session_id, position, role, created_at) "
                    "VALUES ('other', 9, 'bogus', 0)"
                )
        finally:
            raw.close()
        # A tool message can be appended, is indexed, and is sent.
        store.append_messages(
            "live",
            [
                NewMessage(
                    "assistant", "", tool_calls=[{"id": "c", "name": "f", "arguments": "{}"}]
                ),
                NewMessage("tool", "stash pop worked", metadata={"tool_call_id": "c", "name": "f"}),
            ],
        )
        assert store.search("stash pop")[0].role == "tool"
        assert store.history("live")[-1] == {
            "role": "tool",
            "tool_call_id": "c",
            "name": "f",
            "content": "stash pop worked",
        }
        assert [m.id for m in store.messages("live")][-2:] == [before[-1][0] + 1, before[-1][0] + 2]
        with sqlite3.connect(str(path)) as db:
            db.execute("INSERT INTO messages_fts(messages_fts) VALUES ('integrity-check')")
        db.close()
    finally:
        store.close()
    # Opening it again runs nothing more.
    again = Store(path)
    try:
        with sqlite3.connect(str(path)) as db:
            assert db.execute("SELECT count(*) FROM _hermes_migrations").fetchone()[0] == len(
                MIGRATIONS
            )
        db.close()
    finally:
        again.close()
