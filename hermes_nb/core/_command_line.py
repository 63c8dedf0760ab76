"""A program's command line from a config file: an ACP agent's (``profiles.*.command``) and an
MCP server's (``mcp_servers.*.command``) are read the same way, so they say the same things."""

from __future__ import annotations

import shlex
from typing import Any

from .exceptions import ConfigError


def command_line(where: str, value: Any, *, example: str) -> tuple[str, ...]:
    """``value`` as a program and its arguments: a list of strings, or one string split as a
    shell would (no shell runs it). ``where`` names the key in the file; ``example`` ends the
    sentence for an empty one (``the agent's program, e.g. ["hermes", "acp"]``)."""
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(
                f"{where} cannot be split like a shell command line ({exc})."
            ) from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        words = list(value)
    else:
        raise ConfigError(f"{where} must be a list of strings or a string, not {value!r}.")
    if not words or not words[0].strip():
        raise ConfigError(f"{where} is empty; name {example}.")
    return tuple(words)
