"""Session titles: asked of the model after the first reply, cleaned, stored once.

Title generation is a background nicety, so it must never get in the way: it runs in its own
thread (started by :mod:`hermes_nb.store.sessions`), its request goes through the runtime's loop
like any turn, the profile's environment is applied with the narrow :func:`profile_env` pattern
(``ENV_LOCK`` is never held while the request runs — DESIGN.md §3, invariant 12), and any
failure is logged and dropped.

Models often open with a wrapper line ("The user is asking about …"). Only such a line at the
very start is noise; the same words later are part of a real answer and stay (invariant 17).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from ..core.exceptions import ErrorKind, HermesError
from ..core.profiles import Profile, profile_env
from ..engine.runtime import get_runtime
from ..providers import get_provider
from ..providers.base import Message, ProviderRequest, provider_error

if TYPE_CHECKING:
    from .sessions import Session

__all__ = ["MAX_TITLE_LENGTH", "ask", "clean_title", "generate_title"]

log = logging.getLogger(__name__)

MAX_TITLE_LENGTH = 60

_INSTRUCTIONS = (
    "Write a title of at most six words for the conversation below. "
    "Reply with the title only: no quotes, no preamble, no final punctuation."
)

# A leading line that narrates the request instead of answering it.
_WRAPPER = re.compile(
    r"""^[\s"'*_>#`-]*
        (?:(?:ok(?:ay)?|so|well|alright|sure)[,.!]?\s+)?
        (?:it\s+(?:seems|looks)\s+(?:like\s+)?)?
        (?:the\s+)?user(?:'s)?\s+(?:is\s+|was\s+|has\s+)?
        (?:asking|asks|asked|wants|wanted|would\s+like|requests?|requested|needs|is\s+looking|
           looking|seeks|seeking|inquir\w*|question\w*)\b""",
    re.IGNORECASE | re.VERBOSE,
)
_LEAD_FILLER = re.compile(
    r"^(?:(?:me|us|you|for|about|to|on|regarding|how\s+to|a|an|the|help\s+with)\s+)+", re.I
)
_THINK = re.compile(r"^\s*<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_TITLE_LABEL = re.compile(r"^(?:title|session\s+title)\s*[:\-–]\s*", re.IGNORECASE)


def _tidy(line: str) -> str:
    """Without Markdown emphasis, surrounding quotes and trailing punctuation."""
    line = re.sub(r"[*_`#]+", "", line)
    return " ".join(line.split()).strip(" \"'“”‘’«».:;,")


def clean_title(raw: str, max_length: int = MAX_TITLE_LENGTH) -> str:
    """A one-line title from a model's raw answer ('' if nothing usable is left).

    A first line narrating the request ("The user is asking about X") is dropped — only the
    first line, only at the very start. If it was the only line, its topic ("X") is used.
    """
    text = _THINK.sub("", raw or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    wrapper = _WRAPPER.match(lines[0])
    if wrapper and len(lines) > 1:
        lines = lines[1:]
    elif wrapper:
        rest = lines[0][wrapper.end() :].strip(" \t:,.-–—")
        lines = [_LEAD_FILLER.sub("", rest)]
    title = _tidy(_TITLE_LABEL.sub("", _tidy(lines[0])))
    if len(title) > max_length:
        cut = title[: max_length - 1]
        title = (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,;:-") + "…"
    return title[:1].upper() + title[1:]


def ask(profile: Profile, messages: list[Message], *, timeout: float = 120.0) -> str:
    """One non-streamed answer from the profile's model, through the runtime's loop.

    The provider, the HTTP client and the profile's env overlay are used exactly as a turn
    uses them. Blocks the calling thread (never the runtime's own); a failure is raised as a
    :class:`~hermes_nb.core.exceptions.ProviderError`.
    """
    runtime = get_runtime()

    async def request() -> str:
        provider = get_provider(profile, runtime.client)
        parts: list[str] = []
        with profile_env(profile):
            provider_request = ProviderRequest(
                profile=profile, messages=messages, model=profile.model, api_key=profile.api_key()
            )
            async for event, data in provider.stream(provider_request):
                if event == "token":
                    parts.append(data["text"])
        return "".join(parts)

    future = runtime.submit(request)
    try:
        return future.result(timeout)
    except TimeoutError as exc:
        future.cancel()
        raise provider_error(
            ErrorKind.TIMEOUT, f"The model did not answer within {timeout:g} s."
        ) from exc


def _first_exchange(session: Session) -> tuple[str, str]:
    """The first prompt that got a reply, and that reply (failed turns are skipped). A turn
    that ran tools answers last: its final text, not a step's "let me look that up"."""
    prompt = reply = ""
    for message in session.messages:
        if message.role == "user":
            if reply:
                break
            prompt = message.content
        elif message.role == "assistant" and prompt and message.content.strip():
            reply = message.content
    return (prompt, reply) if reply else ("", "")


def _asks_model(profile: Profile) -> bool:
    # The offline echo model only repeats its input: asked for a title it would title every
    # session "Echo (offline model) …". Unless it is scripted (a reply, a failure), the
    # prompt's own first line is the better title.
    scripted = {"reply", "fail"} & set(profile.options)
    return profile.provider != "echo" or bool(scripted)


def generate_title(session: Session, profile: Profile, *, timeout: float = 60.0) -> str | None:
    """Ask the model for a title and store it if the session has none yet.

    One more request, after a session's first reply, to the profile's ``title_model`` (or its
    ``model``); with the profile's ``titles = false`` none is sent and the first line of the
    first prompt is the title.

    Returns the stored title, or None if there was nothing to title, the session already had a
    title, or anything failed — failures are logged, never raised.
    """
    try:
        prompt, reply = _first_exchange(session)
        if not prompt:
            return None
        if profile.titles and _asks_model(profile):
            if profile.title_model:
                profile = profile.with_overrides(model=profile.title_model)
            excerpt = f"User: {prompt[:2000]}\n\nAssistant: {reply[:2000]}"
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": _INSTRUCTIONS},
                {"role": "user", "content": excerpt},
            ]
            raw = ask(profile, messages, timeout=timeout)
        else:
            raw = prompt
        title = clean_title(raw)
        if not title:
            log.info("No usable title for session %s.", session.id[:8])
            return None
        return title if session._store.set_title(session.id, title) else None
    except HermesError as exc:
        log.warning("Could not title session %s: %s", session.id[:8], exc)
    except Exception:  # a background nicety must never take anything down
        log.exception("Titling session %s failed unexpectedly.", session.id[:8])
    return None
