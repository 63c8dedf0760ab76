"""What the Hermes agent reads from its home and from the process environment.

Importing hermes-agent once per process (:func:`_load_agent`, its ``.env`` writes undone), the
home's ``.env``, the overlay applied with :func:`~hermes_nb.core.profiles.profile_env` while the
agent is built and runs, the provider, endpoint and key the Hermes CLI would resolve, the
home's model and toolsets, and the arguments ``run_agent.AIAgent`` is built with. Everything
here that touches ``os.environ`` holds ``ENV_LOCK`` only to write and to restore (DESIGN.md §3,
invariants 11–12). Apart from the provider because this is what changes when hermes-agent
changes how it is configured (its home, its ``.env``, ``hermes_cli``'s config and resolution).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.exceptions import ConfigError, ErrorKind
from ..core.profiles import ENV_LOCK
from . import _agent_guard
from ._agent_bridge import _Bridge
from ._agent_request import _Turn
from .base import provider_error

#: hermes_agent's logger, as before the split: one name to configure for all the provider's records.
log = logging.getLogger("hermes_nb.providers.hermes_agent")

MISSING_EXTRA = 'The hermes-agent provider needs the agent extra: pip install "hermes-nb[agent]".'
_MISSING_HINT = "Install it into the environment the kernel runs in, then restart the kernel."

_import_lock = threading.Lock()


def _dotenv(home: Path) -> dict[str, str]:
    """The home's ``.env`` (what the Hermes CLI loads into its environment)."""
    from agent.secret_scope import load_env_file

    return dict(load_env_file(home / ".env"))


def _load_agent(home: Path) -> Any:
    """``run_agent``, imported once per process with ``home`` as the Hermes home.

    The import loads that home's ``.env`` into ``os.environ`` (overriding); those writes are
    undone at once, under ``ENV_LOCK``, so no key outlives the turn that needed it. The kernel's
    streams and root logger are guarded before any agent is built (:mod:`._agent_guard`), also
    when something else imported ``run_agent`` first.
    """
    with _import_lock:
        loaded = sys.modules.get("run_agent")
        if loaded is not None:
            _agent_guard.install()
            return loaded
        try:
            import hermes_constants
        except ImportError as exc:
            raise ConfigError(MISSING_EXTRA, hint=_MISSING_HINT) from exc
        before = _environ()
        token = hermes_constants.set_hermes_home_override(str(home))
        try:
            import run_agent
        except ImportError as exc:
            raise ConfigError(MISSING_EXTRA, hint=_MISSING_HINT) from exc
        else:
            _agent_guard.install()
        finally:
            hermes_constants.reset_hermes_home_override(token)
            _undo(before, _dotenv_quiet(home))
        return run_agent


def _dotenv_quiet(home: Path) -> dict[str, str]:
    try:
        return _dotenv(home)
    except ImportError:
        return {}


def _undo(before: Mapping[str, str], loaded: Mapping[str, str]) -> None:
    """Put back the variables an import set from ``loaded`` (and nothing else)."""
    with ENV_LOCK:
        for key, value in loaded.items():
            if os.environ.get(key) != value or before.get(key) == value:
                continue
            if key in before:
                os.environ[key] = before[key]
            else:
                os.environ.pop(key, None)


def _environ() -> dict[str, str]:
    """A copy of ``os.environ`` (another thread may be writing to it while we copy)."""
    for _ in range(5):
        try:
            return dict(os.environ)
        except RuntimeError:  # changed size during iteration
            continue
    return dict(os.environ)


def _overlay(turn: _Turn, dotenv: Mapping[str, str], session_id: str) -> dict[str, str]:
    """What the agent reads from ``os.environ`` for this turn: the home's ``.env`` (the
    profile's own ``env`` wins), its ``terminal.*`` settings, the home and the session id."""
    from hermes_cli.config import apply_terminal_config_to_env

    overlay = {k: v for k, v in dotenv.items() if k not in turn.profile.env}
    current = _environ()
    terminal = apply_terminal_config_to_env(env=dict(current))
    overlay.update({k: v for k, v in terminal.items() if current.get(k) != v})
    overlay["HERMES_HOME"] = str(turn.home)
    overlay["HERMES_SESSION_ID"] = session_id
    return overlay


def _resolve(turn: _Turn) -> dict[str, Any]:
    """Provider, endpoint and key as the Hermes CLI would pick them for this home, with the
    profile's ``base_url`` and key (from ``api_key_env``) taking precedence."""
    from hermes_cli.runtime_provider import (
        resolve_runtime_provider,
    )

    return dict(
        resolve_runtime_provider(
            # A base_url in the profile is an OpenAI-compatible endpoint of its own, not one of
            # the providers hermes-agent knows by name (whose catalogues it would fetch).
            requested="custom" if turn.base_url else None,
            explicit_api_key=turn.api_key.reveal() if turn.api_key else None,
            explicit_base_url=turn.base_url,
            target_model=turn.model,
        )
    )


def _home_model() -> str | None:
    from hermes_cli.config import load_config

    model = load_config().get("model")
    if isinstance(model, dict):
        model = model.get("default") or model.get("model")
    return str(model) if model else None


def _home_toolsets() -> list[str] | None:
    """The toolsets the Hermes CLI enables with this home (``hermes tools``), if readable."""
    try:
        from hermes_cli.config import load_config
        from hermes_cli.tools_config import (
            _get_platform_tools,
        )

        return sorted(_get_platform_tools(load_config(), "cli"))
    except Exception:  # an older or newer hermes-agent: let it pick its defaults
        log.debug("Could not read the home's toolsets", exc_info=True)
        return None


def _agent_arguments(
    turn: _Turn, runtime: Mapping[str, Any], session_id: str, bridge: _Bridge
) -> dict[str, Any]:
    model = turn.model or _home_model()
    if not model:
        raise provider_error(
            ErrorKind.NOT_FOUND,
            f"Neither the profile nor the Hermes home {turn.home} names a model.",
        )
    arguments: dict[str, Any] = {
        "base_url": runtime.get("base_url"),
        "api_key": runtime.get("api_key"),
        "provider": runtime.get("provider"),
        "api_mode": runtime.get("api_mode"),
        "acp_command": runtime.get("command"),
        "acp_args": runtime.get("args"),
        "model": model,
        "session_id": session_id,
        "quiet_mode": True,
        "enabled_toolsets": turn.toolsets if turn.toolsets is not None else _home_toolsets(),
        "disabled_toolsets": turn.disabled_toolsets,
        "skip_context_files": not turn.context_files,
        "load_soul_identity": True,
        "skip_memory": not turn.memory,
        "stream_delta_callback": bridge.on_delta,
        "reasoning_callback": bridge.on_reasoning,
        "tool_start_callback": bridge.on_tool_start,
        "tool_complete_callback": bridge.on_tool_complete,
        "tool_progress_callback": bridge.on_progress,
        "status_callback": bridge.on_status,
        "event_callback": bridge.on_event,
    }
    if turn.max_iterations is not None:
        arguments["max_iterations"] = turn.max_iterations
    return arguments
