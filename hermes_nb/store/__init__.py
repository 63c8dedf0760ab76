"""The store layer: the SQLite session store (schema and migrations, records, owner checks),
sessions with their transcripts, compression and titles.

It uses the engine to run turns and the providers to summarise and title; nothing below it
knows it exists (a turn writes back through the transcript a session hands it).
"""

from __future__ import annotations

from . import sessions
from ._spend import Spend, session_spend
from .database import (
    NewMessage,
    RunRecord,
    SearchHit,
    SessionRecord,
    Store,
    StoredMessage,
    close_stores,
    get_store,
)
from .sessions import Session, SessionTranscript, join_background

__all__ = [
    "NewMessage",
    "RunRecord",
    "SearchHit",
    "Session",
    "SessionRecord",
    "SessionTranscript",
    "Spend",
    "Store",
    "StoredMessage",
    "close_stores",
    "get_store",
    "join_background",
    "session_spend",
    "sessions",
]
