"""MCP servers in a real kernel: ``%hermes mcp`` lists a server (its state and tools),
``%%hermes --tools mcp:NAME`` runs a cell's turn with them, and the server process does not
outlive the kernel — not even a server that ignores the end of its stdin, when the kernel is
killed."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from kernel_harness import KernelHarness

pytestmark = [pytest.mark.kernel]

SERVER = Path(__file__).resolve().parent / "mcp_server.py"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _shown(iopub: list[dict[str, Any]]) -> str:
    """Everything a cell showed (its result, displays, printed text), as one string."""
    return json.dumps([m["content"] for m in iopub if m["msg_type"] != "status"])


def test_hermes_mcp_lists_the_server_and_a_cell_uses_its_tools(
    hermes_home: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    (hermes_home / "config.toml").write_text(
        f"""
[mcp_servers.test]
command = [{json.dumps(sys.executable)}, {json.dumps(str(SERVER))}, "stubborn"]
env = {{MCP_TEST_MARKS = {json.dumps(str(marks))}}}
ask = false
""",
        encoding="utf-8",
    )
    with KernelHarness(hermes_home) as k:
        k.execute("%load_ext hermes_nb")
        listed = _shown(k.execute("%hermes mcp").iopub)
        assert "test" in listed and "not started" in listed
        calls = json.dumps([{"name": "test__echo", "arguments": {"text": "from a cell"}}])
        k.execute(
            f"%%hermes --plain --wait --tools mcp:test -o 'tool_calls={calls}' -o delay=0\ngo"
        )
        result = k.execute(
            "from hermes_nb.engine.runtime import get_runtime\n"
            "run = get_runtime().runs()[-1]\n"
            "run.wait(30)\n"
            "print([c['result'] for c in run.tool_calls.values()])\n"
        )
        assert "['from a cell']" in result.stdout()
        after = _shown(k.execute("%hermes mcp").iopub)
        assert "running" in after and "test__echo" in after and "test__picture" in after
        pid = int(
            next(line for line in marks.read_text().splitlines() if line.startswith("pid"))[4:]
        )
        assert _alive(pid)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the MCP server outlived its kernel"
