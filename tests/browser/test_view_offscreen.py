"""A live view nobody sees costs the page next to nothing (issue 15): while the view's end (its
status line) is off screen — a long reply read from its top — the view writes its DOM every few
seconds instead of every 300 ms, and the kernel sends one frame a second instead of three; once the
end is scrolled into view the reply catches up at once and streams at the usual pace, and the
settled answer holds every word exactly once. And the settled answer is text as the live view
showed it: JupyterLab's MathJax leaves it alone.

Every count comes from the page: a MutationObserver's record of the reply's length
(``chat_dom.ChatView.history``). The kernel's side (one frame a second while every view is off
screen) is ``tests/test_view_frames.py::test_frames_slow_down_while_every_view_is_off_screen``.
"""

from __future__ import annotations

from typing import Any

import pytest
from chat_dom import ChatView, stream_live, words

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# 600 numbered words, ten to a paragraph: 60 lines of reply, far taller than the page, so the
# view's end leaves the screen a few seconds in. About 18 s at this pace.
WORDS = [f"w{i:03d}" for i in range(1, 601)]
REPLY = "\n\n".join(" ".join(WORDS[i : i + 10]) for i in range(0, len(WORDS), 10))

# Where the chat's status line is, against the notebook's scroller and the window.
_FOOTER_SEEN = """
(cell) => {
  const footer = cell.querySelector('.hnb-chat:not(.hnb-static) .hnb-footer');
  if (!footer) { return null; }
  const r = footer.getBoundingClientRect();
  const scroller = cell.closest('.jp-WindowedPanel-outer') || document.documentElement;
  const s = scroller.getBoundingClientRect();
  return r.bottom > Math.max(s.top, 0) && r.top < Math.min(s.bottom, window.innerHeight);
}
"""


# Which of the live reply's chunks skip rendering off screen (content-visibility, chat.css).
_SKIPPING = """
(cell) => [...cell.querySelectorAll('.hnb-chat:not(.hnb-static) .hnb-reply > .hnb-chunk')]
  .map((c) => getComputedStyle(c).contentVisibility === 'auto')
"""


def _lengths(history: list[dict[str, Any]], start: float, end: float) -> list[float]:
    """Times of the reply's length changes in [start, end) (page clock, ms)."""
    return [e["t"] for e in history if start <= e["t"] < end and not e["static"]]


def test_a_view_off_screen_updates_rarely_and_catches_up_when_seen(open_notebook, page):
    chat = stream_live(open_notebook, "Off screen check.", REPLY, chunk_size=3, delay=0.02)
    cell = chat.cell()
    # The reply grows past the bottom of the page: its status line leaves the screen.
    page.wait_for_function(f"(cell) => ({_FOOTER_SEEN})(cell) === false", arg=cell, timeout=30_000)
    # The view has heard of it (an IntersectionObserver) and counts as unseen once its end has
    # stayed off screen a second (OFF_SCREEN_MS, labextension/src/view/sight.ts).
    hidden_from = chat.now() + 1500
    page.wait_for_timeout(3_500)
    hidden_to = chat.now()
    assert chat.view()["state"] == "streaming", "the reply ended before the off-screen check"
    hidden = _lengths(chat.history(), hidden_from, hidden_to)
    assert len(hidden) <= 2, (
        f"{len(hidden)} DOM updates of the reply in {(hidden_to - hidden_from) / 1000:.1f} s"
        " while its end was off screen"
    )
    # Nobody follows the end: every chunk but the last skips rendering while off screen.
    skipping = page.evaluate(_SKIPPING, cell)
    assert len(skipping) >= 2 and skipping == [True] * (len(skipping) - 1) + [False], skipping

    # Scrolled to the view's end, and kept there as a person following the reply does (it grows
    # past the page's bottom again): the text shown so far at once, then the usual pace.
    seen_at = chat.now()
    chat.follow()
    page.wait_for_timeout(2_000)
    assert chat.view()["state"] == "streaming", "the reply ended before the on-screen check"
    shown = _lengths(chat.history(), seen_at, seen_at + 2_000)
    assert shown, "the reply did not change once its end was on screen"
    assert shown[0] - seen_at < 400, f"caught up {shown[0] - seen_at:.0f} ms after the scroll"
    assert len(shown) >= 6, f"{len(shown)} DOM updates in 2 s once the view's end was on screen"
    # Followed, the chunk just finished is rendered too (the reader still sees it).
    skipping = page.evaluate(_SKIPPING, cell)
    assert skipping[-2:] == [False, False] and all(skipping[:-2]), skipping

    final = chat.wait_settled(static=True)
    assert words(final["reply"]) == WORDS, "the settled answer lost or repeated a word"


def test_the_settled_answer_is_left_to_read_as_written(open_notebook, page):
    # Dollar signs and a TeX-looking span: MathJax would typeset the settled HTML output (it
    # does any other), and the answer would change from what the live view showed.
    reply = "Prices: $5 or $10 for $x^2$ units, and $$y$$ too."
    nb = open_notebook(
        [
            "import hermes_nb",
            f"run = hermes_nb.chat('Math check.', reply={reply!r})\nrun",
            # The control: JupyterLab's MathJax is on in this page and typesets an HTML output.
            "from IPython.display import HTML\nHTML('<p>Inline $x^2$ here.</p>')",
        ]
    )
    chat = ChatView(nb, 1)
    nb.run(0)
    nb.run(1)
    final = chat.wait_settled(static=True)
    nb.run(2)
    control = nb.cell(2).locator("mjx-container, .MathJax")
    control.first.wait_for(timeout=30_000)  # MathJax loaded and typesetting here
    page.wait_for_timeout(500)
    assert nb.cell(1).locator("mjx-container, .MathJax").count() == 0
    shown = " ".join(chat.root.locator(".hnb-reply").inner_text().split())
    assert shown == " ".join(reply.split()), shown
    assert final["reply"].strip() == reply
