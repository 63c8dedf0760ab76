"""The 006 migration (the ``tool`` role): a store file made by the code before it is migrated
with every row, index, trigger and guard kept, takes tool messages afterwards, and is not
migrated twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hermes_nb.core.exceptions import StoreError
from hermes_nb.store import NewMessage, Store
from hermes_nb.store._schema import MIGRATIONS

pytestmark = pytest.mark.usefixtures("stores_closed")


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
