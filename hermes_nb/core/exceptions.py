"""Every error hermes_nb raises, in one place.

The hierarchy::

    HermesError                  anything hermes_nb raises on purpose
    ├── ConfigError              config.toml unreadable or invalid, unknown profile
    ├── ProviderError            a model endpoint failed; ``kind`` classifies why
    ├── StoreError               the session store cannot be used
    │   ├── SessionNotFound      no session with that name or id
    │   ├── StoreReadOnlyError   the store can be read but not written (read-only or full disk)
    │   └── StoreVersionError    the store was written by a newer hermes_nb
    └── RunError                 a run handle was used wrongly (e.g. wait timed out)

Third-party errors (httpx, sqlite3, tomllib) are converted where they are caught, with
``raise ... from exc``, so a user never sees a foreign traceback. Every message is one sentence
that says what happened; ``hint`` says what to do next.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ConfigError",
    "ErrorKind",
    "HermesError",
    "ProviderError",
    "RunError",
    "SessionNotFound",
    "StoreError",
    "StoreReadOnlyError",
    "StoreVersionError",
]


class HermesError(Exception):
    """Base class: ``str(err)`` is the one-sentence message, ``err.hint`` the next step."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class ConfigError(HermesError):
    """The configuration file or a profile in it is unusable."""


class ErrorKind(StrEnum):
    """Why a provider request failed: the classification users and the widget see."""

    AUTH = "auth"
    RATE_LIMIT = "rate_limit"
    NOT_FOUND = "not_found"
    BAD_REQUEST = "bad_request"
    SERVER = "server"
    NETWORK = "network"
    TIMEOUT = "timeout"
    MALFORMED_STREAM = "malformed_stream"
    EMPTY_REPLY = "empty_reply"
    CONFIG = "config"
    STORE = "store"
    INTERNAL = "internal"


class ProviderError(HermesError):
    """A model endpoint failed. ``kind`` is an :class:`ErrorKind`; ``status`` the HTTP status."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        hint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.kind = ErrorKind(kind)
        self.status = status
        self.retry_after = retry_after

    def to_payload(self) -> dict[str, object]:
        """The ``apperror`` event payload for this error."""
        return {
            "kind": str(self.kind),
            "message": self.message,
            "hint": self.hint,
            "status": self.status,
            "retry_after": self.retry_after,
        }


class StoreError(HermesError):
    """The session store cannot be opened or written."""


class SessionNotFound(StoreError):
    """No session has that name or id."""


class StoreReadOnlyError(StoreError):
    """Nothing can be written to the store: its filesystem is read-only or full, or this user
    may not write it. History, search and export still read it; a turn is shown but not saved.

    ``reason`` is why, as a clause that follows the store's path ("is on a read-only
    filesystem", "is on a full disk", …).
    """

    def __init__(self, message: str, *, hint: str = "", reason: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason


class StoreVersionError(StoreError):
    """The store's schema is newer than this hermes_nb understands."""


class RunError(HermesError):
    """A run handle was used in a way that cannot work (e.g. ``wait`` timed out)."""
