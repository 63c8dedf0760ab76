"""Following a stream is cheap (issue 25): a person reading along keeps the view's end in view by
scrolling every few hundred milliseconds, and between two scrolls the growing reply pushes the end
below the window. That is still a person watching: the view stays "in sight" (it tells the kernel
nothing, so the kernel keeps its pace), draws at its own pace — at most one DOM update per
300 ms, each one promptly, or per 500 ms for a torrent that grows the view by a third of the
window an update — and its blocks come in chunks, so an update lays out the chunk at the reply's
end, not the whole reply, with the blocks spaced exactly as without chunks. What it costs the
page is ``benchmarks/bench_browser.py --follow``.

Every figure comes from the page: the kernel websocket's outgoing frames (Playwright), the
MutationObserver record of the reply's length (``chat_dom.ChatView.history``), the DOM.
"""

from __future__ import annotations

import itertools
import re
import statistics
import time
from typing import Any

import pytest
from chat_dom import stream_live, words

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# 60 paragraphs of ten numbered words: 60 blocks (four chunks), far taller than the page, in
# about 10 s at this pace.
WORDS = [f"w{i:03d}" for i in range(1, 601)]
REPLY = "\n\n".join(" ".join(WORDS[i : i + 10]) for i in range(0, len(WORDS), 10))
READER_MS = 250  # a person reading along scrolls this often
_SIGHT = re.compile(r'"type":\s*"sight".*?"seen":\s*(true|false)')
_PACE = re.compile(r'"type":\s*"pace".*?"ms":\s*(\d+)')
# A live frame of the streaming reply (a replay's answer carries its request's id, not null).
_LIVE_FRAME = re.compile(r'"type":\s*"frame".*?"status":\s*"streaming".*?"rid":\s*null')

# The live reply's chunks: how many blocks each holds, the blocks' indexes in document order,
# and the space between each block and the next (top of one less bottom of the other).
_CHUNKS = """
(cell) => {
  const reply = cell.querySelector('.hnb-chat:not(.hnb-static) .hnb-reply');
  const chunks = [...reply.children];
  const blocks = [...reply.querySelectorAll('.hnb-block')];
  const gaps = [];
  for (let i = 1; i < blocks.length; i++) {
    gaps.push(blocks[i].getBoundingClientRect().top - blocks[i - 1].getBoundingClientRect().bottom);
  }
  return {
    classes: chunks.map((c) => c.className),
    skip: chunks.map((c) => getComputedStyle(c).contentVisibility),
    contain: chunks.map((c) => getComputedStyle(c).contain),
    sizes: chunks.map((c) => c.querySelectorAll(':scope > .hnb-block').length),
    order: blocks.map((b) => Number(b.dataset.block.split(':').pop())),
    gaps,
  };
}
"""


def _sent_sight(sent: list[str]) -> list[str]:
    """The ``seen`` value of every ``{"type": "sight"}`` message among websocket frames."""
    return [m.group(1) for frame in sent for m in _SIGHT.finditer(frame)]


def test_a_reader_following_the_reply_keeps_the_view_in_sight_and_at_its_pace(
    open_notebook: Any, page: Any
) -> None:
    sent: list[str] = []  # what the page sends on the kernel's websocket, as text

    def on_socket(ws: Any) -> None:
        def on_frame(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            sent.append(text)

        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    chat = stream_live(open_notebook, "Follow check.", REPLY, chunk_size=4, delay=0.01)
    cell = chat.cell()
    before = len(sent)
    start = chat.now()
    chat.follow(READER_MS)
    # Well past the window's height, still streaming: the end has been pushed off screen
    # between two scrolls many times by now.
    chat.wait_live(min_chars=len(REPLY) * 2 // 3, timeout=60_000)
    end = chat.now()
    live = page.evaluate(_CHUNKS, cell)
    assert chat.view()["state"] == "streaming", "the reply ended before the check"

    sight = _sent_sight(sent[before:])
    assert not sight, f"the view told the kernel {len(sight)} times it is in sight or not: {sight}"

    shown = [e["t"] for e in chat.history() if start <= e["t"] < end and not e["static"]]
    gaps = [b - a for a, b in itertools.pairwise(shown)]
    seconds = (end - start) / 1000
    assert len(shown) >= 2 * seconds, f"{len(shown)} DOM updates in {seconds:.1f} s"
    assert max(gaps) < 1000, f"the reply stood still {max(gaps):.0f} ms while being read"
    assert min(gaps) > 250, f"two DOM updates {min(gaps):.0f} ms apart (at most one per 300 ms)"
    # A line or two an update is read, not skimmed: three a second (pace.ts), not two.
    assert statistics.median(gaps) < 420, f"updates {statistics.median(gaps):.0f} ms apart"

    assert set(live["classes"]) == {"hnb-chunk"}, live["classes"]
    assert len(live["sizes"]) >= 3 and max(live["sizes"]) == 16, live["sizes"]
    assert live["order"] == list(range(len(live["order"]))), live["order"]
    # One paragraph a block: the same space between every two, across chunks too.
    assert max(live["gaps"]) - min(live["gaps"]) < 0.5, live["gaps"]
    assert min(live["gaps"]) > 5, live["gaps"]
    # Every chunk is a paint layer of its own; all but the last two skip rendering off screen.
    assert all("paint" in c for c in live["contain"]), live["contain"]
    assert live["skip"] == ["auto"] * (len(live["skip"]) - 2) + ["visible"] * 2, live["skip"]

    final = chat.wait_settled(static=True)
    assert words(final["reply"]) == WORDS, "the settled answer lost or repeated a word"


# A torrent: 500 paragraphs of two words (a block each), ~30 a frame at 3 frames a second: each
# update grows the view by a window's height, where a third is a lot (pace.ts).
FAST_WORDS = [f"w{i:03d}" for i in range(1, 1000)]
FAST_REPLY = "\n\n".join(" ".join(FAST_WORDS[i : i + 2]) for i in range(0, len(FAST_WORDS), 2))


def test_a_reply_growing_faster_than_anyone_reads_is_drawn_twice_a_second(
    open_notebook: Any, page: Any
) -> None:
    sent: list[str] = []  # the page's websocket frames to the kernel, as text
    frames: list[float] = []  # when the page received each live streaming frame (monotonic)

    def on_socket(ws: Any) -> None:
        def on_sent(payload: str | bytes) -> None:
            sent.append(payload if isinstance(payload, str) else payload.decode("utf-8", "replace"))

        def on_received(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else payload.decode("utf-8", "replace")
            if _LIVE_FRAME.search(text):
                frames.append(time.monotonic())

        ws.on("framesent", on_sent)
        ws.on("framereceived", on_received)

    page.on("websocket", on_socket)
    chat = stream_live(open_notebook, "Fast check.", FAST_REPLY, chunk_size=10, delay=0.01)
    chat.follow(READER_MS)
    # Past a screenful: the view has seen how much an update grows it.
    chat.wait_live(min_chars=len(FAST_REPLY) // 5, timeout=60_000)
    start, received_from = chat.now(), time.monotonic()
    chat.wait_live(min_chars=len(FAST_REPLY) * 3 // 4, timeout=60_000)
    end, received_to = chat.now(), time.monotonic()
    assert chat.view()["state"] == "streaming", "the reply ended before the check"

    shown = [e["t"] for e in chat.history() if start <= e["t"] < end and not e["static"]]
    gaps = [b - a for a, b in itertools.pairwise(shown)]
    assert len(gaps) >= 4, f"{len(shown)} DOM updates in {(end - start) / 1000:.1f} s"
    assert min(gaps) > 450, f"two DOM updates {min(gaps):.0f} ms apart (at most one per 500 ms)"
    assert max(gaps) < 1000, f"the reply stood still {max(gaps):.0f} ms while being read"

    # The view told the kernel its pace, and the kernel sends a frame per update: not three a
    # second into two updates, every other one then twice as long.
    paces = [int(m.group(1)) for text in sent for m in _PACE.finditer(text)]
    assert paces and paces[-1] == 500, f"the view said its pace: {paces}"
    got = [t for t in frames if received_from <= t < received_to]
    between = [b - a for a, b in itertools.pairwise(got)]
    assert len(got) >= 4, f"{len(got)} frames received in {received_to - received_from:.1f} s"
    assert min(between) > 0.4, f"two frames {min(between):.3f} s apart at a pace of 500 ms"

    final = chat.wait_settled(static=True)
    assert words(final["reply"]) == FAST_WORDS, "the settled answer lost or repeated a word"
