"""The SQLite store: schema, archive guards, bad files, locking, crash recovery, many writers."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hermes_nb.core.exceptions import SessionNotFound, StoreError, StoreVersionError
from hermes_nb.store.database import (
    MIGRATIONS,
    PROCESS_TOKEN,
    NewMessage,
    Store,
    StoredMessage,
    get_store,
)
from hermes_nb.store.sessions import Session

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_store_worker.py"


pytestmark = pytest.mark.usefixtures("stores_closed")


@pytest.fixture
def store(hermes_home: Path) -> Iterator[Store]:
    s = Store(hermes_home / "sessions.db")
    yield s
    s.close()


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)


def _archived_session(store: Store) -> tuple[str, str]:
    """A session with two messages, compressed: returns (archive id, continuation id)."""
    record = store.create_session(name="nb")
    store.append_messages(record.id, [NewMessage("user", "hello"), NewMessage("assistant", "hi")])
    continuation = store.archive_and_continue(
        record.id,
        expected_last_position=2,
        keep_from_position=2,
        summary=NewMessage("system", "summary"),
    )
    return record.id, continuation.id


def _worker(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(ROOT),
        **kwargs,  # type: ignore[call-overload]
    )


# -- schema ------------------------------------------------------------------------------------


def test_migrations_are_recorded_by_name_and_run_once(store: Store) -> None:
    with _raw(store.path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM _hermes_migrations ORDER BY name")]
        assert names == [m.name for m in MIGRATIONS]
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    record = store.create_session(name="kept")
    store.close()
    again = Store(store.path)
    try:
        assert again.get_session(record.id).name == "kept"
        with _raw(store.path) as db:
            assert db.execute("SELECT count(*) FROM _hermes_migrations").fetchone()[0] == len(
                MIGRATIONS
            )
    finally:
        again.close()


def test_the_messages_rebuild_recreates_exactly_what_the_first_migrations_made(
    store: Store,
) -> None:
    # 006 rebuilt ``messages`` to take ``tool`` rows; its index and triggers must read exactly
    # as 002, 004 and 005 wrote them (the file stores a statement's text as it was given).
    shipped = {m.name: m.statements for m in MIGRATIONS}
    expected = [
        *shipped["002_messages"][1:],
        *shipped["004_messages_fts"][1:],
        *shipped["005_archive_guards"][:3],
    ]
    with _raw(store.path) as db:
        stored = [
            r[0]
            for r in db.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'messages' "
                "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY rowid"
            )
        ]
        assert sorted(stored) == sorted(expected)
        table = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone()[0]
        assert "'tool'" in table and "messages_006" not in " ".join(
            r[0] for r in db.execute("SELECT name FROM sqlite_master")
        )
        db.execute("INSERT INTO sessions (id, created_at, updated_at) VALUES ('s', 0, 0)")
        db.execute(
            "INSERT INTO messages (session_id, position, role, content, metadata, created_at) "
            """VALUES ('s', 1, 'tool', 'result', '{"tool_call_id":"c"}', 0)"""
        )
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute(
                "INSERT INTO messages (session_id, position, role, created_at) "
                "VALUES ('s', 2, 'function', 0)"
            )
    db.close()


def test_store_lives_in_hermes_home_by_default(hermes_home: Path) -> None:
    assert get_store().path == hermes_home / "sessions.db"
    assert (hermes_home / "sessions.db").exists()


def test_appending_reads_the_last_position_from_the_index(store: Store) -> None:
    with _raw(store.path) as db:
        plan = " ".join(
            r[-1]
            for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT COALESCE(MAX(position), 0) FROM messages "
                "WHERE session_id = ?",
                ("x",),
            )
        )
    assert "USING COVERING INDEX" in plan and "SCAN" not in plan


def test_loaded_messages_are_ordinary_frozen_dataclasses(store: Store) -> None:
    record = store.create_session()
    store.append_messages(
        record.id,
        [
            NewMessage("user", "q"),
            NewMessage(
                "assistant",
                "a",
                reasoning="r",
                tool_calls=[{"id": "c", "name": "t", "arguments": "{}"}],
                partial=True,
                error={"kind": "server"},
                metadata={"usage": {"total_tokens": 3}},
            ),
        ],
        run_id="run-x",
    )
    loaded = store.messages(record.id)
    rebuilt = [StoredMessage(**dataclasses.asdict(m)) for m in loaded]
    assert loaded == rebuilt and [m.to_dict() for m in loaded] == [m.to_dict() for m in rebuilt]
    assert loaded[1].partial is True and loaded[0].partial is False
    assert loaded[1].tool_calls == [{"id": "c", "name": "t", "arguments": "{}"}]
    assert loaded[1].metadata == {"usage": {"total_tokens": 3}} and loaded[0].metadata is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded[0].content = "changed"  # type: ignore[misc]


def test_live_names_are_unique_but_an_archive_keeps_its_name(store: Store) -> None:
    store.create_session(name="nb")
    with pytest.raises(StoreError, match="named 'nb' already exists"):
        store.create_session(name="nb")
    store.close()
    s = Store(store.path)
    archive = s.find_session("nb")
    s.append_messages(archive.id, [NewMessage("user", "q"), NewMessage("assistant", "a")])
    continuation = s.archive_and_continue(
        archive.id,
        expected_last_position=2,
        keep_from_position=3,
        summary=NewMessage("system", "s"),
    )
    assert s.get_session(archive.id).name == "nb"  # the archive is unchanged
    assert s.find_session("nb").id == continuation.id  # the live one wins the name
    s.close()


def test_fts_index_follows_inserts_and_deletes(store: Store) -> None:
    record = store.create_session()
    store.append_messages(record.id, [NewMessage("user", "why is my merge slow?")])
    assert [h.position for h in store.search("merging")] == [1]  # stemmed
    assert [h.position for h in store.search('"merge* (slow')] == [1]  # FTS syntax is just text
    store.delete_session(record.id)
    assert store.search("merge") == []


# -- archives are immutable, enforced by the database --------------------------------------------


def test_raw_sql_cannot_change_an_archived_sessions_messages(store: Store) -> None:
    archive, _ = _archived_session(store)
    with _raw(store.path) as db:
        for statement, args in (
            ("UPDATE messages SET content = 'edited' WHERE session_id = ?", (archive,)),
            ("DELETE FROM messages WHERE session_id = ?", (archive,)),
            (
                "INSERT INTO messages (session_id, position, role, content, created_at) "
                "VALUES (?, 99, 'user', 'sneaky', 0)",
                (archive,),
            ),
        ):
            with pytest.raises(sqlite3.IntegrityError, match="archived sessions are read-only"):
                db.execute(statement, args)
        contents = [
            r[0]
            for r in db.execute(
                "SELECT content FROM messages WHERE session_id = ? ORDER BY position", (archive,)
            )
        ]
    assert contents == ["hello", "hi"]


def test_raw_sql_cannot_change_an_archived_session_row(store: Store) -> None:
    archive, _ = _archived_session(store)
    with _raw(store.path) as db:
        for change in (
            "archived = 0",
            "title = 'new'",
            "parent_session_id = 'elsewhere'",
            "name = NULL",
            "active_stream_id = 'x'",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="read-only"):
                db.execute(f"UPDATE sessions SET {change} WHERE id = ?", (archive,))


def test_an_archive_is_reparented_only_when_its_parent_is_deleted(store: Store) -> None:
    root = store.create_session()
    child = store.fork(root.id, 0)
    store.append_messages(child.id, [NewMessage("user", "q"), NewMessage("assistant", "a")])
    store.archive_and_continue(
        child.id, expected_last_position=2, keep_from_position=3, summary=NewMessage("system", "s")
    )
    store.delete_session(root.id)  # the archive's parent is gone: re-pointing it is allowed
    assert store.get_session(child.id).parent_session_id is None
    assert store.get_session(child.id).archived


def test_store_api_refuses_to_append_to_an_archive(store: Store) -> None:
    archive, _ = _archived_session(store)
    with pytest.raises(StoreError, match="archive"):
        store.append_messages(archive, [NewMessage("user", "more")])


# -- bad input -----------------------------------------------------------------------------------


def test_unknown_session_is_session_not_found(store: Store) -> None:
    with pytest.raises(SessionNotFound) as err:
        store.find_session("no-such-session")
    assert "'no-such-session'" in err.value.message
    assert err.value.hint == "%hermes sessions lists them."


def test_a_file_that_is_not_a_database_is_refused_and_left_unchanged(hermes_home: Path) -> None:
    path = hermes_home / "sessions.db"
    original = b"these are my notes, not a database\n" * 50
    path.write_bytes(original)
    with pytest.raises(StoreError) as err:
        Store(path)
    assert "is not a hermes_nb session store" in err.value.message
    assert "left unchanged" in err.value.hint
    assert path.read_bytes() == original
    assert sorted(p.name for p in hermes_home.iterdir()) == ["sessions.db"]


def test_a_home_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="session store") as err:
        Store(blocker / "sessions.db")
    assert "HERMES_NB_HOME" in err.value.hint


def test_a_damaged_database_is_a_store_error(hermes_home: Path) -> None:
    path = hermes_home / "sessions.db"
    damaged = b"SQLite format 3\x00" + b"\xff" * 4000
    path.write_bytes(damaged)
    with pytest.raises(StoreError, match=r"damaged|not a database"):
        Store(path)
    assert path.read_bytes() == damaged


@pytest.mark.parametrize("future", ["migration", "user_version"])
def test_a_store_from_a_newer_version_is_refused_and_left_unchanged(
    hermes_home: Path, future: str
) -> None:
    path = hermes_home / "sessions.db"
    Store(path).close()
    with _raw(path) as db:
        if future == "migration":
            db.execute("INSERT INTO _hermes_migrations VALUES ('900_from_the_future', 0)")
        else:
            db.execute("PRAGMA user_version = 900")
    db.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError) as err:
        Store(path)
    assert "newer hermes_nb" in err.value.message and "pip install -U" in err.value.hint
    assert path.read_bytes() == before


def test_a_store_locked_for_too_long_is_one_clear_error(store: Store) -> None:
    holder = _raw(store.path)
    holder.execute("BEGIN IMMEDIATE")
    try:
        impatient = Store(store.path, busy_timeout=0.02, retry_for=0.3)
        t0 = time.monotonic()
        with pytest.raises(StoreError) as err:
            impatient.create_session(name="x")
        assert time.monotonic() - t0 >= 0.3  # it retried before giving up
        assert "is locked by another process" in err.value.message
        assert not isinstance(err.value.__cause__, StoreError)
        impatient.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_briefly_locked_store_is_retried_not_reported(store: Store) -> None:
    holder = _raw(store.path)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        patient = Store(store.path, busy_timeout=0.01, retry_for=10)
        record = patient.create_session(name="after-the-lock")  # busy at first, then retried
        assert patient.get_session(record.id).name == "after-the-lock"
        patient.close()
    finally:
        release.join()
        holder.close()


# -- crash recovery (invariant 18) ---------------------------------------------------------------


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_dead_processes_are_interrupted_at_open(store: Store) -> None:
    sessions = [store.create_session(name=f"s{i}") for i in range(3)]
    owners = {
        "dead": (_dead_pid(), "some-token"),
        "reused-pid": (os.getpid(), "an-earlier-process"),
        "alive": (os.getpid(), PROCESS_TOKEN),
    }
    for record, (label, (pid, token)) in zip(sessions, owners.items(), strict=True):
        store.begin_turn(
            record.id,
            run_id=label,
            stream_id=f"stream-{label}",
            prompt=f"prompt {label}",
            profile="echo",
            model="echo",
        )
        with _raw(store.path) as db:
            db.execute(
                "UPDATE runs SET pid = ?, proc_token = ? WHERE run_id = ?", (pid, token, label)
            )
    store.close()
    reopened = Store(store.path)
    try:
        states = {label: reopened.get_run(label).state for label in owners}
        assert states == {"dead": "interrupted", "reused-pid": "interrupted", "alive": "streaming"}
        for record, label in zip(sessions, owners, strict=True):
            now = reopened.get_session(record.id)
            messages = reopened.messages(record.id)
            assert messages[0].content == f"prompt {label}"  # the prompt survived
            if label == "alive":
                assert now.active_stream_id == "stream-alive"
            else:
                assert now.active_stream_id is None and now.pending_user_message is None
                assert messages[-1].role == "notice" and "interrupted" in messages[-1].content
    finally:
        reopened.close()


def test_a_new_turn_frees_a_session_held_by_a_dead_process(store: Store) -> None:
    record = store.create_session()
    store.begin_turn(
        record.id, run_id="old", stream_id="old-stream", prompt="lost?", profile="e", model="e"
    )
    with _raw(store.path) as db:  # the kernel that began it died; this store stayed open
        db.execute("UPDATE runs SET pid = ? WHERE run_id = 'old'", (_dead_pid(),))
    store.begin_turn(
        record.id, run_id="new", stream_id="new-stream", prompt="again", profile="e", model="e"
    )
    assert store.get_run("old").state == "interrupted"
    assert store.get_run("new").state == "streaming"
    assert [m.role for m in store.messages(record.id)] == ["user", "notice", "user"]


def test_invariant_18_a_killed_kernel_loses_nothing(hermes_home: Path) -> None:
    proc = _worker("crash", "crashy")
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line, proc.stderr.read() if proc.stderr else ""
        started = json.loads(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()
    store = get_store()  # opening after the crash runs the recovery
    run = store.get_run(started["run"])
    assert run.state == "interrupted"
    session = Session.open("crashy")
    assert session.id == started["session"]
    assert session.messages[0].role == "user"
    assert session.messages[0].content == "a prompt that must survive a crash"
    assert store.get_session(session.id).active_stream_id is None
    after = session.chat("still there?", profile="echo", delay=0).wait(10)
    assert str(after.status) == "done"
    roles = [m.role for m in session.messages]
    assert roles == ["user", "notice", "user", "assistant"]


# -- many writers --------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_processes_writing_at_once_lose_and_duplicate_nothing(
    hermes_home: Path, tmp_path: Path
) -> None:
    workers, turns = 4, 200
    go = tmp_path / "go"
    procs = [_worker("turns", f"w{i}", str(turns), str(go)) for i in range(workers)]
    time.sleep(0.5)  # let them import, then start together (migrations race too)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "locked" not in err.lower(), err
        results.append(json.loads(out.strip().splitlines()[-1]))
    store = get_store()
    for i, result in enumerate(results):
        assert result["errors"] == [] and result["states"] == {"done": turns}
        messages = store.messages(result["session"])
        expected = []
        for n in range(turns):
            expected += [("user", f"w{i} prompt {n}"), ("assistant", f"w{i} reply {n}")]
        assert [(m.role, m.content) for m in messages] == expected
        assert [m.position for m in messages] == list(range(1, 2 * turns + 1))
        assert {r.state for r in store.runs(result["session"])} == {"done"}
        assert len(store.runs(result["session"])) == turns
