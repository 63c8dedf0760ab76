"""Virtualenvs holding real MCP servers, for the tests that run them as processes.

:func:`mcp_server_time` makes (once, then reuses) ``.venv-tools/mcp-server-time/`` with
``pip install "mcp-server-time==VERSION"`` and returns its ``mcp-server-time`` program. The
server runs as a process of its own, so it needs none of the project's packages (its own copy of
the MCP SDK may differ from ours: the protocol is what both sides share).

Built the way ``tests/agent_envs.py`` builds the ACP agents' environments (whose lock and pip
helpers it reuses): a stamp records what the environment was built from, a lock file keeps two
pytest processes from building it at once, and the folder ignores itself in git.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
from pathlib import Path

from agent_envs import AgentEnvError, _locked, _run

__all__ = ["MCP_SERVER_TIME_VERSION", "TOOL_ENVS", "ToolEnvError", "mcp_server_time"]

ROOT = Path(__file__).resolve().parents[1]
#: Where the tool servers' virtualenvs live (ignored by git).
TOOL_ENVS = ROOT / ".venv-tools"
#: The mcp-server-time release the tests run.
MCP_SERVER_TIME_VERSION = "2026.10.19"

_STAMP = ".hermes-nb-tool.json"

ToolEnvError = AgentEnvError


def mcp_server_time(version: str = MCP_SERVER_TIME_VERSION) -> Path:
    """The ``mcp-server-time`` program of ``.venv-tools/mcp-server-time/``, built now if missing
    or stale. Raises :class:`ToolEnvError` if the virtualenv cannot be made."""
    home = TOOL_ENVS / "mcp-server-time"
    program = home / "bin" / "mcp-server-time"
    stamp = home / _STAMP
    wanted = {"mcp-server-time": version, "python": ".".join(map(str, sys.version_info[:3]))}
    TOOL_ENVS.mkdir(parents=True, exist_ok=True)
    ignore = TOOL_ENVS / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    with _locked(TOOL_ENVS / "mcp-server-time.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text()) == wanted and program.is_file():
                return program
        shutil.rmtree(home, ignore_errors=True)
        log = TOOL_ENVS / "mcp-server-time.log"
        log.write_bytes(b"")
        _run([sys.executable, "-m", "venv", str(home)], log, "python -m venv failed")
        _run(
            [
                str(home / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                f"mcp-server-time=={version}",
            ],
            log,
            f'pip cannot install "mcp-server-time=={version}"',
        )
        if not program.is_file():
            raise ToolEnvError(f"{program} is missing after installing mcp-server-time {version}")
        stamp.write_text(json.dumps(wanted), encoding="utf-8")
        return program
