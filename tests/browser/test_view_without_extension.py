"""The chat view on a page without hermes_nb's extension: what VS Code and Colab do.

A JupyterLab whose page config disables the ``hermes-nb`` extension (as ``jupyter labextension
disable hermes-nb`` would) loads anywidget but not our view. A run's widget module, a stub
(``hermes_nb/view/static/stub.js``), then renders through the kernel's one loader widget
(``static/loader.js``, reached with anywidget's ``host.getWidget``), which asks the kernel for
the fallback module built from the same TypeScript (``{type: "code"}``), once per page: every
other view, of the same run or another, awaits the same answer. The view renders, streams and
settles as with the extension, with its stylesheet (it came with the code), and Copy (no Insert
below: that needs the extension); a run's state holds none of the keys the front end defaults
(``_css``, ``layout``, ...); a reloaded page renders again, asking once more.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from chat_dom import ChatView, code_requests
from jupyter_harness import JupyterServer, browser_context, poll

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# About four seconds of streaming: time to read the live view.
TAIL = " ".join(f"t{i:03d}" for i in range(1, 121))
PROMPT = (
    f"%%hermes -o delay=0.02 -o chunk_size=3\nStream check\n\n```python\nprint('hi')\n```\n\n{TAIL}"
)

# The live view of cell 2: whether chat.css applies, its code block's buttons, and how many
# stylesheets of the view the page's head holds (a saved answer's own <style> is in its output).
_LIVE_JS = """
(path) => {
  const root = window.__hnb_panel(path).content.widgets[2].node
    .querySelector('.hnb-chat:not(.hnb-static)');
  if (!root || root.dataset.state !== 'streaming' || !root.querySelector('.hnb-code-actions')) {
    return null;
  }
  return {
    display: getComputedStyle(root).display,
    actions: [...root.querySelectorAll('.hnb-code-action')].map((b) => b.dataset.action),
    sheets: [...document.head.querySelectorAll('style')]
      .filter((s) => s.textContent.includes('.hnb-chat .hnb-hl')).length,
  };
}
"""


@pytest.fixture(scope="module")
def bare_server(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter lab`` with the hermes-nb extension disabled."""
    base = tmp_path_factory.mktemp("jupyter-bare")
    with JupyterServer(base, ui="lab", disabled_extensions=("hermes-nb",)).running() as server:
        yield server


@pytest.fixture(scope="module")
def bare_context(browser: Any, bare_server: JupyterServer) -> Iterator[Any]:
    with browser_context(browser) as context:  # needs bare_server: closed before it stops
        yield context


@pytest.fixture
def server(bare_server: JupyterServer) -> JupyterServer:
    """This module's server, for the suite's ``page`` and ``open_notebook``."""
    return bare_server


@pytest.fixture
def context(bare_context: Any) -> Any:
    """This module's browser context, for the suite's ``page``."""
    return bare_context


def test_without_the_extension_the_view_comes_once_from_the_kernel_and_streams(
    open_notebook, page, screenshot
):
    requests = code_requests(page)
    nb = open_notebook(["%load_ext hermes_nb", PROMPT, PROMPT.replace("check", "again")])
    # Nothing of the extension on this page: no contract, no view registered.
    assert page.evaluate(
        "() => [document.body.dataset.hermesNbExtension ?? null, typeof window.__hermes_nb_view__]"
    ) == [None, "undefined"]
    nb.run(0)
    first = ChatView(nb, 1)
    nb.run(1, wait=False)
    first.watch()
    nb.wait_cell_done(1)
    first.wait_live(min_chars=1)
    final = first.wait_settled(static=True)
    assert final["state"] == "done" and "Stream check" in final["reply"], final

    history = first.history()
    streaming = [e for e in history if e["state"] == "streaming" and not e["static"]]
    steps = sum(1 for a, b in itertools.pairwise(streaming) if b["len"] > a["len"])
    assert steps >= 3, f"the reply grew in {steps} steps while streaming: {history}"

    second = ChatView(nb, 2)
    nb.run(2, wait=False)
    # Styled (chat.css and the code colours came with the code, added once), Copy only.
    live = poll(lambda: page.evaluate(_LIVE_JS, nb.path), 30)
    assert live == {"display": "flex", "actions": ["copy"], "sheets": 1}, live
    assert second.wait_settled(static=True)["state"] == "done"
    assert requests and len(requests) == 1, f"code requested {len(requests)} times: {requests}"
    assert page.watch.errors == []
    screenshot("view-without-extension", nb.cell(1))


# About twelve seconds of streaming: time to save and reload the page mid-stream.
SLOW = PROMPT.replace("delay=0.02", "delay=0.06")


def test_without_the_extension_a_reloaded_page_renders_the_live_view_again(open_notebook, page):
    requests = code_requests(page)  # a page's listener: it sees the reloaded page's sockets too
    nb = open_notebook(["%load_ext hermes_nb", SLOW])
    nb.run(0)
    chat = ChatView(nb, 1)
    nb.run(1, wait=False)
    chat.wait_live(min_chars=1)
    assert len(requests) == 1, requests
    nb.save()  # what the reloaded page reads: the live view's output
    nb.reload()
    live = chat.wait("true", 30_000, "the chat view back after the reload")
    assert not live["static"] and live["state"] == "streaming", (
        f"the run settled before the reload finished; make it longer: {live}"
    )
    final = chat.wait_settled(timeout=60_000)
    assert final["state"] == "done" and "t120" in final["reply"], final
    # One request per page: the reloaded page's loader (restored with the kernel's widget
    # state) asked once more; no view showed a sentence instead of the chat.
    assert len(requests) == 2, requests
    assert page.watch.errors == []
    assert "Error displaying widget" not in nb.panel.inner_text()
