"""A session's lineage: a fork holding a session's first messages, and compression's archive.

Each is one transaction that creates a session whose parent is the original and copies messages
into it in one statement: :meth:`_Lineage.fork` (source ``fork``) and
:meth:`_Lineage.archive_and_continue` (source ``compression``: the original is archived, the
continuation takes over its name and title).
"""

from __future__ import annotations

import sqlite3

from ..core.exceptions import StoreError
from ._messages_table import _copy_messages, _insert_messages, _last_position
from ._records import NewMessage, SessionRecord
from ._sessions_table import _SessionRows


class _Lineage(_SessionRows):
    """The :class:`~hermes_nb.store.database.Store` methods that branch and continue sessions."""

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
