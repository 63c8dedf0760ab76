"""Stored tool messages read back: the Markdown export, search, the history sent to the model
(what no tool message answers is dropped), compression (the keep_last split never separates a call
from its results; the summary request writes them as text), and branches and forks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tool_turns import ECHO, WAIT, _assert_valid, _recording, _tool_turn

from hermes_nb.core.exceptions import HermesError
from hermes_nb.core.profiles import Profile
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, get_store, sessions
from hermes_nb.store.compression import _split, _summary_request
from hermes_nb.store.sessions import Session

pytestmark = pytest.mark.usefixtures("stores_closed")


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
