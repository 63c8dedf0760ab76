"""Virtualenvs holding real MCP servers, for the tests that run them as processes.

:func:`mcp_server_time` makes (once, then reuses) ``.venv-tools/mcp-server-time/`` with
``pip install "mcp-server-time==VERSION"`` and returns its ``mcp-server-time`` program. The
server runs as a process of its own, so it needs none of the project's packages (its own copy of
the MCP SDK may differ from ours: the protocol is what both sides share).

Built by ``tests/agent_envs.py``'s :func:`~agent_envs.program_env`, as the ACP agents'
environments are: a stamp records what the environment was built from, a lock file keeps two
pytest processes from building it at once, and the folder ignores itself in git.
"""

from __future__ import annotations

from pathlib import Path

from agent_envs import AgentEnvError, program_env

__all__ = ["MCP_SERVER_TIME_VERSION", "TOOL_ENVS", "ToolEnvError", "mcp_server_time"]

ROOT = Path(__file__).resolve().parents[1]
#: Where the tool servers' virtualenvs live (ignored by git).
TOOL_ENVS = ROOT / ".venv-tools"
#: The mcp-server-time release the tests run.
MCP_SERVER_TIME_VERSION = "2026.10.19"

ToolEnvError = AgentEnvError


def mcp_server_time(version: str = MCP_SERVER_TIME_VERSION) -> Path:
    """The ``mcp-server-time`` program of ``.venv-tools/mcp-server-time/``, built now if missing
    or stale. Raises :class:`ToolEnvError` if the virtualenv cannot be made."""
    return program_env(
        TOOL_ENVS, "mcp-server-time", f"mcp-server-time=={version}", "mcp-server-time", version
    )
