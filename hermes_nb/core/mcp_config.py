"""MCP servers in ``config.toml``: ``[mcp_servers.NAME]`` and ``[profiles.P.mcp_servers.NAME]``.

A server is either a local program spoken to over stdio (``command``, with ``env`` and ``cwd``)
or a remote one over streamable HTTP (``url``, with ``headers``). Secrets never go in the file:
a header value may name environment variables as ``${NAME}`` (``Authorization = "Bearer
${GITHUB_TOKEN}"``), read when the server is connected; a header that looks like a credential
(``Authorization``, ``*key*``, ``*token*``, ``*secret*``, ``Cookie``) must take its value that way.
``env`` values may name variables too (``$NAME`` or ``${NAME}``), as a profile's ``env`` does.

Per server: ``ask`` (default true: the person approves every call), ``allow`` (tools that never
ask), ``timeout`` (seconds per call, default 120), ``start_timeout`` (seconds for the process to
start and answer ``initialize``, default 30) and ``enabled``. Every mistake is one
:class:`ConfigError` sentence naming the file and the server.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._command_line import command_line
from .exceptions import ConfigError

__all__ = ["McpServer", "expand_header", "parse_servers"]

_KEYS = {
    "command",
    "url",
    "env",
    "cwd",
    "headers",
    "ask",
    "allow",
    "timeout",
    "start_timeout",
    "enabled",
}
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_SECRET_HEADER = re.compile(r"authorization|cookie|key|token|secret|password", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class McpServer:
    """One configured MCP server (values only: a header's secret is named, never held)."""

    name: str
    #: stdio: the program and its arguments
    command: tuple[str, ...] = ()
    #: streamable HTTP: the endpoint
    url: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: str | None = None
    #: HTTP headers; values may hold ``${VARIABLE}`` (see :func:`expand_header`)
    headers: Mapping[str, str] = field(default_factory=dict)
    #: True: the person approves every call (except the tools in ``allow``)
    ask: bool = True
    allow: tuple[str, ...] = ()
    #: seconds one call may take
    timeout: float = 120.0
    #: seconds for the server to start and answer ``initialize``
    start_timeout: float = 30.0
    enabled: bool = True

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"

    def describe(self) -> str:
        """One line naming the server and how it is reached (no secret: headers unexpanded)."""
        where = self.url if self.url else shlex.join(self.command)
        return f"{self.name} ({self.transport}: {where})"

    def asks(self, tool: str) -> bool:
        """Whether a call of ``tool`` (the server's own name for it) waits for an approval."""
        return self.ask and tool not in self.allow


def expand_header(server: str, header: str, value: str) -> str:
    """``value`` with each ``${NAME}`` replaced by that environment variable, read now.

    A variable that is not set raises :class:`ConfigError` naming it (never its value).
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        found = os.environ.get(name, "").strip()
        if not found:
            raise ConfigError(
                f"The MCP server {server}'s header {header} needs the environment variable "
                f"{name}, which is not set.",
                hint=f"Set {name} in the kernel's environment (or the profile's env) and retry.",
            )
        return found

    return _VARIABLE.sub(one, value)


def parse_servers(path: Path, prefix: str, tables: Any) -> dict[str, McpServer]:
    """The servers of one ``mcp_servers`` table (``prefix`` is where it sits, for messages)."""
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: {prefix} must be a table of servers ([{prefix}.NAME]).")
    return {name: _server(path, f"{prefix}.{name}", name, t) for name, t in tables.items()}


def _server(path: Path, where: str, name: str, table: Any) -> McpServer:
    at = f"{path}: {where}"
    if not _NAME.match(name):
        raise ConfigError(
            f"{at}: the MCP server name {name!r} must be letters, digits, _ and - (at most 32), "
            "as it starts each of its tools' names."
        )
    if not isinstance(table, dict):
        raise ConfigError(f'{at} must be a table (command = [...] or url = "...").')
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{at}.{unknown[0]} is not a setting of an MCP server "
            f"(known: {', '.join(sorted(_KEYS))})."
        )
    if ("command" in table) == ("url" in table):
        raise ConfigError(
            f"{at}: the MCP server {name} needs exactly one of command (a local program) and "
            "url (a streamable HTTP endpoint)."
        )
    values: dict[str, Any] = {"name": name}
    if "command" in table:
        example = 'the server\'s program, e.g. ["uvx", "mcp-server-time"]'
        values["command"] = command_line(f"{at}.command", table["command"], example=example)
        for key in ("headers",):
            if key in table:
                raise ConfigError(f"{at}.{key} is only for a server reached by url.")
    else:
        url = table["url"]
        if not isinstance(url, str) or not re.match(r"^https?://\S+$", url):
            raise ConfigError(f"{at}.url must be an http:// or https:// address, not {url!r}.")
        values["url"] = url
        for key in ("env", "cwd"):
            if key in table:
                raise ConfigError(f"{at}.{key} is only for a server started by command.")
    for key in ("env", "headers"):
        if key in table:
            value = table[key]
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ConfigError(f"{at}.{key} must be a table of strings.")
            values[key] = dict(value)
    for header, value in values.get("headers", {}).items():
        if _SECRET_HEADER.search(header) and not _VARIABLE.search(value):
            raise ConfigError(
                f"{at}.headers.{header} holds a literal value; secrets never go in config.toml: "
                f'name a variable instead, e.g. {header} = "Bearer ${{MY_TOKEN}}".'
            )
    if "cwd" in table:
        if not isinstance(table["cwd"], str):
            raise ConfigError(f"{at}.cwd must be a string (a folder).")
        values["cwd"] = table["cwd"]
    for key in ("ask", "enabled"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"{at}.{key} must be true or false, not {table[key]!r}.")
            values[key] = table[key]
    if "allow" in table:
        allow = table["allow"]
        if not isinstance(allow, list) or not all(isinstance(v, str) for v in allow):
            raise ConfigError(f"{at}.allow must be a list of the server's tool names.")
        values["allow"] = tuple(allow)
    for key in ("timeout", "start_timeout"):
        if key in table:
            value = table[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{at}.{key} must be a positive number of seconds.")
            values[key] = float(value)
    return McpServer(**values)
