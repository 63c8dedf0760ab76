"""``%hermes mcp`` and ``%hermes mcp restart NAME``: the MCP servers a profile may use, their
state (not started, running, failed with the reason and the last lines of its stderr) and
their tools, and restarting one.

The servers live on the runtime's loop (:mod:`hermes_nb.engine.mcp`); a restart is submitted
there and waited for, so the magic returns once the server answers again (or says why not).
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from IPython.core.error import UsageError

from ..core import md_table
from ..core.exceptions import HermesError
from ._help import _md

_USAGE = "Usage: %hermes mcp [--profile P] | %hermes mcp restart NAME [--profile P]"


def _profile_arg(words: list[str]) -> tuple[list[str], str | None]:
    if "--profile" not in words:
        return words, None
    at = words.index("--profile")
    if at + 1 >= len(words):
        raise UsageError(_USAGE)
    return words[:at] + words[at + 2 :], words[at + 1]


class _McpCommands:
    """``mcp`` and ``mcp restart``, for :class:`~.magics.HermesMagics`."""

    def _mcp(self, arg: str) -> Any:
        from ..core.config import load_config
        from ..engine.mcp import manager

        words, profile_name = _profile_arg(arg.split())
        try:
            profile = load_config().profile(profile_name)
        except HermesError as exc:
            raise UsageError(str(exc)) from None
        servers = profile.mcp_servers
        if words and words[0] == "restart":
            if len(words) != 2:
                raise UsageError(_USAGE)
            server = servers.get(words[1])
            if server is None:
                known = ", ".join(sorted(servers)) or "none"
                raise UsageError(
                    f"There is no MCP server named {words[1]!r} (configured: {known})."
                )
            try:
                conn = manager().restart(server)
            except HermesError as exc:
                raise UsageError(exc.message) from None
            print(f"hermes: restarted the MCP server {server.name} ({len(conn.tools)} tools).")
            return None
        if words:
            raise UsageError(f"Unknown: %hermes mcp {arg}. {_USAGE}")
        if not servers:
            return _md(
                "No MCP server is configured for the profile "
                f"`{profile.name}`. Add `[mcp_servers.NAME]` with `command = [...]` or "
                '`url = "..."` to config.toml (docs/tools.md, *Tools from MCP servers*).'
            )
        from ..engine.mcp import tool_name

        rows = []
        failures = []
        for conn in manager().status(list(servers.values())):
            server = conn.server
            state = conn.state.value if server.enabled else "off (enabled = false)"
            if conn.tools:
                tools = ", ".join(f"`{tool_name(server.name, t.name)}`" for t in conn.tools)
            else:
                tools = "listed once it runs" if conn.state.value != "failed" else "—"
            # The program by its name (a full interpreter path is noise in a table).
            program = (os.path.basename(server.command[0]), *server.command[1:])
            how = f"`{server.url}`" if server.url else f"`{shlex.join(program)}`"
            asks = (
                "no"
                if not server.ask
                else "yes" + (f" (not {', '.join(server.allow)})" if server.allow else "")
            )
            rows.append((server.name, how, state, asks, tools))
            if conn.state.value == "failed" and conn.reason:
                failures.append(f"- **{server.name}**: {conn.reason}")
        table = md_table(("server", "command or url", "state", "asks", "tools"), rows)
        text = f"MCP servers of the profile `{profile.name}`:\n\n{table}"
        if failures:
            text += "\n\n" + "\n".join(failures)
        return _md(text)


def mcp_command(magics: Any, arg: str) -> Any:
    """``%hermes mcp ...`` (the entry in the magic's table of sub-commands)."""
    return _McpCommands._mcp(magics, arg)
