"""What went wrong in a Hermes agent run, as a classified ``ProviderError``.

Two sources: a ``run_conversation`` result marked ``failed`` (:func:`classify_agent_failure`)
and an exception raised while hermes-agent was loaded, built or run (:func:`_startup_failure`).
Both quote the agent's own text, secrets redacted and shortened, and classify it by the HTTP
status in it, then a connection failure, then the agent's ``failure_reason``. Separate from the
provider because it is a table and a few pure functions, tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..core.exceptions import ErrorKind, HermesError, ProviderError
from ..core.profiles import Secret
from ._agent_request import _Turn
from .base import classify_status, provider_error

#: How much of the agent's own error text is quoted in ours.
_MAX_DETAIL = 300

_STATUS = re.compile(r"\b(?:HTTP|[Ee]rror code:?|status(?: code)?:?)\s*([1-5]\d\d)\b")
_NETWORK = re.compile(
    r"connection (?:error|refused|reset)|could not connect|failed to connect|name resolution"
    r"|nodename nor servname|network is unreachable|connecterror",
    re.IGNORECASE,
)
_REASONS: dict[str, ErrorKind] = {
    "auth": ErrorKind.AUTH,
    "auth_permanent": ErrorKind.AUTH,
    "billing": ErrorKind.RATE_LIMIT,
    "rate_limit": ErrorKind.RATE_LIMIT,
    "upstream_rate_limit": ErrorKind.RATE_LIMIT,
    "overloaded": ErrorKind.SERVER,
    "server_error": ErrorKind.SERVER,
    "timeout": ErrorKind.TIMEOUT,
    "model_not_found": ErrorKind.NOT_FOUND,
    "context_overflow": ErrorKind.BAD_REQUEST,
    "payload_too_large": ErrorKind.BAD_REQUEST,
    "format_error": ErrorKind.BAD_REQUEST,
    "content_policy_blocked": ErrorKind.BAD_REQUEST,
    "provider_policy_blocked": ErrorKind.BAD_REQUEST,
}


def _detail(text: str, secrets: list[Secret]) -> str:
    for secret in secrets:
        text = secret.redact(text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _classified(text: str, reason: str | None = None) -> tuple[ErrorKind, int | None]:
    match = _STATUS.search(text)
    if match:
        status = int(match.group(1))
        return classify_status(status), status
    if _NETWORK.search(text):
        return ErrorKind.NETWORK, None
    if reason in _REASONS:
        return _REASONS[reason], None
    if re.search(r"timed? ?out", text, re.IGNORECASE):
        return ErrorKind.TIMEOUT, None
    return ErrorKind.SERVER, None


def classify_agent_failure(
    result: Mapping[str, Any], secrets: list[Secret] | None = None
) -> ProviderError | None:
    """The :class:`ProviderError` for a failed ``run_conversation`` result, or None if it did not
    fail. The HTTP status in the agent's error text wins (401/403 auth, 429 rate limit, …), then
    a connection failure (network), then the agent's own ``failure_reason``."""
    error = result.get("error")
    if not (result.get("failed") or (error and not result.get("completed"))):
        return None
    text = str(error or result.get("final_response") or "it gave no reason")
    kind, status = _classified(text, result.get("failure_reason"))
    return provider_error(
        kind, f"The Hermes agent failed: {_detail(text, secrets or [])}", status=status
    )


def _startup_failure(exc: BaseException, turn: _Turn, secrets: list[Secret]) -> HermesError:
    """The error for an exception raised while hermes-agent was loaded, built or run."""
    if isinstance(exc, HermesError):
        return exc
    text = f"{exc}" or type(exc).__name__
    if "AuthError" in type(exc).__name__ or "No LLM provider configured" in text:
        kind, status = ErrorKind.AUTH, None
        hint = (
            f"Run `hermes model` with HERMES_HOME={turn.home}, or set base_url, model and "
            "api_key_env in the profile."
        )
    elif isinstance(exc, ValueError):
        kind, status = ErrorKind.BAD_REQUEST, None
        hint = f"Check {turn.home / 'config.yaml'} and the profile's model and base_url."
    else:
        kind, status = _classified(text)
        hint = ""
    error = provider_error(
        kind, f"The Hermes agent could not run: {_detail(text, secrets)}", status=status
    )
    error.hint = hint or error.hint
    return error
