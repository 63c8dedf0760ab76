"""A view that draws a torrent twice a second says so, and the kernel sends a frame per update.

A view in sight draws at most one DOM update per 300 ms, or per 500 ms while each update grows it
by a third of the window (``labextension/src/view/pace.ts``). At three frames a second into two
updates, every other update would carry two frames' worth of reply: the stream's longest tasks
(``benchmarks/bench_browser.py --follow``). So the view tells the kernel its pace
(``{"type": "pace", "view", "ms"}``) and the pump sends at the quickest pace of the views in
sight (``view/_controller.py``). Real runs of the offline model, their comms recorded.
"""

from __future__ import annotations

import itertools
import time

import pytest
from widget_support import (
    final_blocks,
    fixture_comms,  # noqa: F401  (the fixture comms: every ChatWidget's comm recorded)
    live,
    live_frames,
    reassembled,
    settle,
    the_comm,
)

from hermes_nb.view import display as view
from hermes_nb.view._protocol import parse_view_msg


def _streaming(controller: view._Controller, start: float, end: float) -> list[float]:
    """When the run's streaming frames went, between ``start`` and ``end``."""
    return [
        t for t, f in live_frames(controller) if f["status"] == "streaming" and start <= t < end
    ]


def _gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


@pytest.mark.usefixtures("comms")
def test_frames_follow_the_pace_of_the_quickest_view_in_sight() -> None:
    # About 6 s of tokens, a frame's worth at any moment.
    controller = live("x", reply="abc " * 1500, chunk_size=2, delay=0.002)
    c = the_comm(controller)
    time.sleep(0.3)
    c.deliver({"type": "pace", "view": "a", "ms": 500})
    slow_from = time.monotonic()
    time.sleep(1.6)  # the only view draws twice a second: two frames a second
    c.deliver({"type": "sight", "view": "b", "seen": True})  # b draws at the usual pace
    both_from = time.monotonic()
    time.sleep(1.2)
    c.deliver({"type": "sight", "view": "b", "seen": False})  # b scrolled away: a's pace
    away_from = time.monotonic()
    time.sleep(1.2)
    c.deliver({"type": "pace", "view": "a", "ms": 300})  # a reads along again
    back_from = time.monotonic()
    time.sleep(1.2)
    assert not controller.run.settled, "the reply ended before the check"
    settle(controller)

    slow = _streaming(controller, slow_from + 0.1, both_from)
    assert len(slow) >= 3, f"{len(slow)} frames in 1.5 s at a view's pace of 500 ms"
    assert min(_gaps(slow)) > 0.49, f"frames {min(_gaps(slow)):.3f} s apart at 500 ms"
    both = _streaming(controller, both_from, away_from)
    assert len(both) >= 0.8 * 1.2 * view.MAX_FPS, f"{len(both)} frames in 1.2 s, b in sight"
    away = _streaming(controller, away_from + 0.1, back_from)
    assert len(away) >= 2, f"{len(away)} frames in 1.1 s at a's pace, b away"
    assert min(_gaps(away)) > 0.49, f"frames {min(_gaps(away)):.3f} s apart, b away"
    back = _streaming(controller, back_from, back_from + 1.2)
    assert back and back[0] - back_from < 0.4, "the usual pace did not come back at once"
    assert len(back) >= 0.8 * 1.2 * view.MAX_FPS, f"{len(back)} frames in 1.2 s at 300 ms"
    # Slower, and still exact: the frames reassemble into the final transcript.
    state = reassembled([f for _, f in live_frames(controller)])
    assert state.visible() == final_blocks(controller.run)


def test_pace_messages_are_checked() -> None:
    for bad in (
        {"type": "pace"},
        {"type": "pace", "view": "a"},
        {"type": "pace", "view": "a", "ms": "500"},
        {"type": "pace", "view": "a", "ms": 0},
        {"type": "pace", "view": "a", "ms": -1},
        {"type": "pace", "view": "a", "ms": 1.5},
        {"type": "pace", "view": "a", "ms": True},
        {"type": "pace", "view": "a", "ms": 60_001},
        {"type": "pace", "view": "", "ms": 500},
        {"type": "pace", "view": "v" * 201, "ms": 500},
    ):
        assert parse_view_msg(bad) is None, bad
    ok = {"type": "pace", "view": "a" * 200, "ms": 500, "extra": 1}
    assert parse_view_msg(ok) == {"type": "pace", "view": "a" * 200, "ms": 500}
