"""Tools from MCP servers: ``tools=["mcp:NAME"]`` or ``["mcp"]`` (DESIGN.md §11).

The servers are configured in ``config.toml`` (:mod:`hermes_nb.core.mcp_config`); each starts
on first use, stays warm for the kernel, restarts after it died and closes with the runtime.
The ``mcp`` SDK is imported only when a server is used.
"""

from ._connection import Connection, McpStartError, ServerState
from ._manager import McpManager, McpTool, manager, mcp_tools, servers_for, tool_name

__all__ = [
    "Connection",
    "McpManager",
    "McpStartError",
    "McpTool",
    "ServerState",
    "manager",
    "mcp_tools",
    "servers_for",
    "tool_name",
]
