"""One MCP server as a connection the kernel keeps warm: started on first use, restarted after
it died, closed with the runtime.

A :class:`Connection` lives on the runtime's loop. Its session runs in a task of the
:class:`~hermes_nb.engine.mcp.McpManager`'s task group (itself a task the runtime's portal owns,
so the runtime's shutdown cancels it): the SDK's transport is entered and left in that one task,
as anyio requires, and leaving it ends the server (stdin closed, then the process tree
terminated). Calls come from other tasks (the tool loop's) and use the session while it runs.

A local server's stderr goes to ``$HERMES_NB_HOME/mcp/NAME.log`` (beside the store, as an ACP
agent's goes to ``agents/``); its last lines explain a failed start or a crash. A call that finds
the connection closed (the process exited) gets an error result and marks the connection
failed; the next use starts it again.
"""

from __future__ import annotations

import contextlib
import enum
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ...core import log_tail, start_log
from ...core.config import home
from ...core.exceptions import ConfigError, HermesError
from ...core.mcp_config import McpServer, expand_header

if TYPE_CHECKING:
    from mcp import ClientSession
    from mcp import types as mcp_types

__all__ = ["Connection", "McpCallError", "McpStartError", "ServerState", "log_path"]

#: Starts a local server so that it dies with the kernel (run as a script: see its docstring).
_LAUNCHER = Path(__file__).with_name("_launch.py")
#: The largest message a remote server may send (the SDK's default is 1 MB: one big result).
_EVENT_LIMIT = 64 << 20


class ServerState(enum.Enum):
    NOT_STARTED = "not started"
    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"
    CLOSED = "closed"


class McpStartError(HermesError):
    """The server could not be started or did not answer ``initialize``."""


class McpCallError(Exception):
    """A call failed for a reason the model is told in one sentence (the run goes on)."""


def log_path(name: str) -> Path:
    """Where a local server's stderr goes."""
    return home() / "mcp" / f"{name}.log"


@dataclass
class Connection:
    """A configured server and, while it runs, its session and tools."""

    server: McpServer
    state: ServerState = ServerState.NOT_STARTED
    #: why it failed (one sentence, with the stderr tail), when FAILED
    reason: str = ""
    tools: list[mcp_types.Tool] = field(default_factory=list)
    starts: int = 0
    #: the server said its tools changed (``notifications/tools/list_changed``)
    stale: bool = False
    session: ClientSession | None = field(default=None, repr=False)
    _log_offset: int = 0
    _stop: anyio.Event | None = field(default=None, repr=False)
    _done: anyio.Event | None = field(default=None, repr=False)
    _lock: anyio.Lock | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.server.name

    @property
    def log(self) -> Path:
        return log_path(self.name)

    def tail(self) -> str:
        return log_tail(self.log, self._log_offset) if self.server.command else ""

    async def ensure(self, spawn: Callable[..., Any]) -> ClientSession:
        """The running session, starting the server first if it is not running.

        ``spawn(coro_fn, *args)`` starts a task in the manager's task group. Raises
        :class:`McpStartError` with one sentence when it cannot be started.
        """
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self.state is ServerState.RUNNING and self.session is not None:
                if self.stale:
                    self.stale = False
                    await self.refresh_tools()
                return self.session
            await self._close_quietly()
            started = anyio.Event()
            failure: list[BaseException] = []
            self._stop, self._done = anyio.Event(), anyio.Event()
            self.state, self.reason = ServerState.STARTING, ""
            self.starts += 1
            spawn(self._serve, started, failure, self._stop, self._done)
            await started.wait()
            if failure or self.session is None:
                raise McpStartError(self.reason or f"The MCP server {self.name} did not start.")
            return self.session

    async def close(self) -> None:
        """End the server (and wait until its process is gone)."""
        await self._close_quietly()
        self.state = ServerState.CLOSED if self.state is not ServerState.FAILED else self.state

    async def _close_quietly(self) -> None:
        if self._stop is not None and self._done is not None:
            self._stop.set()
            with anyio.CancelScope(shield=True):
                await self._done.wait()
        self.session = None

    def died(self, why: str) -> str:
        """Mark the connection failed (its process ended mid-call); the sentence for the model."""
        tail = self.tail()
        self.reason = f"The MCP server {self.name} {why}" + (
            f"; its stderr ends: {tail}" if tail else ""
        )
        self.state = ServerState.FAILED
        self.session = None
        if self._stop is not None:
            self._stop.set()  # the serving task leaves the transport: the process is reaped
        return self.reason + "."

    async def refresh_tools(self) -> None:
        """Read the server's tool list again (all pages)."""
        session = self.session
        if session is None:
            return
        tools: list[mcp_types.Tool] = []
        cursor: str | None = None
        from mcp import types

        while True:
            params = types.PaginatedRequestParams(cursor=cursor) if cursor else None
            page = await session.list_tools(params=params)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if not cursor:
                break
        self.tools = tools

    # -- the serving task ---------------------------------------------------------------------

    async def _serve(
        self,
        started: anyio.Event,
        failure: list[BaseException],
        stop: anyio.Event,
        done: anyio.Event,
    ) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                try:
                    # Entered outside the deadline: their task groups outlive its scope.
                    read, write = await stack.enter_async_context(self._transport())
                    session = await stack.enter_async_context(
                        ClientSession(read, write, message_handler=self._on_message)
                    )
                    with anyio.fail_after(self.server.start_timeout):
                        await session.initialize()
                        self.session = session
                        await self.refresh_tools()
                except BaseException as exc:
                    if isinstance(exc, anyio.get_cancelled_exc_class()) and not isinstance(
                        exc, TimeoutError
                    ):
                        raise
                    failure.append(exc)
                    self.session = None
                    await stack.aclose()  # the process is gone before its stderr is read
                    self.reason = self._start_failure(exc)
                    self.state = ServerState.FAILED
                    return
                self.state = ServerState.RUNNING
                started.set()
                await stop.wait()
        except BaseException as exc:  # the transport failed under a running session
            cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
            if not cancelled and not failure and self.state is ServerState.RUNNING:
                self.died(f"failed ({_one_line(exc)})")
            raise
        finally:
            self.session = None
            if self.state in (ServerState.RUNNING, ServerState.STARTING):
                self.state = ServerState.CLOSED
            started.set()
            done.set()

    def _transport(self) -> contextlib.AbstractAsyncContextManager[Any]:
        server = self.server
        if server.url:
            return _http(server)
        from mcp.client.stdio import StdioServerParameters, stdio_client

        env = {k: os.path.expanduser(os.path.expandvars(v)) for k, v in server.env.items()}
        env = {**os.environ, **env, "HERMES_NB_MCP_PARENT": str(os.getpid())}
        cwd = os.path.expanduser(server.cwd) if server.cwd else None
        program = server.command[0]
        if cwd and os.sep in program and not os.path.isabs(program):
            program = os.path.join(cwd, program)
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(program)
        params = StdioServerParameters(  # through the launcher: it dies with the kernel
            command=sys.executable,
            args=["-I", "-S", str(_LAUNCHER), found, *server.command[1:]],
            env=env,
            cwd=cwd,
            encoding_error_handler="replace",  # a stray non-UTF-8 byte is a U+FFFD, not a crash
        )
        self._log_offset = start_log(self.log, server.command)
        handle = self.log.open("a", encoding="utf-8", errors="replace")

        @contextlib.asynccontextmanager
        async def opened() -> Any:
            try:
                async with stdio_client(params, errlog=handle) as streams:
                    yield streams
            finally:
                handle.close()

        return opened()

    def _start_failure(self, exc: BaseException) -> str:
        name, server = self.name, self.server
        exc = _innermost(exc)
        if isinstance(exc, ConfigError):
            return exc.message.rstrip(".")
        if isinstance(exc, FileNotFoundError) and server.command:
            return (
                f"The MCP server {name} cannot start: the program {server.command[0]!r} is not "
                "installed (not found on PATH); install it or fix mcp_servers."
                f"{name}.command in config.toml"
            )
        if isinstance(exc, TimeoutError):
            why = f"did not answer initialize within {server.start_timeout:g} s"
        elif server.url:
            why = f"cannot be reached at {server.url} ({_one_line(exc)})"
        else:
            why = f"exited as it started ({_one_line(exc)})"
        tail = self.tail()
        sentence = f"The MCP server {name} {why}"
        if tail:
            sentence += f"; its stderr ends: {tail}"
        elif server.command:
            sentence += f"; see {self.log}"
        return sentence

    async def _on_message(self, message: Any) -> None:
        # Not refreshed here: this runs in the session's receive loop, which must stay free to
        # read the answer to tools/list. The next use reads the list again.
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self.stale = True


@contextlib.asynccontextmanager
async def _http(server: McpServer) -> Any:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    assert server.url is not None
    headers = {k: expand_header(server.name, k, v) for k, v in server.headers.items()}
    timeout = httpx2.Timeout(server.start_timeout, read=max(server.timeout, 300.0))
    async with (
        httpx2.AsyncClient(headers=headers, timeout=timeout) as client,
        streamable_http_client(
            server.url, http_client=client, max_sse_event_size=_EVENT_LIMIT
        ) as streams,
    ):
        yield streams


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _one_line(exc: BaseException) -> str:
    exc = _innermost(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:199] + "…"
