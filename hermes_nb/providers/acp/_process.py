"""An agent as a process: started so that it never outlives the kernel, its stdio as messages.

The agent runs in a session (and process group) of its own, so that closing it also reaches the
programs it started, and on Linux it asks the kernel for ``PR_SET_PDEATHSIG`` before it runs:
when the thread that started it ends (the runtime's loop thread, or the whole kernel, killed or
not) it is killed too. Its stderr goes to a log file (``$HERMES_NB_HOME/agents/PROFILE.log``),
whose last lines explain a failed start or a crash.

:class:`LineTransport` is the seam the SDK's connection reads and writes through: one JSON value
a line each way. It is framing only (the JSON-RPC is the SDK's); what it adds is tolerance of a
line that is not JSON (an agent printing to stdout by mistake), written to the log instead of
failing the turn, and lines of any length (a 10 MB message is one line).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...core import start_log
from ...core.config import home
from ...core.profiles import Profile

__all__ = [
    "LineTransport",
    "agent_cwd",
    "agent_env",
    "kill_group",
    "log_path",
    "spawn",
    "which",
]

#: The reader's buffer limit; a longer line is read in pieces of this size.
_LINE_LIMIT = 1 << 20
_PR_SET_PDEATHSIG = 1


def agent_env(profile: Profile) -> dict[str, str]:
    """The agent's environment: the kernel's, plus the profile's ``env`` (``~`` and ``$NAME``
    expanded, so a secret is named, not written: ``KEY = "$MY_KEY"``)."""
    env = dict(os.environ)
    for name, value in profile.env.items():
        env[str(name)] = os.path.expanduser(os.path.expandvars(str(value)))
    if profile.hermes_home:
        env.setdefault("HERMES_HOME", os.path.expanduser(profile.hermes_home))
    return env


def agent_cwd(profile: Profile) -> Path:
    """The agent's folder: the profile's ``cwd``, or the kernel's working directory."""
    if profile.cwd:
        return Path(os.path.expanduser(os.path.expandvars(profile.cwd))).resolve()
    return Path.cwd().resolve()


def log_path(profile: Profile) -> Path:
    """Where the agent's stderr goes: beside the store, one file per profile."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in profile.name) or "agent"
    return home() / "agents" / f"{safe}.log"


def which(argv: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The program ``argv[0]`` names, found on the agent's ``PATH``; None if there is none."""
    return shutil.which(argv[0], path=env.get("PATH", os.defpath))


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to kill the child when the thread that forked it ends."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody would kill us later
            os._exit(1)

    return preexec


async def spawn(
    argv: list[str], env: Mapping[str, str], cwd: Path, log: Path
) -> tuple[asyncio.subprocess.Process, int]:
    """Start the agent; returns the process and the offset its stderr starts at in ``log``."""
    offset = start_log(log, argv, cwd)
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            preexec_fn=_die_with_parent(),
            limit=_LINE_LIMIT,
        )
    return process, offset


def kill_group(pid: int, sig: int = signal.SIGTERM) -> None:
    """Signal the agent's process group (the agent and what it started); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class LineTransport:
    """The agent's stdout and stdin as JSON messages, for ``acp.connect_to_agent``.

    ``on_send`` is called with each message just after it was handed to the pipe (the benchmark
    times ``session/cancel`` with it). :attr:`ignored` counts stdout lines that were not JSON
    objects; each is written to the log and skipped.

    :attr:`not_loaded` holds the session ids whose ``session/load`` the agent answered with
    ``null`` instead of a response object: hermes-agent 0.19 does so for a session it does not
    know, and the SDK turns ``null`` into an empty response that looks like success.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        log: Path,
        on_send: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._log = log
        self._on_send = on_send
        self._lock = asyncio.Lock()
        self.ignored = 0
        self.not_loaded: set[str] = set()
        self._loads: dict[Any, str] = {}  # request id of a session/load -> its session id

    async def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        async with self._lock:
            if self._writer.is_closing():
                raise ConnectionError("the agent's stdin is closed")
            self._writer.write(data)
            if message.get("method") == "session/load":
                self._loads[message.get("id")] = str(message["params"].get("sessionId"))
            if self._on_send is not None:
                self._on_send(message)
            await self._writer.drain()

    async def receive(self) -> dict[str, Any] | None:
        while True:
            line = await self._line()
            if not line:
                return None  # end of stdout: the agent exited or closed it
            if line.isspace():
                continue
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if type(message) is dict:
                if self._loads and "method" not in message and message.get("id") in self._loads:
                    session_id = self._loads.pop(message["id"])
                    if "result" in message and message["result"] is None:
                        self.not_loaded.add(session_id)
                return message
            self._ignore(line)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            if not self._writer.is_closing():
                self._writer.close()

    async def _line(self) -> bytes:
        pieces: list[bytes] = []
        while True:
            try:
                pieces.append(await self._reader.readuntil(b"\n"))
                break
            except asyncio.LimitOverrunError as exc:  # a long line: take what is buffered
                pieces.append(await self._reader.readexactly(exc.consumed))
            except asyncio.IncompleteReadError as exc:  # the last line had no newline
                pieces.append(exc.partial)
                break
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def _ignore(self, line: bytes) -> None:
        self.ignored += 1
        shown = line.strip()[:200].decode("utf-8", "replace")
        with contextlib.suppress(OSError), self._log.open("ab") as out:
            out.write(
                f"[hermes_nb] ignored a stdout line that is not JSON-RPC: {shown!r}\n".encode()
            )
