"""Tools from MCP servers: what hermes_nb adds to a call, beyond the SDK's own client.

Run it as ``.venv/bin/python benchmarks/bench_mcp.py`` (about half a minute; needs the ``mcp``
extra).

a. cost per call: the no-op tool ``noop`` of ``tests/mcp_server.py`` over stdio, called through
   hermes_nb's :class:`~hermes_nb.engine.mcp.McpTool` on its warm server (the arguments parsed
   and checked against the tool's JSON Schema, the connection looked up, the SDK's
   ``call_tool``, the result converted) against the SDK's own ``ClientSession.call_tool`` on a
   second process of the same server, each on a loop thread (the runtime's, and one of its own
   like it). Rounds alternate; the figure is the difference of the medians per call.
   Target ≤ 5 ms.
b. a whole turn: ``hermes_nb.chat()`` on the offline model scripted to make 20 calls of ``noop``
   in one reply (``ask = false``), per call, against the same turn calling a plain Python tool
   that does nothing: what an MCP call costs in a turn beyond a local one. Reported.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, median, use_tests_dir  # benchmarks/ is sys.path[0]

ROOT = use_tests_dir()

import anyio  # noqa: E402
from anyio.from_thread import start_blocking_portal  # noqa: E402
from mcp import ClientSession  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

import hermes_nb  # noqa: E402
from hermes_nb.engine.mcp import McpTool, manager  # noqa: E402
from hermes_nb.engine.runtime import get_runtime  # noqa: E402
from hermes_nb.engine.tools import resolve_tools  # noqa: E402

SERVER = str(ROOT / "tests" / "mcp_server.py")
CALLS = 200
ROUNDS = 7
TURN_CALLS = 20


def ours(tool: McpTool) -> list[float]:
    """Per-call seconds through hermes_nb's tool, on the runtime's loop."""

    async def calls() -> list[float]:
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            arguments = tool.arguments("{}")
            assert tool.function is not None
            result = await tool.function(**arguments)
            assert result.text == "ok", result
            times.append(time.perf_counter() - start)
        return times

    return get_runtime().submit(calls).result(120)


def sdk(portal: Any, session: ClientSession) -> list[float]:
    """Per-call seconds through the SDK's own client, on a loop thread of its own."""

    async def calls() -> list[float]:
        times = []
        for _ in range(CALLS):
            start = time.perf_counter()
            result = await session.call_tool("noop", {})
            assert result.content[0].text == "ok"
            times.append(time.perf_counter() - start)
        return times

    return portal.call(calls)


def bench_calls(report: Report) -> None:
    (tool,) = [t for t in resolve_tools(["mcp:bench"]) if t.name == "bench__noop"]
    assert isinstance(tool, McpTool)
    params = StdioServerParameters(command=sys.executable, args=[SERVER, "stdio"])
    with start_blocking_portal() as portal, open(os.devnull, "w") as devnull:
        # The transport is entered and left in one task (anyio's rule): it holds the session
        # until ``stop`` is set.
        stop = portal.call(anyio.Event)

        async def hold(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            async with (
                stdio_client(params, errlog=devnull) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                await session.list_tools()
                task_status.started(session)
                await stop.wait()

        future, session = portal.start_task(hold)
        try:
            ours(tool), sdk(portal, session)  # warm both
            mine: list[float] = []
            theirs: list[float] = []
            for _ in range(ROUNDS):
                mine.extend(ours(tool))
                theirs.extend(sdk(portal, session))
        finally:
            portal.call(stop.set)
            future.result(30)
    extra = (median(mine) - median(theirs)) * 1000
    report.figure(
        "a. cost per call beyond the SDK's client (median)",
        extra,
        "ms",
        5,
        f"hermes_nb {median(mine) * 1000:.3f} ms, SDK {median(theirs) * 1000:.3f} ms, "
        f"{CALLS * ROUNDS} calls each",
    )


def bench_turn(report: Report) -> None:
    @hermes_nb.tool
    def local_noop() -> str:
        """Do nothing."""
        return "ok"

    def turn(name: str, tools: list[Any]) -> float:
        calls = [{"name": name, "arguments": {}}] * TURN_CALLS
        start = time.perf_counter()
        run = hermes_nb.chat("go", tools=tools, tool_calls=calls, delay=0, reply="done")
        run.wait(60)
        assert all(not c["error"] for c in run.tool_calls.values()), run.tool_calls
        return time.perf_counter() - start

    turn("bench__noop", ["mcp:bench"]), turn("local_noop", [local_noop])  # warm
    mcp_turns, local_turns = [], []
    for _ in range(ROUNDS):
        mcp_turns.append(turn("bench__noop", ["mcp:bench"]))
        local_turns.append(turn("local_noop", [local_noop]))
    per_call = (median(mcp_turns) - median(local_turns)) / TURN_CALLS * 1000
    print(
        f"{'b. a turn of 20 calls: MCP beyond local, per call':<44} {per_call:>10.3f} ms   "
        f"[turn {median(mcp_turns) * 1000:.1f} ms vs {median(local_turns) * 1000:.1f} ms]",
        flush=True,
    )


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="hnb-bench-mcp-"))
    os.environ["HERMES_NB_HOME"] = str(home)
    (home / "config.toml").write_text(
        f"[mcp_servers.bench]\ncommand = [{json.dumps(sys.executable)}, {json.dumps(SERVER)}, "
        '"stdio"]\nask = false\n',
        encoding="utf-8",
    )
    report = Report()
    try:
        bench_calls(report)
        bench_turn(report)
    finally:
        manager().close()
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
