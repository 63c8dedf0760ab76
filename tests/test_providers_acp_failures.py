"""``provider = "acp"`` when things go wrong, with the scripted agent of ``tests/acp_agent.py``: a
crash, an agent that will not start, time out or speaks another protocol is one sentence; the
profile's env reaches the agent but never an error or the kernel's environment; its MCP servers
are given to the agent; bad settings in config.toml are one sentence; and no agent process
outlives a Stop during the handshake, the runtime or a killed kernel. Shared helpers:
``acp_support.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from acp.schema import AgentCapabilities, McpCapabilities
from acp_support import (
    AGENT,
    WAIT,
    alive,
    chat,
    fixture_folder,  # noqa: F401  (folder: a work folder)
    fixture_profile,  # noqa: F401  (profile: a profile factory)
    pid_of,
    wait_until,
)

import hermes_nb
from hermes_nb.core.config import load_config
from hermes_nb.core.exceptions import ConfigError
from hermes_nb.core.mcp_config import McpServer
from hermes_nb.providers.acp import agents
from hermes_nb.providers.acp._mcp_servers import mcp_servers

pytestmark = pytest.mark.usefixtures("agents_closed")


# -- failures ---------------------------------------------------------------------------------


def test_a_crash_mid_turn_is_one_sentence_and_the_next_turn_works(profile) -> None:
    p = profile()
    run = chat("crash", p)
    assert run.status == "error"
    assert run.text == "about to crash"  # what came before the crash stays
    assert run.error is not None
    message = run.error["message"]
    assert message == (
        f"The agent '{sys.executable} {AGENT}' exited with status 3 during the reply; its "
        "stderr ends: boom: the scripted agent crashed on purpose."
    )
    assert "Traceback" not in message
    assert chat("echo back again", p).text == "back again"


def test_the_profile_env_reaches_the_agent_but_no_error_shows_it(profile, monkeypatch) -> None:
    monkeypatch.setenv("HNB_KERNEL_ONLY", "from-the-kernel")
    p = profile(env={"HNB_TOKEN": "$HNB_KERNEL_ONLY-and-more"})
    assert chat("echo-env HNB_TOKEN", p).text == "from-the-kernel-and-more"
    first = pid_of()
    monkeypatch.setenv("HNB_KERNEL_ONLY", "changed-in-the-kernel")
    assert chat("echo-env HNB_TOKEN", p).text == "changed-in-the-kernel-and-more"
    assert pid_of() != first  # the agent's environment changed: a new process
    run = chat("leak HNB_TOKEN", p)
    assert run.status == "error"
    assert "changed-in-the-kernel" not in json.dumps(run.error)
    assert "***" in run.error["message"]  # type: ignore[index]


def test_the_profile_env_never_enters_the_kernels_environment(profile) -> None:
    """The agent gets the profile's env when it starts; the kernel's os.environ never holds it,
    not even while a turn runs (it would leak the agent's secrets to the notebook's code)."""
    p = profile(env={"HNB_AGENT_SECRET": "s3cret-for-the-agent"})
    run = hermes_nb.chat("hang", profile=p)
    wait_until(lambda: bool(run.text))  # mid-turn
    assert "HNB_AGENT_SECRET" not in os.environ
    run.cancel()
    run.wait(WAIT)
    assert chat("echo-env HNB_AGENT_SECRET", p).text == "s3cret-for-the-agent"
    assert "HNB_AGENT_SECRET" not in os.environ


def test_the_profiles_mcp_servers_are_given_to_the_agent(profile, monkeypatch) -> None:
    """The agent calls MCP servers itself: session/new carries the profile's enabled stdio
    servers (environment expanded now); an HTTP one only for an agent that takes HTTP servers."""
    monkeypatch.setenv("HNB_TZ", "Europe/Oslo")
    servers = {
        "time": McpServer("time", command=("uvx", "mcp-server-time"), env={"TZ": "$HNB_TZ"}),
        "off": McpServer("off", command=("never",), enabled=False),
        "remote": McpServer("remote", url="https://mcp.example.com/mcp"),
    }
    given = json.loads(chat("mcp", profile(mcp_servers=servers)).text)
    assert given == [
        {
            "name": "time",
            "command": "uvx",
            "args": ["mcp-server-time"],
            "env": [{"name": "TZ", "value": "Europe/Oslo"}],
        }
    ]
    # An agent that takes HTTP servers gets the remote one too, its header's secret read now.
    monkeypatch.setenv("HNB_MCP_TOKEN", "tok-123")
    remote = McpServer(
        "remote", url="https://mcp.example.com/mcp", headers={"X-Key": "${HNB_MCP_TOKEN}"}
    )
    takes_http = AgentCapabilities(mcp_capabilities=McpCapabilities(http=True))
    (http,) = mcp_servers({"remote": remote}, takes_http)
    assert (http.type, http.url, [(h.name, h.value) for h in http.headers]) == (
        "http",
        "https://mcp.example.com/mcp",
        [("X-Key", "tok-123")],
    )


def test_a_command_that_is_not_installed(profile) -> None:
    run = chat("echo hi", profile(command=("hermes", "acp"), env={"PATH": "/nonexistent"}))
    assert run.status == "error"
    assert run.error == {
        "kind": "config",
        "message": "The agent command 'hermes' is not installed (not found on PATH).",
        "hint": 'Install it (pipx install "hermes-agent[acp]"), or give the profile\'s command '
        "as a full path.",
        "status": None,
        "retry_after": None,
    }


def test_an_agent_that_exits_during_the_handshake(profile) -> None:
    run = chat("echo hi", profile("--exit-at-init", "5"))
    assert run.error is not None
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --exit-at-init 5' exited with status 5 during the "
        "handshake; its stderr ends: starting up | fatal: no configuration found."
    )


def test_a_slow_handshake_times_out(profile) -> None:
    started = time.monotonic()
    run = chat("echo hi", profile("--init-delay", "5", connect_timeout=0.5))
    assert time.monotonic() - started < 3
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.error["message"].startswith(
        f"The agent '{sys.executable} {AGENT} --init-delay 5' did not answer initialize within "
        "0.5 s"
    )


def test_a_session_that_never_starts_times_out(profile) -> None:
    run = chat("echo hi", profile("--session-delay", "5", connect_timeout=0.5))
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --session-delay 5' did not answer session/new "
        "within 0.5 s."
    )


def test_a_protocol_version_not_spoken(profile) -> None:
    run = chat("echo hi", profile("--protocol", "2"))
    assert run.error is not None
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --protocol 2' speaks ACP protocol version 2; "
        "hermes_nb speaks version 1."
    )


def test_authentication_required_names_the_methods(profile) -> None:
    run = chat("echo hi", profile("--auth-required"))
    assert run.error is not None
    assert run.error["kind"] == "auth"
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --auth-required' requires authentication; its "
        "methods: Log in with a browser (id login), Use an API key (id api-key)."
    )


# -- configuration ----------------------------------------------------------------------------


def test_config_command_as_a_list_or_a_shell_string(write_config) -> None:
    write_config(
        '[profiles.a]\ncommand = ["hermes", "acp"]\n'  # a command alone means acp
        '[profiles.b]\nprovider = "acp"\ncommand = "gemini --experimental-acp \'two words\'"\n'
        'cwd = "~/work"\n[profiles.b.env]\nGEMINI_API_KEY = "$MY_GEMINI_KEY"\n'
    )
    config = load_config()
    assert config.profile("a").command == ("hermes", "acp")
    assert config.profile("a").provider == "acp"
    assert config.profile("a").titles is False  # titling would be a whole agent turn
    assert config.profile("a").auto_compress is False  # the agent compacts its own context
    assert config.profile("a").connect_timeout == 60.0  # time for the agent to start
    b = config.profile("b")
    assert b.command == ("gemini", "--experimental-acp", "two words")
    assert b.cwd == "~/work"
    assert b.env == {"GEMINI_API_KEY": "$MY_GEMINI_KEY"}
    assert b.describe() == "b: acp agent \"gemini --experimental-acp 'two words'\""
    # The view's head names the agent where another profile names its model.
    assert config.profile("a").model == "hermes acp"
    assert b.model == "gemini --experimental-acp two words"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('provider = "acp"', "profiles.x.command is required for acp"),
        ('provider = "acp"\ncommand = []', "profiles.x.command is empty"),
        ('provider = "acp"\ncommand = "   "', "profiles.x.command is empty"),
        ('provider = "acp"\ncommand = [1]', "profiles.x.command must be a list of strings"),
        ('provider = "acp"\ncommand = "a \'b"', "cannot be split like a shell command line"),
        ('provider = "acp"\ncommand = "x"\ncwd = 3', "profiles.x.cwd must be a string"),
    ],
)
def test_config_bad_agent_settings_are_one_sentence(write_config, table, message) -> None:
    write_config(f"[profiles.x]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert message in str(caught.value)
    assert str(caught.value).count(". ") <= 1


def test_a_cwd_that_is_not_a_folder(profile, tmp_path) -> None:
    run = chat("echo hi", profile(cwd=str(tmp_path / "missing")))
    assert run.error is not None
    assert run.error["message"] == (
        f"The profile 'scripted' names cwd {str(tmp_path / 'missing')!r}, which is not a folder."
    )


# -- no orphans -------------------------------------------------------------------------------


def _recorded_pid(record: Path) -> int:
    wait_until(lambda: record.exists() and " pid " in record.read_text(), timeout=10)
    return int(record.read_text().split(" pid ", 1)[1].split()[0])


def test_stop_during_the_handshake_leaves_no_agent_behind(profile, folder) -> None:
    record = folder.parent / "record.txt"
    run = hermes_nb.chat("echo hi", profile=profile("--init-delay", "30", "--record", str(record)))
    pid = _recorded_pid(record)
    wait_until(lambda: "initialize" in record.read_text(), timeout=10)
    run.cancel()
    run.wait(WAIT)
    assert run.status == "stopped"
    wait_until(lambda: not alive(pid), timeout=5)
    assert agents() == []


def test_the_runtime_shutting_down_closes_its_agents(profile, folder) -> None:
    from hermes_nb.engine.runtime import Runtime
    from hermes_nb.engine.turn import TurnRequest

    record = folder.parent / "record.txt"
    runtime = Runtime()
    try:
        run = runtime.start(TurnRequest("echo up", profile("--record", str(record))))
        assert run.wait(WAIT).text == "up"
        pid = _recorded_pid(record)
        assert [a.pid for a in agents()] == [pid]
    finally:
        runtime.shutdown()
    wait_until(lambda: not alive(pid), timeout=5)
    assert agents() == []


_KERNEL = textwrap.dedent(
    """
    import sys, time
    import hermes_nb
    from hermes_nb.core.profiles import Profile
    from hermes_nb.providers.acp import agents
    p = Profile(name="k", provider="acp", command=(sys.executable, sys.argv[1]), cwd=sys.argv[2])
    run = hermes_nb.chat("echo up", profile=p).wait(20)
    assert run.text == "up", run.error
    print(agents()[0].pid, flush=True)
    time.sleep(60)
    """
)


def test_a_killed_kernel_leaves_no_agent_behind(folder) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _KERNEL, AGENT, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ) as kernel:
        try:
            assert kernel.stdout is not None
            pid = int(kernel.stdout.readline())
            assert alive(pid)
            kernel.send_signal(signal.SIGKILL)
            kernel.wait(10)
            wait_until(lambda: not alive(pid), timeout=5)
        finally:
            kernel.kill()
