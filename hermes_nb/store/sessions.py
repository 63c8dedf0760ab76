"""Sessions: conversations kept in the store, so they outlive the kernel.

:class:`Session` is the handle users hold (``Session.open("notes").chat("…")``);
:class:`SessionTranscript` is how a turn reads and writes a session (it implements
:class:`hermes_nb.engine.turn.Transcript`):

* ``begin`` makes the prompt durable *before* the request is sent — it is stored as the user
  message, and as the session's pending message until the turn settles — claims the session's
  ``active_stream_id`` and records the run with its owning process, all in one transaction
  (DESIGN.md §3, invariant 18).
* ``settle`` writes back only while the run's stream still owns the session (compare-and-clear in
  one transaction, invariant 10): the tool loop's completed steps — each assistant message with
  its ``tool_calls``, then a ``tool`` message per call, so the next turn's history is valid for
  the API — then the reply; or what was streamed before Stop as a ``partial`` message and the
  cancel marker (invariants 7–9); or the partial text and the classified error (invariant 14).
  The prompts the run asked and their answers go in the reply's metadata. What is written is
  decided from this turn's outcome alone.

On a store that cannot be written (:class:`~hermes_nb.core.exceptions.StoreReadOnlyError`: a
read-only or full filesystem) a turn still runs and its reply is shown, but it is not saved:
``begin`` falls back to the stored history, ``settle`` stores nothing and raises the error with
one sentence saying so, which the turn shows after the reply. The handle keeps those unsaved turns
in memory so the conversation goes on; a session that cannot even be created is such a handle
alone (:attr:`Session.unsaved`). If the prompt was stored but the reply cannot be (the disk
filled up meanwhile), the sentence says that the prompt is kept.

After a session's first reply a background job titles it; after any reply that brings the context
over ``context_window * compress_at`` a background job compresses it. Both are best-effort: a
failure is logged and the next reply tries again. A :class:`Session` handle follows compression:
once its session has been archived, the next ``chat`` continues in the continuation.

The classes are in :mod:`._session`, the messages a turn's outcome adds in
:mod:`._outcome_messages`, the title and compression jobs in :mod:`._background_jobs`, the
Markdown export in :mod:`._markdown_export`; this module is their public face, with
:func:`list` and :func:`search`.
"""

from __future__ import annotations

import builtins

from ._background_jobs import _auto_compress as _auto_compress
from ._background_jobs import join_background
from ._session import Session, SessionTranscript
from .database import SearchHit, StoredMessage, get_store

__all__ = [
    "SearchHit",
    "Session",
    "SessionTranscript",
    "StoredMessage",
    "join_background",
    "list",
    "search",
]


# -- module functions --------------------------------------------------------------------------


def list(limit: int = 50, include_archived: bool = False) -> builtins.list[Session]:
    """Sessions, most recently used first (archives only with ``include_archived``)."""
    store = get_store()
    records = store.list_sessions(limit=limit, include_archived=include_archived)
    return [Session(r.id, store) for r in records]


def search(text: str, limit: int = 20) -> builtins.list[SearchHit]:
    """Full-text search over every stored message (archives included), best match first."""
    return get_store().search(text, limit=limit)
