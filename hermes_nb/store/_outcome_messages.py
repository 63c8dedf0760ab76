"""What a turn's outcome adds to its session: the stored messages in order (the tool loop's
steps, the reply, the cancel or truncation notice or the error; the prompts and usage in
metadata), and for a store that refused the turn the history kept in the handle and the one
sentence saying it was not saved.

Apart from :mod:`._session` because it is a pure translation of a
:class:`~hermes_nb.engine.TurnOutcome` into rows: no store access, no handle, no threads.
"""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Iterable
from typing import Any

from ..core.events import RunState
from ..core.exceptions import ErrorKind, StoreReadOnlyError
from ..core.profiles import Profile
from ..engine.turn import TurnOutcome, cancel_marker
from ..providers.base import HINTS, Message
from .database import NewMessage, Store


def _not_saved(what: str, store: Store, exc: StoreReadOnlyError, kept: str) -> StoreReadOnlyError:
    """The one sentence a turn shows when the store refused it: not saved, why, what is kept."""
    return StoreReadOnlyError(
        f"{what} was not saved: the session store {store.path} {exc.reason}{kept}.",
        reason=exc.reason,
    )


def _unsaved_turn(prompt: str, outcome: TurnOutcome) -> builtins.list[Message]:
    """A turn the store refused, as history for the next turns of the same handle."""
    turn: builtins.list[Message] = [{"role": "user", "content": prompt}]
    turn.extend(dict(m) for m in outcome.steps)
    if outcome.text.strip():
        turn.append({"role": "assistant", "content": outcome.text})
    return turn


def _outcome_messages(
    outcome: TurnOutcome, profile: Profile
) -> tuple[str, builtins.list[NewMessage]]:
    """The run's terminal state and the messages a turn's outcome adds to its session, in order:
    the tool loop's completed steps (each assistant message with its ``tool_calls``, then one
    ``tool`` message per call), the reply (partial unless the turn is done), then the cancel or
    truncation notice or the error.

    Decided from this turn's outcome only — never from earlier history (invariant 14): a turn
    whose only output is steps is not an empty reply. The prompts the run asked, with their
    answers, go in the ``metadata["prompts"]`` of the reply, else of the notice or error row,
    else of the last step; the model and usage go on the reply, else on the last step.
    """
    messages = _step_messages(outcome.steps)
    steps = [i for i, m in enumerate(messages) if m.role == "assistant"]
    last_step = steps[-1] if steps else None
    reply: int | None = None
    state = str(outcome.state)
    if outcome.text.strip() or outcome.reasoning.strip() or outcome.tool_calls:
        reply = len(messages)
        messages.append(
            NewMessage(
                "assistant",
                outcome.text,
                reasoning=outcome.reasoning or None,
                tool_calls=outcome.tool_calls or None,
                partial=outcome.state is not RunState.DONE,
            )
        )
    ending = len(messages)  # the notice or the error row, if one follows
    if outcome.state is RunState.STOPPED:
        messages.append(
            NewMessage(
                "notice",
                outcome.notice or cancel_marker(profile.bot_name),
                metadata={"kind": "cancel"},
            )
        )
    elif outcome.truncated:  # the provider cut the reply short: say so after it
        messages.append(
            NewMessage(
                "notice",
                outcome.notice,
                metadata={"kind": "truncated", "finish_reason": outcome.finish_reason},
            )
        )
    elif outcome.state is RunState.ERROR or not outcome.has_reply:
        error = outcome.error or {
            "kind": str(ErrorKind.EMPTY_REPLY),
            "message": "The model returned an empty reply.",
            "hint": HINTS[ErrorKind.EMPTY_REPLY],
            "status": None,
        }
        messages.append(NewMessage("error", str(error.get("message", "")), error=dict(error)))
        state = "error"
    said = reply if reply is not None else last_step
    if said is not None and outcome.usage:
        _annotate(messages, said, model=profile.model, usage=outcome.usage)
    if outcome.prompts:
        ended = ending if ending < len(messages) else None
        asked = reply if reply is not None else ended if ended is not None else last_step
        if asked is not None:
            _annotate(messages, asked, prompts=outcome.prompts)
    return state, messages


def _step_messages(steps: Iterable[Message]) -> builtins.list[NewMessage]:
    """The tool loop's completed steps as stored messages: assistant (text, reasoning, the
    calls' display records) and ``tool`` (the result; call id and tool name in metadata)."""
    out: builtins.list[NewMessage] = []
    for step in steps:
        role = step.get("role")
        if role == "assistant":
            out.append(
                NewMessage(
                    "assistant",
                    str(step.get("content") or ""),
                    reasoning=step.get("reasoning") or None,
                    tool_calls=[dict(c) for c in step.get("tool_calls") or ()] or None,
                )
            )
        elif role == "tool":
            out.append(
                NewMessage(
                    "tool",
                    str(step.get("content") or ""),
                    metadata={"tool_call_id": step["tool_call_id"], "name": step.get("name", "")},
                )
            )
    return out


def _annotate(messages: builtins.list[NewMessage], index: int, **metadata: Any) -> None:
    """Add keys to ``messages[index]``'s metadata (the records are frozen: replace it)."""
    message = messages[index]
    messages[index] = dataclasses.replace(
        message, metadata={**(message.metadata or {}), **metadata}
    )
