"""ACP agents as providers: any agent that speaks the Agent Client Protocol, out of the kernel.

``provider = "acp"`` with ``command = ["hermes", "acp"]`` (or any ACP agent) runs the agent as a
process of its own, kept warm for the kernel, and streams its replies, tool calls and permission
requests into the run through the official SDK (``agent-client-protocol``, import name ``acp``).
See docs/agents.md.
"""

from __future__ import annotations

from ._agent import MANAGER, AgentInfo
from ._provider import ACPProvider

__all__ = ["ACPProvider", "AgentInfo", "agents", "close_agents", "restart_agents"]


def agents() -> list[AgentInfo]:
    """The running agents of this kernel (profile, pid, command, uptime, sessions)."""
    return MANAGER.agents()


async def restart_agents(profile: str | None = None) -> list[str]:
    """Close the agent of ``profile`` (every agent: None) on the runtime's loop; the next turn
    starts it again. Returns the profiles whose agent was closed."""
    return await MANAGER.restart(profile)


def close_agents() -> None:
    """Kill every agent's process group now, from any thread (kernel shutdown, ``%unload_ext``)."""
    MANAGER.kill_all()
