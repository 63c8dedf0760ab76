"""An ACP agent behind the chat view, in JupyterLab: its permission request is an approval card
whose buttons are the agent's own options, answered by a click, and a file edit it reports
shows as a diff in its tool block.

The agent is ``tests/acp_agent.py`` (a scripted agent speaking raw ACP over stdio), started by
the kernel from a profile with ``provider = "acp"``; ``tests/test_providers_acp*.py`` cover
the provider itself, with that agent and with the real ``hermes acp``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from chat_dom import ChatView
from test_prompts_view import card, open_card

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

AGENT = Path(__file__).resolve().parents[1] / "acp_agent.py"


@pytest.fixture
def acp_profile(hermes_config) -> None:
    command = json.dumps([sys.executable, str(AGENT)])
    hermes_config(
        f'default_profile = "agent"\n[profiles.agent]\nprovider = "acp"\ncommand = {command}\n'
    )


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_an_acp_permission_card_is_answered_by_a_click(ui, acp_profile, open_notebook, screenshot):
    nb = open_notebook(["%load_ext hermes_nb", "%%hermes\npermit rm -rf build"])
    nb.run(0)
    chat = ChatView(nb, 1)
    chat.watch()
    nb.run(1)

    view = open_card(chat, "the agent's permission card")
    [ask] = view["asks"]
    assert ask["kind"] == "approval"
    assert ask["buttons"] == ["Allow", "For this session", "Always allow", "Reject"]  # the agent's
    assert "Run a shell command" in ask["text"]
    assert "rm -rf build" in card(chat).locator("pre.hnb-ask-detail").inner_text()
    screenshot(f"acp-permission-open-{ui}", nb.cell(1))

    card(chat).get_by_role("button", name="Allow", exact=True).click()
    final = chat.wait_settled(timeout=60_000, static=True)
    assert final["state"] == "done"
    assert final["asks"][0]["decision"] == "Allow — by you"
    assert "option yes: ran" in final["reply"]  # the agent's allow_once option
    screenshot(f"acp-permission-decided-{ui}", nb.cell(1))


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_a_file_edit_shows_as_a_diff_in_its_tool_block(ui, acp_profile, open_notebook, screenshot):
    nb = open_notebook(["%load_ext hermes_nb", "%%hermes\ntool-diff notes.txt"])
    nb.run(0)
    nb.run(1)
    chat = ChatView(nb, 1)
    final = chat.wait_settled(timeout=60_000, static=True)
    assert final["state"] == "done" and "Edited." in final["reply"]
    tool = chat.root.locator(".hnb-tool")
    assert tool.locator(".hnb-tool-name").inner_text().strip() == "Edit notes.txt"
    tool.locator("summary").click()
    shown = tool.locator(".hnb-tool-result").inner_text().splitlines()
    assert "-two" in shown and "+2" in shown, shown
    assert any(line.startswith("--- ") for line in shown), shown
    screenshot(f"acp-diff-{ui}", nb.cell(1))
