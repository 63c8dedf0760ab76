"""The settled answer takes the live view's place box for box (issue 15): in one page, a run's
static output and another run's live view, in cells of the same notebook, are equally wide and
start at the same left edge — in JupyterLab and in Notebook 7. A ``text/html`` output gets 20 px
of right padding from JupyterLab (``.jp-RenderedHTMLCommon``) that a widget output has not;
chat.css takes it back from the output holding a ``.hnb-chat.hnb-static``.
"""

from __future__ import annotations

import pytest
from chat_dom import ChatView

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

REPLY = " ".join(f"w{i:03d}" for i in range(1, 401))

# Each cell's `.hnb-chat` box (getBoundingClientRect), and whether it is the static output.
_BOXES = """
(path) => window.__hnb_panel(path).content.widgets.map((cell) => {
  const root = cell.node.querySelector('.hnb-chat');
  if (!root) { return null; }
  const r = root.getBoundingClientRect();
  return {static: root.classList.contains('hnb-static'), left: r.left, right: r.right,
          width: r.width};
})
"""


@pytest.mark.parametrize("ui", ["lab", "notebook7"], indirect=True)
def test_settled_box_is_as_wide_as_the_live_view(ui, open_notebook, page, screenshot):
    nb = open_notebook(
        [
            f"import hermes_nb\nREPLY = {REPLY!r}",
            "done = hermes_nb.chat('Width check: settled.', reply=REPLY)\ndone",
            # About 20 s at this pace: live for the whole test (Stop ends it).
            "live = hermes_nb.chat('Width check: live.', reply=REPLY, chunk_size=1, delay=0.05)\n"
            "live",
        ]
    )
    settled, live = ChatView(nb, 1), ChatView(nb, 2)
    nb.run(0)
    nb.run(1)
    settled.wait_settled(static=True)
    nb.run(2)
    live.wait_live(min_chars=20)

    boxes = page.evaluate(_BOXES, nb.path)
    stat, view = boxes[1], boxes[2]
    assert stat is not None and stat["static"], boxes
    assert view is not None and not view["static"], boxes
    screenshot(f"layout-width-{ui}", nb.panel)
    assert abs(stat["width"] - view["width"]) <= 1, (
        f"the settled box is {view['width'] - stat['width']:.1f} px narrower than the live view:"
        f" {boxes}"
    )
    assert abs(stat["left"] - view["left"]) <= 1, boxes
    live.root.locator(".hnb-stop").click()
    live.wait_settled()
