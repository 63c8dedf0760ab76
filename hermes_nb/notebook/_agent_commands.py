"""``%hermes agents`` and ``%hermes agents restart [PROFILE]``: the ACP agents this kernel keeps
warm (``provider = "acp"``), and closing them so the next turn starts them afresh.

The agents live on the runtime's loop (``providers/acp``); a restart is submitted there and
waited for, so the magic returns once the processes are gone.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

from ..core import md_table
from ._help import _md

#: How long ``%hermes agents restart`` waits for the agents to close.
RESTART_WAIT = 15.0


def _uptime(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def close_agents() -> None:
    """Close every ACP agent on the runtime's loop (their connections and tasks end cleanly),
    or kill their processes at once if that does not finish in time."""
    from ..engine.runtime import get_runtime
    from ..providers import acp

    if not acp.agents():
        return
    try:
        get_runtime().submit(acp.restart_agents).result(RESTART_WAIT)
    except Exception:
        acp.close_agents()


class _AgentCommands:
    """``agents`` and ``agents restart``, mixed into :class:`~.magics.HermesMagics`."""

    def _agents(self, arg: str) -> Any:
        from ..providers import acp

        words = arg.split()
        if words and words[0] == "restart":
            if len(words) > 2:
                raise UsageError("Usage: %hermes agents restart [PROFILE]")
            return self._restart_agents(words[1] if len(words) == 2 else None)
        if words:
            raise UsageError(
                f"Unknown: %hermes agents {arg}. Usage: %hermes agents [restart [PROFILE]]"
            )
        running = acp.agents()
        if not running:
            return _md(
                "No ACP agent is running in this kernel. A turn of a profile with "
                '`provider = "acp"` starts one (docs/agents.md).'
            )
        rows = [
            (a.profile, str(a.pid), f"`{a.command}`", _uptime(a.uptime), str(a.sessions))
            for a in running
        ]
        return _md(md_table(("profile", "pid", "command", "uptime", "sessions"), rows))

    def _restart_agents(self, profile: str | None) -> None:
        from ..engine.runtime import get_runtime
        from ..providers import acp

        known = {a.profile for a in acp.agents()}
        if profile is not None and profile not in known:
            running = ", ".join(sorted(known)) or "none"
            raise UsageError(
                f"No ACP agent of profile {profile!r} is running (running: {running})."
            )
        closed = get_runtime().submit(lambda: acp.restart_agents(profile)).result(RESTART_WAIT)
        if closed:
            print(
                f"hermes: closed the agent of {', '.join(closed)}; the next turn starts it again."
            )
        else:
            print("hermes: no ACP agent was running.")
