"""Virtualenvs holding real ACP agents, for the tests that run them as processes.

:func:`hermes_acp` makes (once, then reuses) ``.venv-agents/hermes-acp/`` with
``pip install "hermes-agent[acp]==VERSION"`` and returns its ``hermes`` program. The agent runs
in a process of its own, so it needs none of the project's packages (and its own copy of the ACP
SDK may be older than ours: the protocol is what both sides share).

As in ``tests/browser/kernel_envs.py``: a stamp file records what the environment was built from
(the agent's version and the Python version); when either changes it is rebuilt. Builds hold a
lock file, so two pytest processes never build the same environment at once. The folder ignores
itself in git (its own ``.gitignore``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "AGENT_ENVS",
    "HERMES_AGENT_VERSION",
    "AgentEnvError",
    "hermes_acp",
    "hermes_acp_profile",
    "program_env",
]

ROOT = Path(__file__).resolve().parents[1]
#: Where the agents' virtualenvs live (ignored by git).
AGENT_ENVS = ROOT / ".venv-agents"
#: The hermes-agent release the tests run ``hermes acp`` from.
HERMES_AGENT_VERSION = "0.19.0"

_STAMP = ".hermes-nb-agent.json"
_PIP_TIMEOUT = 900


class AgentEnvError(RuntimeError):
    """The environment could not be made (no network, pip failed, …)."""


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(
    argv: list[str],
    log: Path,
    what: str,
    *,
    error: type[Exception] = AgentEnvError,
    timeout: float = _PIP_TIMEOUT,
) -> None:
    """Run ``argv`` with its output appended to ``log``; ``error`` with ``what`` and the log's
    last lines if it fails (also used by ``tests/browser/kernel_envs.py``)."""
    with log.open("ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise error(f"{what}: {exc}") from exc
    if done.returncode != 0:
        lines = log.read_text(errors="replace").splitlines()
        tail = [line for line in lines if not line.startswith("WARNING: Location")][-15:]
        raise error(f"{what} (exit {done.returncode}; log {log}):\n" + "\n".join(tail))


def program_env(folder: Path, name: str, requirement: str, program: str, version: str) -> Path:
    """``program`` of the virtualenv ``folder/name`` holding ``requirement`` (its ``version`` in
    the stamp), built now if missing or stale, under a lock; the folder ignores itself in git.
    Raises :class:`AgentEnvError` if it cannot be made."""
    home = folder / name
    found = home / "bin" / program
    stamp = home / _STAMP
    wanted = {name: version, "python": ".".join(map(str, sys.version_info[:3]))}
    folder.mkdir(parents=True, exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    with _locked(folder / f"{name}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text()) == wanted and found.is_file():
                return found
        shutil.rmtree(home, ignore_errors=True)
        log = folder / f"{name}.log"
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
                requirement,
            ],
            log,
            f"pip cannot install {requirement!r}",
        )
        if not found.is_file():
            raise AgentEnvError(f"{found} is missing after installing {requirement}")
        stamp.write_text(json.dumps(wanted), encoding="utf-8")
        return found


def hermes_acp(version: str = HERMES_AGENT_VERSION) -> Path:
    """The ``hermes`` program of ``.venv-agents/hermes-acp/``, built now if missing or stale.

    Raises :class:`AgentEnvError` if the virtualenv cannot be made.
    """
    return program_env(AGENT_ENVS, "hermes-acp", f"hermes-agent[acp]=={version}", "hermes", version)


#: A Hermes home whose model is a loopback OpenAI-style server: no retries, no probes, no title
#: calls, no Tirith, every dangerous command asked about.
_LOOPBACK_HOME = """\
model:
  provider: custom
  base_url: {url}
  default: loopback-model
  api_key: sk-loopback-not-a-key
  context_length: 128000
agent:
  api_max_retries: 0
  environment_probe: false
auxiliary:
  title_generation:
    enabled: false
security:
  tirith_enabled: false
approvals:
  mode: manual
"""


def hermes_acp_profile(program: Path, home: Path, url: str, cwd: Path, name: str = "hermes") -> Any:
    """An ``acp`` profile running ``program acp`` with a new Hermes home in ``home`` whose model
    is the loopback server at ``url``; every other host goes through a proxy that refuses, so the
    agent stays offline even where there is a network."""
    from hermes_nb.core.profiles import Profile

    home.mkdir(parents=True)
    (home / "config.yaml").write_text(_LOOPBACK_HOME.format(url=url), encoding="utf-8")
    refuse = "http://127.0.0.1:9"
    return Profile(
        name=name,
        provider="acp",
        model="agent",
        command=(str(program), "acp"),
        cwd=str(cwd),
        env={
            "HERMES_HOME": str(home),
            "HTTP_PROXY": refuse,
            "HTTPS_PROXY": refuse,
            "NO_PROXY": "127.0.0.1,localhost",
        },
        connect_timeout=60.0,
        titles=False,
    )
