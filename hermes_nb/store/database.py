"""The session store: sessions, messages and runs in one SQLite file, shared by every kernel.

One file (``$HERMES_NB_HOME/sessions.db``) in WAL mode, so readers never wait for writers and
several kernels can write at once. Every write is one short ``BEGIN IMMEDIATE`` transaction; a
busy database is waited for (SQLite's busy timeout) and retried with backoff, so a user only
sees "locked" when another process really holds the store for many seconds.

What the database itself guarantees (so no code path can forget it):

* Archived sessions are immutable: triggers refuse inserts, updates and deletes of their
  messages, and any change to their row except re-pointing ``parent_session_id`` away from a
  parent that was deleted (DESIGN.md §3, invariant 15).
* ``name`` is unique among live (non-archived) sessions: the notebook's default session is found
  by name, and compression hands the name on to the continuation.
* The full-text index follows the messages table through triggers.

The schema is an append-only list of named migrations; the ones that ran are recorded in
``_hermes_migrations``. A store holding a migration this code does not know was written by a
newer hermes_nb and is refused unchanged (:class:`StoreVersionError`).

A store that cannot be written — its filesystem is read-only (a read-only home on a hub, a
read-only mount) or full, or this user may not write it — is still opened, for reading:
:attr:`Store.read_only` says why, and every write raises :class:`StoreReadOnlyError` with that
reason in one sentence, before SQLite is touched. A WAL database needs its ``-shm`` (and
``-wal``) file to be read; where they cannot be created beside it, SQLite can still read the file
as ``immutable`` (sqlite.org/wal.html, "read-only databases") — exact only when no ``-wal`` file
holds commits not yet checkpointed into it, so when one does, the two files are copied to a
private temporary directory and read there. Migrations cannot run on such a store: it is read
with the schema it has, and a query that needs a newer schema says so in one sentence. A store
whose file or directory does not exist and cannot be created reads as empty. A full disk met
by a write of an open store is the same refusal (:class:`StoreReadOnlyError`).

Runs record the process that owns them (pid plus a start token, so a reused pid is not mistaken
for the owner). A run left ``queued``/``streaming`` by a process that has died is marked
``interrupted`` when the store is opened and its session is freed (invariant 18).

Messages are ``user``, ``assistant``, ``system``, ``tool`` (the tool loop's results, each naming
the call it answers in its metadata), ``notice`` and ``error``; :meth:`Store.history` turns them
into what a model is sent, valid for OpenAI-compatible APIs.

This module is the database handle and its transactions. The migrations and triggers live in
:mod:`hermes_nb.store._schema`, the process-ownership checks in :mod:`hermes_nb.store._owner`, and
the row dataclasses in :mod:`hermes_nb.store._records`; the names callers use are importable from
here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..core import config
from ..core.exceptions import SessionNotFound, StoreError, StoreReadOnlyError, StoreVersionError

# Also imported from here by callers and tests (MIGRATIONS, PROCESS_TOKEN and the records).
from ._owner import PROCESS_TOKEN, owner_alive
from ._records import (
    _MESSAGE_COLUMNS,
    _RUN_COLUMNS,
    _SESSION_COLUMNS,
    NewMessage,
    RunRecord,
    SearchHit,
    SessionRecord,
    StoredMessage,
    _dumps,
    _loads,
    _message_rows,
    _run,
    _session,
)
from ._schema import _READ_ONLY, MIGRATIONS, _applied, _apply_pending

__all__ = [
    "RUN_STATES",
    "SOURCES",
    "NewMessage",
    "RunRecord",
    "SearchHit",
    "SessionRecord",
    "Store",
    "StoredMessage",
    "close_stores",
    "get_store",
    "unwritable",
]

T = TypeVar("T")

#: Where a session came from.
SOURCES = ("new", "fork", "compression")
#: The states a run row can be in (``interrupted``: its process died before it settled).
RUN_STATES = ("queued", "streaming", "done", "stopped", "error", "interrupted")
_UNFINISHED = ("queued", "streaming")

_SQLITE_MAGIC = b"SQLite format 3\x00"
# SQLite's primary result codes (sqlite3.h) that mean "this file cannot be written here".
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 3, 8, 10, 13, 14
_UNWRITABLE = frozenset(
    {_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN}
)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_READ_ONLY_HINT = (
    "History, search and export still work; free some space or make the directory writable, "
    "or set HERMES_NB_HOME to a writable directory."
)
_INTERRUPTED_NOTICE = (
    "The previous turn was interrupted: the kernel stopped before a reply was stored. "
    "Your prompt is kept above; ask again to continue."
)


# -- the store ---------------------------------------------------------------------------------


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:  # the connection is unusable; the transaction is gone with it
            pass


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _code(exc: BaseException | None) -> int:
    """SQLite's primary result code of ``exc`` (0 if it is not an sqlite3 error)."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _cannot_write(exc: StoreError) -> bool:
    """True if opening failed because the file cannot be written here (not for any other
    reason): then the store is opened read-only instead."""
    return isinstance(exc, StoreReadOnlyError) or _code(exc.__cause__) in _UNWRITABLE


def _condition(where: Path, cause: BaseException | None) -> str:
    """Why ``where`` (an existing file or directory) cannot be written, as a clause after "is"."""
    found = _evidence(where, cause)
    if found:
        return found
    detail = cause.strerror if isinstance(cause, OSError) else str(cause or "")
    return f"not writable ({detail})" if detail else "not writable"


def _evidence(where: Path, cause: BaseException | None) -> str | None:
    """What ``cause`` or the filesystem says keeps ``where`` from being written (a clause after
    "is"), or None when neither names a reason."""
    err = cause.errno if isinstance(cause, OSError) else None
    if _code(cause) == _SQLITE_FULL or err in _FULL_ERRNOS:
        return "on a full disk"
    try:
        fs: os.statvfs_result | None = os.statvfs(where)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this platform
        fs = None
    if err == errno.EROFS or (fs is not None and fs.f_flag & os.ST_RDONLY):
        return "on a read-only filesystem"
    if fs is not None and fs.f_blocks and not fs.f_bavail:
        return "on a full disk"
    directory = where if where.is_dir() else where.parent
    if err in (errno.EACCES, errno.EPERM) or not (
        os.access(directory, os.W_OK) and (where.is_dir() or os.access(where, os.W_OK))
    ):
        return "not writable by this user"
    return None


def unwritable(path: Path) -> str | None:
    """Why the existing file ``path`` cannot be written (a clause after "is": "on a read-only
    filesystem", "on a full disk", "not writable by this user"), or None when nothing says so.
    For a check that must not open the store for writing (``%hermes doctor``)."""
    return _evidence(path, None)


class Store:
    """A handle on one session database. Thread-safe: one connection, used under a lock.

    ``busy_timeout`` is how long SQLite itself waits for a lock; ``retry_for`` is how long a
    transaction is retried (with jittered backoff) on top before :class:`StoreError` is raised.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        busy_timeout: float = 5.0,
        retry_for: float = 30.0,
    ) -> None:
        self.path = Path(path) if path is not None else config.home() / "sessions.db"
        self._busy_timeout = busy_timeout
        self._retry_for = retry_for
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        #: why nothing can be written (a clause after the path), or None for a writable store
        self._read_only: str | None = None
        self._empty = False  # read-only and nothing to read: an empty schema in memory
        self._stale = False  # read-only with migrations pending: read with the schema it has
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        try:
            try:
                self._check_file()
                with self._lock:
                    self._check_version(self._connection())
                self._retrying(self._enable_wal)
                self._migrate()
                self.recover()
                if not os.access(self.path, os.W_OK):  # SQLite fell back to reading it
                    self._open_read_only(None)
            except StoreError as exc:
                if not _cannot_write(exc):
                    raise
                self._open_read_only(exc.__cause__)
        except BaseException:
            self.close()
            raise

    @property
    def read_only(self) -> str | None:
        """Why nothing can be written to this store ("is on a read-only filesystem", …, after
        its path), or None if it is writable. Read-only stores are read as usual."""
        return self._read_only

    def check_writable(self) -> None:
        """:class:`StoreReadOnlyError` if nothing can be written: for work that would end in a
        write only after something costly (compression asks a model first)."""
        if self._read_only is not None:
            raise self._refusal()

    # -- opening -------------------------------------------------------------------------------

    def _check_file(self) -> None:
        """Refuse anything that is not an SQLite file before SQLite touches it."""
        if self.path.is_dir():
            raise StoreError(
                f"The session store path {self.path} is a directory.",
                hint="Point HERMES_NB_HOME at a directory without a 'sessions.db' folder.",
            )
        try:
            with self.path.open("rb") as fh:
                head = fh.read(len(_SQLITE_MAGIC))
        except FileNotFoundError:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # read-only or full: the store reads as empty
                raise self._refusal(exc) from exc
            return
        except OSError as exc:
            raise StoreError(
                f"Cannot read the session store {self.path}: {exc.strerror}.",
                hint="Set HERMES_NB_HOME to a readable, writable directory.",
            ) from exc
        if head and head != _SQLITE_MAGIC:
            raise StoreError(
                f"{self.path} is not a hermes_nb session store (it is not an SQLite database).",
                hint="Move the file aside or set HERMES_NB_HOME to another directory; "
                "it was left unchanged.",
            )

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                self._db = self._open_db()
            except (sqlite3.Error, OSError) as exc:
                detail = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise StoreError(
                    f"Cannot open the session store {self.path}: {detail}.",
                    hint="Check that the directory exists and is readable, or set HERMES_NB_HOME.",
                ) from exc
        return self._db

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        db = sqlite3.connect(
            target,
            timeout=self._busy_timeout,
            isolation_level=None,  # explicit BEGIN/COMMIT only
            check_same_thread=False,  # guarded by self._lock instead
            uri=uri,
        )
        try:
            # Per connection, writes nothing: in WAL mode a commit survives a process crash.
            db.execute("PRAGMA synchronous = NORMAL")
            # Up to 32 MB of pages (used only as read): a long session reloads from memory.
            db.execute("PRAGMA cache_size = -32768")
        except BaseException:
            db.close()
            raise
        return db

    def _open_db(self) -> sqlite3.Connection:
        if self._read_only is None:
            return self._connect(str(self.path))
        if self._empty:
            db = self._connect(":memory:")
            db.execute("BEGIN")
            _apply_pending(db)
            db.execute("COMMIT")
        else:
            db = self._connect_read_only()
        db.execute("PRAGMA query_only = ON")  # the second guard: writes are refused before
        return db

    def _connect_read_only(self) -> sqlite3.Connection:
        """A connection that only reads the file, with whatever can be created beside it."""
        uri = self.path.absolute().as_uri()
        db: sqlite3.Connection | None = None
        try:
            db = self._connect(f"{uri}?mode=ro", uri=True)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
            if _code(exc) not in _UNWRITABLE:
                raise
        # The -shm file cannot be created (or sized) beside it. Immutable reads the main file alone,
        # which holds every commit unless a -wal file still holds some: then read a copy.
        wal = Path(f"{self.path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            if self._copy is None:
                self._copy = tempfile.TemporaryDirectory(prefix="hermes-nb-store-")
                copy = Path(self._copy.name) / self.path.name
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, f"{copy}-wal")
            return self._connect(str(Path(self._copy.name) / self.path.name))
        return self._connect(f"{uri}?mode=ro&immutable=1", uri=True)

    def _open_read_only(self, cause: BaseException | None) -> None:
        """The store cannot be written: read it as it is (or as empty if there is no file)."""
        self.close()
        self._read_only = self._reason(cause)
        try:
            self._empty = not self.path.exists() or self.path.stat().st_size == 0
        except OSError as exc:
            raise StoreError(
                f"Cannot read the session store {self.path}: {exc.strerror}.",
                hint="Set HERMES_NB_HOME to a readable directory.",
            ) from exc
        with self._lock:
            db = self._connection()
            self._check_version(db)
            try:
                applied = _applied(db)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
        if not applied:  # an SQLite file that never got the schema: nothing is stored in it
            self.close()
            self._empty = True
        self._stale = bool(applied) and applied != {m.name for m in MIGRATIONS}

    def _reason(self, cause: BaseException | None) -> str:
        """Why the store cannot be written, as a clause after its path."""
        where = self.path
        while not where.exists() and where != where.parent:
            where = where.parent
        condition = _condition(where, cause)
        if where == self.path:
            return f"is {condition}"
        return f"does not exist and cannot be created ({where} is {condition})"

    def _refusal(self, cause: BaseException | None = None) -> StoreReadOnlyError:
        reason = self._read_only or self._reason(cause)
        return StoreReadOnlyError(
            f"The session store {self.path} {reason}, so nothing new can be saved in it.",
            hint=_READ_ONLY_HINT,
            reason=reason,
        )

    def _check_version(self, db: sqlite3.Connection) -> None:
        """Refuse a store from a newer hermes_nb, before anything is written to it."""
        try:
            applied = _applied(db)
            user_version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        unknown = sorted(applied - {m.name for m in MIGRATIONS})
        if unknown or user_version > len(MIGRATIONS):
            raise StoreVersionError(
                f"The session store {self.path} was written by a newer hermes_nb "
                f"(schema step {unknown[-1] if unknown else user_version!r} is unknown here).",
                hint="Upgrade hermes_nb (pip install -U hermes-nb), or set HERMES_NB_HOME to "
                "another directory; the store was left unchanged.",
            )

    def _enable_wal(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode = WAL")  # recorded in the file: once is enough

    def _migrate(self) -> None:
        def run(db: sqlite3.Connection) -> None:
            self._check_version(db)  # another process may have migrated meanwhile
            _apply_pending(db)

        with self._lock:
            done = _applied(self._connection())
        if done != {m.name for m in MIGRATIONS}:
            self._write(run)

    def close(self) -> None:
        """Close the connection (it is reopened if the store is used again)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._copy is not None:
                self._copy.cleanup()
                self._copy = None

    # -- transactions --------------------------------------------------------------------------

    def _retrying(self, func: Callable[[sqlite3.Connection], T], *, write: bool = False) -> T:
        """Run ``func`` in one transaction (``BEGIN IMMEDIATE`` if ``write``), retrying while
        the database is busy; every sqlite3 error leaves as a :class:`StoreError`."""
        if write and self._read_only is not None:
            raise self._refusal()
        deadline = time.monotonic() + self._retry_for
        delay = 0.005
        while True:
            with self._lock:
                db = self._connection()
                try:
                    if write:
                        db.execute("BEGIN IMMEDIATE")
                    result = func(db)
                    if write:
                        db.execute("COMMIT")
                    return result
                except sqlite3.Error as exc:
                    _rollback(db)
                    if not (_is_busy(exc) and time.monotonic() < deadline):
                        raise self._error(exc, write=write) from exc
                except BaseException:
                    _rollback(db)
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.2)

    def _read(self, func: Callable[[sqlite3.Connection], T]) -> T:
        return self._retrying(func)

    def _write(self, func: Callable[[sqlite3.Connection], T]) -> T:
        return self._retrying(func, write=True)

    def _error(self, exc: sqlite3.Error, *, write: bool = False) -> StoreError:
        text = str(exc)
        if _READ_ONLY in text:
            return StoreError(
                "That session is an archive and cannot be changed.",
                hint="Continue in its continuation, or branch it with session.branch(k).",
            )
        if _is_busy(exc):
            return StoreError(
                f"The session store {self.path} is locked by another process.",
                hint="Another kernel is holding it; try again, or restart a kernel that hangs.",
            )
        code = _code(exc)
        if code in (_SQLITE_READONLY, _SQLITE_FULL) or (write and code in _UNWRITABLE):
            return self._refusal(exc)
        if self._stale and ("no such table" in text or "no such column" in text):
            return StoreError(
                f"The session store {self.path} was written by an older hermes_nb and cannot "
                f"be upgraded while it {self._read_only}.",
                hint="Open it once with write access to upgrade it, or set HERMES_NB_HOME to "
                "another directory; it was left unchanged.",
            )
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            return StoreError(
                f"The session store {self.path} is damaged ({text}).",
                hint="Move the file aside (hermes_nb then starts a new one) and keep it for "
                "recovery; it was left unchanged.",
            )
        return StoreError(f"The session store {self.path} failed: {text}.")

    # -- sessions ------------------------------------------------------------------------------

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
        """Delete a session, its messages and runs; its children are re-parented to its parent,
        so every lineage that went through it still reaches the root."""

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

        self._write(run)

    # -- messages ------------------------------------------------------------------------------

    def messages(self, session_id: str) -> list[StoredMessage]:
        """Every message of the session in order (one query; JSON decoded only where set)."""
        return self._read(
            lambda db: _message_rows(
                db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE session_id = ? "
                    "ORDER BY position",
                    (session_id,),
                )
            )
        )

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """What a model is sent, in order: user, assistant and system messages with text, and
        the tool loop's messages — an assistant message's ``tool_calls`` (each with its ``id``)
        followed by the ``tool`` messages that answer them (``tool_call_id``, ``name``,
        ``content``).

        Valid for the API by construction: a call is kept only when a ``tool`` message right
        after its assistant message answers it, and a ``tool`` message only when it answers a
        kept call. A call an agent ran itself (its result is in its record), one a Stop cut
        off, or a group a branch cut in two is therefore left out, never sent half. Notices
        (cancel markers) and error rows are for the reader, not for the model.
        """
        return self._read(
            lambda db: _history(
                db.execute(
                    "SELECT role, content, tool_calls, metadata FROM messages "
                    "WHERE session_id = ? AND (role = 'tool' OR role IN ('user', 'assistant', "
                    "'system') AND (content != '' OR tool_calls IS NOT NULL)) ORDER BY position",
                    (session_id,),
                ).fetchall()
            )
        )

    def content_chars(self, session_id: str) -> int:
        """Characters of text the model would be sent (for a context estimate)."""
        return self._read(
            lambda db: int(
                db.execute(
                    "SELECT COALESCE(SUM(length(content) + COALESCE(length(reasoning), 0)), 0) "
                    "FROM messages WHERE session_id = ? "
                    "AND role IN ('user', 'assistant', 'system', 'tool')",
                    (session_id,),
                ).fetchone()[0]
            )
        )

    def last_position(self, session_id: str) -> int:
        return self._read(lambda db: _last_position(db, session_id))

    def append_messages(
        self, session_id: str, messages: Iterable[NewMessage], *, run_id: str | None = None
    ) -> int:
        """Append messages in one transaction; returns the last position. O(1) per message."""

        def run(db: sqlite3.Connection) -> int:
            self._get(db, session_id)
            position = _insert_messages(db, session_id, messages, run_id=run_id)
            db.execute("UPDATE sessions SET updated_at = ? WHERE id = ?", (time.time(), session_id))
            return position

        return self._write(run)

    # -- turns ---------------------------------------------------------------------------------

    def begin_turn(
        self,
        session_id: str,
        *,
        run_id: str,
        stream_id: str,
        prompt: str,
        profile: str | None,
        model: str | None,
    ) -> SessionRecord:
        """Make the prompt durable and claim the session for ``stream_id``, in one transaction.

        The prompt is stored as the user message (and as ``pending_user_message`` until the turn
        settles), a ``streaming`` run row records the owning process, and ``active_stream_id``
        moves to this stream — any earlier stream loses its right to write back.

        Returns the session the turn landed in: if compression archived ``session_id`` before
        this transaction (a background job, another kernel), that is its live continuation —
        the archive is never written to and the turn is not refused. Only an archive without a
        continuation refuses, with :class:`StoreError`.
        """

        def run(db: sqlite3.Connection) -> SessionRecord:
            record = self._follow(db, session_id)
            if record.archived:
                raise _archive_refuses_turns(record.id)
            live = record.id
            if record.active_stream_id:
                self._interrupt_if_orphaned(db, record.active_stream_id)
            now = time.time()
            _insert_messages(db, live, [NewMessage("user", prompt)], run_id=run_id, now=now)
            db.execute(
                "UPDATE sessions SET active_stream_id = ?, pending_user_message = ?, "
                "pending_started_at = ?, updated_at = ?, profile = ?, model = ? WHERE id = ?",
                (stream_id, prompt, now, now, profile, model, live),
            )
            db.execute(
                "INSERT INTO runs (run_id, session_id, stream_id, state, profile, model, pid, "
                "proc_token, started_at) VALUES (?, ?, ?, 'streaming', ?, ?, ?, ?, ?)",
                (run_id, live, stream_id, profile, model, os.getpid(), PROCESS_TOKEN, now),
            )
            return self._get(db, live)

        return self._write(run)

    def settle_turn(
        self,
        session_id: str,
        *,
        run_id: str,
        stream_id: str,
        state: str,
        messages: Sequence[NewMessage],
        usage: dict[str, int] | None = None,
        error: dict[str, Any] | None = None,
    ) -> bool:
        """Write a turn's result iff ``stream_id`` still owns the session (compare-and-clear).

        The run row always gets its terminal ``state``. A partial assistant message is skipped
        when an earlier partial of the *same run* has the same stripped text (DESIGN.md §3,
        invariant 9) — never compared with other turns' messages. Returns True iff written.

        The result goes to the session the run began in (its run row says which), the one
        holding its prompt — also when :meth:`begin_turn` followed ``session_id`` into a
        continuation and the caller still has the old id. That session cannot have been
        archived meanwhile: compression refuses a session with an ``active_stream_id``.
        """
        if state not in RUN_STATES or state in _UNFINISHED:
            raise ValueError(f"{state!r} is not a terminal run state")

        def run(db: sqlite3.Connection) -> bool:
            began = db.execute("SELECT session_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            target = session_id if began is None else began[0]
            now = time.time()
            db.execute(
                "UPDATE runs SET state = ?, error = ?, usage = ?, finished_at = ? "
                "WHERE run_id = ? AND state IN ('queued', 'streaming')",
                (state, _dumps(error), _dumps(usage or None), now, run_id),
            )
            owned = db.execute(
                "UPDATE sessions SET active_stream_id = NULL, pending_user_message = NULL, "
                "pending_started_at = NULL, updated_at = ? "
                "WHERE id = ? AND active_stream_id = ?",
                (now, target, stream_id),
            ).rowcount
            if not owned:
                return False
            earlier = [
                _partial_key(NewMessage("assistant", c, r, _loads(t)))
                for c, r, t in db.execute(
                    "SELECT content, reasoning, tool_calls FROM messages "
                    "WHERE run_id = ? AND session_id = ? AND partial = 1",
                    (run_id, target),
                )
            ]
            keep = [m for m in messages if not (m.partial and _partial_key(m) in earlier)]
            _insert_messages(db, target, keep, run_id=run_id, now=now)
            if usage:
                _add_usage(db, target, usage)
            return True

        written = self._write(run)
        self._shrink()
        return written

    def _shrink(self) -> None:
        """Give back the page cache's memory after a turn's write. The pages a turn writes stay
        cached otherwise, up to ``cache_size`` (32 MB): a long-lived kernel would grow by every
        turn it stored (``benchmarks/bench_memory.py``). Reading them again later costs a copy
        from the OS page cache; a session being loaded still fills the cache as it reads."""
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA shrink_memory")

    def get_run(self, run_id: str) -> RunRecord:
        def run(db: sqlite3.Connection) -> RunRecord:
            row = db.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise StoreError(f"No run {run_id!r} in the session store.")
            return _run(row)

        return self._read(run)

    def runs(self, session_id: str) -> list[RunRecord]:
        return self._read(
            lambda db: [
                _run(r)
                for r in db.execute(
                    f"SELECT {_RUN_COLUMNS} FROM runs WHERE session_id = ? ORDER BY started_at",
                    (session_id,),
                )
            ]
        )

    def recover(self) -> list[str]:
        """Mark runs whose process died as ``interrupted`` and free their sessions.

        Returns the ids of the runs it interrupted. Runs owned by live processes (this one
        included) are left alone, and so is every run of a read-only store.
        """
        if self._read_only is not None:
            return []
        candidates = self._read(
            lambda db: db.execute(
                "SELECT stream_id, pid, proc_token FROM runs WHERE state IN ('queued', 'streaming')"
            ).fetchall()
        )
        orphans = [stream for stream, pid, token in candidates if not owner_alive(pid, token)]
        if not orphans:
            return []

        def run(db: sqlite3.Connection) -> list[str]:
            done: list[str] = []
            for stream_id in orphans:
                done.extend(self._interrupt_if_orphaned(db, stream_id))
            return done

        return self._write(run)

    def _interrupt_if_orphaned(self, db: sqlite3.Connection, stream_id: str) -> list[str]:
        """Inside a write: interrupt the unfinished runs of ``stream_id`` whose owner died."""
        rows = db.execute(
            "SELECT run_id, session_id, pid, proc_token FROM runs "
            "WHERE stream_id = ? AND state IN ('queued', 'streaming')",
            (stream_id,),
        ).fetchall()
        done = []
        for run_id, session_id, pid, token in rows:
            if owner_alive(pid, token):
                continue
            now = time.time()
            db.execute(
                "UPDATE runs SET state = 'interrupted', finished_at = ? WHERE run_id = ?",
                (now, run_id),
            )
            freed = db.execute(
                "UPDATE sessions SET active_stream_id = NULL, pending_user_message = NULL, "
                "pending_started_at = NULL, updated_at = ? "
                "WHERE id = ? AND active_stream_id = ? AND archived = 0",
                (now, session_id, stream_id),
            ).rowcount
            if freed:
                notice = NewMessage("notice", _INTERRUPTED_NOTICE, metadata={"interrupted": True})
                _insert_messages(db, session_id, [notice], run_id=run_id, now=now)
            done.append(run_id)
        return done

    # -- lineage -------------------------------------------------------------------------------

    def fork(self, session_id: str, count: int, *, title: str | None = None) -> SessionRecord:
        """A new session (source ``fork``, parent ``session_id``) holding its first ``count``
        messages, copied in one statement — ``tool`` messages like every other.

        Exactly ``count``, also when that cuts a tool call from its results: the branch's
        history then leaves the unanswered call out (:meth:`history`), so nothing invalid is
        sent. :meth:`Session.branch <hermes_nb.store.sessions.Session.branch>` refuses such a
        cut before it gets here.
        """

        def run(db: sqlite3.Connection) -> SessionRecord:
            parent = self._get(db, session_id)
            child = self._insert_session(
                db,
                name=None,
                title=title,
                profile=parent.profile,
                model=parent.model,
                parent_session_id=parent.id,
                source="fork",
            )
            _copy_messages(db, parent.id, child.id, upto=count, first_position=1)
            return child

        return self._write(run)

    def archive_and_continue(
        self,
        session_id: str,
        *,
        expected_last_position: int,
        keep_from_position: int,
        summary: NewMessage,
    ) -> SessionRecord:
        """Compression's single transaction: archive the session as it is and continue it.

        The archive keeps every column (its own ``parent_session_id`` included) and only gains
        ``archived = 1``. The continuation (source ``compression``, parent = the archive, always)
        takes over the name and title and holds the summary followed by the messages from
        ``keep_from_position`` on. Refused, changing nothing, if the session moved on since it
        was read (a new message, a running turn) or is already archived.
        """

        def run(db: sqlite3.Connection) -> SessionRecord:
            record = self._get(db, session_id)
            if record.archived:
                raise StoreError(
                    f"Session {session_id[:8]} is already archived.",
                    hint="It was compressed meanwhile; its continuation holds the conversation.",
                )
            if record.active_stream_id or _last_position(db, session_id) != expected_last_position:
                raise StoreError(
                    f"Session {session_id[:8]} changed while it was being summarised.",
                    hint="Nothing was changed; compress again once the current turn is done.",
                )
            db.execute("UPDATE sessions SET archived = 1 WHERE id = ?", (session_id,))
            continuation = self._insert_session(
                db,
                name=record.name,
                title=record.title,
                profile=record.profile,
                model=record.model,
                parent_session_id=record.id,
                source="compression",
            )
            _insert_messages(db, continuation.id, [summary])
            _copy_messages(
                db, record.id, continuation.id, start=keep_from_position, first_position=2
            )
            return continuation

        return self._write(run)

    # -- search --------------------------------------------------------------------------------

    def search(
        self, text: str, *, limit: int = 20, include_archived: bool = True
    ) -> list[SearchHit]:
        """Full-text search over message content, best match first.

        Every word of ``text`` must occur (stemmed); FTS syntax in ``text`` is treated as words.
        """
        words = re.findall(r"\w+", text)
        if not words:
            return []
        query = " ".join('"' + w.replace('"', '""') + '"' for w in words)
        where = "" if include_archived else "AND s.archived = 0"
        return self._read(
            lambda db: [
                SearchHit(sid, title, name, bool(archived), position, role, snippet)
                for sid, title, name, archived, position, role, snippet in db.execute(
                    "SELECT m.session_id, s.title, s.name, s.archived, m.position, m.role, "
                    "snippet(messages_fts, 0, '**', '**', '…', 12) "
                    "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                    f"JOIN sessions s ON s.id = m.session_id WHERE messages_fts MATCH ? {where} "
                    "ORDER BY rank LIMIT ?",
                    (query, limit),
                )
            ]
        )

    # -- introspection (tests, doctor) -----------------------------------------------------------

    def dump(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, in a stable order — to prove an operation changed nothing."""

        def run(db: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
            names = [
                r[0]
                for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'messages_fts%' AND name NOT LIKE 'sqlite_%' ORDER BY name"
                )
            ]
            return {n: db.execute(f"SELECT * FROM {n} ORDER BY 1").fetchall() for n in names}

        return self._read(run)


# -- helpers inside transactions ----------------------------------------------------------------


def _last_position(db: sqlite3.Connection, session_id: str) -> int:
    # Served by the (session_id, position) unique index: O(log n), no scan.
    row = db.execute(
        "SELECT COALESCE(MAX(position), 0) FROM messages WHERE session_id = ?", (session_id,)
    ).fetchone()
    return int(row[0])


def _history(rows: Sequence[tuple[str, str, str | None, str | None]]) -> list[dict[str, Any]]:
    """:meth:`Store.history` from ``(role, content, tool_calls, metadata)`` rows in order: each
    assistant message with calls takes the ``tool`` rows right after it, and keeps only the
    calls they answer (the first answer to each); every other ``tool`` row is dropped."""
    out: list[dict[str, Any]] = []
    i, count = 0, len(rows)
    while i < count:
        role, content, calls_json, _ = rows[i]
        i += 1
        if role == "tool":  # no assistant message before it in its group: answers nothing
            continue
        if role != "assistant" or calls_json is None:
            if content:
                out.append({"role": role, "content": content})
            continue
        calls = [c for c in json.loads(calls_json) or () if isinstance(c, dict) and c.get("id")]
        ids = {c["id"] for c in calls}
        answers: dict[Any, dict[str, Any]] = {}
        while i < count and rows[i][0] == "tool":
            metadata = _loads(rows[i][3]) or {}
            call_id = metadata.get("tool_call_id")
            if call_id in ids and call_id not in answers:
                answers[call_id] = {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "name": metadata.get("name") or "",
                    "content": rows[i][1],
                }
            i += 1
        kept: list[dict[str, Any]] = []
        for call in calls:  # in the order called; an id twice would be answered once
            if call["id"] in answers and all(k["id"] != call["id"] for k in kept):
                kept.append(call)
        if not (content or kept):
            continue
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if kept:
            message["tool_calls"] = kept
        out.append(message)
        out.extend(answers.values())
    return out


def _fresh(text: str | None) -> str | None:
    """A copy of ``text`` for binding: sqlite3 binds a ``str`` through its UTF-8 form, which
    CPython caches on the string object for as long as it lives. Bound as a copy, that cache
    (half the text again for non-ASCII text) goes with the copy instead of staying on the
    caller's string (a settled run's reply, kept for the kernel's life)."""
    return text.encode().decode() if text and not text.isascii() else text


def _insert_messages(
    db: sqlite3.Connection,
    session_id: str,
    messages: Iterable[NewMessage],
    *,
    run_id: str | None = None,
    now: float | None = None,
) -> int:
    position = _last_position(db, session_id)
    now = time.time() if now is None else now

    def rows() -> Iterator[tuple[Any, ...]]:
        nonlocal position
        for m in messages:
            position += 1
            yield (
                session_id,
                position,
                m.role,
                _fresh(m.content),
                _fresh(m.reasoning or None),
                _dumps(m.tool_calls or None),
                int(m.partial),
                _dumps(m.error),
                _dumps(m.metadata),
                run_id,
                now,
            )

    db.executemany(
        "INSERT INTO messages (session_id, position, role, content, reasoning, tool_calls, "
        "partial, error, metadata, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows(),
    )
    return position


def _copy_messages(
    db: sqlite3.Connection,
    source: str,
    target: str,
    *,
    first_position: int,
    start: int = 1,
    upto: int | None = None,
) -> None:
    """Copy messages ``source[start:]`` (at most ``upto``) to ``target``, renumbered."""
    db.execute(
        "INSERT INTO messages (session_id, position, role, content, reasoning, tool_calls, "
        "partial, error, metadata, run_id, created_at) "
        "SELECT ?, ? + row_number() OVER (ORDER BY position) - 1, role, content, reasoning, "
        "tool_calls, partial, error, metadata, run_id, created_at FROM messages "
        "WHERE session_id = ? AND position >= ? ORDER BY position LIMIT ?",
        (target, first_position, source, start, -1 if upto is None else upto),
    )


def _add_usage(db: sqlite3.Connection, session_id: str, usage: dict[str, int]) -> None:
    """Accumulate token counts; ``context_tokens`` is the latest turn's prompt + completion."""
    row = db.execute("SELECT usage FROM sessions WHERE id = ?", (session_id,)).fetchone()
    total: dict[str, int] = json.loads(row[0] or "{}")
    for key in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        if isinstance(usage.get(key), int):
            total[key] = total.get(key, 0) + usage[key]
    context = usage.get("total_tokens") or (
        usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0)
    )
    if context:
        total["context_tokens"] = context
    db.execute("UPDATE sessions SET usage = ? WHERE id = ?", (_dumps(total), session_id))


def _partial_key(message: NewMessage) -> tuple[str, ...]:
    """What makes two partials of one turn the same: their stripped text — and, for a partial
    without text, its reasoning and tool calls (so no distinct content is ever dropped)."""
    text = message.content.strip()
    if text:
        return (text,)
    return ("", (message.reasoning or "").strip(), _dumps(message.tool_calls or None) or "")


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


# -- one store per file per process -------------------------------------------------------------

_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def get_store(path: str | os.PathLike[str] | None = None) -> Store:
    """The process's :class:`Store` for ``path`` (default ``$HERMES_NB_HOME/sessions.db``),
    opened on first use."""
    resolved = Path(path) if path is not None else config.home() / "sessions.db"
    key = resolved.expanduser().absolute()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store(key)
        return store


def close_stores() -> None:
    """Close and forget every store opened by :func:`get_store` (kernel shutdown, tests)."""
    with _stores_lock:
        stores = [*_stores.values()]
        _stores.clear()
    for store in stores:
        store.close()
