"""Compression racing everything else that touches the same session: nothing is refused for
being "an archive" when its continuation can take it, and nothing stored is lost.

Compression archives a session and continues it in a new one in one transaction, from a
background thread or another kernel, at any moment between two other operations. Each test
forces one interleaving deterministically: a second :class:`Store` on the same file plays the
other kernel, or a hook in the runtime's path lets the compression commit at exactly the point
where the race bites.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import HermesError, StoreError
from hermes_nb.core.profiles import Profile
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, SessionRecord, Store, get_store
from hermes_nb.store.sessions import Session, join_background
from hermes_nb.store.titles import generate_title

_SUMMARY_REQUEST = "Summarise our conversation so far"


pytestmark = pytest.mark.usefixtures("stores_closed")


@pytest.fixture
def kernels(hermes_home: Path) -> Iterator[tuple[Store, Store]]:
    """Two handles on one store file: two kernels sharing the session database."""
    path = hermes_home / "sessions.db"
    a, b = Store(path), Store(path)
    yield a, b
    a.close()
    b.close()


def _conversation(store: Store, name: str = "nb") -> SessionRecord:
    record = store.create_session(name=name, profile="p", model="m")
    store.append_messages(
        record.id,
        [
            NewMessage("user", "q1"),
            NewMessage("assistant", "a1"),
            NewMessage("user", "q2"),
            NewMessage("assistant", "a2"),
        ],
    )
    return record


def _compress(store: Store, session_id: str) -> SessionRecord:
    """What the compression job commits: keep the last exchange after a summary."""
    return store.archive_and_continue(
        session_id,
        expected_last_position=store.last_position(session_id),
        keep_from_position=3,
        summary=NewMessage("system", "summary", metadata={"kind": "summary"}),
    )


def _pairs(store: Store, session_id: str) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in store.messages(session_id)]


def _begin(store: Store, session_id: str, n: int = 1, prompt: str = "q3") -> SessionRecord:
    return store.begin_turn(
        session_id, run_id=f"r{n}", stream_id=f"s{n}", prompt=prompt, profile="p", model="m"
    )


def _settle(store: Store, session_id: str, n: int = 1, reply: str = "a3") -> bool:
    return store.settle_turn(
        session_id,
        run_id=f"r{n}",
        stream_id=f"s{n}",
        state="done",
        messages=[NewMessage("assistant", reply)],
        usage={"prompt_tokens": 3, "completion_tokens": 4},
    )


# -- a turn started while compression commits ----------------------------------------------------


def test_a_turn_begun_on_a_session_archived_meanwhile_lands_in_its_continuation(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    archive_before = _pairs(a, record.id)
    continuation = _compress(b, record.id)  # the other kernel compresses first
    began = _begin(a, record.id)  # this kernel still holds the old id
    assert began.id == continuation.id and began.active_stream_id == "s1"
    assert a.get_run("r1").session_id == continuation.id
    assert _settle(a, began.id)
    assert _pairs(a, continuation.id) == [
        ("system", "summary"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3"),
    ]
    assert _pairs(a, record.id) == archive_before  # the archive is untouched
    assert a.get_session(continuation.id).active_stream_id is None


def test_a_write_back_under_the_stale_id_goes_where_the_prompt_went(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    continuation = _compress(b, record.id)
    _begin(a, record.id)
    # A caller that kept the id it asked for still settles into the continuation.
    assert _settle(a, record.id)
    assert _pairs(a, continuation.id)[-2:] == [("user", "q3"), ("assistant", "a3")]
    assert a.get_session(continuation.id).usage["context_tokens"] == 7
    assert a.get_run("r1").state == "done"


def test_a_turn_follows_a_chain_of_compressions(kernels: tuple[Store, Store]) -> None:
    a, b = kernels
    record = _conversation(a)
    first = _compress(b, record.id)
    b.append_messages(first.id, [NewMessage("user", "q3"), NewMessage("assistant", "a3")])
    second = _compress(b, first.id)
    assert _begin(a, record.id, prompt="q4").id == second.id
    assert _pairs(a, second.id)[-1] == ("user", "q4")


def test_an_archive_without_a_continuation_refuses_a_turn_in_one_sentence(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    b.delete_session(_compress(b, record.id).id)
    before = a.dump()
    with pytest.raises(StoreError) as err:
        _begin(a, record.id)
    assert err.value.message == f"Session {record.id[:8]} is an archive and cannot take new turns."
    assert "branch" in (err.value.hint or "")
    assert a.dump() == before


# -- compression started while a turn runs ---------------------------------------------------------


def test_compression_that_read_before_a_turn_began_is_refused_and_the_turn_kept(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    expected = b.last_position(record.id)  # compression read the session, then summarises…
    _begin(a, record.id)  # …while a turn claims it
    with pytest.raises(StoreError, match="changed while it was being summarised"):
        b.archive_and_continue(
            record.id,
            expected_last_position=expected,
            keep_from_position=3,
            summary=NewMessage("system", "summary"),
        )
    assert _settle(a, record.id)  # the turn finishes into its own, still live, session
    assert _pairs(a, record.id)[-2:] == [("user", "q3"), ("assistant", "a3")]
    assert not a.get_session(record.id).archived
    # Once the turn is done, compression goes through and keeps it.
    continuation = _compress(b, record.id)
    assert ("assistant", "a3") in _pairs(a, continuation.id)


def test_a_running_turn_is_never_archived_under_its_feet(kernels: tuple[Store, Store]) -> None:
    a, b = kernels
    record = _conversation(a)
    _begin(a, record.id)
    with pytest.raises(StoreError, match="changed while it was being summarised"):
        _compress(b, record.id)  # even with an up-to-date read: a turn holds the session
    assert _settle(a, record.id)
    assert _pairs(a, record.id)[-1] == ("assistant", "a3")


# -- titles, names and branches racing compression ---------------------------------------------


def test_a_title_racing_compression_goes_to_the_continuation(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    continuation = _compress(b, record.id)  # while the title was being asked for
    assert a.set_title(record.id, "Early questions")
    assert a.get_session(continuation.id).title == "Early questions"
    assert a.get_session(record.id).title is None  # the archive is immutable
    assert not a.set_title(record.id, "A second title")  # only if the session has none


def test_a_rename_racing_compression_renames_the_continuation(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    handle = Session(record.id, a)
    continuation = _compress(b, record.id)
    handle.rename("renamed")  # was: "That session is an archive and cannot be changed."
    assert handle.id == continuation.id  # the handle followed, as chat() would
    assert a.get_session(continuation.id).name == "renamed"
    assert a.get_session(record.id).name == "nb"  # the archive keeps its own


def test_a_branch_racing_compression_copies_what_its_caller_counted(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    counted = a.last_position(record.id)
    _compress(b, record.id)
    branch = a.fork(record.id, counted)  # the archive still holds every message
    assert _pairs(a, branch.id) == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
    ]
    assert branch.parent_session_id == record.id


# -- through the runtime: a turn racing the background compression job ----------------------------


class _Gated:
    """Answers every prompt with "re: <prompt>"; a summary waits until ``release`` is set."""

    name = "gated"

    def __init__(self, release: threading.Event, seen: list[list[dict[str, Any]]]) -> None:
        self.release = release
        self.seen = seen

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        last = str(request.messages[-1]["content"])
        if last.startswith(_SUMMARY_REQUEST):
            assert await anyio.to_thread.run_sync(self.release.wait, 10)
            yield "token", {"text": "they asked two questions"}
            return
        self.seen.append([dict(m) for m in request.messages])
        yield "token", {"text": f"re: {last}"}


def test_a_turn_racing_background_compression_continues_in_the_continuation() -> None:
    release = threading.Event()
    seen: list[list[dict[str, Any]]] = []
    register_provider("gated", lambda profile, client: _Gated(release, seen))
    roomy = Profile(name="gated", provider="gated", context_window=10**9)
    session = Session.new(name="racy", profile=roomy)
    for i in range(3):
        session.chat(f"question {i}", profile=roomy).wait(10)
    assert join_background(10)  # the title job is done
    original = session.id
    # This reply brings the context over the window: the compression job starts and waits
    # for its summary.
    tipping = session.chat("question 3", profile=roomy, context_window=1).wait(10)
    assert tipping.status is RunState.DONE
    store = get_store()
    archived_messages = store.messages(original)
    begin_turn = store.begin_turn

    def compression_commits_first(session_id: str, **kwargs: Any) -> SessionRecord:
        # The next turn has checked the session (still live) and is about to begin it: let
        # the compression job finish now, archiving the session the turn was started in.
        release.set()
        assert join_background(10)
        assert store.get_session(session_id).archived
        return begin_turn(session_id, **kwargs)

    store.begin_turn = compression_commits_first  # type: ignore[method-assign]
    try:
        run = session.chat("question 4", profile=roomy).wait(10)
    finally:
        del store.begin_turn
    assert run.error is None and run.status is RunState.DONE
    continuation = Session.open("racy")
    assert continuation.id != original and continuation.parent_session_id == original
    assert run.request.transcript.session_id == continuation.id
    assert session.id == continuation.id  # the handle followed its turn
    assert [(m.role, m.content) for m in continuation.messages][-2:] == [
        ("user", "question 4"),
        ("assistant", "re: question 4"),
    ]
    assert store.messages(original) == archived_messages  # the archive is untouched
    sent = seen[-1]
    assert sent[0]["role"] == "system" and "they asked two questions" in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "question 4"}


def test_a_title_job_racing_compression_titles_the_continuation(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    continuation = _compress(b, record.id)
    # A title job started on the session before compression archived it finishes now.
    stale = Session(record.id, a)
    assert generate_title(stale, Profile(name="echo", provider="echo")) == "Q1"
    assert a.get_session(continuation.id).title == "Q1"
    assert a.get_session(record.id).title is None


def test_compressing_a_session_compressed_meanwhile_says_so_in_one_sentence(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    expected = a.last_position(record.id)
    _compress(b, record.id)  # the background job won
    with pytest.raises(HermesError) as err:
        a.archive_and_continue(
            record.id,
            expected_last_position=expected,
            keep_from_position=3,
            summary=NewMessage("system", "summary"),
        )
    assert err.value.message == f"Session {record.id[:8]} is already archived."
    assert err.value.hint


def test_a_tool_loop_turn_begun_on_an_archived_session_lands_whole_in_the_continuation(
    kernels: tuple[Store, Store],
) -> None:
    a, b = kernels
    record = _conversation(a)
    archive_before = _pairs(a, record.id)
    continuation = _compress(b, record.id)
    began = _begin(a, record.id)
    call = {"id": "c1", "name": "f", "arguments": "{}", "result": "42"}
    assert a.settle_turn(
        record.id,  # the stale id: the write-back follows the run row
        run_id="r1",
        stream_id="s1",
        state="done",
        messages=[
            NewMessage("assistant", "", tool_calls=[call]),
            NewMessage("tool", "42", metadata={"tool_call_id": "c1", "name": "f"}),
            NewMessage("assistant", "It is 42."),
        ],
    )
    assert began.id == continuation.id
    assert _pairs(a, continuation.id)[-4:] == [
        ("user", "q3"),
        ("assistant", ""),
        ("tool", "42"),
        ("assistant", "It is 42."),
    ]
    assert _pairs(a, record.id) == archive_before
    assert a.history(continuation.id)[-3:] == [
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "42"},
        {"role": "assistant", "content": "It is 42."},
    ]
