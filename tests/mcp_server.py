"""An MCP server for the tests, written with the official SDK's server side (``MCPServer``).

``python tests/mcp_server.py stdio`` serves over stdio; ``python tests/mcp_server.py http PORT``
over streamable HTTP on 127.0.0.1. Modes that misbehave on purpose: ``exit-at-start`` (writes to
stderr and exits before ``initialize``), ``silent`` (reads stdin and never answers),
``junk-stdout`` (a stdio server that first prints a line of non-UTF-8 bytes to stdout),
``stubborn`` (a stdio server that lives on for two minutes after its stdin closed).

Tools: ``echo``, ``noop`` (the benchmark's), ``picture`` (a PNG), ``slow`` (sleeps; a
cancellation is written to the file ``$MCP_TEST_MARKS``), ``crash`` (the process exits mid-call,
after a line on stderr), ``fail`` (an ``isError`` result), ``big`` (1 MB of text), ``grow`` (adds
the tool ``added`` and sends ``notifications/tools/list_changed``), ``count`` (structured
content only). A started server writes its pid to ``$MCP_TEST_MARKS``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time
from pathlib import Path

from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.types import CallToolResult, TextContent

# A 1×1 red PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def _mark(text: str) -> None:
    marks = os.environ.get("MCP_TEST_MARKS")
    if marks:
        with Path(marks).open("a", encoding="utf-8") as out:
            out.write(text + "\n")


def build() -> MCPServer:
    server = MCPServer("hermes-nb-test")

    @server.tool()
    def echo(text: str, times: int = 1) -> str:
        """Say the text back."""
        return " ".join([text] * times)

    @server.tool()
    def noop() -> str:
        """Do nothing (the benchmark's tool)."""
        return "ok"

    @server.tool()
    def picture() -> Image:
        """A small picture."""
        return Image(data=PNG, format="png")

    @server.tool()
    async def slow(seconds: float) -> str:
        """Wait, then answer."""
        _mark("slow started")
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            _mark("slow cancelled")
            raise
        return "slept"

    @server.tool()
    def crash() -> str:
        """Exit in the middle of the call."""
        sys.stderr.write("crash: the test server is dying now\n")
        sys.stderr.flush()
        os._exit(3)

    @server.tool()
    def fail() -> CallToolResult:
        """Always fails."""
        return CallToolResult(
            content=[TextContent(type="text", text="the tool failed on purpose")], is_error=True
        )

    @server.tool()
    def big() -> str:
        """One megabyte of text."""
        return "x" * 1_000_000

    @server.tool()
    def count() -> CallToolResult:
        """Structured content only."""
        return CallToolResult(content=[], structured_content={"count": 3})

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named added."""

        def added() -> str:
            """A tool that was added later."""
            return "here"

        server.add_tool(added)
        await ctx.session.send_tool_list_changed()  # the classic notification, not subscriptions
        return "grown"

    return server


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "exit-at-start":
        sys.stderr.write("fatal: the test server cannot open its database\n")
        sys.exit(2)
    if mode == "silent":
        for _ in sys.stdin:
            pass
        time.sleep(60)
        return
    _mark(f"pid {os.getpid()}")
    if mode == "stubborn":
        mode = "stdio"
        stubborn = True
    else:
        stubborn = False
    if mode == "junk-stdout":
        sys.stdout.buffer.write(b"\xff\xfe not UTF-8 \xc3\x28\n")
        sys.stdout.flush()
        mode = "stdio"
    server = build()
    if mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
    if stubborn:  # lives on after its stdin closed, until it is killed
        time.sleep(120)


if __name__ == "__main__":
    main()
