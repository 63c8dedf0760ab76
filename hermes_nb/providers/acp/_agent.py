"""One warm agent process per kernel and profile, and the small manager that keeps them.

:class:`Agent` is a running agent: its process, the SDK's connection over
:class:`~._process.LineTransport`, the answer to ``initialize``, and the ACP session of each
hermes_nb session it has served. A hermes_nb session new to this process may bring the id of
the ACP session an earlier process gave it (the store keeps it): if the agent advertises
``loadSession`` it is loaded (``session/load``; the conversation the agent replays meanwhile
is dropped, no turn listens to that session yet), else — or if the load fails — a new ACP
session is made, whose first prompt carries the recent transcript, and :class:`Opened` says
why the old one could not be loaded.

:class:`AgentManager` starts an agent on the first turn of a profile and hands the same one to
every later turn; the next turn after it died (a crash, a failed handshake, a stopped prompt it
never answered) gets a new one. Agents belong to the loop that started them (the runtime's): a
turn on another loop (the runtime was restarted) kills the old process first. At interpreter
exit every agent's process group is killed; and on Linux each agent also dies with the runtime's
thread by itself (``PR_SET_PDEATHSIG``, see :mod:`._process`), which covers a killed kernel.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import shlex
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import acp
from acp.interfaces import Client
from acp.schema import ClientCapabilities, FileSystemCapabilities, Implementation

from ...core import log_tail
from ...core.exceptions import ErrorKind, ProviderError
from ...core.profiles import Profile
from ._client import AgentClient
from ._mcp_servers import mcp_servers
from ._process import (
    LineTransport,
    agent_cwd,
    agent_env,
    kill_group,
    log_path,
    spawn,
    which,
)

__all__ = ["MANAGER", "Agent", "AgentInfo", "AgentManager", "Opened"]

#: How long a stopped prompt may go unanswered before the next turn restarts its agent.
_ABANDONED_GRACE = 2.0
#: How long closing waits for the agent to exit by itself after its stdin closed.
_EXIT_GRACE = 1.0

#: Install hints for agents people are likely to name (the program → the command to run).
_INSTALL: dict[str, str] = {
    "hermes": 'pipx install "hermes-agent[acp]"',
    "hermes-acp": 'pipx install "hermes-agent[acp]"',
    "claude-agent-acp": "npm install -g @agentclientprotocol/claude-agent-acp",
    "claude-code-acp": "npm install -g @agentclientprotocol/claude-agent-acp, "
    "whose command is claude-agent-acp",
    "codex-acp": "npm install -g @agentclientprotocol/codex-acp",
    "gemini": "npm install -g @google/gemini-cli",
    "goose": "see https://block.github.io/goose/ for the installer",
}


def _hermes_nb_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hermes-nb")
    except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
        return "0"


@dataclass(frozen=True)
class AgentInfo:
    """One running agent, as ``%hermes agents`` lists it."""

    profile: str
    pid: int
    command: str
    uptime: float
    sessions: int


@dataclass(frozen=True)
class Opened:
    """The ACP session a turn runs in, and how it was come by."""

    id: str
    #: made or loaded for this turn (False: this process already served the hermes_nb session)
    made: bool = False
    #: loaded with ``session/load`` (the agent remembers the conversation)
    loaded: bool = False
    #: why the ACP session kept for the hermes_nb session could not be loaded ("" if none was
    #: kept, or it loaded)
    not_loaded: str = ""

    @property
    def fresh(self) -> bool:
        """A new ACP session: its first prompt must tell it the conversation so far."""
        return self.made and not self.loaded


def _key(profile: Profile, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[Any, ...]:
    """What makes an agent reusable for a turn: the same command, folder and profile variables
    (as expanded now: a changed ``$NAME`` in the kernel starts the agent again)."""
    names = sorted({*profile.env, "HERMES_HOME"} if profile.hermes_home else set(profile.env))
    return (tuple(argv), tuple((n, env.get(n, "")) for n in names), str(cwd))


class Agent:
    """A started agent process with its connection and ACP sessions."""

    def __init__(
        self,
        profile: Profile,
        argv: list[str],
        env: dict[str, str],
        cwd: Path,
        on_send: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.profile = profile
        self.argv = argv
        self.command = shlex.join(argv)
        self.cwd = cwd
        self.key = _key(profile, argv, env, cwd)
        self.log = log_path(profile)
        self.client = AgentClient(cwd)
        self.sessions: dict[str | None, str] = {}
        self.abandoned: set[asyncio.Task[Any]] = set()
        self.loop = asyncio.get_running_loop()
        self.started = time.time()
        self._env = env
        self._on_send = on_send
        self._offset = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.process: asyncio.subprocess.Process | None = None
        self.conn: Any = None  # acp.ClientSideConnection (its class is typed loosely)
        self.transport: LineTransport | None = None
        self.init: Any = None
        self.closed = False
        self._keeper: asyncio.Task[None] | None = None

    # -- starting ------------------------------------------------------------------------------

    async def start(self, timeout: float) -> None:
        """Spawn the agent and do the handshake; a classified error if either fails."""
        program = which(tuple(self.argv), self._env)
        if program is None:
            raise self._not_installed()
        try:
            self.process, self._offset = await spawn(
                [program, *self.argv[1:]], self._env, self.cwd, self.log
            )
        except PermissionError:
            raise self.error(
                ErrorKind.CONFIG,
                f"The agent command {self.argv[0]!r} ({program}) is not executable.",
                "Check the profile's command, or make the file executable.",
            ) from None
        except OSError as exc:
            raise self.error(
                ErrorKind.CONFIG,
                f"The agent {self.command!r} could not be started in {self.cwd}: {exc.strerror}.",
                "Check the profile's command and cwd.",
            ) from None
        # Closed when the loop ends (the runtime's shutdown cancels every task left at its end).
        self._keeper = self.loop.create_task(self._keep(), name="hermes-nb-acp-keeper")
        assert self.process.stdout is not None and self.process.stdin is not None
        transport = LineTransport(
            self.process.stdout, self.process.stdin, self.log, on_send=self._on_send
        )
        self.transport = transport
        self.conn = acp.connect_to_agent(cast(Client, self.client), transport)
        try:
            async with asyncio.timeout(timeout):
                self.init = await self.conn.initialize(
                    protocol_version=acp.PROTOCOL_VERSION,
                    client_capabilities=ClientCapabilities(
                        fs=FileSystemCapabilities(read_text_file=True, write_text_file=True),
                        terminal=False,
                    ),
                    client_info=Implementation(name="hermes_nb", version=_hermes_nb_version()),
                )
        except TimeoutError:
            await self.close()
            raise self.error(
                ErrorKind.TIMEOUT,
                f"The agent {self.command!r} did not answer initialize within {timeout:g} s"
                f"{self._tail_clause()}.",
                "Raise the profile's connect_timeout if the agent is slow to start, or run the "
                "command in a terminal to see what it does.",
            ) from None
        except (ConnectionError, acp.RequestError, ValueError) as exc:
            status = await self._exit_status()
            await self.close()
            if status is None:
                raise self.error(
                    ErrorKind.SERVER,
                    f"The agent {self.command!r} refused initialize ({_reason(exc)})"
                    f"{self._tail_clause()}.",
                    "Run the command in a terminal to check that it speaks ACP.",
                ) from None
            raise self.error(
                ErrorKind.SERVER,
                f"The agent {self.command!r} exited with status {status} during the handshake"
                f"{self._tail_clause()}.",
                f"Run the command in a terminal to see why; its log is {self.log}.",
            ) from None
        version = self.init.protocol_version
        if version != acp.PROTOCOL_VERSION:
            await self.close()
            raise self.error(
                ErrorKind.CONFIG,
                f"The agent {self.command!r} speaks ACP protocol version {version}; hermes_nb "
                f"speaks version {acp.PROTOCOL_VERSION}.",
                "Update the agent (or hermes_nb) so that both speak the same version.",
            )

    def _not_installed(self) -> ProviderError:
        name = Path(self.argv[0]).name
        how = _INSTALL.get(name)
        hint = f"Install it ({how}), or" if how else "Install it, or"
        return self.error(
            ErrorKind.CONFIG,
            f"The agent command {self.argv[0]!r} is not installed (not found on PATH).",
            f"{hint} give the profile's command as a full path.",
        )

    # -- sessions ------------------------------------------------------------------------------

    @property
    def can_load(self) -> bool:
        """The agent advertised ``loadSession`` in its answer to ``initialize``."""
        capabilities = getattr(self.init, "agent_capabilities", None)
        return bool(getattr(capabilities, "load_session", False))

    async def session(self, key: str | None, stored: str | None = None) -> Opened:
        """The ACP session for the hermes_nb session ``key``: the one this process made for it,
        else ``stored`` (the one an earlier process made) loaded again, else a new one."""
        if key is not None and key in self.sessions:
            return Opened(self.sessions[key])
        not_loaded = ""
        if stored and key is not None:
            not_loaded = await self._load(stored)
            if not not_loaded:
                self.sessions[key] = stored
                return Opened(stored, made=True, loaded=True)
        return Opened(await self._new(key), made=True, not_loaded=not_loaded)

    async def _load(self, stored: str) -> str:
        """``session/load`` of ``stored``: "" if it loaded, else why not (for the notice).

        The agent replays the conversation as ``session/update`` notifications before it
        answers; no turn is registered for that session yet, so the client drops them. The SDK
        handles each notification in a task of its own, started before the answer is: one
        pass of the loop after the answer lets the last of them run (and be dropped) before the
        turn registers.
        """
        if not self.can_load:
            return "it does not offer session/load"
        timeout = self.profile.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.conn.load_session(
                    cwd=str(self.cwd), session_id=stored, mcp_servers=self._mcp_servers()
                )
        except TimeoutError:
            return f"it did not answer session/load within {timeout:g} s"
        except acp.RequestError as exc:
            if exc.code == -32000:  # auth_required
                raise self._auth_error() from None
            return self.redact(f"it answered session/load with an error: {_reason(exc)}")
        except ConnectionError:
            raise await self.crash_error("while loading a session") from None
        except ValueError as exc:  # an answer of the wrong shape (pydantic)
            return f"its answer to session/load was not a load response ({type(exc).__name__})"
        await asyncio.sleep(0)
        if self.transport is not None and stored in self.transport.not_loaded:
            self.transport.not_loaded.discard(stored)
            return "it did not know that session"
        return ""

    def _mcp_servers(self) -> list[Any]:
        """The profile's MCP servers, for the agent to call itself (:mod:`._mcp_servers`)."""
        return mcp_servers(self.profile.mcp_servers, getattr(self.init, "agent_capabilities", None))

    async def _new(self, key: str | None) -> str:
        """``session/new``; the ACP session is remembered for ``key``."""
        timeout = self.profile.connect_timeout
        try:
            async with asyncio.timeout(timeout):
                response = await self.conn.new_session(
                    cwd=str(self.cwd), mcp_servers=self._mcp_servers()
                )
        except TimeoutError:
            raise self.error(
                ErrorKind.TIMEOUT,
                f"The agent {self.command!r} did not answer session/new within {timeout:g} s.",
                f"Raise the profile's connect_timeout, or look at its log: {self.log}.",
            ) from None
        except acp.RequestError as exc:
            if exc.code == -32000:  # auth_required
                raise self._auth_error() from None
            raise self.error(
                ErrorKind.SERVER,
                f"The agent {self.command!r} could not start a session ({_reason(exc)}).",
                f"Its log is {self.log}.",
            ) from None
        except ConnectionError:
            raise await self.crash_error("while starting a session") from None
        if key is not None:
            self.sessions[key] = str(response.session_id)
        return str(response.session_id)

    def _auth_error(self) -> ProviderError:
        methods = list(getattr(self.init, "auth_methods", None) or [])
        named = ", ".join(f"{m.name} (id {m.id})" for m in methods) or "none advertised"
        return self.error(
            ErrorKind.AUTH,
            f"The agent {self.command!r} requires authentication; its methods: {named}.",
            "Sign in with the agent's own command in a terminal (or set its key in the "
            "profile's env), then try again.",
        )

    # -- health and errors ---------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        process = self.process
        return not self.closed and process is not None and process.returncode is None

    def stuck(self) -> bool:
        """A stopped prompt the agent has still not answered."""
        self.abandoned = {t for t in self.abandoned if not t.done()}
        return bool(self.abandoned)

    async def settle_abandoned(self) -> None:
        """Give stopped prompts a moment to be answered (the agent honouring the cancel)."""
        pending = {t for t in self.abandoned if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=_ABANDONED_GRACE)

    async def _exit_status(self, wait: float = _EXIT_GRACE) -> int | None:
        process = self.process
        if process is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await process.wait()
        return process.returncode

    def _tail_clause(self) -> str:
        tail = log_tail(self.log, self._offset)
        return f"; its stderr ends: {self.redact(tail)}" if tail else ""

    async def crash_error(self, when: str = "during the reply") -> ProviderError:
        """The agent's connection broke: why, with its exit status and stderr tail."""
        status = await self._exit_status()
        self.closed = True
        what = f"exited with status {status}" if status is not None else "closed its output"
        return self.error(
            ErrorKind.SERVER,
            f"The agent {self.command!r} {what} {when}{self._tail_clause()}.",
            f"The next turn starts it again; its log is {self.log}.",
        )

    def redact(self, text: str) -> str:
        """``text`` without the values of the profile's env (they may hold keys)."""
        for value in self._env_values():
            text = text.replace(value, "***")
        return text

    def _env_values(self) -> list[str]:
        names = list(self.profile.env)
        return [v for v in (self._env.get(n, "") for n in names) if len(v) >= 6]

    def error(self, kind: ErrorKind, message: str, hint: str) -> ProviderError:
        return ProviderError(kind, self.redact(message), hint=self.redact(hint))

    # -- background work and closing -----------------------------------------------------------

    def spawn_task(self, coro: Any) -> asyncio.Task[Any]:
        """A task the agent owns (a ``session/cancel``), outside any turn's cancel scope."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _keep(self) -> None:
        """Wait for the end of the loop, then close the agent (runtime shutdown)."""
        try:
            await self.loop.create_future()
        finally:
            if not self.closed:
                await self.close()

    async def close(self) -> None:
        """Close the connection, let the agent exit, then end its process group."""
        self.closed = True
        keeper = self._keeper
        if keeper is not None and keeper is not asyncio.current_task():
            keeper.cancel()
        for task in [*self._tasks, *self.abandoned]:
            task.cancel()
        if self.conn is not None:
            with contextlib.suppress(Exception):
                await self.conn.close()
        process = self.process
        if process is None:
            return
        if process.returncode is None and await self._exit_status(_EXIT_GRACE / 2) is None:
            kill_group(process.pid, signal.SIGTERM)
            if await self._exit_status(_EXIT_GRACE) is None:
                kill_group(process.pid, signal.SIGKILL)
                await self._exit_status(_EXIT_GRACE)
        kill_group(process.pid, signal.SIGKILL)  # anything it left running in its group

    def kill_now(self) -> None:
        """End the process group at once, from any thread (interpreter exit, a dead loop)."""
        self.closed = True
        if self.process is not None:
            kill_group(self.process.pid, signal.SIGKILL)

    def info(self) -> AgentInfo:
        pid = self.process.pid if self.process is not None else 0
        return AgentInfo(
            self.profile.name, pid, self.command, time.time() - self.started, len(self.sessions)
        )


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and data.get("details"):
        text = f"{text}: {data['details']}"
    return text[:300] or type(exc).__name__


_closing: set[asyncio.Task[Any]] = set()


def _later(coro: Any) -> None:
    """Run ``coro`` in a task of its own (a cleanup that must outlive a cancelled turn)."""
    task = asyncio.get_running_loop().create_task(coro)
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class AgentManager:
    """The warm agents of this kernel, one per profile."""

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._guard = threading.Lock()
        self._exit_hook = False
        #: Called with each message written to an agent (the benchmark times session/cancel).
        self.on_send: Callable[[dict[str, Any]], None] | None = None

    def _lock(self, name: str) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new runtime loop: locks of the old one are useless
            self._loop, self._locks = loop, {}
        return self._locks.setdefault(name, asyncio.Lock())

    async def agent(self, profile: Profile) -> Agent:
        """The warm agent for ``profile``, started (or restarted) now if need be."""
        argv = list(profile.command)
        if not argv:
            raise ProviderError(
                ErrorKind.CONFIG,
                f"The profile {profile.name!r} has no command to start its ACP agent with.",
                hint='Add command = ["hermes", "acp"] (or your agent\'s) to the profile.',
            )
        env = agent_env(profile)
        cwd = agent_cwd(profile)
        if not cwd.is_dir():
            raise ProviderError(
                ErrorKind.CONFIG,
                f"The profile {profile.name!r} names cwd {str(cwd)!r}, which is not a folder.",
                hint="Fix the profile's cwd, or leave it out to use the notebook's folder.",
            )
        async with self._lock(profile.name):
            old = self._agents.get(profile.name)
            if old is not None and old.loop is not asyncio.get_running_loop():
                old.kill_now()
                old = None
            if old is not None and old.stuck():
                await old.settle_abandoned()
            if old is not None and (
                not old.alive or old.stuck() or old.key != _key(profile, argv, env, cwd)
            ):
                await old.close()
                old = None
            if old is not None:
                return old
            agent = Agent(profile, argv, env, cwd, on_send=self._send_hook)
            self._hook_exit()
            try:
                await agent.start(profile.connect_timeout)
            except ProviderError:
                raise  # start() closed it
            except BaseException:  # Stop while it started: nothing may stay behind
                agent.kill_now()
                _later(agent.close())
                raise
            with self._guard:
                self._agents[profile.name] = agent
            return agent

    def _send_hook(self, message: dict[str, Any]) -> None:
        hook = self.on_send
        if hook is not None:
            hook(message)

    def _hook_exit(self) -> None:
        if not self._exit_hook:
            self._exit_hook = True
            atexit.register(self.kill_all)

    def agents(self) -> list[AgentInfo]:
        """The running agents (profile, pid, command, uptime, ACP sessions)."""
        with self._guard:
            return [a.info() for a in self._agents.values() if a.alive]

    async def restart(self, name: str | None = None) -> list[str]:
        """Close the agent of profile ``name`` (every agent: None); the next turn starts it."""
        with self._guard:
            chosen = [a for n, a in self._agents.items() if name is None or n == name]
            for agent in chosen:
                self._agents.pop(agent.profile.name, None)
        for agent in chosen:
            if agent.loop is asyncio.get_running_loop():
                await agent.close()
            else:
                agent.kill_now()
        return [a.profile.name for a in chosen]

    async def aclose(self) -> None:
        """Close every agent (on the runtime's loop, before it stops)."""
        await self.restart(None)

    def kill_all(self) -> None:
        """Kill every agent's process group now, from any thread (interpreter exit)."""
        with self._guard:
            agents = list(self._agents.values())
            self._agents.clear()
        for agent in agents:
            agent.kill_now()


#: The kernel's agents.
MANAGER = AgentManager()
