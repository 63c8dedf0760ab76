"""hermes_nb: a streaming LLM agent inside Jupyter notebooks.

``%load_ext hermes_nb``, then ``%hermes <question>`` or a ``%%hermes`` cell. From Python:
:func:`chat` returns a :class:`Run` at once; :class:`Session` keeps conversations.
"""

from __future__ import annotations

from typing import Any

from .api import chat
from .exceptions import (
    ConfigError,
    HermesError,
    ProviderError,
    RunError,
    SessionNotFound,
    StoreError,
    StoreVersionError,
)
from .profiles import Profile
from .runtime import Run
from .sessions import Session

__all__ = [
    "ConfigError",
    "HermesError",
    "Profile",
    "ProviderError",
    "Run",
    "RunError",
    "Session",
    "SessionNotFound",
    "StoreError",
    "StoreVersionError",
    "__version__",
    "chat",
    "load_ipython_extension",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hermes_nb``: register the ``%hermes`` magics."""
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)
