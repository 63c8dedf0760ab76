"""The MCP servers of one runtime, and their tools as the tool loop sees them.

:class:`McpManager` keeps one :class:`Connection` per configured server for the runtime's
life. Its task group is a task the runtime's portal started, so the runtime's shutdown (kernel
exit) cancels it, which closes every server. Each server's tools become :class:`McpTool`\\ s named
``SERVER__TOOL`` (what OpenAI-compatible APIs accept: letters, digits, ``_`` and ``-``, at most
64), with the server's description and input schema; the arguments are checked against that
schema with ``jsonschema`` (a dependency of the ``mcp`` SDK) before the call.
"""

from __future__ import annotations

import hashlib
import re
import threading
import weakref
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ...core.exceptions import ConfigError, HermesError
from ...core.mcp_config import McpServer
from ..tools import Tool, ToolArgumentsError, ToolResult
from ._connection import Connection, McpStartError
from ._results import convert

if TYPE_CHECKING:
    from ...core.profiles import Profile
    from ..runtime import Runtime

__all__ = ["McpManager", "McpTool", "manager", "mcp_tools", "servers_for", "tool_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(server: str, tool: str) -> str:
    """``SERVER__TOOL`` as an OpenAI-compatible tool name (a long one keeps a hash of the rest)."""
    name = f"{server}__{_UNSAFE.sub('_', tool)}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha1(tool.encode()).hexdigest()[:8]
    return f"{name[:55]}_{digest}"


@dataclass(frozen=True)
class McpTool(Tool):
    """A tool of an MCP server: its call goes to the server's session."""

    server: str = ""
    #: the server's own name for the tool
    remote: str = ""
    _validator: Any = field(default=None, repr=False, compare=False)

    def arguments(self, raw: str) -> dict[str, Any]:
        data = super().arguments(raw)
        if self._validator is None:
            return data
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.path) or 'arguments'}: {e.message}"
                for e in errors[:3]
            )
            raise ToolArgumentsError(
                f"Invalid arguments for {self.name} (they do not fit its input schema: {problems})."
            )
        return data


class McpManager:
    """One runtime's MCP connections."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._group: anyio.abc.TaskGroup | None = None
        self._ready = threading.Event()

    # -- from the kernel's threads --------------------------------------------------------------

    def tools(self, servers: list[McpServer], timeout: float | None = None) -> list[McpTool]:
        """The tools of ``servers``, starting those not running. Raises :class:`HermesError`
        with one sentence when one cannot be started or two tools would share a name."""
        if timeout is None:
            timeout = sum(s.start_timeout for s in servers) + 5
        made: list[McpTool] = self._call(lambda: self._tools(servers), timeout)
        seen: dict[str, McpTool] = {}
        for t in made:
            other = seen.get(t.name)
            if other is not None:
                raise HermesError(
                    f"The MCP servers {other.server} and {t.server} both give a tool named "
                    f"{t.name} ({other.remote!r}, {t.remote!r}).",
                    hint="Rename one server in config.toml, or use only one of them.",
                )
            seen[t.name] = t
        return made

    def status(self, servers: list[McpServer]) -> list[Connection]:
        """The connection of each server (not started ones too), as they are now."""
        with self._lock:  # looked up, never replaced here: replacing is the loop's business
            found = [self._connections.get(s.name) for s in servers]
        return [
            c if c is not None and c.server == s else Connection(s)
            for c, s in zip(found, servers, strict=True)
        ]

    def restart(self, server: McpServer) -> Connection:
        """Close the server (if it runs) and start it again; raises :class:`HermesError`."""

        async def again() -> Connection:
            with self._lock:
                conn = self._connection(server)
            await conn.close()
            await conn.ensure(self._spawn)
            return conn

        conn: Connection = self._call(again, server.start_timeout + 10)
        return conn

    def close(self, timeout: float = 10.0) -> None:
        """End every server now (they start again on their next use)."""
        if self._group is None:
            return

        async def close_all() -> None:
            for conn in list(self._connections.values()):
                await conn.close()
            self._connections.clear()

        self._call(close_all, timeout)

    def _call(self, func: Callable[[], Any], timeout: float) -> Any:
        self._ensure_group()
        future = self._runtime.submit(func)
        try:
            return future.result(timeout)
        except FutureTimeout:
            future.cancel()
            raise HermesError(f"The MCP servers did not answer within {timeout:g} s.") from None

    def _ensure_group(self) -> None:
        with self._lock:
            if self._group is not None:
                return
            self._ready.clear()
            self._runtime.submit(self._supervise)
        if not self._ready.wait(10):
            raise HermesError("The runtime did not start the MCP task group.")

    async def _supervise(self) -> None:
        try:
            async with anyio.create_task_group() as group:
                self._group = group
                self._ready.set()
                await anyio.sleep_forever()
        finally:
            self._group = None
            with anyio.CancelScope(shield=True):
                for conn in list(self._connections.values()):
                    await conn.close()

    def _spawn(self, func: Callable[..., Any], *args: Any) -> None:
        if self._group is None:
            raise McpStartError("The runtime is shutting down; MCP servers cannot start now.")
        self._group.start_soon(func, *args)

    def _connection(self, server: McpServer) -> Connection:
        conn = self._connections.get(server.name)
        if conn is None or conn.server != server:  # new, or its configuration changed
            if conn is not None and self._group is not None:
                self._group.start_soon(conn.close)
            conn = Connection(server)
            self._connections[server.name] = conn
        return conn

    # -- on the loop --------------------------------------------------------------------------

    async def _tools(self, servers: list[McpServer]) -> list[McpTool]:
        made: list[McpTool] = []
        for server in servers:
            with self._lock:
                conn = self._connection(server)
            await conn.ensure(self._spawn)
            made.extend(self._wrap(conn, t) for t in conn.tools)
        return made

    def _wrap(self, conn: Connection, remote: Any) -> McpTool:
        from jsonschema import validators  # type: ignore[import-untyped]

        server = conn.server
        schema = dict(remote.input_schema or {"type": "object", "properties": {}})
        schema.setdefault("properties", {})
        try:
            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            validator = cls(schema)
        except Exception:  # a schema jsonschema cannot read: the server checks the arguments
            validator = None

        async def call(**arguments: Any) -> ToolResult:
            return await self._invoke(conn, remote.name, arguments)

        description = remote.description or remote.title or f"The tool {remote.name}."
        return McpTool(
            name=tool_name(server.name, remote.name),
            description=f"{description} (MCP server {server.name})",
            parameters=schema,
            function=call,
            ask=server.asks(remote.name),
            server=server.name,
            remote=remote.name,
            _validator=validator,
        )

    async def _invoke(self, conn: Connection, tool: str, arguments: dict[str, Any]) -> ToolResult:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        try:
            session = await conn.ensure(self._spawn)
        except HermesError as exc:
            return ToolResult(f"Error: {exc.message}", error=True)
        try:
            result = await session.call_tool(
                tool, arguments, read_timeout_seconds=conn.server.timeout
            )
        except MCPError as exc:
            code = exc.error.code
            if code == CONNECTION_CLOSED:
                why = conn.died("stopped during the call") + _again(conn)
            elif code == REQUEST_TIMEOUT:
                why = (
                    f"The MCP server {conn.name} did not answer {tool} within "
                    f"{conn.server.timeout:g} s (the server's timeout in config.toml)."
                )
            else:
                why = f"The MCP server {conn.name} refused the call: {exc.error.message}"
            return ToolResult(f"Error: {why}", error=True)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
            why = conn.died(f"stopped during the call ({type(exc).__name__})")
            return ToolResult(f"Error: {why}{_again(conn)}", error=True)
        except (RuntimeError, ValueError) as exc:  # a result the SDK refused (schema, shape)
            return ToolResult(f"Error: the result of {tool} was not usable: {exc}", error=True)
        return convert(result)


def _again(conn: Connection) -> str:
    if conn.server.url:
        return " The next call connects to it again."
    return " The next call starts it again."


_managers: weakref.WeakKeyDictionary[Runtime, McpManager] = weakref.WeakKeyDictionary()
_managers_lock = threading.Lock()


def manager(runtime: Runtime | None = None) -> McpManager:
    """The MCP manager of ``runtime`` (the kernel's runtime by default)."""
    if runtime is None:
        from ..runtime import get_runtime

        runtime = get_runtime()
    with _managers_lock:
        found = _managers.get(runtime)
        if found is None:
            found = _managers[runtime] = McpManager(runtime)
        return found


def servers_for(profile: Profile | None, name: str | None = None) -> Mapping[str, McpServer]:
    """The MCP servers a profile may use.

    A ``profile``'s: the ``[mcp_servers.NAME]`` of config.toml (every profile's) and its own,
    its own winning a shared name — also for a profile made in code. ``profile`` None (a caller
    that does not say which profile it means): the default profile's servers, and for a ``name``
    that is not among them, the one server of that name that exactly one profile defines for
    itself.
    """
    from ...core.config import load_config

    config = load_config()
    if profile is not None:
        return {**config.mcp_servers, **profile.mcp_servers}
    servers = dict(config.profile().mcp_servers)
    if name is not None and name not in servers:
        found: list[McpServer] = []
        for p in config.profiles.values():
            if name in p.mcp_servers and p.mcp_servers[name] not in found:
                found.append(p.mcp_servers[name])
        if len(found) == 1:
            servers[name] = found[0]
    return servers


def mcp_tools(item: str, profile: Profile | None) -> list[McpTool]:
    """The tools ``"mcp:NAME"`` (one server) or ``"mcp"`` (every enabled one) names."""
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"The tools {item!r} come from MCP servers, which need the mcp package.",
            hint='pip install "hermes-nb[mcp]" (the official MCP SDK), then restart the kernel.',
        ) from None
    servers = servers_for(profile, item.partition(":")[2] or None)
    if item == "mcp":
        chosen = [s for s in servers.values() if s.enabled]
        if not chosen:
            raise ConfigError(
                "No MCP server is configured for this profile.",
                hint='Add [mcp_servers.NAME] with command = [...] or url = "..." to '
                "config.toml (docs/tools.md, MCP servers).",
            )
    else:
        name = item.partition(":")[2]
        server = servers.get(name)
        if server is None:
            known = ", ".join(sorted(servers)) or "none"
            raise ConfigError(
                f"There is no MCP server named {name!r} (configured: {known}).",
                hint=f"Add [mcp_servers.{name or 'NAME'}] to config.toml.",
            )
        if not server.enabled:
            raise ConfigError(
                f"The MCP server {name} is turned off (enabled = false in config.toml)."
            )
        chosen = [server]
    return manager().tools(chosen)
