"""The agent sessions table: which session an agent process gave a stored session, per profile.

An ACP agent keeps a conversation of its own for each hermes_nb session (its ``sessionId``).
Kept here, the id outlives the agent process and the kernel: the next turn after a restart asks
the agent to load that session (``session/load``) instead of starting a new one told the recent
transcript. One row per session and profile — a session may be continued with another profile,
whose agent has sessions of its own — holding the agent's command line (a profile whose command
changed starts over: the new program never made that session) and when it was made and last
used. The rows go with their session when it is deleted; a branch or a continuation starts
without any (its conversation is not the one the agent holds).
"""

from __future__ import annotations

import sqlite3
import time

from ._connection import _Connection


class _AgentSessionRows(_Connection):
    """The :class:`~hermes_nb.store.database.Store` methods on the ``agent_sessions`` table."""

    def agent_sessions(self, session_id: str, profile: str) -> dict[str, str]:
        """The agent session kept for ``session_id`` with ``profile``: ``{command: id}``
        (empty if none)."""
        return self._read(
            lambda db: dict(
                db.execute(
                    "SELECT command, agent_session_id FROM agent_sessions "
                    "WHERE session_id = ? AND profile = ?",
                    (session_id, profile),
                )
            )
        )

    def keep_agent_session(
        self, session_id: str, profile: str, command: str, agent_session_id: str
    ) -> None:
        """Record that ``command`` (the agent of ``profile``) holds ``session_id``'s conversation
        as its session ``agent_session_id``; replaces what was kept for that profile."""

        def run(db: sqlite3.Connection) -> None:
            now = time.time()
            db.execute(
                "INSERT INTO agent_sessions (session_id, profile, command, agent_session_id, "
                "created_at, used_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (session_id, profile) DO UPDATE SET "
                "created_at = CASE WHEN agent_session_id = excluded.agent_session_id "
                "AND command = excluded.command THEN created_at ELSE excluded.created_at END, "
                "command = excluded.command, agent_session_id = excluded.agent_session_id, "
                "used_at = excluded.used_at",
                (session_id, profile, command, agent_session_id, now, now),
            )

        self._write(run)
