"""The provider contract: one method that streams events for one request.

A provider turns a :class:`ProviderRequest` into an async iterator of ``(event, data)`` pairs
(see :mod:`hermes_nb.core.events`): ``token``, ``reasoning``, ``tool_start``/``tool_delta``/
``tool_end`` and ``usage``. It ends by returning normally (the reply is complete) or by raising
:class:`~hermes_nb.core.exceptions.ProviderError` with a classified ``kind``. Cancellation is the
caller's job: the runtime cancels the task iterating the stream, and a provider must release its
connection in ``finally``/``async with`` so the server sees the disconnect at once.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..core.exceptions import ErrorKind, ProviderError
from ..core.profiles import Profile, Secret
from ..core.prompts import Answer, Option, PromptKind

__all__ = [
    "HINTS",
    "Asker",
    "Message",
    "Provider",
    "ProviderEvent",
    "ProviderRequest",
    "classify_status",
]

#: A chat message as OpenAI-compatible endpoints take it: ``{"role": ..., "content": ...}``.
Message = dict[str, Any]
ProviderEvent = tuple[str, dict[str, Any]]


class Asker(Protocol):
    """How a provider asks the person in front of the notebook and waits for the answer (the
    engine's prompt broker, one per run). Only a person's answer, a deadline or Stop comes
    back; nothing the model writes can answer. An approval answer is ``once``, ``session``,
    ``always`` or ``deny``, or the value of one of the ``options`` the asker brought (its own
    answers, shown as the card's buttons); a question's is one of its choices or the person's
    own text."""

    async def ask(
        self,
        kind: PromptKind,
        text: str,
        detail: str = "",
        choices: Sequence[str] = (),
        *,
        options: Sequence[Option] = (),
    ) -> Answer:
        """Ask from the run's event loop (the tool loop, an async provider)."""
        ...

    def ask_blocking(
        self,
        kind: PromptKind,
        text: str,
        detail: str = "",
        choices: Sequence[str] = (),
        *,
        cancelled: threading.Event | None = None,
        options: Sequence[Option] = (),
    ) -> Answer:
        """Ask from a worker thread (an in-process agent's callback); blocks that thread only."""
        ...


@dataclass(frozen=True)
class ProviderRequest:
    """One request to a model: the conversation so far and how to reach the model.

    ``api_key`` was read from the profile's variable when the turn started; it is a
    :class:`~hermes_nb.core.profiles.Secret` so it never shows in a repr, a log or the journal.
    """

    profile: Profile
    messages: list[Message]
    model: str
    api_key: Secret | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    #: The tools the model may call, as OpenAI ``tools`` entries (``{"type": "function",
    #: "function": {"name", "description", "parameters"}}``); empty: none offered.
    tools: Sequence[Mapping[str, Any]] = ()
    #: How to ask the person (approvals, questions); None where nobody can be asked.
    asker: Asker | None = None
    #: The stored session the turn belongs to (None for a plain history): what "for this
    #: session" means to a provider that remembers approvals (the Hermes agent).
    session_id: str | None = None
    #: What the stored session kept of the agent sessions it had with this turn's profile: the
    #: agent's command line → the session id that agent gave it (an ACP agent loads it again
    #: after a restart instead of starting over). Empty: none kept, or no stored session.
    resume: Mapping[str, str] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        """The last user message's text (what the echo model answers)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                content = message.get("content")
                if isinstance(content, list):  # text and image parts: the text
                    return "\n".join(
                        str(p.get("text", ""))
                        for p in content
                        if isinstance(p, dict) and p.get("type") == "text"
                    )
                return content if isinstance(content, str) else str(content)
        return ""


@runtime_checkable
class Provider(Protocol):
    """Anything with ``stream(request)`` returning an async iterator of events."""

    @property
    def name(self) -> str:
        """The provider's name, as a profile's ``provider`` field spells it."""

    def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]: ...


#: What to do next, per failure class (shown under the message).
HINTS: dict[ErrorKind, str] = {
    ErrorKind.AUTH: "Check that the variable named by the profile's api_key_env holds a valid key.",
    ErrorKind.RATE_LIMIT: "Wait a moment and try again, or use a different model or plan.",
    ErrorKind.NOT_FOUND: "Check the profile's model name and base_url (%hermes doctor lists both).",
    ErrorKind.BAD_REQUEST: "The endpoint rejected the request; check the model and its options.",
    ErrorKind.SERVER: "The provider had an internal error; try again shortly.",
    ErrorKind.NETWORK: "Check that the endpoint is running and reachable (try %hermes doctor).",
    ErrorKind.TIMEOUT: "The endpoint did not answer in time; raise read_timeout or try again.",
    ErrorKind.MALFORMED_STREAM: "The endpoint's stream was not valid OpenAI-style SSE; "
    "check that base_url points at an OpenAI-compatible /v1 API.",
    ErrorKind.EMPTY_REPLY: "The model returned nothing; try again or rephrase.",
    ErrorKind.CONFIG: "Fix the profile in config.toml (%hermes doctor checks it).",
    ErrorKind.STORE: "Check the session store (%hermes doctor shows where it is).",
    ErrorKind.INTERNAL: "This is a bug in hermes_nb; please report it.",
}


def classify_status(status: int) -> ErrorKind:
    """Map an HTTP status code to a failure class."""
    if status in (401, 403):
        return ErrorKind.AUTH
    if status == 429:
        return ErrorKind.RATE_LIMIT
    if status == 404:
        return ErrorKind.NOT_FOUND
    if status in (408, 504):
        return ErrorKind.TIMEOUT
    if 400 <= status < 500:
        return ErrorKind.BAD_REQUEST
    return ErrorKind.SERVER


def provider_error(
    kind: ErrorKind,
    message: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    secret: Secret | None = None,
) -> ProviderError:
    """A :class:`ProviderError` with the standard hint and any key redacted from the message."""
    if secret:
        message = secret.redact(message)
    return ProviderError(
        kind, message, hint=HINTS.get(kind, ""), status=status, retry_after=retry_after
    )
