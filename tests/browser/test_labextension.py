"""hermes_nb's front-end extension (``labextension/``) in JupyterLab and Notebook 7.

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
* A reloaded page keeps hermes_nb outputs attached to their display ids: an output restored
  from the file whose metadata carries ``hermes_nb.display_id`` is replaced by a kernel's
  ``update_display_data`` for that id, which JupyterLab alone drops. The kernel writes that id
  into every live view's output; a reload mid-reply then settles into the static answer, and a
  notebook reopened after the run settled without it (the tab was closed) gets it too.

The extension must be installed in the environment the server runs from (``./dev`` links
``labextension/build`` into the venv); these tests fail, not skip, when it is not active.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import nbformat
import pytest
from chat_dom import ChatView, code_requests, set_theme, words
from jupyter_harness import NotebookPage, poll
from nbformat.sign import NotebookNotary

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

BOTH_UIS = pytest.mark.parametrize("ui", ["lab", "notebook7"], indirect=True)

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
LIVE_STATES = ("queued", "streaming", "waiting")
PLUGINS = [
    "hermes-nb:chat-view",
    "hermes-nb:insert-cell",
    "hermes-nb:display-ids",
    "hermes-nb:static-code-actions",
]

# Code with everything that could be mangled on the way: quotes, backslashes, braces, tabs,
# a blank line, trailing spaces, non-ASCII, no final newline.
CODE = (
    "import math\n"
    "\n"
    "def f(x):\n"
    "\treturn \"yes\" if x else 'no'  # {braces} \\ back-slash  \n"
    'print(f(1), math.pi, "→ é")'
)

# Who answered: the extension's state, read once the page is up.
_ACTIVE_JS = """
(plugins) => {
  const app = window.jupyterapp;
  return {
    contract: document.body.dataset.hermesNbExtension || null,
    view: (window.__hermes_nb_view__ || {}).version || null,
    command: app.commands.hasCommand('hermes-nb:insert-cell-below'),
    plugins: plugins.filter((id) => app.isPluginActivated(id)),
  };
}
"""

# Dispatch a hermes-nb event from the first node matching `selector` inside cell `index`;
# true if the extension handled it (called preventDefault), as the view would see it.
_DISPATCH_JS = """
([path, index, selector, type, detail]) => {
  const cell = window.__hnb_panel(path).content.widgets[index].node;
  const target = cell.querySelector(selector);
  if (!target) { throw new Error('no ' + selector + ' in cell ' + index); }
  const event = new CustomEvent(type, {bubbles: true, cancelable: true, detail});
  return !target.dispatchEvent(event);
}
"""

# Every cell as the DOM shows it: editor text, active, prompt, how many outputs.
_CELLS_JS = """
(path) => [...window.__hnb_panel(path).content.node.querySelectorAll('.jp-Cell')].map((c) => ({
  code: c.classList.contains('jp-CodeCell'),
  text: (c.querySelector('.cm-content') || {}).innerText || '',
  active: c.classList.contains('jp-mod-active'),
  prompt: ((c.querySelector('.jp-InputArea-prompt') || {}).innerText || '').trim(),
  outputs: c.querySelectorAll('.jp-OutputArea-output').length,
}))
"""


def cells(nb: NotebookPage) -> list[dict[str, Any]]:
    return nb.page.evaluate(_CELLS_JS, nb.path)


def dispatch(nb: NotebookPage, index: int, selector: str, type_: str, detail: Any = None) -> bool:
    return nb.page.evaluate(_DISPATCH_JS, [nb.path, index, selector, type_, detail])


def source(nb: NotebookPage, index: int) -> str:
    """Cell ``index``'s exact source (the editor's DOM text normalises whitespace)."""
    return nb._eval("(p, i) => p.content.widgets[i].model.sharedModel.getSource()", index)


def assert_inserted_below(nb: NotebookPage, index: int, code: str, before: int) -> None:
    """A code cell with exactly ``code`` at ``index + 1``, the active cell, never run."""
    shown = cells(nb)
    assert len(shown) == before + 1, shown
    new = shown[index + 1]
    assert new["code"], new
    assert new["active"], f"the new cell is not the active one: {shown}"
    assert [c["active"] for c in shown].count(True) == 1, shown
    assert new["outputs"] == 0, new
    assert "[ ]" in new["prompt"] or new["prompt"] in ("", "[ ]:"), f"it ran: {new}"
    assert source(nb, index + 1) == code
    assert new["text"].splitlines()[0] == code.splitlines()[0]


def _loader_version() -> int:
    """The view version every run's loader asks for (what the extension must register, or the
    page fetches the kernel's fallback module instead)."""
    from hermes_nb.view.widget import ChatWidget

    found = re.search(r"const V=(\d+);", ChatWidget._esm)
    assert found is not None, ChatWidget._esm[:80]
    return int(found.group(1))


def assert_active(nb: NotebookPage) -> None:
    state = nb.page.evaluate(_ACTIVE_JS, PLUGINS)
    view = _loader_version()
    assert state == {"contract": "1", "view": view, "command": True, "plugins": PLUGINS}, (
        f"the hermes-nb labextension is not active ({state}); ./dev links labextension/build "
        "into the venv (jupyter labextension list)"
    )


def sign(server: Any, path: str) -> None:
    """Trust the notebook file as the server would after saving it (signed outputs)."""
    target = server.root_dir / path
    notebook = nbformat.read(target, as_version=4)
    NotebookNotary(data_dir=str(server.base / "data")).sign(notebook)
    nbformat.write(notebook, target)


def rewrite_and_reload(nb: NotebookPage, server: Any, edit: Any) -> None:
    """Change the notebook file on disk (``edit(notebook)``), sign it, reload the page: what a
    reloaded page shows is what the file holds."""
    target = server.root_dir / nb.path
    notebook = nbformat.read(target, as_version=4)
    edit(notebook)
    nbformat.write(notebook, target)
    sign(server, nb.path)
    nb.reload()


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


# -- display ids after a reload --------------------------------------------------------------


@BOTH_UIS
def test_restored_output_follows_its_display_id(ui, open_notebook, server, screenshot):
    """The extension's half of "reload keeps the settle", without the kernel's: an output read
    from the file (as after a reload) with ``metadata.hermes_nb.display_id`` is replaced by an
    ``update_display`` for that id sent from a kernel that never displayed it on this page."""
    nb = open_notebook(
        [
            "# restored outputs",
            "from IPython.display import HTML, update_display\n"
            "update_display(HTML('<p class=\"settled\">SETTLED answer</p>'),"
            " display_id='hnb-live-1', metadata={'hermes_nb': {'status': 'done'}})",
            "update_display(HTML('<p class=\"other\">not ours</p>'), display_id='unknown-id')",
        ]
    )

    def restored(notebook: Any) -> None:
        live = {"text/html": '<p class="live">live view</p>', "text/plain": "live view"}
        notebook.cells[0].outputs = [
            nbformat.v4.new_output(
                "display_data", data=live, metadata={"hermes_nb": {"display_id": "hnb-live-1"}}
            ),
            # No hermes_nb display id: left alone.
            nbformat.v4.new_output("display_data", data={"text/plain": "plain output"}),
        ]

    rewrite_and_reload(nb, server, restored)
    assert_active(nb)
    nb.cell(0).locator(".live").wait_for()

    nb.run(1)
    nb.cell(0).locator(".settled").wait_for(timeout=10_000)
    assert nb.cell(0).locator(".live").count() == 0
    assert "plain output" in nb.output_text(0)
    assert nb.outputs(1).count() == 0, "the update is shown where its id is, not in the cell run"
    nb.run(2)
    assert nb.cell(0).locator(".other").count() == 0
    screenshot(f"ext-display-id-{ui}", nb.cell(0))

    nb.save()
    saved = server.read_notebook(nb.path).cells[0].outputs
    assert saved[0]["data"]["text/html"] == '<p class="settled">SETTLED answer</p>'
    assert saved[0]["metadata"] == {"hermes_nb": {"status": "done"}}
    assert saved[1]["data"] == {"text/plain": "plain output"}


WORDS = [f"w{i:03d}" for i in range(1, 401)]
WORD_PROMPT = "\n\n".join(" ".join(WORDS[i : i + 20]) for i in range(0, len(WORDS), 20))


# The kernel's grace after a settle (view/_live_runs.py), short: the tests see the widget go.
SHORT_GRACE = "from hermes_nb.view import _live_runs as _view\n_view.SETTLED_GRACE = 2.0"
# The widgets the kernel holds (ipywidgets' registry), by class.
_VIEW_STATE = (
    "import json\nfrom ipywidgets.widgets.widget import _instances\n"
    "print(json.dumps(sorted(type(w).__name__ for w in _instances.values())))"
)


def _streaming(open_notebook: Any, *, delay: float, then: str) -> tuple[NotebookPage, ChatView]:
    """A notebook whose cell 1 streams a long run (``delay`` seconds a chunk), cell 2 ``then``
    and cell 3 ``_VIEW_STATE``; returned once cell 1's live view shows part of the reply."""
    nb = open_notebook(
        [
            f"import hermes_nb\n{SHORT_GRACE}",
            f"run = hermes_nb.chat({WORD_PROMPT!r}, delay={delay}, chunk_size=4)\nrun",
            then,
            _VIEW_STATE,
        ]
    )
    assert_active(nb)
    chat = ChatView(nb, 1)
    nb.run(0)
    nb.run(1)
    chat.wait("v.state === 'streaming' && !v.static && v.reply.length > 0", 30_000)
    return nb, chat


def widgets_held(nb: NotebookPage, index: int) -> list[str]:
    """Run cell ``index`` (``_VIEW_STATE``): the classes of the widgets the kernel holds,
    besides its one ``_ViewLoader`` (hermes_nb/view/widget.py: kept for the kernel's life)."""
    nb.run(index)
    return [name for name in json.loads(nb.output_text(index)) if name != "_ViewLoader"]


@BOTH_UIS
def test_reload_mid_stream_then_settle_saves_the_static_answer(
    ui, open_notebook, server, page, screenshot
):
    nb, chat = _streaming(open_notebook, delay=0.03, then="print(run.wait(120).text)")
    nb.save()  # what the reloaded page reads: the live view's output
    nb.reload()
    live = chat.wait("true", 30_000, "the chat view back after the reload")
    assert not live["static"] and live["state"] == "streaming", (
        f"the run settled before the reload finished; make it longer: {live}"
    )

    # The settle's update_display finds the restored output through the extension.
    chat.wait_settled(timeout=120_000)
    final = chat.wait_settled(timeout=15_000, static=True)
    assert final["state"] == "done"
    assert words(final["reply"]) == WORDS
    # The replaced view told the kernel, which closes the widget after its grace: the page
    # shows the static answer, no "model not found" where the view was.
    assert poll(lambda: widgets_held(nb, 3) == [], 30), widgets_held(nb, 3)
    assert "Error displaying widget" not in nb.panel.inner_text()
    assert chat.view()["static"]
    nb.save()
    outputs = server.read_notebook(nb.path).cells[1].outputs
    mimes = {mime for out in outputs for mime in out.get("data", {})}
    assert WIDGET_MIME not in mimes, f"the saved cell still holds the widget view: {mimes}"
    assert "text/html" in mimes, mimes

    page.goto("about:blank")
    assert server.shutdown_kernels(nb.path) == 1
    nb.open()
    reopened = chat.view()
    assert reopened["static"] and reopened["state"] == "done"
    assert words(reopened["reply"]) == WORDS
    assert "Error displaying widget" not in nb.panel.inner_text()
    screenshot(f"ext-reload-settled-{ui}", nb.cell(1))


@BOTH_UIS
def test_a_notebook_reopened_after_its_run_settled_unseen_shows_the_answer(
    ui, open_notebook, server, page, screenshot
):
    """The tab is closed mid-reply (the file holds the live view); the run settles with no page
    to replace it. Opened again, the view the file holds still renders — the kernel kept the
    widget, dormant, rather than close a model the file still names ("Error displaying widget:
    model not found") — asks for its replay, and its output is replaced by the static answer.
    Then nothing shows the live view, and the kernel closes it."""
    nb, chat = _streaming(open_notebook, delay=0.01, then="print(run.wait(120).status)")
    nb.save()  # as an autosave would: the file holds the live view
    page.goto("about:blank")
    time.sleep(15)  # no page: the run settles (~5 s) and its grace (2 s) ends unseen

    nb.open()
    final = chat.wait_settled(timeout=30_000, static=True)
    assert final["state"] == "done" and words(final["reply"]) == WORDS
    assert "Error displaying widget" not in nb.panel.inner_text()
    nb.run(2)
    assert nb.output_text(2).strip() == "done"
    assert poll(lambda: widgets_held(nb, 3) == [], 30), widgets_held(nb, 3)
    assert "Error displaying widget" not in nb.panel.inner_text()
    screenshot(f"ext-reopened-settled-{ui}", nb.cell(1))
    nb.save()
    outputs = server.read_notebook(nb.path).cells[1].outputs
    assert [set(o["data"]) for o in outputs] == [{"text/html", "text/markdown", "text/plain"}]


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
