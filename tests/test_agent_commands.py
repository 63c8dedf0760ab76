"""``%hermes agents`` lists the ACP agents a kernel keeps warm; ``%hermes agents restart`` and
``%unload_ext hermes_nb`` close them (the scripted agent of ``tests/acp_agent.py``, run by a
profile in config.toml, in a real IPython shell)."""

from __future__ import annotations

import json
import sys

import pytest
from acp_support import AGENT, alive, pid_of, wait_until
from IPython.core.error import UsageError

import hermes_nb
from hermes_nb.providers.acp import agents

pytestmark = pytest.mark.usefixtures("agents_closed")


@pytest.fixture
def scripted(write_config, tmp_path) -> None:
    command = json.dumps([sys.executable, AGENT])
    write_config(
        f'default_profile = "scripted"\n[profiles.scripted]\nprovider = "acp"\n'
        f'command = {command}\ncwd = "{tmp_path}"\n'
    )


def _turn(ip, capsys, text: str) -> str:
    ip.run_cell_magic("hermes", "--wait", text)
    return capsys.readouterr().out


def test_agents_lists_the_warm_agent_and_restart_closes_it(ip, capsys, scripted) -> None:
    assert "No ACP agent is running" in ip.run_line_magic("hermes", "agents").data
    assert "hello" in _turn(ip, capsys, "echo hello")
    pid = pid_of()
    table = ip.run_line_magic("hermes", "agents").data
    (row,) = [line for line in table.splitlines() if line.startswith("| scripted")]
    assert f"| {pid} |" in row and "acp_agent.py" in row and "| 1 |" in row

    ip.run_line_magic("hermes", "agents restart scripted")
    assert "closed the agent of scripted" in capsys.readouterr().out
    wait_until(lambda: not alive(pid), 5)
    assert agents() == []
    assert "again" in _turn(ip, capsys, "echo again")  # the next turn starts it again
    assert pid_of() != pid


def test_agents_restart_of_an_unknown_profile_is_one_sentence(ip, scripted) -> None:
    with pytest.raises(UsageError, match="No ACP agent of profile 'other' is running"):
        ip.run_line_magic("hermes", "agents restart other")
    with pytest.raises(UsageError, match="Usage: %hermes agents"):
        ip.run_line_magic("hermes", "agents stop")


def test_unloading_the_extension_closes_the_agents(ip, capsys, scripted) -> None:
    _turn(ip, capsys, "echo hi")
    pid = pid_of()
    hermes_nb.unload_ipython_extension(ip)
    try:
        wait_until(lambda: not alive(pid), 5)
    finally:
        hermes_nb.load_ipython_extension(ip)
