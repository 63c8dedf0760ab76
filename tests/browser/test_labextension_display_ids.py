"""hermes_nb's front-end extension (``labextension/``), in JupyterLab and Notebook 7: a
reloaded page keeps hermes_nb outputs attached to their display ids.

An output restored from the file whose metadata carries ``hermes_nb.display_id`` is replaced by
a kernel's ``update_display_data`` for that id, which JupyterLab alone drops. The kernel writes
that id into every live view's output; a reload mid-reply then settles into the static answer,
and a notebook reopened after the run settled without it (the tab was closed) gets it too.

Insert below and the code blocks' buttons are in ``test_labextension_code_actions.py``; the
shared checks in ``labextension_dom.py``. The extension must be installed in the environment the
server runs from (``./dev`` links ``labextension/build`` into the venv); these tests fail, not
skip, when it is not active.
"""

from __future__ import annotations

import json
import time
from typing import Any

import nbformat
import pytest
from chat_dom import ChatView, words
from jupyter_harness import NotebookPage, poll
from labextension_dom import BOTH_UIS, assert_active, rewrite_and_reload

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


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
