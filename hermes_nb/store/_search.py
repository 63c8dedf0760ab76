"""Full-text search over every stored message (SQLite FTS5, kept in step by the schema's triggers).

A query's words are quoted, so FTS syntax a user types is searched as words; every word must
occur (stemmed), best match first, with a snippet of the message around them.
"""

from __future__ import annotations

import re

from ._connection import _Connection
from ._records import SearchHit


class _Search(_Connection):
    """The :class:`~hermes_nb.store.database.Store` method on the full-text index."""

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
