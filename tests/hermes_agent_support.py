"""What the tests of the in-process hermes-agent provider share: the ``agent`` fixture (the real
``hermes-agent`` package, offline, skipped without it and failed in CI), a Hermes home per test
(:func:`make_home`) and a profile whose model is the loopback SSE server (:func:`agent_profile`),
and small readers of the recorded requests and of a run's events.

Used by ``test_hermes_agent.py``, ``test_hermes_agent_approvals.py`` and ``test_agent_guard.py``
(fixtures imported by name), and ``test_agent_kernel.py`` (the home's config and the CI check).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci_env import unavailable
from sse_server import RecordedRequest, Reply, SSEServer, finish, tool_call

from hermes_nb.core.profiles import Profile
from hermes_nb.core.prompts import Prompt
from hermes_nb.providers.hermes_agent import agent_available

KEY = "sk-agent-test-4f1c9a"
KEY_VAR = "HNB_AGENT_TEST_KEY"

# Only what keeps a test home fast and offline: no retries (a failure is one request), no probe
# of the local Python toolchain, a context size so the agent does not probe the endpoint, no
# Tirith (asked for approval, hermes-agent would scan each command with it, downloading it first)
# and manual approvals (hermes-agent's default, "smart", first asks an auxiliary model, which
# here would be the loopback server eating a scripted reply).
_CONFIG = """\
agent:
  api_max_retries: 0
  environment_probe: false
model:
  context_length: 128000
security:
  tirith_enabled: false
approvals:
  mode: manual
"""


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(name="offline")
def fixture_offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every host name looked up that is not the loopback server, refused (the agent tolerates
    that: it is how it runs without a network). Tests stay offline even where CI has one."""
    refused: list[str] = []
    lookup = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in _LOOPBACK and not (isinstance(host, bytes) and host.decode() in _LOOPBACK):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: no network in tests")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return refused


@pytest.fixture(name="agent")
def fixture_agent(monkeypatch: pytest.MonkeyPatch, offline: list[str]) -> Iterator[None]:
    """The real hermes-agent (skip without it, fail in CI), offline, with the key variable set,
    and the root logger put back afterwards (hermes-agent adds its log files to it)."""
    if not agent_available():
        unavailable('hermes-agent is not installed (pip install "hermes-nb[agent]")')
    monkeypatch.setenv(KEY_VAR, KEY)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def make_home(root: Path, marker: str) -> Path:
    """A Hermes home whose SOUL.md, skill and .env say which home it is."""
    home = root / f"hermes-{marker}"
    (home / "skills" / "probe").mkdir(parents=True)
    (home / "config.yaml").write_text(_CONFIG, encoding="utf-8")
    (home / "SOUL.md").write_text(f"You are the assistant of home-{marker}.\n", encoding="utf-8")
    (home / "skills" / "probe" / "SKILL.md").write_text(
        f"---\nname: probe\ndescription: Says which home this is.\n---\n"
        f"This skill lives in home-{marker}.\n",
        encoding="utf-8",
    )
    (home / ".env").write_text(f"HNB_DOTENV_{marker.upper()}=from-{marker}\n", encoding="utf-8")
    return home


def agent_profile(name: str, home: Path, server: SSEServer, **options: object) -> Profile:
    """A profile for ``home`` whose model is the loopback server (``toolsets=None``: the home's)."""
    options = {"toolsets": ["todo", "skills"], "memory": False, **options}
    return Profile(
        name=name,
        provider="hermes-agent",
        model=f"model-{name}",
        base_url=server.url,
        api_key_env=KEY_VAR,
        hermes_home=str(home),
        options={k: v for k, v in options.items() if v is not None},
    )


def tool_names(request: RecordedRequest) -> list[str]:
    return sorted(t["function"]["name"] for t in request.body.get("tools") or [])


def system_prompt(request: RecordedRequest) -> str:
    return request.body["messages"][0]["content"]


def events(run, name: str) -> list[dict]:
    return [data for _, event, data in run.events() if event == name]


def agent_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("hermes-agent:")]


def wait_for_prompt(run, timeout: float = 60) -> Prompt:
    """The run's one open prompt, once the agent (in its worker thread) has asked it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = run.pending
        if pending:
            assert len(pending) == 1, pending
            return pending[0]
        assert not run.settled, (run.status, run.error, run.text)
        time.sleep(0.02)
    raise AssertionError(f"the run asked nothing within {timeout} s")


def delete_script(victim: Path, call_id: str = "call_rm") -> tuple[str, list[Reply]]:
    """The command a scripted model runs through ``terminal`` (flagged "delete in root path"),
    and the replies: the tool call, then a closing text."""
    command = f"rm -rf {victim}"
    call = tool_call(0, id=call_id, name="terminal", arguments=json.dumps({"command": command}))
    return command, [Reply(chunks=[call, finish("tool_calls")]), Reply.text("Done.")]


def tool_message(request: RecordedRequest) -> dict:
    """The tool result a request carries back to the model (its last message)."""
    message = request.body["messages"][-1]
    assert message["role"] == "tool", message
    return message
