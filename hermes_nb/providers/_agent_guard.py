"""Keeps the kernel's process-wide state the kernel's while the Hermes agent runs inside it.

hermes-agent is written for a process of its own (its CLI, a gateway, a daemon), so setting up
an agent changes things that belong to the whole process. In a kernel they belong to IPython and
ipykernel, and to the cells that run beside the agent:

* **The standard streams.** ``agent.process_bootstrap._install_safe_stdio`` wraps
  ``sys.stdout`` and ``sys.stderr`` in its ``_SafeWriter`` whenever an agent is built and at
  every turn. The wrapper has ``__slots__``, so its ``write`` cannot be assigned, and IPython ≥ 9.1
  tees each cell's output by assigning ``sys.stdout.write``: every cell after the first agent turn
  failed before it started (and the front end never got a reply). Two other paths change the
  streams too: ``agent.thread_scoped_output`` installs a routing proxy for good (capturing
  whatever stream is current, a cell's ``redirect_stdout`` included), and
  ``tools.code_execution_tool`` points both streams at ``os.devnull`` while it dispatches a
  script's tool call — a window in which a cell's output would be lost.
* **The root logger.** ``hermes_logging.setup_logging`` adds its log queue to the root logger
  and lowers the root's level to INFO (and sets some libraries' loggers to WARNING). Afterwards
  a cell's ``logging.warning(...)`` no longer showed in the notebook (a root with a handler
  keeps Python's last-resort handler quiet) and every library's INFO records went to the Hermes
  home's ``agent.log``.

:func:`install` (once per process, before ``run_agent`` is imported, and again for modules
imported since) prevents both at the source rather than repairing afterwards, so there is no
moment in which a cell starting beside a running agent sees hermes-agent's objects:

* Each module of hermes-agent that assigns the streams gets a ``sys`` of its own
  (:class:`_ThreadStreams`): what it assigns to ``stdin``/``stdout``/``stderr`` is seen only by
  the assigning thread through that module; the process's streams — the kernel's — never change.
  Every other attribute is the real ``sys``. (Its own console output still goes through
  ``print``, which reads the real streams; with ``quiet_mode`` and ``_print_fn`` a turn has none.)
* ``hermes_logging.setup_logging`` is wrapped: the handlers it adds to the root logger move to
  hermes-agent's own top-level loggers (``agent``, ``tools``, ``run_agent``, …), so its log files
  keep what it logs, and every other logger's level — the root's included — is put back.

:func:`restore_streams` is the net under that: after every agent build and turn it takes any
wrapper of hermes-agent's off the streams (a version that found another way to install one) and
logs a warning. :func:`stream_guard_note` tells ``%hermes doctor`` what it guards against.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["install", "restore_streams", "stream_guard_note"]

log = logging.getLogger(__name__)

#: hermes-agent 0.19's modules that assign ``sys.stdout`` / ``sys.stderr`` on paths an
#: in-process turn reaches (agent set-up and every turn, the background memory/skill review,
#: the ``execute_code`` tool).
STREAM_MODULES = (
    "agent.process_bootstrap",
    "agent.thread_scoped_output",
    "tools.code_execution_tool",
)
#: Where hermes-agent's logging set-up lives.
_LOGGING_MODULE = "hermes_logging"
_STREAMS = frozenset({"stdin", "stdout", "stderr"})
#: hermes-agent's top-level packages and modules (its distribution's ``top_level.txt``), whose
#: loggers get the handlers it meant for the root; used when that file cannot be read.
_AGENT_PACKAGES = (
    "acp_adapter",
    "agent",
    "cron",
    "gateway",
    "hermes_cli",
    "hermes_constants",
    "hermes_logging",
    "hermes_state",
    "model_tools",
    "plugins",
    "run_agent",
    "tools",
    "toolsets",
)

_lock = threading.Lock()


class _ThreadStreams:
    """A stand-in for the ``sys`` module inside one hermes-agent module: assigning a standard
    stream binds it for the assigning thread only (as seen through this object); the real
    ``sys`` — whose streams the kernel owns — is never written. Everything else is ``sys``."""

    __slots__ = ("_local",)

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())

    def __getattr__(self, name: str) -> Any:
        if name in _STREAMS:
            own = getattr(self._local, name, None)
            if own is not None:
                return own
        return getattr(sys, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _STREAMS:
            setattr(self._local, name, value)
        else:
            setattr(sys, name, value)

    def __delattr__(self, name: str) -> None:
        if name in _STREAMS:
            self._local.__dict__.pop(name, None)
        else:
            delattr(sys, name)

    def __repr__(self) -> str:
        return "<sys, with this thread's own standard streams (hermes_nb)>"


def install() -> None:
    """Guard the process against hermes-agent (see the module docstring); idempotent.

    Call it before importing ``run_agent`` (so the modules imported with it take the guarded
    names) and after (for any imported since: the guard is per module).
    """
    with _lock:
        for name in STREAM_MODULES:
            module = _loaded_or_imported(name)
            if module is not None and not isinstance(getattr(module, "sys", None), _ThreadStreams):
                module.sys = _ThreadStreams()
        logging_module = _loaded_or_imported(_LOGGING_MODULE)
        setup = getattr(logging_module, "setup_logging", None)
        if callable(setup) and not getattr(setup, "_hermes_nb_guarded", False):
            logging_module.setup_logging = _guarded_setup(setup)


def _loaded_or_imported(name: str) -> Any:
    """The module, imported if it exists; None if this hermes-agent has no such module."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        if importlib.util.find_spec(name) is None:
            return None
        return importlib.import_module(name)
    except ImportError:
        return None


def _guarded_setup(setup: Callable[..., Any]) -> Callable[..., Any]:
    """``setup_logging`` that leaves the root logger and other libraries' loggers as they were."""

    @functools.wraps(setup)
    def setup_logging(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            root = logging.getLogger()
            handlers = list(root.handlers)
            levels = _levels()
            try:
                return setup(*args, **kwargs)
            finally:
                chosen = root.level
                added = [h for h in root.handlers if h not in handlers]
                for handler in added:
                    root.removeHandler(handler)
                for name in _agent_packages():
                    owner = logging.getLogger(name)
                    for handler in added:
                        if handler not in owner.handlers:
                            owner.addHandler(handler)
                    if added and owner.level == logging.NOTSET:
                        owner.setLevel(chosen)
                _restore_levels(levels)

    setup_logging._hermes_nb_guarded = True  # type: ignore[attr-defined]
    return setup_logging


def _levels() -> dict[str, int]:
    """Every logger's own level, the root's under ``""``."""
    manager = logging.Logger.manager
    levels = {"": logging.getLogger().level}
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            levels[name] = logger.level
    return levels


def _restore_levels(before: dict[str, int]) -> None:
    """Put back the level of every logger that is not hermes-agent's."""
    ours = tuple(_agent_packages())
    for name, level in _levels().items():
        if name and (name in ours or name.startswith(tuple(f"{p}." for p in ours))):
            continue
        wanted = before.get(name, logging.NOTSET)
        if level != wanted:
            (logging.getLogger(name) if name else logging.getLogger()).setLevel(wanted)


@functools.cache
def _agent_packages() -> tuple[str, ...]:
    from importlib import metadata

    try:
        text = metadata.distribution("hermes-agent").read_text("top_level.txt")
    except metadata.PackageNotFoundError:
        text = None
    names = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return tuple(names) or _AGENT_PACKAGES


def restore_streams() -> list[str]:
    """Take any wrapper of hermes-agent's off ``sys.stdout`` / ``sys.stderr``; the streams it
    had to unwrap (empty when the guard held, as it does for the versions it knows)."""
    unwrapped = []
    with _lock:
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name, None)
            inner = stream
            while _is_agent_wrapper(inner):
                inner = _wrapped(inner)
            if inner is not stream and inner is not None:
                setattr(sys, name, inner)
                unwrapped.append(name)
    if unwrapped:
        log.warning(
            "hermes-agent replaced sys.%s; hermes_nb put the kernel's own back.",
            " and sys.".join(unwrapped),
        )
    return unwrapped


def _is_agent_wrapper(stream: Any) -> bool:
    module = type(stream).__module__.split(".", 1)[0]
    return module in _agent_packages() and _wrapped(stream) is not None


def _wrapped(stream: Any) -> Any:
    """The stream a hermes-agent wrapper writes to (``_SafeWriter._inner``, the routing
    proxy's ``_passthrough``), or None."""
    for attribute in ("_inner", "_passthrough"):
        try:
            inner = object.__getattribute__(stream, attribute)
        except AttributeError:
            continue
        if inner is not None and hasattr(inner, "write"):
            return inner
    return None


def stream_guard_note() -> str | None:
    """What ``%hermes doctor`` says about the installed hermes-agent's process-wide changes, or
    None if it has none of the modules known to make them. Looked up without importing
    hermes-agent (importing it loads a Hermes home's ``.env``)."""
    from importlib import metadata

    if not any(_spec_exists(name) for name in STREAM_MODULES):
        return None
    try:
        label = f"hermes-agent {metadata.version('hermes-agent')}"
    except metadata.PackageNotFoundError:
        label = "hermes-agent"
    return (
        f"{label} replaces sys.stdout/sys.stderr and the root logger's handlers when an agent "
        "runs (on IPython ≥ 9.1 every later cell would fail); hermes_nb keeps the kernel's own"
    )


def _spec_exists(name: str) -> bool:
    parent = name.split(".", 1)[0]
    try:
        if importlib.util.find_spec(parent) is None:
            return False
        if parent == name:
            return True
        # A submodule's spec needs its package imported; agent/ and tools/ import little.
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
