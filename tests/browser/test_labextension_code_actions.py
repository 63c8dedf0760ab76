"""hermes_nb's front-end extension (``labextension/``), in JupyterLab and Notebook 7: Insert
below and the Copy / Insert below buttons on code blocks.

* Insert below: the chat view asks with a DOM event from inside a cell's output
  (``hermes-nb:insert-cell``, detail ``{code}``; ``hermes-nb:probe`` to ask whether it would be
  handled) and the command ``hermes-nb:insert-cell-below`` does the same: a code cell below,
  exactly that code, the active cell, not run.
* The extension registers the chat view on the page (``hermes-nb:chat-view``), and the widget's
  loader renders with it: no run sends the view's code (``test_view_without_extension.py`` is
  the page without it).
* A settled run's static output gets Copy and Insert below on its code blocks; so do the code
  blocks of the live chat view (``labextension/src/view/``), Copy only where the extension is
  absent; a block fenced as ``text`` (a DataFrame's summary put in the prompt) gets neither.

Display ids across a reload are in ``test_labextension_display_ids.py``; the shared checks in
``labextension_dom.py``. The extension must be installed in the environment the server runs from
(``./dev`` links ``labextension/build`` into the venv); these tests fail, not skip, when it is
not active.
"""

from __future__ import annotations

from typing import Any

import nbformat
import pytest
from chat_dom import ChatView, code_requests, set_theme
from jupyter_harness import NotebookPage, poll
from labextension_dom import (
    BOTH_UIS,
    CODE,
    assert_active,
    assert_inserted_below,
    cells,
    dispatch,
    rewrite_and_reload,
    source,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


LIVE_STATES = ("queued", "streaming", "waiting")


# -- Insert below ----------------------------------------------------------------------------


@BOTH_UIS
def test_insert_event_from_an_output_adds_the_cell_below(ui, open_notebook, screenshot):
    nb = open_notebook(
        [
            "from IPython.display import HTML\nHTML('<div class=\"hnb-probe\">probe</div>')",
            "print('after')",
        ]
    )
    assert_active(nb)
    nb.run(0)
    nb.cell(0).locator(".hnb-probe").wait_for()

    # Not from an editor, not without a string: the view would then offer Copy only.
    assert not dispatch(nb, 0, ".cm-content", "hermes-nb:probe")
    assert not dispatch(nb, 0, ".cm-content", "hermes-nb:insert-cell", {"code": "x = 1"})
    assert not dispatch(nb, 0, ".hnb-probe", "hermes-nb:insert-cell", {})
    assert not dispatch(nb, 0, ".hnb-probe", "hermes-nb:insert-cell", {"code": 42})
    assert len(cells(nb)) == 2

    assert dispatch(nb, 0, ".hnb-probe", "hermes-nb:probe")
    assert dispatch(nb, 0, ".hnb-probe", "hermes-nb:insert-cell", {"code": CODE})
    assert_inserted_below(nb, 0, CODE, before=2)
    assert source(nb, 2) == "print('after')"
    assert nb.execution_count(1) is None
    screenshot(f"ext-insert-below-{ui}", nb.panel)

    # The new cell is selected in command mode with the notebook focused: Shift+Enter runs it.
    nb.page.keyboard.press("Shift+Enter")
    nb.wait_cell_done(1)
    assert "yes 3.14159" in nb.output_text(1)


@BOTH_UIS
def test_insert_command_adds_the_cell_below(ui, open_notebook):
    nb = open_notebook(["a = 1", "b = 2"])
    assert_active(nb)
    cell_id = nb._eval("p => p.content.widgets[0].model.id")
    done = nb._eval(
        """(p, a) => window.jupyterapp.commands.execute(
            'hermes-nb:insert-cell-below', {code: a[0], cellId: a[1]})""",
        [CODE, cell_id],
    )
    assert done is True
    assert_inserted_below(nb, 0, CODE, before=2)
    assert source(nb, 2) == "b = 2"


# -- code actions on a settled (static) output -----------------------------------------------

STATIC_HTML = (
    '<div class="hnb-chat hnb-static" data-state="done"><div class="hnb-flow">'
    '<div class="hnb-seg" data-seg="0"><div class="hnb-reply jp-RenderedHTMLCommon">'
    '<div class="hnb-block" data-block="reply:0"><p>Like this:</p>\n'
    '<pre><code class="language-python">squares = [n * n for n in range(4)]\n'
    "print(squares)\n</code></pre>\n<p>Done.</p></div></div></div></div></div>"
)
STATIC_CODE = "squares = [n * n for n in range(4)]\nprint(squares)"


@BOTH_UIS
def test_static_output_code_blocks_get_copy_and_insert(ui, open_notebook, server, page):
    nb = open_notebook(["%hermes (a settled answer)", "1 + 1"])

    def settled_output(notebook: Any) -> None:
        notebook.cells[0].outputs = [
            nbformat.v4.new_output(
                "display_data",
                data={"text/html": STATIC_HTML, "text/plain": "Hermes: Like this: …"},
                metadata={"hermes_nb": {"status": "done"}},
            )
        ]

    rewrite_and_reload(nb, server, settled_output)
    assert_active(nb)
    reply = nb.cell(0).locator(".hnb-static .hnb-reply")
    copy = reply.locator("button.hnb-ext-action[data-action=copy]")
    insert = reply.locator("button.hnb-ext-action[data-action=insert]")
    copy.wait_for()
    assert insert.count() == 1
    # The labels come from CSS: the reply's text is still the reply alone.
    shown = " ".join(reply.inner_text().split())
    assert shown == "Like this: squares = [n * n for n in range(4)] print(squares) Done."

    page.evaluate(
        """() => document.addEventListener('copy', (e) => {
            window.__hnb_copied = e.clipboardData.getData('text/plain');
        })"""
    )
    copy.click()
    assert poll(lambda: page.evaluate("() => window.__hnb_copied"), 5) == STATIC_CODE

    insert.click()
    assert_inserted_below(nb, 0, STATIC_CODE, before=2)
    assert source(nb, 2) == "1 + 1"


# -- code actions in the live view -------------------------------------------------------------

# A reply whose first code block is CODE (every character that could be mangled), a second block
# without a language, then a long tail that keeps the run streaming while the test acts.
PLAIN_CODE = "$ git merge --no-ff feature\n  (indented output)"
TAIL = " ".join(f"tail{i:03d}" for i in range(400))
LIVE_REPLY = (
    f"Like this:\n\n```python\n{CODE}\n```\n\nand then:\n\n```\n{PLAIN_CODE}\n```\n\n{TAIL}\n"
)
LIVE_RUN = (
    "import hermes_nb\n"
    f"run = hermes_nb.chat('code please', reply={LIVE_REPLY!r}, delay=0.02, chunk_size=4)\nrun"
)

# The live view's code blocks: per <pre>, the bar before it and its buttons (their labels and
# accessible names), and the reply's text as a person or a screen reader reads it.
_LIVE_CODE_JS = """
(cell) => {
  const root = cell.querySelector('.hnb-chat:not(.hnb-static)');
  if (!root) { return null; }
  const reply = root.querySelector('.hnb-reply');
  const pres = [...root.querySelectorAll('.hnb-reply pre')];
  return {
    state: root.dataset.state,
    bars: root.querySelectorAll('.hnb-code-actions').length,
    blocks: pres.map((pre) => {
      const bar = pre.previousElementSibling;
      const ok = !!bar && bar.classList.contains('hnb-code-actions');
      const buttons = ok ? [...bar.querySelectorAll('button')] : [];
      return {
        code: pre.textContent,
        actions: buttons.map((b) => b.dataset.action),
        names: buttons.map((b) => b.getAttribute('aria-label')),
        labels: buttons.map((b) => getComputedStyle(b, '::before').content),
      };
    }),
    text: reply ? reply.innerText : '',
  };
}
"""


def live_code(nb: NotebookPage, index: int) -> dict[str, Any] | None:
    return nb.page.evaluate(
        f"(path) => ({_LIVE_CODE_JS})(window.__hnb_panel(path).content.widgets[{index}].node)",
        nb.path,
    )


def wait_live_code(nb: NotebookPage, index: int, blocks: int = 2) -> dict[str, Any]:
    """The live view, still streaming, with ``blocks`` finished code blocks shown."""

    def ready() -> dict[str, Any] | None:
        shown = live_code(nb, index)
        ok = shown and shown["state"] == "streaming" and len(shown["blocks"]) >= blocks
        return shown if ok and "tail001" in shown["text"] else None

    shown = poll(ready, 30)
    assert shown, f"no streaming view with {blocks} code blocks: {live_code(nb, index)}"
    return shown


def record_copies(page: Any) -> None:
    """Record what a copy event puts on the clipboard (the fallback path writes it there)."""
    page.evaluate(
        """() => {
            window.__hnb_copies = [];
            if (!window.__hnb_copy_hooked) {
                window.__hnb_copy_hooked = true;
                document.addEventListener('copy', (e) => {
                    window.__hnb_copies.push(e.clipboardData.getData('text/plain'));
                });
            }
        }"""
    )


@BOTH_UIS
def test_live_view_code_blocks_copy_and_insert_exactly_their_code(
    ui, open_notebook, page, screenshot
):
    nb = open_notebook([LIVE_RUN, "print('after')"])
    assert_active(nb)
    nb.run(0)
    shown = wait_live_code(nb, 0)
    assert [b["code"] for b in shown["blocks"][:2]] == [CODE + "\n", PLAIN_CODE + "\n"]
    for block in shown["blocks"]:
        assert block["actions"] == ["copy", "insert"], shown
        assert block["names"] == ["Copy code", "Insert code in a new cell below"]
        assert block["labels"] == ['"Copy"', '"Insert below"'], "labels from CSS, not text"
    assert shown["bars"] == len(shown["blocks"]), "one bar per code block, never two"
    assert "Copy" not in shown["text"] and "Insert below" not in shown["text"]
    screenshot(f"live-code-actions-{ui}", nb.cell(0))

    bars = nb.cell(0).locator(".hnb-chat:not(.hnb-static) .hnb-code-actions")
    # Copy, through the Clipboard API where the page may use it …
    context = page.context
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    try:
        bars.nth(0).get_by_role("button", name="Copy code").click()
        copied = poll(lambda: page.evaluate("() => navigator.clipboard.readText()") == CODE, 5)
        assert copied, page.evaluate("() => navigator.clipboard.readText()")
    finally:
        context.clear_permissions()
    # … and through the copy event where it may not (no permission, an insecure origin).
    page.evaluate(
        "() => { navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); }"
    )
    record_copies(page)
    bars.nth(1).get_by_role("button", name="Copy code").click()
    assert poll(lambda: page.evaluate("() => window.__hnb_copies"), 5) == [PLAIN_CODE]
    assert bars.nth(1).locator("[data-action=copy]").get_attribute("data-done") == "1"

    # Keyboard: Tab reaches the buttons; Enter copies, and the notebook does nothing with it.
    record_copies(page)
    bars.nth(0).get_by_role("button", name="Copy code").focus()
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.getAttribute('aria-label')")
    assert focused == "Insert code in a new cell below"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    assert poll(lambda: page.evaluate("() => window.__hnb_copies"), 5) == [CODE]
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert ring != "none", "the focused button shows a focus ring"
    assert nb._eval("p => p.content.mode") == "command" and len(cells(nb)) == 2

    # Insert below, from the live view while it streams.
    assert live_code(nb, 0)["state"] == "streaming", "the run settled; make the tail longer"
    bars.nth(0).get_by_role("button", name="Insert code in a new cell below").click()
    assert_inserted_below(nb, 0, CODE, before=2)
    assert source(nb, 2) == "print('after')"
    assert nb.execution_count(1) is None

    # The reply's text is the reply alone, and the settled output gets the extension's buttons.
    chat = ChatView(nb, 0)
    final = chat.wait_settled(timeout=60_000, static=True)
    assert "Copy" not in final["reply"] and "tail399" in final["reply"]
    static = nb.cell(0).locator(".hnb-static .hnb-reply")
    static.locator("button.hnb-ext-action[data-action=copy]").first.wait_for()
    assert static.locator(".hnb-code-actions").count() == 0, "the kernel's HTML has no buttons"


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_live_view_offers_copy_only_without_the_extension(ui, open_notebook, page, screenshot):
    # VS Code, Colab, classic Notebook: no data-hermes-nb-extension on <body>.
    nb = open_notebook([LIVE_RUN])
    assert_active(nb)
    page.evaluate("() => { delete document.body.dataset.hermesNbExtension; }")
    nb.run(0)
    shown = wait_live_code(nb, 0)
    assert [b["actions"] for b in shown["blocks"]] == [["copy"]] * len(shown["blocks"])
    page.evaluate(
        "() => { navigator.clipboard.writeText = () => Promise.reject(new Error('denied')); }"
    )
    record_copies(page)
    nb.cell(0).locator(".hnb-code-actions").nth(0).get_by_role("button", name="Copy code").click()
    assert poll(lambda: page.evaluate("() => window.__hnb_copies"), 5) == [CODE]
    screenshot(f"live-code-copy-only-{ui}", nb.cell(0))


DATA_CELL = "import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo', 'Rome'], 'temp': [4, 18]})"
# The DataFrame's summary goes into the prompt as a ``text`` fence; the echo model repeats it.
# Words after the code keep the run streaming while the test reads the live view (it draws
# three times a second).
DATA_PROMPT = (
    "%%hermes -o delay=0.1\nWhat is in {df}?\n\n```python\ndf.describe()\n```\n\n"
    + "Then a few more words, so that the reply goes on streaming for a while. " * 3
)

# Per <pre> of cell 2's live or static view: "python" / "text", and the buttons before it.
_PRE_ACTIONS_JS = """
([path, root]) => {
  const cell = window.__hnb_panel(path).content.widgets[2].node;
  return [...cell.querySelectorAll(root + ' .hnb-reply pre')].map((pre) => {
    const bar = pre.previousElementSibling;
    const ours = !!bar && /hnb-(code|ext)-actions/.test(bar.className);
    const text = !!pre.querySelector(':scope > code.language-text');
    return [text ? 'text' : 'python', ours ? [...bar.querySelectorAll('button')]
      .map((b) => b.dataset.action) : [], pre.textContent];
  });
}
"""


def pre_actions(nb: NotebookPage, root: str) -> dict[str, list[str]]:
    """{"python": its buttons, "text": its buttons} once both blocks are complete, else {}."""
    shown = nb.page.evaluate(_PRE_ACTIONS_JS, [nb.path, root])
    done = len(shown) == 2 and "df.describe()" in shown[-1][2]
    return {kind: actions for kind, actions, _ in shown} if done else {}


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_a_data_block_is_not_code_no_copy_or_insert_on_it(ui, open_notebook, page, screenshot):
    """Issue 26: a DataFrame's summary interpolated into a prompt is data, not code: neither the
    live view nor the settled output offers Copy / Insert below on it; a Python block still
    gets both. And the view comes from the extension: the page never asks for its code."""
    requests = code_requests(page)
    nb = open_notebook([DATA_CELL, "%load_ext hermes_nb", DATA_PROMPT])
    assert_active(nb)
    nb.run(0)
    nb.run(1)
    nb.run(2)
    live = poll(lambda: pre_actions(nb, ".hnb-chat:not(.hnb-static)"), 30)
    assert ChatView(nb, 2).view()["state"] in LIVE_STATES, "settled before it was read live"
    assert live == {"python": ["copy", "insert"], "text": []}, live
    ChatView(nb, 2).wait_settled(static=True)
    settled = poll(lambda: (got := pre_actions(nb, ".hnb-static")) and got["python"] and got, 15)
    assert settled == {"python": ["copy", "insert"], "text": []}, settled
    assert requests == [], "a page with the extension asked the kernel for the view's code"
    screenshot("data-block-no-code-actions", nb.cell(2))


@pytest.mark.parametrize("ui", ["lab"], indirect=True)
def test_live_view_code_actions_in_light_and_dark_themes(ui, open_notebook, page, screenshot):
    nb = open_notebook([LIVE_RUN])
    nb.run(0)
    wait_live_code(nb, 0)
    button = nb.cell(0).locator(".hnb-code-action[data-action=copy]").first
    colours = "(b) => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
    light = button.evaluate(colours)
    screenshot("live-code-actions-light", nb.cell(0))
    try:
        set_theme(page, "JupyterLab Dark")
        dark = button.evaluate(colours)
        screenshot("live-code-actions-dark", nb.cell(0))
    finally:
        set_theme(page, "JupyterLab Light")
    assert light != dark, "the buttons follow the theme"
