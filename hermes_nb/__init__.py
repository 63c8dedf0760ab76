"""hermes_nb: a streaming LLM agent inside Jupyter notebooks.

``%load_ext hermes_nb``, then ``%hermes <question>`` or a ``%%hermes`` cell. From Python:
:func:`chat` returns a :class:`Run` at once; :class:`Session` keeps conversations.

The package is layered (docs/architecture.md): ``notebook`` → ``view`` → ``store`` → ``engine``
→ ``providers`` → ``core``, each importing only those below it. This module is the top: it
re-exports the public API and connects the layers that must not know each other — a
:class:`Run` (engine) is displayed by the view's ``show`` through IPython's display formatter.
"""

from __future__ import annotations

import sys
from typing import Any

from .api import chat

# ``hermes_nb.profiles.ENV_LOCK`` and ``hermes_nb.sessions.list()`` predate the layers; both
# modules stay reachable under their old names.
from .core import profiles as profiles
from .core.exceptions import (
    ConfigError,
    HermesError,
    ProviderError,
    RunError,
    SessionNotFound,
    StoreError,
    StoreVersionError,
)
from .core.profiles import Profile
from .engine.runtime import Run
from .engine.tools import Tool, tool
from .store import sessions as sessions
from .store.sessions import Session

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
    "Tool",
    "__version__",
    "chat",
    "load_ipython_extension",
    "tool",
    "unload_ipython_extension",
]

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext hermes_nb``: register the ``%hermes`` magics."""
    from .notebook import load

    _register_display(ipython)
    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .notebook import unload

    unload(ipython)


def _show_run(run: Run) -> None:
    """IPython's display hook for a :class:`Run`: its live chat view (another view of the same
    run). The view is imported here, on first display, so ``import hermes_nb`` stays light."""
    from .view import show

    show(run)


def _register_display(shell: Any) -> None:
    """Let ``shell`` display a :class:`Run` through the view. The engine cannot call the view
    (it sits below it), so the top of the package wires them, as IPython intends for types that
    do not know how they are shown (``ipython_display_formatter.for_type``)."""
    formatter = getattr(
        getattr(shell, "display_formatter", None), "ipython_display_formatter", None
    )
    if formatter is not None:
        formatter.for_type(Run, _show_run)


def _register_with_running_shell() -> None:
    """At import inside IPython (a kernel, terminal IPython), register the display hook and the
    ``notebook`` toolset at once, so ``run = hermes_nb.chat(...); run`` shows the view and
    ``tools=["notebook"]`` works without ``%load_ext``. Outside IPython
    there is no shell to register with, and IPython is not imported just to find that out."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        _register_display(shell)
        # ``tools=["notebook"]`` works without ``%load_ext``: importing the toolset registers it.
        from .notebook import tools as _notebook_tools  # noqa: F401


_register_with_running_shell()
