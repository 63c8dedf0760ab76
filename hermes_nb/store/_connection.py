"""The store's connection: opening the file, its read-only fallback, migrations and transactions.

:class:`_Connection` is the base of :class:`~hermes_nb.store.database.Store`; the tables' mixins
(sessions, messages, runs, lineage, search) build on it. It owns the one SQLite connection and
its lock, the checks made before SQLite touches the file (an SQLite file at all, not from a newer
hermes_nb), WAL mode and the pending migrations, and — for a store that cannot be written — the
read-only connection (``mode=ro``, ``immutable``, or a private copy of the file and its ``-wal``)
with :class:`StoreReadOnlyError` for every write. Every transaction goes through
:meth:`_Connection._retrying`: ``BEGIN IMMEDIATE`` for a write, retried with jittered backoff
while the database is busy, every sqlite3 error converted to a :class:`StoreError` that says what
to do (:meth:`_Connection._error`).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..core import config
from ..core.exceptions import StoreError, StoreReadOnlyError, StoreVersionError
from ._schema import _READ_ONLY, MIGRATIONS, _applied, _apply_pending
from ._unwritable import (
    _SQLITE_FULL,
    _SQLITE_READONLY,
    _UNWRITABLE,
    _cannot_write,
    _code,
    _condition,
)

T = TypeVar("T")

_SQLITE_MAGIC = b"SQLite format 3\x00"
_READ_ONLY_HINT = (
    "History, search and export still work; free some space or make the directory writable, "
    "or set HERMES_NB_HOME to a writable directory."
)


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        try:
            db.execute("ROLLBACK")
        except sqlite3.Error:  # the connection is unusable; the transaction is gone with it
            pass


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class _Connection:
    """One session database's connection, used under a lock, and its transactions."""

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

    if TYPE_CHECKING:  # the runs' (store/_runs_table.py), run once the store is open

        def recover(self) -> list[str]: ...

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

    def _shrink(self) -> None:
        """Give back the page cache's memory after a turn's write. The pages a turn writes stay
        cached otherwise, up to ``cache_size`` (32 MB): a long-lived kernel would grow by every
        turn it stored (``benchmarks/bench_memory.py``). Reading them again later costs a copy
        from the OS page cache; a session being loaded still fills the cache as it reads."""
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA shrink_memory")

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
