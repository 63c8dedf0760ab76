"""How a :class:`~hermes_nb.providers.base.ProviderRequest` becomes what the Hermes agent takes.

:class:`_Turn` is everything the worker thread needs, checked on the loop before the thread
starts: the options validated (a mistake is a :class:`~hermes_nb.core.exceptions.ConfigError`
raised from ``stream``, not from the agent's thread), the messages split into system text,
prompt and history, and the Hermes home chosen. Kept apart from
:mod:`~hermes_nb.providers.hermes_agent` because none of it touches hermes-agent itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.exceptions import ConfigError
from ..core.profiles import Profile, Secret
from .base import Asker, Message, ProviderRequest

#: Model names that mean "the model the Hermes home is configured with": config.toml's default
#: for a profile without ``model``, and the :class:`Profile` dataclass default.
_HOME_MODEL = {"", "default", "echo"}
#: The ``approvals`` option's values, the default first.
APPROVAL_MODES = ("ask", "deny", "allow")


def agent_home(profile: Profile) -> Path:
    """The Hermes home a profile's agent uses (the same value :func:`profile_env` applies)."""
    chosen = profile.env.get("HERMES_HOME") or profile.hermes_home or os.environ.get("HERMES_HOME")
    return Path(os.path.expanduser(chosen)) if chosen else Path.home() / ".hermes"


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"The hermes-agent option {key} must be true or false, not {value!r}.")
    return value


def _names(options: Mapping[str, Any], key: str) -> list[str] | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"The hermes-agent option {key} must be a list of toolset names, not {value!r}."
        )
    return list(value)


@dataclass(frozen=True)
class _Turn:
    """Everything the worker thread needs, checked before it starts."""

    profile: Profile
    home: Path
    prompt: str
    system: str | None
    history: list[Message]
    model: str | None
    base_url: str | None
    api_key: Secret | None
    toolsets: list[str] | None = None
    disabled_toolsets: list[str] | None = None
    max_iterations: int | None = None
    memory: bool = True
    context_files: bool = False
    approvals: str = APPROVAL_MODES[0]
    #: How to ask the person (approvals, clarify); None: nobody can be asked.
    asker: Asker | None = None
    #: The notebook session (None for a plain history): "Allow for this session" lasts as long.
    notebook_session: str | None = None

    @classmethod
    def from_request(cls, profile: Profile, request: ProviderRequest) -> _Turn:
        options = {**profile.options, **request.extra}
        approvals = options.get("approvals", APPROVAL_MODES[0])
        if approvals not in APPROVAL_MODES:
            raise ConfigError(
                'The hermes-agent option approvals must be "ask", "deny" or "allow", '
                f"not {approvals!r}."
            )
        iterations = options.get("max_iterations")
        if iterations is not None and (
            not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1
        ):
            raise ConfigError(
                f"The hermes-agent option max_iterations must be a positive whole number, "
                f"not {iterations!r}."
            )
        system, prompt, history = _split_messages(request.messages)
        return cls(
            profile=profile,
            home=agent_home(profile),
            prompt=prompt,
            system=system,
            history=history,
            model=None if (request.model or "").strip() in _HOME_MODEL else request.model,
            base_url=profile.base_url or None,
            api_key=request.api_key or None,
            toolsets=_names(options, "toolsets"),
            disabled_toolsets=_names(options, "disabled_toolsets"),
            max_iterations=iterations,
            memory=_flag(options, "memory", True),
            context_files=_flag(options, "context_files", False),
            approvals=approvals,
            asker=request.asker,
            notebook_session=request.session_id,
        )


def _text(content: Any) -> str:
    """A message's content as the agent takes it: text. A prompt sent with images (a figure
    ``{Out[n]}`` names, for a profile with ``vision``) gives its text and a line per image."""
    if isinstance(content, list):
        return "\n\n".join(
            str(part.get("text", ""))
            if part.get("type") == "text"
            else "[an image was left out: the agent is given the prompt's text only]"
            for part in content
            if isinstance(part, dict)
        )
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _split_messages(messages: list[Message]) -> tuple[str | None, str, list[Message]]:
    """The leading system text, the last user message, and the plain history before it."""
    start = 0
    system: list[str] = []
    while start < len(messages) and messages[start].get("role") == "system":
        system.append(_text(messages[start].get("content") or ""))
        start += 1
    last = max(
        (i for i in range(start, len(messages)) if messages[i].get("role") == "user"), default=-1
    )
    if last < 0:
        raise ConfigError("There is no user message for the Hermes agent to answer.")
    history = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in messages[start:last]
        if m.get("role") in ("user", "assistant") and m.get("content")
    ]
    joined = "\n\n".join(s for s in system if s.strip())
    return joined or None, _text(messages[last].get("content") or ""), history
