"""The profile's MCP servers as an ACP agent takes them in ``session/new`` and ``session/load``.

An ACP agent calls MCP servers itself: hermes_nb passes each enabled server of the profile
(``[mcp_servers.NAME]`` and ``[profiles.P.mcp_servers.NAME]``) in the form the protocol has for
it — stdio (program, arguments, environment) always, streamable HTTP (URL, headers with their
``${VARIABLE}`` values read now) only where the agent advertises ``mcpCapabilities.http``. A
server's ``cwd`` has no place in ACP's stdio form: the agent starts it in its own folder. What the
agent was not given is logged, once per session, with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from acp.schema import EnvVariable, HttpHeader, HttpMcpServer, McpServerStdio

from ...core.mcp_config import McpServer, expand_header

__all__ = ["mcp_servers"]

log = logging.getLogger(__name__)


def mcp_servers(
    servers: Mapping[str, McpServer], capabilities: Any
) -> list[HttpMcpServer | McpServerStdio]:
    """``servers`` (a profile's) in ACP's form, for an agent with these ``agentCapabilities``."""
    mcp = getattr(capabilities, "mcp_capabilities", None)
    http = bool(getattr(mcp, "http", False))
    given: list[HttpMcpServer | McpServerStdio] = []
    for server in servers.values():
        if not server.enabled:
            continue
        if server.url:
            if not http:
                log.info(
                    "MCP server %s not given to the agent: it does not take HTTP servers "
                    "(mcpCapabilities.http).",
                    server.name,
                )
                continue
            headers = [
                HttpHeader(name=name, value=expand_header(server.name, name, value))
                for name, value in server.headers.items()
            ]
            given.append(
                HttpMcpServer(type="http", name=server.name, url=server.url, headers=headers)
            )
        else:
            env = [
                EnvVariable(name=name, value=os.path.expanduser(os.path.expandvars(value)))
                for name, value in server.env.items()
            ]
            program, *args = server.command
            given.append(McpServerStdio(name=server.name, command=program, args=args, env=env))
    return given
