"""The messages table: reading a transcript, appending to it, and the history a model is sent.

:meth:`_MessageRows.history` pairs each assistant message's tool calls with the ``tool`` messages
that answer them (:func:`_history`), so what is sent is valid for OpenAI-compatible APIs by
construction. The helpers run inside a caller's transaction: the runs and the lineage insert and
copy messages through them, numbered by ``position`` within their session.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ._records import _MESSAGE_COLUMNS, NewMessage, StoredMessage, _dumps, _loads, _message_rows
from ._sessions_table import _SessionRows


class _MessageRows(_SessionRows):
    """The :class:`~hermes_nb.store.database.Store` methods on the ``messages`` table."""

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
