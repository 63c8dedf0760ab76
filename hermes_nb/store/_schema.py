"""The session store's schema: an append-only list of named migrations (llm's ``migrations.py``).

Kept apart from :mod:`hermes_nb.store.database` so the SQL that defines the file — tables, indexes
and the triggers through which the database itself enforces the store's guarantees — reads in one
place, without the transaction and retry code around it:

* Archived sessions are immutable: triggers refuse inserts, updates and deletes of their
  messages, and any change to their row except re-pointing ``parent_session_id`` away from a
  parent that was deleted (DESIGN.md §3, invariant 15).
* ``name`` is unique among live (non-archived) sessions.
* The full-text index follows the messages table through triggers.
* ``agent_sessions`` (since ``007_agent_sessions``) keeps the session an ACP agent gave a stored
  session, per profile.
* A message's ``role`` is one of ``user``, ``assistant``, ``system``, ``tool`` (a tool's result,
  since ``006_tool_messages``: its ``tool_call_id`` and tool ``name`` are in ``metadata``),
  ``notice`` or ``error``.

The migrations that ran are recorded by name in ``_hermes_migrations``; a name this code does
not know means a newer hermes_nb wrote the file (the store refuses it).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

__all__ = ["MIGRATIONS"]

#: The message every archive guard aborts with; the store recognises it to explain the refusal.
_READ_ONLY = "hermes_nb: archived sessions are read-only"


@dataclass(frozen=True)
class _Migration:
    """One named schema step. Statements run one by one inside the migration transaction."""

    name: str
    statements: tuple[str, ...]


_RAISE = f"SELECT RAISE(ABORT, '{_READ_ONLY}');"

#: Append-only: never edit or reorder a migration that has shipped; add a new one (the steps
#: from 006 on are appended below this tuple, each after the comment that says why).
MIGRATIONS: tuple[_Migration, ...] = (
    _Migration(
        "001_sessions",
        (
            """CREATE TABLE sessions (
                id TEXT PRIMARY KEY,
                name TEXT,
                title TEXT,
                profile TEXT,
                model TEXT,
                parent_session_id TEXT,
                source TEXT NOT NULL DEFAULT 'new'
                    CHECK (source IN ('new', 'fork', 'compression')),
                archived INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL,
                active_stream_id TEXT,
                pending_user_message TEXT,
                pending_started_at REAL,
                usage TEXT
            )""",
            "CREATE UNIQUE INDEX sessions_live_name ON sessions(name) "
            "WHERE archived = 0 AND name IS NOT NULL",
            "CREATE INDEX sessions_recent ON sessions(archived, updated_at)",
            "CREATE INDEX sessions_parent ON sessions(parent_session_id)",
        ),
    ),
    _Migration(
        "002_messages",
        (
            """CREATE TABLE messages (
                id INTEGER PRIMARY KEY,
                session_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                role TEXT NOT NULL
                    CHECK (role IN ('user', 'assistant', 'notice', 'error', 'system')),
                content TEXT NOT NULL DEFAULT '',
                reasoning TEXT,
                tool_calls TEXT,
                partial INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
                error TEXT,
                metadata TEXT,
                run_id TEXT,
                created_at REAL NOT NULL,
                UNIQUE (session_id, position)
            )""",
            "CREATE INDEX messages_run ON messages(run_id) WHERE run_id IS NOT NULL",
        ),
    ),
    _Migration(
        "003_runs",
        (
            """CREATE TABLE runs (
                run_id TEXT PRIMARY KEY,
                session_id TEXT NOT NULL,
                stream_id TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN
                    ('queued', 'streaming', 'done', 'stopped', 'error', 'interrupted')),
                profile TEXT,
                model TEXT,
                error TEXT,
                usage TEXT,
                pid INTEGER,
                proc_token TEXT,
                started_at REAL NOT NULL,
                finished_at REAL
            )""",
            "CREATE INDEX runs_session ON runs(session_id)",
            "CREATE INDEX runs_stream ON runs(stream_id)",
            "CREATE INDEX runs_unfinished ON runs(state) WHERE state IN ('queued', 'streaming')",
        ),
    ),
    _Migration(
        "004_messages_fts",
        (
            "CREATE VIRTUAL TABLE messages_fts USING fts5("
            "content, content='messages', content_rowid='id', tokenize='porter unicode61')",
            """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
                INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
            END""",
            """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
                INSERT INTO messages_fts(messages_fts, rowid, content)
                    VALUES ('delete', old.id, old.content);
            END""",
            """CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
                INSERT INTO messages_fts(messages_fts, rowid, content)
                    VALUES ('delete', old.id, old.content);
                INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
            END""",
        ),
    ),
    _Migration(
        "005_archive_guards",
        (
            f"""CREATE TRIGGER messages_archived_insert BEFORE INSERT ON messages
            WHEN EXISTS (SELECT 1 FROM sessions WHERE id = new.session_id AND archived = 1)
            BEGIN {_RAISE} END""",
            f"""CREATE TRIGGER messages_archived_update BEFORE UPDATE ON messages
            WHEN EXISTS (SELECT 1 FROM sessions
                         WHERE id IN (old.session_id, new.session_id) AND archived = 1)
            BEGIN {_RAISE} END""",
            f"""CREATE TRIGGER messages_archived_delete BEFORE DELETE ON messages
            WHEN EXISTS (SELECT 1 FROM sessions WHERE id = old.session_id AND archived = 1)
            BEGIN {_RAISE} END""",
            # The only change an archive's row accepts: pointing parent_session_id past a parent
            # that no longer exists (its deletion re-parents the children). Everything else,
            # un-archiving included, is refused.
            f"""CREATE TRIGGER sessions_archived_update BEFORE UPDATE ON sessions
            WHEN old.archived = 1 AND (
                new.archived IS NOT old.archived OR new.id IS NOT old.id
                OR new.name IS NOT old.name OR new.title IS NOT old.title
                OR new.profile IS NOT old.profile OR new.model IS NOT old.model
                OR new.source IS NOT old.source OR new.created_at IS NOT old.created_at
                OR new.updated_at IS NOT old.updated_at
                OR new.active_stream_id IS NOT old.active_stream_id
                OR new.pending_user_message IS NOT old.pending_user_message
                OR new.pending_started_at IS NOT old.pending_started_at
                OR new.usage IS NOT old.usage
                OR (new.parent_session_id IS NOT old.parent_session_id
                    AND (old.parent_session_id IS NULL
                         OR EXISTS (SELECT 1 FROM sessions WHERE id = old.parent_session_id))))
            BEGIN {_RAISE} END""",
        ),
    ),
)


def _shipped(name: str) -> tuple[str, ...]:
    """The statements of a shipped migration, to re-create exactly what it created."""
    return next(m.statements for m in MIGRATIONS if m.name == name)


#: Every column of ``messages``, in table order (what a rebuild copies).
_MESSAGES_ALL = (
    "id, session_id, position, role, content, reasoning, tool_calls, partial, error, metadata, "
    "run_id, created_at"
)

# 006: ``tool`` messages (the tool loop's results, issue 13), so a stored history is valid for the
# API. SQLite cannot alter a CHECK, so ``messages`` is rebuilt inside the migration transaction:
# the new table (the same columns, the wider CHECK) takes every row with its id and position,
# the old one is dropped — which drops its index and triggers with it, firing none — and the new
# one takes its name. Then what depended on it is re-created from the migrations that made it:
# the ``messages_run`` index, the full-text triggers and the three message archive guards. The
# ids (the FTS rowids) are unchanged, so the external-content index ``messages_fts`` stays valid
# as it is. Rows are copied before any guard exists on the new table, archives included.
MIGRATIONS = (
    *MIGRATIONS,
    _Migration(
        "006_tool_messages",
        (
            """CREATE TABLE messages_006 (
                id INTEGER PRIMARY KEY,
                session_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                role TEXT NOT NULL
                    CHECK (role IN ('user', 'assistant', 'tool', 'notice', 'error', 'system')),
                content TEXT NOT NULL DEFAULT '',
                reasoning TEXT,
                tool_calls TEXT,
                partial INTEGER NOT NULL DEFAULT 0 CHECK (partial IN (0, 1)),
                error TEXT,
                metadata TEXT,
                run_id TEXT,
                created_at REAL NOT NULL,
                UNIQUE (session_id, position)
            )""",
            f"INSERT INTO messages_006 ({_MESSAGES_ALL}) SELECT {_MESSAGES_ALL} FROM messages",
            "DROP TABLE messages",
            "ALTER TABLE messages_006 RENAME TO messages",
            *_shipped("002_messages")[1:],  # the messages_run index
            *_shipped("004_messages_fts")[1:],  # the three full-text triggers
            *_shipped("005_archive_guards")[:3],  # the three guards on archived messages
        ),
    ),
)


# 007: the session each agent process gave a stored session (issue 22), per profile, so that
# an ACP agent's conversation is loaded again after the agent or the kernel restarted
# (:mod:`hermes_nb.store._agent_sessions`). ``command`` is the agent's command line: another
# program never made that session. No archive guard: a turn never runs in an archive, and the
# rows of a deleted session go with it (``delete_session``).
MIGRATIONS = (
    *MIGRATIONS,
    _Migration(
        "007_agent_sessions",
        (
            """CREATE TABLE agent_sessions (
                session_id TEXT NOT NULL,
                profile TEXT NOT NULL,
                command TEXT NOT NULL,
                agent_session_id TEXT NOT NULL,
                created_at REAL NOT NULL,
                used_at REAL NOT NULL,
                PRIMARY KEY (session_id, profile)
            )""",
        ),
    ),
)


def _applied(db: sqlite3.Connection) -> set[str]:
    """Names of the migrations this database has run (empty for a new file)."""
    if not db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_hermes_migrations'"
    ).fetchone():
        return set()
    return {r[0] for r in db.execute("SELECT name FROM _hermes_migrations")}


def _apply_pending(db: sqlite3.Connection) -> None:
    """Inside a write transaction: run every migration not yet recorded, in order, record each
    by name, and set ``user_version`` to the number of migrations this code knows."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _hermes_migrations "
        "(name TEXT PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    done = _applied(db)
    for migration in MIGRATIONS:
        if migration.name in done:
            continue
        for statement in migration.statements:
            db.execute(statement)
        db.execute(
            "INSERT INTO _hermes_migrations (name, applied_at) VALUES (?, ?)",
            (migration.name, time.time()),
        )
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
