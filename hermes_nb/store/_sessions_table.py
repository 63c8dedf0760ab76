"""The sessions table: creating, finding, listing, renaming, titling and deleting sessions.

:class:`_SessionRows` also owns following a session into the continuation compression archived
it into (:meth:`_SessionRows._follow`, inside the caller's own transaction): the runs and the
lineage build on it. A live session's ``name`` is unique (the database refuses a second one,
converted here into a :class:`StoreError` naming it).
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from typing import Any

from ..core.exceptions import SessionNotFound, StoreError
from ._connection import _Connection
from ._records import _SESSION_COLUMNS, SessionRecord, _session

__all__ = ["SOURCES"]

#: Where a session came from.
SOURCES = ("new", "fork", "compression")


class _SessionRows(_Connection):
    """The :class:`~hermes_nb.store.database.Store` methods on the ``sessions`` table."""

    def create_session(
        self,
        *,
        name: str | None = None,
        title: str | None = None,
        profile: str | None = None,
        model: str | None = None,
        parent_session_id: str | None = None,
        source: str = "new",
    ) -> SessionRecord:
        """Insert a new session; :class:`StoreError` if ``name`` is taken by a live session."""
        return self._write(
            lambda db: self._insert_session(
                db,
                name=name,
                title=title,
                profile=profile,
                model=model,
                parent_session_id=parent_session_id,
                source=source,
            )
        )

    def _insert_session(self, db: sqlite3.Connection, **values: Any) -> SessionRecord:
        now = time.time()
        session_id = uuid.uuid4().hex
        try:
            db.execute(
                "INSERT INTO sessions (id, name, title, profile, model, parent_session_id, "
                "source, archived, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
                (
                    session_id,
                    values["name"],
                    values["title"],
                    values["profile"],
                    values["model"],
                    values["parent_session_id"],
                    values["source"],
                    now,
                    now,
                ),
            )
        except sqlite3.IntegrityError as exc:
            if "sessions.name" in str(exc):
                raise _name_taken(values["name"]) from exc
            raise
        return self._get(db, session_id)

    def open_or_create(
        self, name: str, *, profile: str | None = None, model: str | None = None
    ) -> SessionRecord:
        """The live session called ``name``, created if there is none (race-free)."""

        def find(db: sqlite3.Connection) -> SessionRecord | None:
            row = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE name = ? AND archived = 0",
                (name,),
            ).fetchone()
            return None if row is None else _session(row)

        if self._read_only is not None:  # found, or refused with the reason
            found = self._read(find)
            if found is None:
                raise self._refusal()
            return found

        def run(db: sqlite3.Connection) -> SessionRecord:
            found = find(db)
            if found is not None:
                return found
            return self._insert_session(
                db,
                name=name,
                title=None,
                profile=profile,
                model=model,
                parent_session_id=None,
                source="new",
            )

        return self._write(run)

    def _get(self, db: sqlite3.Connection, session_id: str) -> SessionRecord:
        row = db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()
        if row is None:
            raise _not_found(session_id)
        return _session(row)

    def get_session(self, session_id: str) -> SessionRecord:
        """The session with exactly this id; :class:`SessionNotFound` if there is none."""
        return self._read(lambda db: self._get(db, session_id))

    def find_session(self, ref: str) -> SessionRecord:
        """By id, by live name, by archived name (newest), or by a unique id prefix."""

        def run(db: sqlite3.Connection) -> SessionRecord:
            row = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ? "
                "UNION ALL SELECT * FROM (SELECT "
                f"{_SESSION_COLUMNS} FROM sessions WHERE name = ? "
                "ORDER BY archived, updated_at DESC LIMIT 1)",
                (ref, ref),
            ).fetchone()
            if row is not None:
                return _session(row)
            if not re.fullmatch(r"[0-9a-f]{2,32}", ref):
                raise _not_found(ref)
            rows = db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id >= ? AND id < ? LIMIT 2",
                (ref, ref + "g"),
            ).fetchall()
            if len(rows) == 1:
                return _session(rows[0])
            if not rows:
                raise _not_found(ref)
            raise SessionNotFound(
                f"{ref!r} is the start of more than one session id.",
                hint="Give more characters of the id; %hermes sessions lists them.",
            )

        return self._read(run)

    def list_sessions(
        self, *, limit: int = 50, include_archived: bool = False
    ) -> list[SessionRecord]:
        """Sessions, most recently updated first."""
        where = "" if include_archived else "WHERE archived = 0"
        return self._read(
            lambda db: [
                _session(r)
                for r in db.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM sessions {where} "
                    "ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                    (limit,),
                )
            ]
        )

    def count_sessions(self) -> tuple[int, int]:
        """How many sessions are live and how many compression archived."""
        live, archived = self._read(
            lambda db: db.execute(
                "SELECT count(*) - coalesce(sum(archived), 0), coalesce(sum(archived), 0) "
                "FROM sessions"
            ).fetchone()
        )
        return int(live), int(archived)

    def continuation_of(self, session_id: str) -> SessionRecord | None:
        """The session that compression continued ``session_id`` into, if any."""
        return self._read(lambda db: _continuation(db, session_id))

    def live_session(self, session_id: str) -> SessionRecord:
        """The session, or — if compression archived it — the live end of its continuations,
        read in one transaction; :class:`StoreError` if an archive has no live continuation."""

        def run(db: sqlite3.Connection) -> SessionRecord:
            record = self._follow(db, session_id)
            if record.archived:
                raise _archive_refuses_turns(record.id)
            return record

        return self._read(run)

    def _follow(self, db: sqlite3.Connection, session_id: str) -> SessionRecord:
        """Inside a transaction: the session, or the last session compression continued it
        into — still archived only if that chain ends in an archive without a continuation.

        Writers that act on "the conversation" go through this in their own transaction, so
        an archive committed by a compression job or another kernel a moment earlier sends
        them on to the continuation instead of refusing them.
        """
        record = self._get(db, session_id)
        seen = {record.id}
        while record.archived:
            continuation = _continuation(db, record.id)
            if continuation is None or continuation.id in seen:
                break
            seen.add(continuation.id)
            record = continuation
        return record

    def rename_session(self, session_id: str, name: str | None) -> SessionRecord:
        """Set or clear the name; :class:`StoreError` if a live session already has it.

        An archive's name is its own: a session that compression archived is renamed in its
        live continuation, which is returned.
        """

        def run(db: sqlite3.Connection) -> SessionRecord:
            record = self._follow(db, session_id)
            try:
                db.execute(
                    "UPDATE sessions SET name = ?, updated_at = ? WHERE id = ?",
                    (name, time.time(), record.id),
                )
            except sqlite3.IntegrityError as exc:
                if "sessions.name" in str(exc):
                    raise _name_taken(name) from exc
                raise
            return self._get(db, record.id)

        return self._write(run)

    def set_title(self, session_id: str, title: str, *, only_if_empty: bool = True) -> bool:
        """Store a title (by default only if the session has none yet); True if stored.

        A session that compression archived meanwhile is titled in its live continuation.
        """
        guard = " AND title IS NULL" if only_if_empty else ""

        def run(db: sqlite3.Connection) -> bool:
            record = self._follow(db, session_id)
            return (
                db.execute(
                    f"UPDATE sessions SET title = ? WHERE id = ? AND archived = 0{guard}",
                    (title, record.id),
                ).rowcount
                == 1
            )

        return self._write(run)

    def delete_session(self, session_id: str) -> None:
        """Delete a session, its messages, runs and agent sessions; its children are re-parented
        to its parent, so every lineage that went through it still reaches the root."""

        def run(db: sqlite3.Connection) -> None:
            record = self._get(db, session_id)
            # The row goes first: the archive guards then no longer see an archived session.
            db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
            db.execute(
                "UPDATE sessions SET parent_session_id = ? WHERE parent_session_id = ?",
                (record.parent_session_id, session_id),
            )
            db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM runs WHERE session_id = ?", (session_id,))
            db.execute("DELETE FROM agent_sessions WHERE session_id = ?", (session_id,))

        self._write(run)


def _continuation(db: sqlite3.Connection, session_id: str) -> SessionRecord | None:
    # Served by the parent index; an archive has at most one compression child.
    row = db.execute(
        f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE parent_session_id = ? "
        "AND source = 'compression' ORDER BY created_at DESC LIMIT 1",
        (session_id,),
    ).fetchone()
    return None if row is None else _session(row)


def _archive_refuses_turns(session_id: str) -> StoreError:
    return StoreError(
        f"Session {session_id[:8]} is an archive and cannot take new turns.",
        hint="Branch it with session.branch(k) to continue from it.",
    )


def _not_found(ref: str) -> SessionNotFound:
    return SessionNotFound(f"There is no session {ref!r}.", hint="%hermes sessions lists them.")


def _name_taken(name: str | None) -> StoreError:
    return StoreError(
        f"A session named {name!r} already exists.",
        hint=f"Pick another name, or open it with Session.open({name!r}).",
    )
