"""Compression: summarise old context into a continuation session, destroying nothing.

When a session's context nears the model's window (``context_window * compress_at``), or when
asked, the older messages are summarised by the model. Then, in ONE store transaction, the
session is archived exactly as it is (it keeps its own parent) and a continuation is created:
source ``compression``, parent = the archive (always, also for forks of forks), seeded with the
summary and the most recent messages, and carrying the session's name so the notebook's default
session continues there. The summary is asked for *before* anything is written, so a failed
summary changes nothing at all (DESIGN.md §3, invariant 15; §8 lists the bugs this prevents).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.config import resolve_profile
from ..core.exceptions import HermesError
from ..providers.base import Message
from .database import NewMessage, StoredMessage
from .titles import ask

if TYPE_CHECKING:
    from ..core.profiles import Profile
    from .sessions import Session

__all__ = [
    "DEFAULT_KEEP_LAST",
    "NothingToCompress",
    "compress",
    "estimate_tokens",
    "needs_compression",
]


class NothingToCompress(HermesError):
    """Compression has nothing to do now (all the history is recent, a turn is running, the
    session is already an archive). Asked for, it is one sentence; started automatically after
    a long reply, it is no news, and says nothing."""


#: Messages kept verbatim after the summary.
DEFAULT_KEEP_LAST = 6

_INSTRUCTIONS = (
    "Summarise the conversation so far so that it can be continued without it. Keep every "
    "fact, decision, name, number, file, code identifier and open question; drop pleasantries. "
    "Write plain prose or short bullet points, in the conversation's language."
)
_REQUEST = "Summarise our conversation so far, following the instructions."


def estimate_tokens(session: Session) -> int:
    """The session's context size in tokens: what the provider last reported, else chars/4."""
    record = session._record()
    reported = record.usage.get("context_tokens")
    if reported:
        return int(reported)
    return session._store.content_chars(session.id) // 4


def needs_compression(session: Session, profile: Profile) -> bool:
    """True when the context estimate has reached ``context_window * compress_at``."""
    return estimate_tokens(session) >= profile.context_window * profile.compress_at


def _split(messages: list[StoredMessage], keep_last: int) -> int:
    """Index of the first kept message: ``keep_last`` from the end, moved back to the start
    of that turn (a user message) so a reply is never kept without its question — and, where
    no user message allows that, at least to before the assistant message whose tool calls
    the kept messages would otherwise begin to answer: a ``tool`` message is never kept
    without its call, nor a call summarised apart from its results."""
    cut = max(0, len(messages) - keep_last)
    if cut >= len(messages):  # keep nothing
        return len(messages)
    for i in range(cut, 0, -1):
        if messages[i].role == "user":
            return i
    while 0 < cut < len(messages) and messages[cut].role == "tool":
        cut -= 1
    return cut


#: How much of one tool call's arguments or result the summary request shows.
_TOOL_TEXT = 4000


def _cut(text: str) -> str:
    if len(text) <= _TOOL_TEXT:
        return text
    return text[:_TOOL_TEXT] + f" [… {len(text) - _TOOL_TEXT:,} more characters]"


def _summary_request(older: list[StoredMessage]) -> list[Message]:
    """The conversation to summarise, as plain text turns: a tool call and its result are
    written into the assistant's text (``[tool f called with {…}]``, ``[tool f returned: …]``),
    never sent as ``tool_calls`` or ``tool`` messages, which an API takes only in strict
    order and which the summary does not need as such."""
    messages: list[Message] = [{"role": "system", "content": _INSTRUCTIONS}]

    def say(role: str, text: str) -> None:
        last = messages[-1]
        if role == "assistant" and last["role"] == "assistant":  # the loop's next step
            last["content"] = f"{last['content']}\n\n{text}"
        else:
            messages.append({"role": role, "content": text})

    for i, m in enumerate(older):
        if m.role in ("user", "system") and m.content.strip():
            say(m.role, m.content)
        elif m.role == "assistant":
            answered = set()  # calls whose result a tool message right after this one carries
            for later in older[i + 1 :]:
                if later.role != "tool":
                    break
                answered.add((later.metadata or {}).get("tool_call_id"))
            parts = [m.content] if m.content.strip() else []
            for call in m.tool_calls or ():
                name = call.get("name") or "tool"
                parts.append(f"[tool {name} called with {_cut(str(call.get('arguments') or ''))}]")
                if "result" in call and call.get("id") not in answered:  # an agent's own call
                    parts.append(f"[tool {name} returned: {_cut(str(call['result']))}]")
            if parts:
                say("assistant", "\n".join(parts))
        elif m.role == "tool":
            name = (m.metadata or {}).get("name") or "tool"
            say("assistant", f"[tool {name} returned: {_cut(m.content)}]")
    messages.append({"role": "user", "content": _REQUEST})
    return messages


def compress(
    session: Session,
    *,
    keep_last: int = DEFAULT_KEEP_LAST,
    reason: str = "requested",
    profile: Profile | str | None = None,
    timeout: float = 300.0,
) -> Session:
    """Summarise all but the last ``keep_last`` messages and continue in a new session.

    Returns the continuation. Raises :class:`HermesError` — having changed nothing — when there
    is nothing to summarise, a turn is running, the session is an archive, the model fails, or
    the session changed while the summary was being written; and, before the model is asked,
    :class:`~hermes_nb.core.exceptions.StoreReadOnlyError` when the store cannot be written.
    """
    record = session._record()
    short = session.id[:8]
    session._store.check_writable()  # a read-only store: refused before the model is asked
    if record.archived:
        raise NothingToCompress(
            f"Session {short} is already archived.",
            hint="Compress its continuation instead (Session.open(name) finds it).",
        )
    if record.active_stream_id:
        raise NothingToCompress(
            f"Session {short} has a turn running.",
            hint="Wait for it to finish (or stop it), then compress.",
        )
    messages = session.messages
    cut = _split(messages, max(0, keep_last))
    older = messages[:cut]
    if not any(m.role in ("user", "assistant") for m in older):
        raise NothingToCompress(
            f"Session {short} has nothing older than its last {keep_last} messages to summarise.",
            hint="Lower keep_last, or keep chatting.",
        )
    resolved, _ = resolve_profile(profile if profile is not None else record.profile)
    try:
        summary = ask(resolved, _summary_request(older), timeout=timeout).strip()
    except HermesError as exc:
        raise HermesError(
            f"Session {short} was not compressed because summarising failed: {exc.message}",
            hint=exc.hint or "Nothing was changed; try again later.",
        ) from exc
    if not summary:
        raise HermesError(
            f"Session {short} was not compressed because the model returned an empty summary.",
            hint="Nothing was changed; try again, or use a different profile.",
        )
    note = NewMessage(
        "system",
        f"Summary of the earlier conversation (archived as session {short}):\n\n{summary}",
        metadata={
            "kind": "summary",
            "archived_session_id": session.id,
            "summarised_messages": len(older),
            "reason": reason,
            "model": resolved.model,
        },
    )
    last = messages[-1].position
    keep_from = messages[cut].position if cut < len(messages) else last + 1
    try:
        continuation = session._store.archive_and_continue(
            session.id,
            expected_last_position=last,
            keep_from_position=keep_from,
            summary=note,
        )
    except HermesError as exc:
        raise HermesError(
            f"Session {short} was not compressed: {exc.message}", hint=exc.hint
        ) from exc
    return session._sibling(continuation.id)
