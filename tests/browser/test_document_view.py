"""The notebook as the agent's document, in a real browser (JupyterLab and Notebook 7): the
agent reads the live notebook (an edit not yet saved included) and changes it through cards the
person accepts — edit (a line diff; Accept changes the live cell and Undo brings the old source
back), Reject (the cell stays, the model is told), insert after a given cell (not run), delete,
run (its output goes back to the model), and the refusals: an unknown cell id, a cell changed
since the agent read it.

The offline echo model is scripted (``tool_steps``) to call the ``notebook`` toolset's tools
with the ids of the page's own cells; every assertion reads the page: the cells in the
notebook's model, the card's DOM, and the tools' results the echo model repeats in its reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from chat_dom import ChatView, set_theme
from jupyter_harness import NotebookPage, poll
from kernel_envs import EXTRA_KERNELS

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

BOTH_UIS = pytest.mark.parametrize(
    ("ui", "kernel"),
    [pytest.param("lab", None, id="lab"), pytest.param("notebook7", None, id="notebook7")],
    indirect=True,
)
# The first scenario also on each other documented ipykernel (6.x: no subshells, so the page's
# replies are handled between cells, which they are: the turn's cell has returned).
ALL_KERNELS = pytest.mark.parametrize(
    ("ui", "kernel"),
    [
        pytest.param("lab", None, id="lab"),
        pytest.param("notebook7", None, id="notebook7"),
        *(pytest.param("lab", v, id=f"lab-ipykernel{v}") for v in EXTRA_KERNELS),
    ],
    indirect=True,
)
BUTTONS = ["Accept", "Accept all from this run", "Reject"]

# Cell 0: the chat (its source is set once the other cells' ids are known); then the cells the
# agent works on. The chat's cell comes first, so inserting and deleting below keep its index.
CELLS = [
    "import hermes_nb",
    "x = 1",
    "print('ran', 6 * 7)",
    "doomed = True",
]


def chat_code(*steps: list[tuple[str, dict]]) -> str:
    script = [[{"name": name, "arguments": args} for name, args in step] for step in steps]
    return (
        "import hermes_nb\n"
        "run = hermes_nb.chat('Work on the notebook', profile='echo', delay=0,"
        f" tools=['notebook'], tool_steps={json.dumps(script)})\nrun"
    )


def ids(nb: NotebookPage) -> list[str]:
    return nb._eval("p => p.content.widgets.map(c => c.model.id)")


def sources(nb: NotebookPage) -> list[str]:
    return nb._eval("p => p.content.widgets.map(c => c.model.sharedModel.getSource())")


def wait_sources(nb: NotebookPage, check: Callable[[list[str]], bool]) -> None:
    """Until the cells' sources on the page pass ``check``: an undo lands a moment later."""
    poll(lambda: check(sources(nb)), 10)


def said(view: dict) -> str:
    """What the tools returned (their blocks) and the model's reply: what the model was told."""
    return "\n".join([*view["tools"], view["reply"]])


def open_card(chat: ChatView, n: int = 1) -> dict:
    return chat.wait(
        f"v.state === 'waiting' && v.asks.length === {n} && v.asks[{n - 1}].state === 'open'",
        30_000,
        f"card {n}, open",
    )


def card(chat: ChatView, n: int = 1):
    return chat.root.locator(".hnb-ask").nth(n - 1)


def start(nb: NotebookPage, *steps: list[tuple[str, dict]]) -> ChatView:
    nb.set_source(0, chat_code(*steps))
    chat = ChatView(nb, 0)
    nb.run(0)
    return chat


def open_document(open_notebook: Callable[..., NotebookPage]) -> tuple[NotebookPage, list[str]]:
    """CELLS opened once the kernel's comm reached the page (the extension answered its
    hello), and the cells' ids."""
    nb = open_notebook(CELLS)
    nb.run(0)  # import hermes_nb: the kernel opens the comm
    nb.page.wait_for_timeout(300)
    return nb, ids(nb)


@ALL_KERNELS
def test_read_sees_an_unsaved_edit_then_accept_an_edit_and_undo_it(
    ui, kernel, open_notebook, page, screenshot
):
    nb, cell = open_document(open_notebook)
    nb.set_source(1, "x = 2  # typed, not saved")  # an edit on the page, not saved
    chat = start(
        nb,
        [("read_notebook", {})],
        [("edit_cell", {"cell_id": cell[1], "source": "x = 3\ny = x * 2"})],
    )
    view = open_card(chat)
    [ask] = view["asks"]
    assert ask["kind"] == "approval"
    assert ask["buttons"] == BUTTONS
    assert f"Edit cell 2 (id {cell[1]})?" in ask["text"]
    group = card(chat)
    lines = group.locator(".hnb-ask-diff-line").evaluate_all(
        "ns => ns.map(n => [n.dataset.op, n.tagName.toLowerCase(), n.textContent])"
    )
    assert lines == [
        ["hunk", "span", "@@ -1 +1,2 @@"],
        ["del", "del", "−x = 2  # typed, not saved"],
        ["add", "ins", "+x = 3"],
        ["add", "ins", "+y = x * 2"],
    ]
    legend = group.locator(".hnb-ask-diff-legend").inner_text()
    assert legend == "Changes: 1 line removed, 2 lines added (− removed, + added)"
    # The colours differ for added and removed lines, and the marks are text.
    colours = group.locator(".hnb-ask-diff-line").evaluate_all(
        "ns => ns.map(n => getComputedStyle(n).backgroundColor)"
    )
    assert colours[1] != colours[2] and colours[2] == colours[3]
    if kernel is not None:
        ui = f"{ui}-ipykernel{kernel.version}"
    screenshot(f"doc-edit-card-light-{ui}", nb.cell(0))
    if ui in ("lab", "notebook7"):
        set_theme(page, "JupyterLab Dark")
        screenshot(f"doc-edit-card-dark-{ui}", nb.cell(0))
        set_theme(page, "JupyterLab Light")
    assert sources(nb)[1] == "x = 2  # typed, not saved", "changed before Accept"

    group.get_by_role("button", name="Accept", exact=True).click()
    done = chat.wait_settled(static=True)
    assert done["state"] == "done"
    assert done["asks"][0]["decision"] == "Accept — by you"
    assert sources(nb)[1] == "x = 3\ny = x * 2"
    # read_notebook read the page: the unsaved edit, marked as such
    assert "as it is on the page (unsaved changes included)" in said(done)
    assert "x = 2  # typed, not saved" in said(done)
    assert f"Edited cell 2 (id {cell[1]}); it was not run" in said(done)

    # Undo in the cell's editor brings the old source back.
    nb.cell(1).locator(".cm-content").click()
    page.keyboard.press("Control+z")
    wait_sources(nb, lambda src: src[1] == "x = 2  # typed, not saved")


@BOTH_UIS
def test_reject_leaves_the_cell_and_the_model_is_told(ui, kernel, open_notebook, screenshot):
    nb, cell = open_document(open_notebook)
    chat = start(nb, [("delete_cell", {"cell_id": cell[3]})])
    view = open_card(chat)
    assert f"Delete cell 4 (id {cell[3]})?" in view["asks"][0]["text"]
    removed = card(chat).locator(".hnb-ask-diff-line[data-op='del']").all_inner_texts()
    assert removed == ["−doomed = True"]
    card(chat).get_by_role("button", name="Reject").click()
    done = chat.wait_settled(static=True)
    assert done["asks"][0]["decision"] == "Reject — by you"
    assert sources(nb)[3] == "doomed = True"
    assert len(sources(nb)) == 4
    assert f"Not done: the person rejected it; cell {cell[3]} was not deleted." in said(done)
    screenshot(f"doc-rejected-{ui}", nb.cell(0))


@BOTH_UIS
def test_insert_after_a_cell_delete_and_run_with_accept_all(
    ui, kernel, open_notebook, page, screenshot
):
    nb, cell = open_document(open_notebook)
    chat = start(
        nb,
        [("insert_cell", {"source": "z = 40 + 2", "after": cell[1]})],
        [("delete_cell", {"cell_id": cell[3]})],
        [("run_cell", {"cell_id": cell[2]})],
    )
    view = open_card(chat)
    assert f"Insert a new code cell after cell 2 (id {cell[1]})?" in view["asks"][0]["text"]
    added = card(chat).locator(".hnb-ask-diff-line[data-op='add']").all_inner_texts()
    assert added == ["+z = 40 + 2"]
    screenshot(f"doc-insert-card-{ui}", nb.cell(0))
    card(chat).get_by_role("button", name="Accept all from this run").click()
    done = chat.wait_settled(60_000, static=True)
    assert done["state"] == "done"
    assert len(done["asks"]) == 1, "Accept all: the later changes of the run ask no more"
    assert sources(nb)[1:] == ["x = 1", "z = 40 + 2", "print('ran', 6 * 7)"]
    assert nb.execution_count(2) is None, "an inserted cell is not run"
    assert nb.execution_count(3) is not None, "run_cell ran the cell on the page"
    assert "ran 42" in nb.outputs(3).inner_text()
    assert "Inserted a new code cell after cell 2" in said(done)
    assert f"Deleted cell 5 (id {cell[3]})" in said(done)
    assert "ran 42" in said(done), "run_cell's output goes back to the model"
    # Z in command mode undoes the delete: the cell is back.
    nb._select(1)
    page.keyboard.press("z")
    wait_sources(nb, lambda src: "doomed = True" in src)


@pytest.mark.parametrize(("ui", "kernel"), [pytest.param("lab", None, id="lab")], indirect=True)
def test_an_unknown_id_and_a_cell_changed_since_it_was_read_are_refused(
    ui, kernel, open_notebook, page
):
    nb, cell = open_document(open_notebook)
    chat = start(
        nb,
        [("edit_cell", {"cell_id": "no-such-cell", "source": "x = 0"}), ("read_notebook", {})],
        [("insert_cell", {"source": "# a note", "cell_type": "markdown"})],
        [("edit_cell", {"cell_id": cell[1], "source": "x = 9"})],
    )
    open_card(chat)  # the insert's card: meanwhile the person edits the cell the agent read
    nb.set_source(1, "x = 100  # the person's")
    card(chat).get_by_role("button", name="Accept", exact=True).click()
    done = chat.wait_settled(60_000, static=True)
    assert len(done["asks"]) == 1, "the refused edit shows no card"
    reply = said(done)
    assert "There is no cell with id 'no-such-cell' in the notebook" in reply
    assert f"Cell {cell[1]} changed since you read it" in reply
    assert "Traceback" not in reply
    assert sources(nb)[1] == "x = 100  # the person's"
    assert sources(nb)[-1] == "# a note"


@pytest.mark.parametrize(("ui", "kernel"), [pytest.param("lab", None, id="lab")], indirect=True)
def test_a_large_notebook_reads_through_the_page(ui, kernel, open_notebook, page):
    """200 cells, each with a 48 KB figure and a line of text (about 10 MB of notebook): the
    page sends each image's header only, so reading it on the page costs about what reading
    the same notebook from its file does. Prints both times."""
    nb = open_notebook(["import hermes_nb, json, time"] + [f"plot({i})" for i in range(200)])
    nb.run(0)
    nb._eval(
        """p => {
            const head = 'iVBORw0KGgoAAAANSUhEUgAAAoAAAAHgCAYAAAA';  // a 640×480 PNG's header
            const png = head + 'A'.repeat(64000 - head.length);
            p.content.widgets.slice(1).forEach((c, i) => c.model.outputs.add({
                output_type: 'display_data', metadata: {},
                data: {'image/png': png, 'text/plain': `<Figure ${i}>`},
            }));
        }"""
    )
    nb.save()
    nb.set_source(
        0,
        "run = hermes_nb.chat('go', profile='echo', delay=0, tools=['notebook'],"
        " tool_calls=[{'name': 'read_notebook'}]).wait(120)\n"
        "from hermes_nb.notebook._document import outline, read_saved\n"
        "from hermes_nb.notebook._where import notebook_path\n"
        "t = time.perf_counter(); text = outline(read_saved(notebook_path(get_ipython())), '')\n"
        "file_ms = (time.perf_counter() - t) * 1000\n"
        "[end] = [e.data for e in run.events() if e.event == 'tool_end']\n"
        "print(json.dumps([end['duration_ms'], file_ms, end['result'][:200], len(text)]))",
    )
    nb.run(0, timeout=120_000)
    page_ms, file_ms, head, size = json.loads(
        nb.output(0, "application/vnd.jupyter.stdout").inner_text()
    )
    assert head.startswith("The notebook ") and "as it is on the page" in head, head
    assert size > 20_000
    print(
        f"read_notebook, 200 cells with a 48 KB figure each: page {page_ms:.0f} ms,"
        f" file {file_ms:.0f} ms"
    )
    assert page_ms < 5_000


@BOTH_UIS
def test_a_reloaded_page_announces_itself_and_a_kernel_without_hermes_nb_is_not_asked(
    ui, kernel, open_notebook, page, server
):
    """A reload forgets every comm: the page tells the kernel it is there (its own comm, opened
    once the kernel is connected), so the first request after it is answered at once — no 5 s
    wait for the page that went away. Before hermes_nb is loaded the page opens nothing, so the
    kernel never logs an unknown comm target. Prints the read's time after the reload."""
    nb = open_notebook(["x = 1", "import hermes_nb, json"])
    nb.run(0)  # a kernel without hermes_nb
    nb.reload()
    nb.run(0)
    nb.run(1)  # the kernel opens its comm; the page answers
    nb.page.wait_for_timeout(300)
    nb.reload()  # hermes_nb stays loaded in the kernel; the page forgot its comm
    nb.set_source(
        1,
        "run = hermes_nb.chat('go', profile='echo', delay=0, tools=['notebook'],"
        " tool_calls=[{'name': 'read_notebook'}]).wait(60)\n"
        "[end] = [e.data for e in run.events() if e.event == 'tool_end']\n"
        "print(json.dumps([end['duration_ms'], end['result'][:200]]))",
    )
    nb.run(1, timeout=60_000)
    took_ms, head = json.loads(nb.output(1, "application/vnd.jupyter.stdout").inner_text())
    assert "as it is on the page" in head, head
    print(f"read_notebook, first request after a reload: {took_ms:.0f} ms")
    assert took_ms < 2_000, f"{took_ms:.0f} ms: the request waited for the page that went away"
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "No such comm target registered: hermes_nb.document" not in log
    assert not [c for c in page.watch.console if "omm" in c and "[error]" in c], page.watch.console
