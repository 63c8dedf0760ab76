"""The runs table: a turn begun and settled, and runs whose process died marked ``interrupted``.

:meth:`_RunRows.begin_turn` makes the prompt durable and claims the session for a stream in one
transaction; :meth:`_RunRows.settle_turn` writes the result only while that stream still owns
the session (compare-and-clear). A run records the process that owns it (pid plus a start token,
:mod:`hermes_nb.store._owner`); :meth:`_RunRows.recover` frees the sessions of runs whose owner
has died (invariant 18), when the store is opened and before a new turn takes a session.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from ..core.exceptions import StoreError
from ..core.usage import SUMMED
from ._messages_table import _insert_messages
from ._owner import PROCESS_TOKEN, owner_alive
from ._records import _RUN_COLUMNS, NewMessage, RunRecord, SessionRecord, _dumps, _loads, _run
from ._sessions_table import _archive_refuses_turns, _SessionRows

__all__ = ["RUN_STATES"]

#: The states a run row can be in (``interrupted``: its process died before it settled).
RUN_STATES = ("queued", "streaming", "done", "stopped", "error", "interrupted")
_UNFINISHED = ("queued", "streaming")

_INTERRUPTED_NOTICE = (
    "The previous turn was interrupted: the kernel stopped before a reply was stored. "
    "Your prompt is kept above; ask again to continue."
)


class _RunRows(_SessionRows):
    """The :class:`~hermes_nb.store.database.Store` methods on the ``runs`` table."""

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


def _add_usage(db: sqlite3.Connection, session_id: str, usage: dict[str, int]) -> None:
    """Accumulate token counts; ``context_tokens`` is the latest request's prompt + completion."""
    row = db.execute("SELECT usage FROM sessions WHERE id = ?", (session_id,)).fetchone()
    total: dict[str, int] = json.loads(row[0] or "{}")
    for key in SUMMED:  # the counts a run adds up over its requests add up over its runs
        if isinstance(usage.get(key), int):
            total[key] = total.get(key, 0) + usage[key]
    # A run's own ``context_tokens`` is its last request's (its counts are summed over a tool
    # loop's requests, see ``Run.usage``); a usage from elsewhere has only the counts.
    context = (
        usage.get("context_tokens")
        or usage.get("total_tokens")
        or (usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0))
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
