"""Sessions through the real runtime and the echo model: durability, Stop, failures, lineage."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import HermesError, SessionNotFound, StoreError
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run
from hermes_nb.engine.turn import TurnOutcome, cancel_marker
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, get_store, sessions
from hermes_nb.store.sessions import Session, SessionTranscript

pytestmark = pytest.mark.usefixtures("stores_closed")


def _until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def _stop_when(run: Run, condition: Callable[[], object]) -> Run:
    _until(condition)
    assert run.cancel()
    return run.wait(10)


def _own(session: Session, run: Run) -> list[Any]:
    """The messages this run wrote (everything carries its run id)."""
    return [m for m in session.messages if m.run_id == run.run_id]


class _Recorder:
    """A provider that records what it was sent and answers "ok"."""

    name = "recorder"

    def __init__(self, seen: list[list[dict[str, Any]]]) -> None:
        self.seen = seen

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        self.seen.append([dict(m) for m in request.messages])
        yield "token", {"text": "ok"}


# -- invariant 18: the prompt is durable before the request ---------------------------------------


def test_invariant_18_prompt_is_stored_before_the_request_is_sent(hermes_home: Path) -> None:
    path = hermes_home / "sessions.db"
    seen: dict[str, Any] = {}

    class Probe:
        name = "probe"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            # What another process would see the moment the request goes out. Only the first
            # request counts: the title job asks this provider again after the reply.
            if seen:
                yield "token", {"text": "A title"}
                return
            db = sqlite3.connect(str(path))
            try:
                seen["messages"] = db.execute("SELECT role, content FROM messages").fetchall()
                seen["session"] = db.execute(
                    "SELECT pending_user_message, active_stream_id FROM sessions"
                ).fetchone()
                seen["runs"] = db.execute("SELECT run_id, state, pid FROM runs").fetchall()
            finally:
                db.close()
            yield "token", {"text": "answer"}

    register_provider("probe", lambda profile, client: Probe())
    session = Session.new()
    run = session.chat("remember me", profile=Profile(name="p", provider="probe")).wait(10)
    assert seen["messages"] == [("user", "remember me")]
    assert seen["session"] == ("remember me", run.stream_id)
    assert [r[:2] for r in seen["runs"]] == [(run.run_id, "streaming")]
    record = get_store().get_session(session.id)
    assert record.pending_user_message is None and record.active_stream_id is None
    assert get_store().get_run(run.run_id).state == "done"


def test_prompt_and_claim_are_visible_mid_stream(hermes_home: Path) -> None:
    session = Session.new(profile="echo")
    run = session.chat("slowly please", delay=0.05, reply="word " * 100)
    _until(lambda: run.text)
    with sqlite3.connect(str(hermes_home / "sessions.db")) as db:
        assert db.execute("SELECT role, content FROM messages").fetchall() == [
            ("user", "slowly please")
        ]
        assert db.execute("SELECT active_stream_id FROM sessions").fetchone()[0] == run.stream_id
    db.close()
    run.cancel()
    run.wait(10)


# -- a normal turn -----------------------------------------------------------------------------


def test_done_turn_stores_the_reply_with_reasoning_tools_and_usage() -> None:
    session = Session.new(profile="echo")
    run = session.chat(
        "hi",
        delay=0,
        reply="Hello!",
        reasoning="thinking",
        tool_calls=[{"name": "lookup", "arguments": {"q": "x"}, "result": "found"}],
    ).wait(10)
    assert run.status is RunState.DONE
    user, reply = session.messages
    assert (user.role, user.content, user.position) == ("user", "hi", 1)
    assert (reply.role, reply.content, reply.partial, reply.position) == (
        "assistant",
        "Hello!",
        False,
        2,
    )
    assert reply.reasoning == "thinking"
    assert reply.tool_calls and reply.tool_calls[0]["name"] == "lookup"
    assert reply.tool_calls[0]["result"] == "found"
    assert reply.metadata and reply.metadata["usage"]["completion_tokens"] >= 1
    assert get_store().get_session(session.id).usage["context_tokens"] > 0


def test_history_sent_holds_user_and_assistant_messages_but_no_notices_or_errors() -> None:
    session = Session.new(profile="echo")
    session.chat("one", delay=0, reply="first answer").wait(10)
    stopped = session.chat("two", delay=0.05, reply="never " * 100)
    _stop_when(stopped, lambda: stopped.text)
    session.chat("three", delay=0, fail="server").wait(10)
    seen: list[list[dict[str, Any]]] = []
    register_provider("recorder", lambda profile, client: _Recorder(seen))
    session.chat("four", profile=Profile(name="r", provider="recorder")).wait(10)
    sent = seen[0]
    assert {m["role"] for m in sent} == {"user", "assistant"}
    assert [m["content"] for m in sent if m["role"] == "user"] == ["one", "two", "three", "four"]
    assert not any("cancelled" in m["content"] or "scripted to fail" in m["content"] for m in sent)


# -- invariants 7 and 8: Stop keeps what arrived, then the cancel marker ------------------------


def _stopped_turn(session: Session, ready: Callable[[Run], object], **options: Any) -> Run:
    run = session.chat("go", delay=0.05, **options)
    return _stop_when(run, lambda: ready(run))


@pytest.mark.parametrize(
    ("kind", "options", "ready"),
    [
        ("text", {"reply": "partial " * 100}, lambda r: r.text),
        ("reasoning", {"reasoning": "hmm " * 100, "reply": "never"}, lambda r: r.reasoning),
        (
            "tool_call",
            {"tool_calls": [{"name": "search", "arguments": {"q": "y" * 200}}], "reply": "no"},
            lambda r: r.tool_calls and r.tool_calls["call_0"]["arguments"],
        ),
    ],
)
def test_invariant_7_stop_keeps_partial(kind: str, options: dict[str, Any], ready: Any) -> None:
    session = Session.new(profile="echo")
    run = _stopped_turn(session, ready, **options)
    assert run.status is RunState.STOPPED
    user, partial, notice = _own(session, run)
    assert user.content == "go"
    assert partial.role == "assistant" and partial.partial
    assert partial.content == run.text
    if kind == "text":
        assert partial.content and options["reply"].startswith(partial.content)
        assert not partial.reasoning
    elif kind == "reasoning":
        assert partial.content == "" and partial.reasoning == run.reasoning
        assert partial.reasoning and options["reasoning"].startswith(partial.reasoning)
    else:
        assert partial.content == "" and not partial.reasoning
        assert partial.tool_calls is not None
        assert partial.tool_calls[0]["name"] == "search"
        arguments = partial.tool_calls[0]["arguments"]
        assert arguments == run.tool_calls["call_0"]["arguments"]
        assert arguments and '{"q": "yyyy'.startswith(arguments[:10])
    assert notice.role == "notice"
    assert get_store().get_run(run.run_id).state == "stopped"


def test_stop_before_anything_arrived_writes_only_the_marker() -> None:
    session = Session.new(profile="echo")
    run = session.chat("go", delay=0.5, reasoning="slow start", reply="x")
    _until(lambda: run.status is RunState.STREAMING)
    run.cancel()
    run.wait(10)
    roles = [m.role for m in _own(session, run)]
    assert roles in (["user", "notice"], ["user", "assistant", "notice"])
    if roles == ["user", "assistant", "notice"]:  # a reasoning chunk beat the Stop
        assert _own(session, run)[1].partial


def test_invariant_8_cancel_marker_names_hermes_by_default() -> None:
    session = Session.new(profile="echo")
    run = _stopped_turn(session, lambda r: r.text, reply="partial " * 100)
    notice = _own(session, run)[-1]
    assert notice.content == (
        "Task cancelled. The run was cancelled by the user before Hermes finished. "
        "No provider failure occurred."
    )
    cancels = [e.data["message"] for e in run.events() if e.event == "cancel"]
    assert cancels == [notice.content]


def test_invariant_8_cancel_marker_uses_the_configured_bot_name(write_config: Any) -> None:
    write_config('bot_name = "Ada"\n')
    session = Session.new(profile="echo")
    run = _stopped_turn(session, lambda r: r.text, reply="partial " * 100)
    notice = _own(session, run)[-1]
    assert notice.content == cancel_marker("Ada")
    assert "before Ada finished" in notice.content


# -- invariant 9: dedup of partials --------------------------------------------------------------


def test_invariant_9_an_earlier_short_reply_never_swallows_a_new_partial() -> None:
    session = Session.new(profile="echo")
    session.chat("first", delay=0, reply="OK").wait(10)
    stopped = []
    for _ in range(2):  # the second one also follows an earlier *partial* "OK" (another turn)
        run = session.chat("next", delay=0.5, chunk_size=2, reply="OK and then a lot more")
        stopped.append(_stop_when(run, lambda run=run: run.text))
    for run in stopped:
        partials = [m for m in _own(session, run) if m.role == "assistant"]
        assert [(m.content, m.partial) for m in partials] == [("OK", True)]
    oks = [m for m in session.messages if m.role == "assistant" and m.content == "OK"]
    assert [m.partial for m in oks] == [False, True, True]


def _manual_run(run_id: str, prompt: str = "go") -> Any:
    return SimpleNamespace(
        run_id=run_id,
        stream_id=f"stream-{run_id}",
        request=SimpleNamespace(prompt=prompt),
        profile=Profile(),
        events=lambda after_seq=0: [],  # nothing journaled
    )


@pytest.mark.parametrize(
    ("checkpoint", "final", "kept"),
    [
        ("half a sent", "  half a sent \n", ["half a sent"]),  # same stripped text: one
        ("half a sent", "half a sentence", ["half a sent", "half a sentence"]),  # grew: both
    ],
)
def test_invariant_9_partials_of_the_same_turn_dedup_by_exact_stripped_text(
    checkpoint: str, final: str, kept: list[str]
) -> None:
    session = Session.new(profile="echo")
    store = get_store()
    transcript = SessionTranscript(session.id, store=store, auto_title=False)
    run = _manual_run("r1")
    transcript.begin(run)
    # An agent backend may checkpoint a partial of this very turn before the Stop lands.
    store.append_messages(
        session.id, [NewMessage("assistant", checkpoint, partial=True)], run_id="r1"
    )
    assert transcript.settle(run, TurnOutcome(state=RunState.STOPPED, text=final))
    partials = [m.content.strip() for m in session.messages if m.partial]
    assert partials == kept
    assert session.messages[-1].role == "notice"


# -- invariant 10: only the owner of active_stream_id writes -------------------------------------


def test_invariant_10_a_superseded_run_writes_nothing_and_emits_no_cancel() -> None:
    session = Session.new(profile="echo")
    old = session.chat("first", delay=0.05, reply="slow " * 100)
    _until(lambda: old.text)
    new = session.chat("second", delay=0, reply="fresh answer").wait(10)  # claims the session
    assert new.status is RunState.DONE
    assert old.cancel()
    old.wait(10)
    assert old.status is RunState.STOPPED
    assert "cancel" not in [e.event for e in old.events()]
    assert [(m.role, m.content) for m in session.messages] == [
        ("user", "first"),
        ("user", "second"),
        ("assistant", "fresh answer"),
    ]
    assert get_store().get_run(old.run_id).state == "stopped"  # its own row still settles


def test_invariant_10_a_late_finaliser_after_done_writes_nothing() -> None:
    session = Session.new(profile="echo")
    run = session.chat("q", delay=0, reply="done already").wait(10)
    before = session.messages
    assert run.cancel() is False
    transcript = run.request.transcript
    late = TurnOutcome(state=RunState.STOPPED, text="done already")
    assert transcript.settle(run, late) is False
    assert session.messages == before
    assert "cancel" not in [e.event for e in run.events()]


# -- invariant 14: a failure is never a blank reply -----------------------------------------------


def test_invariant_14_provider_error_after_an_earlier_reply_is_an_error_row() -> None:
    session = Session.new(profile="echo")
    session.chat("hello", delay=0, reply="OK").wait(10)  # an earlier reply must not hide it
    run = session.chat("again", delay=0, fail="auth").wait(10)
    assert run.status is RunState.ERROR
    own = _own(session, run)
    assert [m.role for m in own] == ["user", "error"]
    error = own[-1]
    assert error.error is not None
    assert error.error["kind"] == "auth" and error.error["status"] == 401
    assert "api_key_env" in error.error["hint"]
    assert error.content == error.error["message"]
    assert get_store().get_run(run.run_id).state == "error"


def test_invariant_14_empty_reply_after_an_earlier_reply_is_an_error_row() -> None:
    session = Session.new(profile="echo")
    session.chat("hello", delay=0, reply="OK").wait(10)
    run = session.chat("say nothing", delay=0, reply="").wait(10)
    own = _own(session, run)
    assert [m.role for m in own] == ["user", "error"]
    assert own[-1].error and own[-1].error["kind"] == "empty_reply"


def test_invariant_14_partial_text_is_kept_before_the_error() -> None:
    session = Session.new(profile="echo")
    run = session.chat(
        "go", delay=0, chunk_size=2, reply="abcdefgh", fail="rate_limit", fail_after=2
    ).wait(10)
    partial, error = _own(session, run)[1:]
    assert (partial.role, partial.content, partial.partial) == ("assistant", "abcd", True)
    assert error.role == "error" and error.error and error.error["kind"] == "rate_limit"


# -- invariant 16: branches ------------------------------------------------------------------------


def test_invariant_16_branch_copies_the_first_k_messages() -> None:
    session = Session.new(profile="echo")
    for prompt in ("one", "two"):
        session.chat(prompt, delay=0, reply=f"re {prompt}").wait(10)
    branch = session.branch(3)
    assert branch.parent_session_id == session.id and branch.source == "fork"
    assert [(m.role, m.content) for m in branch.messages] == [
        ("user", "one"),
        ("assistant", "re one"),
        ("user", "two"),
    ]
    assert [m.position for m in branch.messages] == [1, 2, 3]
    branch.chat("three", delay=0, reply="re three").wait(10)
    assert len(session.messages) == 4 and len(branch.messages) == 5
    with pytest.raises(HermesError, match="Cannot branch"):
        session.branch(5)


# -- finding, naming, listing ----------------------------------------------------------------------


def test_an_archive_without_a_continuation_refuses_new_turns() -> None:
    session = Session.new(profile="echo")
    for prompt in ("one", "two"):
        session.chat(prompt, delay=0, reply="r").wait(10)
    archive_id = session.id
    continuation = session.compress(keep_last=2, profile=Profile(options={"delay": 0}))
    continuation.delete()
    archive = Session.open(archive_id)
    with pytest.raises(StoreError, match="is an archive") as err:
        archive.chat("more?")
    assert "branch" in err.value.hint
    archive.branch(2).chat("from the archive", delay=0, reply="ok").wait(10)


def test_open_by_name_id_and_unique_prefix() -> None:
    session = Session.new(name="notes", profile="echo")
    assert Session.open("notes") == session
    assert Session.open(session.id) == session
    assert Session.open(session.id[:6]) == session
    assert Session.open_or_create("notes") == session
    assert Session.open_or_create("other") != session


def test_unknown_session_says_what_was_asked_and_how_to_list() -> None:
    with pytest.raises(SessionNotFound) as err:
        Session.open("nowhere")
    assert str(err.value) == "There is no session 'nowhere'. %hermes sessions lists them."


def test_chat_with_session_by_name_through_the_api() -> None:
    session = Session.new(name="api", profile="echo")
    run = hermes_nb.chat("via api", session="api", delay=0, reply="stored").wait(10)
    assert run.request.transcript.session_id == session.id
    assert [m.content for m in session.messages] == ["via api", "stored"]


def test_rename_refuses_a_taken_name() -> None:
    a = Session.new(name="a")
    Session.new(name="b")
    with pytest.raises(StoreError, match="named 'b' already exists"):
        a.rename("b")
    a.rename("c")
    assert Session.open("c") == a and a.name == "c"


def test_list_is_most_recent_first_and_hides_archives() -> None:
    first, _, _ = (Session.new(name=n, profile="echo") for n in ("1st", "2nd", "3rd"))
    first.chat("bump", delay=0, reply="r").wait(10)
    assert [s.name for s in sessions.list()] == ["1st", "3rd", "2nd"]
    assert [s.name for s in sessions.list(limit=1)] == ["1st"]
    first.chat("more", delay=0, reply="r2").wait(10)
    continuation = first.compress(keep_last=2)
    names = [(s.name, s.archived) for s in sessions.list()]
    assert ("1st", True) not in names and names[0] == ("1st", False)
    archived = [s for s in sessions.list(include_archived=True) if s.archived]
    assert [s.id for s in archived] == [continuation.parent_session_id]


def test_search_finds_messages_with_a_snippet() -> None:
    session = Session.new(name="git", profile="echo")
    session.chat("why is my merge so slow", delay=0, reply="Rebase conflicts cost time.").wait(10)
    Session.new(profile="echo").chat("unrelated", delay=0, reply="nothing").wait(10)
    hits = sessions.search("merging slow")
    assert [(h.session_id, h.position, h.role) for h in hits] == [(session.id, 1, "user")]
    assert "**merge**" in hits[0].snippet and hits[0].name == "git"
    assert sessions.search("conflicts")[0].position == 2
    assert sessions.search("") == []


def test_delete_reparents_children_to_keep_lineage() -> None:
    root = Session.new(name="root", profile="echo")
    root.chat("root question", delay=0, reply="root answer").wait(10)
    middle = root.branch(2)
    middle.chat("middle only words", delay=0, reply="ok").wait(10)
    leaf = middle.branch(4)
    middle.delete()
    assert leaf.parent_session_id == root.id
    assert [s.id for s in leaf.lineage()] == [leaf.id, root.id]
    assert len(leaf.messages) == 4  # the copies it made are its own
    assert [h.session_id for h in sessions.search("middle only words")] == [leaf.id]
    with pytest.raises(SessionNotFound):
        Session.open(middle.id)


# -- export --------------------------------------------------------------------------------------


def test_export_markdown_and_json() -> None:
    session = Session.new(name="exp", profile="echo")
    session.chat("What is *WAL*?", delay=0, reply="Write-ahead logging.", reasoning="recall").wait(
        10
    )
    run = session.chat("and?", delay=0, fail="rate_limit").wait(10)
    md = session.export("md")
    assert md.startswith("# ")
    assert "## You\n\nWhat is *WAL*?" in md
    assert "## Assistant\n\n<details><summary>Reasoning</summary>\n\nrecall" in md
    assert "Write-ahead logging." in md
    assert "> **Error** (rate_limit):" in md
    data = json.loads(session.export("json"))
    assert data["session"]["id"] == session.id and data["lineage"] == [session.id]
    assert [m["content"] for m in data["messages"]][:2] == [
        "What is *WAL*?",
        "Write-ahead logging.",
    ]
    assert data["messages"][-1]["error"]["kind"] == "rate_limit"
    assert data["messages"][-1]["run_id"] == run.run_id
    with pytest.raises(HermesError, match="Unknown export format"):
        session.export("pdf")


def test_a_reply_cut_off_at_the_token_limit_is_stored_with_its_notice(sse_server) -> None:
    from sse_server import Reply, content, finish

    from hermes_nb import Profile
    from hermes_nb.engine.turn import truncation_notice

    sse_server.enqueue(Reply(chunks=[content("Half an ans"), finish("length")]))
    profile = Profile(name="t", provider="openai", base_url=sse_server.url, model="m")
    session = Session.new(name="cut")
    run = session.chat("Explain everything.", profile=profile).wait(10)
    assert run.status == "done" and run.truncated
    roles = [(m.role, m.content, m.partial) for m in Session.open("cut").messages]
    assert roles == [
        ("user", "Explain everything.", False),
        ("assistant", "Half an ans", False),
        ("notice", truncation_notice("length"), False),
    ]
    notice = Session.open("cut").messages[-1]
    assert notice.metadata == {"kind": "truncated", "finish_reason": "length"}
    assert truncation_notice("length") in Session.open("cut").export("md")


def test_a_title_is_drawn_from_the_final_reply_of_a_turn_that_ran_tools() -> None:
    from hermes_nb.store.titles import _first_exchange

    session = Session.new(profile="echo")
    get_store().append_messages(
        session.id,
        [
            NewMessage("user", "What is in the bucket?"),
            NewMessage(
                "assistant",
                "Let me look.",
                tool_calls=[{"id": "c", "name": "ls", "arguments": "{}", "result": "a.csv"}],
            ),
            NewMessage("tool", "a.csv", metadata={"tool_call_id": "c", "name": "ls"}),
            NewMessage("assistant", "One CSV file."),
            NewMessage("user", "And then?"),
            NewMessage("assistant", "Nothing else."),
        ],
    )
    assert _first_exchange(session) == ("What is in the bucket?", "One CSV file.")
