"""What the tests of ``provider = "acp"`` share: the scripted agent (``tests/acp_agent.py``), a
notebook folder and a profile running that agent in it (fixtures, imported by name), a
:func:`chat` that waits for its run, and small helpers to wait, read a run's events and find or
check an agent's process.

Used by ``test_providers_acp.py``, ``test_providers_acp_failures.py``,
``test_providers_acp_hermes.py`` and ``test_agent_commands.py``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import hermes_nb
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run
from hermes_nb.providers.acp import agents

AGENT = str(Path(__file__).with_name("acp_agent.py"))
WAIT = 20.0


@pytest.fixture(name="folder")
def fixture_folder(tmp_path: Path) -> Path:
    path = tmp_path / "notebook-folder"
    path.mkdir()
    return path


@pytest.fixture(name="profile")
def fixture_profile(folder: Path) -> Callable[..., Profile]:
    """A profile running the scripted agent with ``args``, in ``folder``."""

    def make(*args: str, **fields: object) -> Profile:
        values: dict[str, object] = {
            "name": "scripted",
            "provider": "acp",
            "model": "agent",
            "command": (sys.executable, AGENT, *args),
            "cwd": str(folder),
            "connect_timeout": 10.0,
            "titles": False,
            **fields,
        }
        return Profile(**values)  # type: ignore[arg-type]

    return make


def chat(prompt: str, profile: Profile, **kwargs: object) -> Run:
    return hermes_nb.chat(prompt, profile=profile, **kwargs).wait(WAIT)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def events(run: Run, *names: str) -> list[tuple[str, dict[str, object]]]:
    return [(e, d) for _, e, d in run.events() if not names or e in names]


def pid_of(name: str = "scripted") -> int:
    found = [a.pid for a in agents() if a.profile == name]
    assert len(found) == 1
    return found[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone; so does one reaped while we read.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
