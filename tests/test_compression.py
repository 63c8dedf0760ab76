"""Compression: archive + continuation in one transaction; a failed summary changes nothing."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hermes_nb.core.exceptions import HermesError
from hermes_nb.core.profiles import Profile
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, get_store
from hermes_nb.store.compression import estimate_tokens, needs_compression
from hermes_nb.store.sessions import Session, join_background

FAST_ECHO = Profile(name="fast-echo", options={"delay": 0})


pytestmark = pytest.mark.usefixtures("stores_closed")


def _session(turns: int, name: str | None = None) -> Session:
    session = Session.new(name=name, profile="echo")
    for i in range(turns):
        session.chat(f"question {i}", delay=0, reply=f"answer {i}").wait(10)
    assert join_background(10)  # the title job has written before a test takes a snapshot
    return session


def _pairs(session: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in session.messages]


def test_invariant_15_compression_archives_unchanged_and_continues() -> None:
    session = _session(4, name="nb")
    store = get_store()
    record = store.get_session(session.id)
    messages = session.messages
    continuation = session.compress(keep_last=2, profile=FAST_ECHO)
    # The archive: every column and message as before, only archived = 1.
    assert store.get_session(session.id) == dataclasses.replace(record, archived=True)
    assert session.messages == messages
    # The continuation: parent = the archive, the name moved on, summary + recent messages.
    assert continuation.source == "compression"
    assert continuation.parent_session_id == session.id
    assert continuation.name == "nb" and Session.open("nb") == continuation
    summary, *recent = continuation.messages
    assert summary.role == "system" and summary.position == 1
    assert summary.content.startswith("Summary of the earlier conversation")
    assert summary.metadata and summary.metadata["archived_session_id"] == session.id
    assert summary.metadata["summarised_messages"] == 6
    assert [(m.role, m.content, m.position) for m in recent] == [
        ("user", "question 3", 2),
        ("assistant", "answer 3", 3),
    ]
    assert [s.id for s in continuation.lineage()] == [continuation.id, session.id]


def test_the_conversation_continues_from_the_summary() -> None:
    session = _session(3, name="cont")
    continuation = session.compress(keep_last=2, profile=FAST_ECHO)
    seen: list[list[dict[str, Any]]] = []

    class Recorder:
        name = "recorder"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            seen.append(request.messages)
            yield "token", {"text": "ok"}

    register_provider("compression-recorder", lambda profile, client: Recorder())
    # The old handle follows its session into the continuation.
    run = session.chat("next", profile=Profile(name="r", provider="compression-recorder")).wait(10)
    assert session.id == continuation.id == run.request.transcript.session_id
    sent = seen[0]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"].startswith("Summary of the earlier conversation")
    assert [m["content"] for m in sent[1:]] == ["question 2", "answer 2", "next"]


def test_invariant_15_failed_summary_changes_nothing() -> None:
    session = _session(4, name="keep")
    store = get_store()
    before = store.dump()
    broken = Profile(name="broken", options={"delay": 0, "fail": "server"})
    with pytest.raises(HermesError) as err:
        session.compress(keep_last=2, profile=broken)
    assert err.value.message.startswith(
        f"Session {session.id[:8]} was not compressed because summarising failed"
    )
    assert store.dump() == before  # every row of every table, byte for byte
    assert Session.open("keep") == session and not session.archived


def test_invariant_15_fork_of_fork_continuation_parents_the_archive() -> None:
    root = _session(1)
    fork = root.branch(2)
    fork.chat("fork q", delay=0, reply="fork a").wait(10)
    fork_of_fork = fork.branch(4)
    for i in range(2):
        fork_of_fork.chat(f"deep q{i}", delay=0, reply=f"deep a{i}").wait(10)
    continuation = fork_of_fork.compress(keep_last=2, profile=FAST_ECHO)
    assert continuation.parent_session_id == fork_of_fork.id  # never skips the archive
    assert fork_of_fork.archived and fork_of_fork.parent_session_id == fork.id  # keeps its own
    assert [s.id for s in continuation.lineage()] == [
        continuation.id,
        fork_of_fork.id,
        fork.id,
        root.id,
    ]


def test_invariant_15_compressing_a_continuation_chains_archives() -> None:
    session = _session(3)
    first = session.compress(keep_last=2, profile=FAST_ECHO)
    for i in range(2):
        first.chat(f"later {i}", delay=0, reply=f"reply {i}").wait(10)
    second = first.compress(keep_last=2, profile=FAST_ECHO)
    assert second.parent_session_id == first.id
    assert first.archived and first.parent_session_id == session.id
    assert [s.id for s in second.lineage()] == [second.id, first.id, session.id]


def test_compress_with_nothing_older_changes_nothing() -> None:
    session = _session(1)
    before = get_store().dump()
    with pytest.raises(HermesError, match="nothing older"):
        session.compress(keep_last=6, profile=FAST_ECHO)
    assert get_store().dump() == before


def test_compress_refuses_while_a_turn_is_running() -> None:
    session = _session(3)
    run = session.chat("slow", delay=0.05, reply="x " * 200)
    while not run.text:
        run.wait_for_event(run.last_event_id, timeout=5)
    with pytest.raises(HermesError, match="has a turn running"):
        session.compress(keep_last=2, profile=FAST_ECHO)
    run.cancel()
    run.wait(10)
    assert not session.archived


def test_a_session_that_moved_on_while_summarising_is_left_alone() -> None:
    session = _session(3)
    store = get_store()

    class Meddler:
        name = "meddler"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            store.append_messages(session.id, [NewMessage("user", "arrived meanwhile")])
            yield "token", {"text": "a summary"}

    register_provider("meddler", lambda profile, client: Meddler())
    with pytest.raises(HermesError, match="changed while it was being summarised"):
        session.compress(keep_last=2, profile=Profile(name="m", provider="meddler"))
    assert not session.archived
    assert session.messages[-1].content == "arrived meanwhile"
    assert [s.id for s in session.lineage()] == [session.id]
    assert len(store.list_sessions(include_archived=True)) == 1


def test_needs_compression_uses_the_reported_usage() -> None:
    session = _session(1)
    reported = get_store().get_session(session.id).usage["context_tokens"]
    assert estimate_tokens(session) == reported
    assert needs_compression(session, Profile(context_window=reported, compress_at=1.0))
    assert not needs_compression(session, Profile(context_window=reported + 1, compress_at=1.0))


def test_needs_compression_falls_back_to_four_chars_a_token() -> None:
    session = Session.new(profile="echo")
    get_store().append_messages(
        session.id, [NewMessage("user", "x" * 200), NewMessage("assistant", "y" * 200)]
    )
    assert estimate_tokens(session) == 100
    assert needs_compression(session, Profile(context_window=200, compress_at=0.5))
    assert not needs_compression(session, Profile(context_window=201, compress_at=0.5))


def test_a_reply_over_the_threshold_compresses_in_the_background() -> None:
    session = _session(4, name="auto")  # the default window: no compression
    assert Session.open("auto") == session
    session.chat("one more", delay=0, reply="tipping point", context_window=10).wait(10)
    assert join_background(30)
    continuation = Session.open("auto")
    assert continuation != session and continuation.parent_session_id == session.id
    assert session.archived
    assert _pairs(continuation)[-2:] == [("user", "one more"), ("assistant", "tipping point")]


def test_a_profile_without_auto_compress_is_not_compressed_after_a_reply() -> None:
    session = _session(4, name="kept")
    run = session.chat("one more", delay=0, reply="over", context_window=10, auto_compress=False)
    run.wait(10)
    assert join_background(30)
    assert Session.open("kept") == session and not session.archived
    assert session.compress(keep_last=2, profile=FAST_ECHO) != session  # asked for, it still does


def test_keep_last_zero_summarises_everything() -> None:
    session = _session(2)
    continuation = session.compress(keep_last=0, profile=FAST_ECHO)
    (summary,) = continuation.messages
    assert summary.role == "system" and summary.metadata
    assert summary.metadata["summarised_messages"] == 4


def test_automatic_compression_with_nothing_to_do_says_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # After a long reply in a short session there is nothing older to summarise: no notice
    # that nobody asked for and nobody can act on, only a debug record.
    from hermes_nb.store.sessions import _auto_compress

    session = Session.new(profile="echo")
    get_store().append_messages(
        session.id, [NewMessage("user", "q"), NewMessage("assistant", "a " * 30_000)]
    )
    with caplog.at_level(logging.DEBUG, logger="hermes_nb.store._background_jobs"):
        _auto_compress(session, FAST_ECHO)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "not needed" in caplog.records[0].getMessage()
    assert not session._record().archived
