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

This module is :class:`Store` — one class made of one mixin per concern, each in a private module
— and the one store per file per process (:func:`get_store`). The connection, its read-only
fallback, migrations and transactions live in :mod:`hermes_nb.store._connection` (why a file
cannot be written in :mod:`hermes_nb.store._unwritable`); the tables in
:mod:`hermes_nb.store._sessions_table`, :mod:`hermes_nb.store._messages_table` (with the history
pairing tool calls with results) and :mod:`hermes_nb.store._runs_table`; forks and compression's
archive in :mod:`hermes_nb.store._lineage`; full-text search in :mod:`hermes_nb.store._search`;
the sessions ACP agents gave stored sessions in :mod:`hermes_nb.store._agent_sessions`.
The migrations and triggers live in :mod:`hermes_nb.store._schema`, the process-ownership checks
in :mod:`hermes_nb.store._owner`, and the row dataclasses in :mod:`hermes_nb.store._records`; the
names callers use are importable from here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..core import config
from ._agent_sessions import _AgentSessionRows
from ._connection import _Connection
from ._lineage import _Lineage
from ._messages_table import _MessageRows
from ._owner import PROCESS_TOKEN as PROCESS_TOKEN  # imported from here by callers and tests
from ._records import (
    NewMessage,
    RunRecord,
    SearchHit,
    SessionRecord,
    StoredMessage,
)
from ._runs_table import RUN_STATES, _RunRows
from ._schema import MIGRATIONS as MIGRATIONS  # imported from here by callers and tests
from ._search import _Search
from ._sessions_table import SOURCES, _SessionRows
from ._unwritable import unwritable

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


class Store(
    _MessageRows, _RunRows, _Lineage, _Search, _AgentSessionRows, _SessionRows, _Connection
):
    """A handle on one session database. Thread-safe: one connection, used under a lock.

    ``busy_timeout`` is how long SQLite itself waits for a lock; ``retry_for`` is how long a
    transaction is retried (with jittered backoff) on top before :class:`StoreError` is raised.
    """


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
