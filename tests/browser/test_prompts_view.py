"""The run's prompts in a real browser: approval and question cards answered in the page, a
reload while a card waits, Stop while waiting, the cards in light and dark themes, and a tool
loop's conversation (text, tool call, text) — in JupyterLab, and the card scenarios also in
Notebook 7.

The offline echo model is scripted to call tools: ``ask_user`` becomes a question card, a
notebook function declared ``@hermes_nb.tool(ask=True)`` an approval card. Every assertion reads
the DOM (``chat_dom.ChatView``); what the kernel recorded is printed by a later cell.

These scenarios run on the project venv's kernel only (not on ``EXTRA_KERNELS``): the card is
answered while no other cell runs, so kernel subshells play no part, and the kernel-level test
(``tests/test_widget_kernel.py``) already covers an answer on ipykernel 6.x, queued behind a
blocking cell.
"""

from __future__ import annotations

import json
import re

import pytest
from chat_dom import CANCEL_NOTICE, ChatView, set_theme
from jupyter_harness import NotebookPage
from sse_server import Reply, content, finish, tool_call

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

BOTH_UIS = pytest.mark.parametrize(
    ("ui", "kernel"),
    [pytest.param("lab", None, id="lab"), pytest.param("notebook7", None, id="notebook7")],
    indirect=True,
)
STDOUT = "application/vnd.jupyter.stdout"

# Cell 0 of every card notebook: a tool that needs the person's approval before each call.
SETUP = """\
import json
import hermes_nb

deleted = []

@hermes_nb.tool(ask=True)
def delete(path: str) -> str:
    "Delete a file (this one only records the call)."
    deleted.append(path)
    return f"deleted {path}"
"""
APPROVAL = (
    "run = hermes_nb.chat('Tidy up /tmp', profile='echo', delay=0.01, tools=[delete],"
    " tool_calls=[{'name': 'delete', 'arguments': {'path': '/tmp/x'}}])\nrun"
)
QUESTION = (
    "run = hermes_nb.chat('Pick a colour', profile='echo', delay=0.01, tools=['ask_user'],"
    " tool_calls=[{'name': 'ask_user', 'arguments': {'question': 'Which colour?',"
    " 'choices': ['red', 'blue']}}])\nrun"
)
RECORD = (
    "print(json.dumps([deleted, [(p['value'], p['by']) for p in run.wait(60).prompt_record()]]))"
)
APPROVAL_BUTTONS = ["Allow once", "Allow for this session", "Always allow", "Deny"]


def open_card(chat: ChatView, what: str = "an open card") -> dict:
    """Wait until the view waits for the person with one open card; the view."""
    return chat.wait(
        "v.state === 'waiting' && v.asks.length === 1 && v.asks[0].state === 'open'"
        " && v.asks[0].countdown !== ''",
        30_000,
        what,
    )


def card(chat: ChatView):
    return chat.root.locator(".hnb-ask").first


def recorded(nb: NotebookPage, index: int) -> list:
    nb.run(index, timeout=60_000)
    return json.loads(nb.output(index, STDOUT).inner_text())


def cell_count(nb: NotebookPage) -> int:
    return nb.cell_count()


# -- 1. an approval ---------------------------------------------------------------------------


@BOTH_UIS
def test_click_allow_once(ui, kernel, open_notebook, page, screenshot):
    nb = open_notebook([SETUP, APPROVAL, RECORD])
    chat = ChatView(nb, 1)
    nb.run(0)
    chat.watch()
    nb.run(1)

    view = open_card(chat, "the approval card, open")
    [ask] = view["asks"]
    assert ask["kind"] == "approval"
    assert ask["buttons"] == APPROVAL_BUTTONS
    assert "Allow the tool delete to run?" in ask["text"]
    assert re.fullmatch(r"\d:\d\d left to answer", ask["countdown"]), ask["countdown"]
    detail = card(chat).locator("pre.hnb-ask-detail code")
    assert detail.inner_text() == "delete(path='/tmp/x')"
    assert "Waiting for you" in view["status"]
    assert view["stop_visible"], "Stop is offered while the run waits"
    group = card(chat)
    assert group.get_attribute("role") == "group"
    label = group.get_attribute("aria-labelledby")
    assert chat.root.locator(f"#{label}").inner_text() == "Allow the tool delete to run?"
    screenshot(f"p1-approval-open-{ui}", nb.cell(1))

    # The countdown ticks in the page (the kernel sends no frame for it).
    first = ask["countdown"]
    chat.wait(f"v.asks[0].countdown !== {json.dumps(first)}", 5_000, "the countdown ticking")

    # Record what the card shows right after the click, before the decision replaces it.
    group.evaluate(
        """(card) => {
            window.__hnb_sending = null;
            new MutationObserver(() => {
                if (card.dataset.sending === 'true' && window.__hnb_sending === null) {
                    window.__hnb_sending = {
                        disabled: [...card.querySelectorAll('button')].every((b) => b.disabled),
                        text: card.querySelector('.hnb-ask-decision').textContent,
                    };
                }
            }).observe(card, {attributes: true, subtree: true, characterData: true});
        }"""
    )
    group.get_by_role("button", name="Allow once").click()
    decided = chat.wait(
        "v.asks.length === 1 && v.asks[0].state === 'decided'", 15_000, "the decided card"
    )
    assert decided["asks"][0]["decision"] == "Allowed once — by you"
    assert decided["asks"][0]["buttons"] == [] and decided["asks"][0]["inputs"] == 0
    sending = page.evaluate("() => window.__hnb_sending")
    assert sending == {"disabled": True, "text": "Sending…"}, sending
    static = chat.wait_settled(static=True)
    assert static["state"] == "done"
    [ask] = static["asks"]
    assert ask["state"] == "decided" and ask["decision"] == "Allowed once — by you"
    assert ask["buttons"] == []
    assert "deleted /tmp/x" in static["reply"]
    assert recorded(nb, 2) == [["/tmp/x"], [["once", "view"]]]
    screenshot(f"p1-approval-decided-{ui}", nb.cell(1))


# -- 2. a question, answered by typing ----------------------------------------------------------


@BOTH_UIS
def test_answer_a_question_by_typing_and_enter(ui, kernel, open_notebook, page, screenshot):
    nb = open_notebook([SETUP, QUESTION, RECORD])
    chat = ChatView(nb, 1)
    nb.run(0)
    nb.run(1)
    view = open_card(chat, "the question card, open")
    [ask] = view["asks"]
    assert ask["kind"] == "question" and ask["buttons"] == ["red", "blue", "Send"]
    assert ask["inputs"] == 1
    cells = cell_count(nb)

    field = card(chat).get_by_role("textbox", name="Your answer")
    field.click()
    page.keyboard.press("Enter")  # empty: nothing is sent
    assert field.get_attribute("aria-invalid") == "true"
    assert chat.view()["asks"][0]["state"] == "open"
    assert not chat.view()["asks"][0]["sending"]
    # Typed on the keyboard; letters that are notebook shortcuts (a, b, d d, m) stay in the field.
    page.keyboard.type("a bold dd mauve")
    assert field.input_value() == "a bold dd mauve"
    assert cell_count(nb) == cells, "typing in the card ran notebook shortcuts"
    page.keyboard.press("Enter")
    decided = chat.wait(
        "v.asks.length === 1 && v.asks[0].state === 'decided'", 15_000, "the answered card"
    )
    assert decided["asks"][0]["decision"] == "Answered “a bold dd mauve” — by you"
    static = chat.wait_settled(static=True)
    assert "a bold dd mauve" in static["reply"]  # the model got it as the tool's result
    assert cell_count(nb) == cells
    assert recorded(nb, 2) == [[], [["a bold dd mauve", "view"]]]
    screenshot(f"p2-question-answered-{ui}", nb.cell(1))


# -- 3. reload while waiting ----------------------------------------------------------------------


@BOTH_UIS
def test_reload_while_waiting_then_answer_from_the_reloaded_page(
    ui, kernel, open_notebook, screenshot
):
    nb = open_notebook([SETUP, QUESTION, RECORD])
    chat = ChatView(nb, 1)
    nb.run(0)
    nb.run(1)
    open_card(chat, "the question card before the reload")
    nb.save()
    nb.reload()
    view = open_card(chat, "the question card after the reload")
    assert len(chat.views()) == 1 and len(view["asks"]) == 1, "the card is shown exactly once"
    card(chat).get_by_role("button", name="blue").click()
    decided = chat.wait(
        "v.asks.length === 1 && v.asks[0].state === 'decided' && v.state === 'done'",
        30_000,
        "the decided card and the finished run after the reload",
    )
    assert decided["asks"][0]["decision"] == "Answered “blue” — by you"
    assert "blue" in decided["reply"]
    assert recorded(nb, 2) == [[], [["blue", "view"]]]
    assert len(chat.view()["asks"]) == 1
    screenshot(f"p3-reloaded-answered-{ui}", nb.cell(1))


# -- 4. Stop while waiting ------------------------------------------------------------------------


@BOTH_UIS
def test_stop_while_waiting(ui, kernel, open_notebook, screenshot):
    nb = open_notebook([SETUP, APPROVAL, RECORD])
    chat = ChatView(nb, 1)
    nb.run(0)
    nb.run(1)
    open_card(chat, "the approval card, open")
    chat.root.locator(".hnb-stop").click()
    stopped = chat.wait("v.state === 'stopped'", 10_000, "data-state=stopped after Stop")
    [ask] = stopped["asks"]
    assert ask["state"] == "decided"
    assert ask["decision"] == "Denied — the run was stopped"
    assert any(CANCEL_NOTICE in n for n in stopped["notices"]), stopped["notices"]
    static = chat.wait_settled(static=True)
    assert static["asks"][0]["decision"] == "Denied — the run was stopped"
    assert recorded(nb, 2) == [[], [["deny", "stop"]]]
    screenshot(f"p4-stopped-while-waiting-{ui}", nb.cell(1))


# -- 5. the cards in light and dark themes ------------------------------------------------------


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_cards_in_light_and_dark_themes(ui, open_notebook, page, screenshot):
    nb = open_notebook([SETUP, APPROVAL, QUESTION.replace("run =", "q =").replace("\nrun", "\nq")])
    approval, question = ChatView(nb, 1), ChatView(nb, 2)
    nb.run(0)
    nb.run(1)
    nb.run(2)
    open_card(approval)
    open_card(question)
    # Keyboard: Tab from the question's field reaches Send, with a visible focus ring.
    card(question).get_by_role("textbox", name="Your answer").focus()
    page.keyboard.type("teal")
    page.keyboard.press("Tab")
    send = card(question).get_by_role("button", name="Send")
    assert send.evaluate("(b) => b === document.activeElement")
    ring = send.evaluate("(b) => getComputedStyle(b).outlineStyle")
    assert ring != "none", "the focused button shows a focus ring"

    def shoot(name: str) -> None:
        shots.append(screenshot(f"{name}-approval", nb.cell(1)))
        shots.append(screenshot(f"{name}-question", nb.cell(2)))

    shots: list = []
    shoot("p5-cards-light")
    try:
        set_theme(page, "JupyterLab Dark")
        shoot("p5-cards-dark")
        card(approval).get_by_role("button", name="Deny").click()
        send.click()
        approval.wait("v.asks[0].state === 'decided'", 15_000, "the approval decided")
        question.wait("v.asks[0].state === 'decided'", 15_000, "the question decided")
        approval.wait_settled(static=True)
        question.wait_settled(static=True)
        assert approval.view()["asks"][0]["decision"] == "Denied — by you"
        assert question.view()["asks"][0]["decision"] == "Answered “teal” — by you"
        shoot("p5-cards-decided-dark")
    finally:
        set_theme(page, "JupyterLab Light")
    shoot("p5-cards-decided-light")
    assert all(p.exists() for p in shots)


# -- 6. a tool loop: text, tool call, text --------------------------------------------------------


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_a_tool_loop_reads_as_one_conversation_and_settles(
    ui, open_notebook, hermes_config, sse_server, screenshot
):
    sse_server.enqueue(
        Reply(
            chunks=[
                content("Let me look that "),
                content("up for you."),
                tool_call(0, id="call_w", name="weather", arguments='{"city": '),
                tool_call(0, arguments='"Oslo"}'),
                finish("tool_calls"),
            ],
            chunk_delay=0.15,
        ),
        Reply.text("It is sunny ", "in Oslo ", "today.", chunk_delay=0.15),
    )
    hermes_config(
        "\n".join(
            [
                'default_profile = "stub"',
                "[profiles.stub]",
                'provider = "openai"',
                f"base_url = {json.dumps(sse_server.url)}",
                'model = "test-model"',
            ]
        )
    )
    nb = open_notebook(
        [
            "import time\nimport hermes_nb\n\n"
            "def weather(city: str) -> str:\n"
            '    "The weather in a city."\n'
            "    time.sleep(0.5)\n"
            '    return f"Sunny in {city}, 21 °C"',
            "run = hermes_nb.chat('Weather in Oslo?', tools=[weather])\nrun",
        ]
    )
    chat = ChatView(nb, 1)
    nb.run(0)
    chat.watch()
    nb.run(1)

    running = chat.wait(
        "v.tools.length === 1 && v.tools[0].includes('running')",
        30_000,
        "the tool call shown running",
    )
    assert running["flow"][0][0] == ["reply", "Let me look that up for you."]
    final = chat.wait_settled(static=True)
    assert final["state"] == "done"
    kinds = [[kind for kind, _ in segment] for segment in final["flow"]]
    assert kinds == [["reply", "tool"], ["reply"]], final["flow"]
    first, second = final["flow"]
    assert first[0][1] == "Let me look that up for you."
    assert second[0][1] == "It is sunny in Oslo today."
    tool = chat.root.locator(".hnb-tool")
    assert tool.locator(".hnb-tool-name").inner_text() == "weather"
    assert re.fullmatch(r"done · \d+ ms", tool.locator(".hnb-tool-meta").inner_text())
    tool.locator("summary").click()
    assert json.loads(tool.locator(".hnb-tool-args").inner_text()) == {"city": "Oslo"}
    assert tool.locator(".hnb-tool-result").inner_text() == "Sunny in Oslo, 21 °C"
    history = chat.history()
    assert any(e["state"] == "streaming" and not e["static"] for e in history)
    screenshot("p6-tool-loop-lab", nb.cell(1))
