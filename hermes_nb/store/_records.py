"""The store's values: frozen dataclasses for its rows, and the conversions from SQLite rows.

Kept apart from :mod:`hermes_nb.store.database` because they are plain values with no SQL or I/O,
which sessions and compression pass around. The column lists fix the order every ``SELECT`` of the
store reads, which the row converters rely on; JSON columns are encoded with :func:`_dumps` and
decoded with :func:`_loads` (``NULL`` stays ``None``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["NewMessage", "RunRecord", "SearchHit", "SessionRecord", "StoredMessage"]


@dataclass(frozen=True)
class StoredMessage:
    """One message of a session, as stored. ``position`` counts from 1 within the session."""

    id: int
    session_id: str
    position: int
    role: str
    content: str
    reasoning: str | None
    tool_calls: list[dict[str, Any]] | None
    partial: bool
    error: dict[str, Any] | None
    metadata: dict[str, Any] | None
    run_id: str | None
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict with every field."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class NewMessage:
    """A message to append (the store assigns id, position and time).

    A ``tool`` message (a tool's result, which the model reads) names the call it answers and
    the tool in ``metadata``: ``{"tool_call_id": …, "name": …}``; without the call id it could
    never be sent, so it is refused here.
    """

    role: str
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    partial: bool = False
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.role == "tool" and not (self.metadata or {}).get("tool_call_id"):
            raise ValueError('A tool message needs metadata={"tool_call_id": …, "name": …}.')


@dataclass(frozen=True)
class SessionRecord:
    """One row of ``sessions``."""

    id: str
    name: str | None
    title: str | None
    profile: str | None
    model: str | None
    parent_session_id: str | None
    source: str
    archived: bool
    created_at: float
    updated_at: float
    active_stream_id: str | None
    pending_user_message: str | None
    pending_started_at: float | None
    usage: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRecord:
    """One row of ``runs``: a turn's lifecycle as the store saw it."""

    run_id: str
    session_id: str
    stream_id: str
    state: str
    profile: str | None
    model: str | None
    error: dict[str, Any] | None
    usage: dict[str, int]
    pid: int | None
    proc_token: str | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class SearchHit:
    """A full-text match: where it is and a snippet with the match in ``**bold**``."""

    session_id: str
    title: str | None
    name: str | None
    archived: bool
    position: int
    role: str
    snippet: str


_SESSION_COLUMNS = (
    "id, name, title, profile, model, parent_session_id, source, archived, created_at, "
    "updated_at, active_stream_id, pending_user_message, pending_started_at, usage"
)
_MESSAGE_COLUMNS = (
    "id, session_id, position, role, content, reasoning, tool_calls, partial, error, metadata, "
    "run_id, created_at"
)
_RUN_COLUMNS = (
    "run_id, session_id, stream_id, state, profile, model, error, usage, pid, proc_token, "
    "started_at, finished_at"
)


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _session(row: Sequence[Any]) -> SessionRecord:
    (id_, name, title, profile, model, parent, source, archived, created, updated) = row[:10]
    stream_id, pending, pending_at, usage = row[10:14]
    return SessionRecord(
        id_, name, title, profile, model, parent, source, bool(archived), created, updated,
        stream_id, pending, pending_at, json.loads(usage or "{}"),
    )  # fmt: skip


def _run(row: Sequence[Any]) -> RunRecord:
    run_id, session_id, stream_id, state, profile, model, error, usage = row[:8]
    pid, proc_token, started_at, finished_at = row[8:12]
    return RunRecord(
        run_id, session_id, stream_id, state, profile, model, _loads(error),
        json.loads(usage or "{}"), pid, proc_token, started_at, finished_at,
    )  # fmt: skip


def _message_rows(rows: Iterable[Sequence[Any]]) -> list[StoredMessage]:
    """Build messages fast (loading a long session must cost about what parsing it as JSON
    would): ``__init__`` of a frozen dataclass sets each field through ``object.__setattr__``,
    so the instance dict is filled in one step instead; JSON columns, mostly NULL, are decoded
    only where set. The result is identical to calling ``StoredMessage(...)``."""
    new = object.__new__
    set_dict = object.__setattr__
    loads = json.loads
    out: list[StoredMessage] = []
    append = out.append
    for r in rows:
        message = new(StoredMessage)
        set_dict(
            message,
            "__dict__",
            {
                "id": r[0],
                "session_id": r[1],
                "position": r[2],
                "role": r[3],
                "content": r[4],
                "reasoning": r[5],
                "tool_calls": None if r[6] is None else loads(r[6]),
                "partial": r[7] == 1,
                "error": None if r[8] is None else loads(r[8]),
                "metadata": None if r[9] is None else loads(r[9]),
                "run_id": r[10],
                "created_at": r[11],
            },
        )
        append(message)
    return out
