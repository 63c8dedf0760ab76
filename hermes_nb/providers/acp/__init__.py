"""ACP agents as providers: any agent that speaks the Agent Client Protocol, out of the kernel.

``provider = "acp"`` with ``command = ["hermes", "acp"]`` (or any ACP agent) runs the agent as a
process of its own, kept warm for the kernel, and streams its replies, tool calls and permission
requests into the run through the official SDK (``agent-client-protocol``, import name ``acp``).
See docs/agents.md.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ...core.profiles import Profile
from ._agent import _INSTALL, MANAGER, AgentInfo
from ._provider import ACPProvider

__all__ = [
    "ACPProvider",
    "AgentInfo",
    "agents",
    "check_command",
    "close_agents",
    "restart_agents",
]


def check_command(profile: Profile) -> tuple[bool, str]:
    """Whether ``profile``'s agent can be started as configured, in one sentence for
    ``%hermes doctor``: its program found on the ``PATH`` it gets, and its folder there. Looked up
    only: nothing is started."""
    if not profile.command:
        return False, 'no command: give the profile command = ["hermes", "acp"] or another agent'
    program = profile.command[0]
    path = os.path.expandvars(profile.env.get("PATH", "")) or None
    found = shutil.which(os.path.expanduser(program), path=path)
    if found is None:
        how = _INSTALL.get(Path(program).name)
        hint = f"install it ({how}) or" if how else "install it or"
        return False, f"the agent command {program!r} is not found on PATH: {hint} give a full path"
    cwd = Path(os.path.expanduser(profile.cwd)) if profile.cwd else Path.cwd()
    if not cwd.is_dir():
        return False, f"the agent's folder {cwd} does not exist (the profile's cwd)"
    return True, f"agent command {found} (ACP), in {cwd}; nothing is started by this check"


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
