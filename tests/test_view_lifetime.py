"""Displays and letting go: display ids, the settle's updates, and when a settled run is released.

Each live display carries its display id; the settle replaces every display with the static
bundle (again after a reload's replay); a settled run closes its comm once its view left and its
grace is over, stays dormant while no page shows it, and at most ``MAX_SETTLED`` wait.
"""

from __future__ import annotations

import gc
import time
import weakref
from typing import Any

import pytest
from widget_support import (
    WIDGET_MIME,
    Displays,
    RecordingComm,
    final_blocks,
    fixture_comms,  # noqa: F401  (comms: every ChatWidget's comm recorded)
    live,
    reassembled,
    settle,
    slow,
    the_comm,
)

from hermes_nb.view import _controller, _live_runs
from hermes_nb.view import display as view
from hermes_nb.view.widget import ChatWidget


def test_every_live_display_carries_its_display_id_in_its_metadata(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    displays = Displays(monkeypatch)
    controller = slow()
    controller.display()
    controller.display(include_plain=False)
    assert not controller.finalized, "the run settled before it was displayed; make it longer"
    ids = displays.live_ids()
    assert len(ids) == 2 and ids[0] != ids[1]
    for data, kw in displays.shown:
        # What the front-end extension finds a reloaded page's output by.
        assert kw["metadata"]["hermes_nb"] == {"display_id": kw["display_id"]}
        assert data[WIDGET_MIME]["model_id"] == controller.widget.model_id
    assert "text/plain" not in displays.shown[1][0]
    settle(controller)
    assert sorted(displays.updated_ids()) == sorted(ids)
    for data, kw in displays.updates:  # the static bundle: no display id of its own
        assert WIDGET_MIME not in data and set(data) == {"text/html", "text/markdown", "text/plain"}
        assert "display_id" not in kw["metadata"]["hermes_nb"]
        assert kw["metadata"]["hermes_nb"]["status"] == "done"


def test_a_replay_after_the_settle_replaces_every_display_again(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A page reloaded as the run settled missed the update (it had no display id then): its
    # view, rendered again, asks for a replay — and the update comes again, for every display.
    displays = Displays(monkeypatch)
    controller = slow()
    controller.display()
    controller.display()
    settle(controller)
    first = list(displays.updates)
    assert len(first) == 2
    c = the_comm(controller)
    # A view rendered from the same messages as the update (which replaced it already): its
    # answer, and no second update.
    c.deliver({"type": "replay", "after": 0, "rid": "raced:1"})
    raced = next(f for _, f in c.frames() if f["rid"] == "raced:1")
    assert raced["status"] == "done" and displays.updates == first
    time.sleep(_controller.SETTLE_RACE)  # a reload takes longer than that
    c.deliver({"type": "replay", "after": 0, "rid": "reloaded:1"})
    answer = next(f for _, f in c.frames() if f["rid"] == "reloaded:1")
    assert answer["status"] == "done" and not answer["meta"]["live"]
    assert reassembled([answer]).visible() == final_blocks(controller.run)
    assert displays.updates[2:] == first, "the same static bundle, for every display id again"
    c.deliver({"type": "replay", "after": answer["seq"], "rid": "other:1"})
    assert len(displays.updates) == 6
    # A live run's replays update nothing.
    running = slow()
    running.display()
    the_comm(running).deliver({"type": "replay", "after": 0, "rid": "live:1"})
    assert len(displays.updates) == 6
    running.run.cancel()
    settle(running)


def wait_until(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return value


def test_a_settled_run_lets_go_once_its_view_left_the_page_and_its_grace_is_over(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ipywidgets.widgets.widget import _instances

    displays = Displays(monkeypatch)
    monkeypatch.setattr(_live_runs, "SETTLED_GRACE", 0.3)
    controller = slow()
    controller.display()
    widget = controller.widget
    ids = {widget.model_id}
    assert ids <= set(_instances) and widget.layout is None  # one model, no Layout
    own = the_comm(controller)
    own.deliver({"type": "replay", "after": 0, "rid": "page:1"})  # its view renders
    own.deliver({"type": "removed"})  # mid-reply (a cleared output): the settle may need it
    settle(controller)
    assert displays.updated_ids() == displays.live_ids()
    # The page replaced the output with the static bundle; the view that left says so.
    own.deliver({"type": "removed"})
    assert not controller.released, "a grace first: a view rendered now still gets its answer"
    assert wait_until(lambda c=controller: c.released)
    assert own.closed and widget.comm is None
    assert all(c.closed for c in comms), "the widget's comm"
    assert not ids & set(_instances), "ipywidgets keeps neither model"
    assert controller._blocks == {}
    # Nothing else holds them (the run is the engine's and the caller's to keep).
    refs = [weakref.ref(controller), weakref.ref(widget)]
    del controller, widget
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_a_run_settled_while_no_page_showed_it_stays_dormant_until_a_view_comes_back(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tab was closed mid-reply (the file holds the live view): a closed model would show
    # "Error displaying widget: model not found" when it is opened again.
    displays = Displays(monkeypatch)
    monkeypatch.setattr(_live_runs, "SETTLED_GRACE", 0.2)
    monkeypatch.setattr(_controller, "SETTLE_RACE", 0.1)  # the reopening below comes later
    controller = slow()
    controller.display()
    own = the_comm(controller)
    own.deliver({"type": "replay", "after": 0, "rid": "page:1"})  # its view renders, then the
    settle(controller)  # tab closes (no word: the page unloads) and the run settles unseen
    first = list(displays.updates)
    assert wait_until(lambda: controller.dormant)
    assert not controller.released and controller._blocks == {}
    assert not own.closed

    # The notebook is opened again: its view renders and asks.
    own.deliver({"type": "replay", "after": 0, "rid": "reopened:1"})
    answer = next(f for _, f in own.frames() if f["rid"] == "reopened:1")
    assert answer["status"] == "done"
    assert reassembled([answer]).visible() == final_blocks(controller.run)
    assert displays.updates[len(first) :] == first, "rendered again from the run, the same"
    assert not controller.dormant
    # Its page replaces the output (the extension) and the view leaves: now it may close.
    own.deliver({"type": "removed"})
    # … unless a view renders again meanwhile (a page without the extension keeps showing it).
    own.deliver({"type": "replay", "after": 0, "rid": "again:1"})
    time.sleep(0.5)
    assert controller.dormant and not controller.released
    own.deliver({"type": "replay", "after": 0, "rid": "again:2"})
    own.deliver({"type": "removed"})
    assert wait_until(lambda: controller.released)
    assert own.closed


@pytest.mark.parametrize("shown", ["never displayed", "displayed, no view rendered it"])
def test_a_run_no_view_rendered_lets_go_after_its_grace(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch, shown: str
) -> None:
    # No front end (nbconvert, papermill), or a reply so fast that the settle's update replaced
    # the output before its view rendered: no view will ever say it left.
    Displays(monkeypatch)
    monkeypatch.setattr(_live_runs, "SETTLED_GRACE", 1.0)
    controller = slow()
    if shown != "never displayed":
        controller.display()
    settle(controller)
    assert not controller.released
    assert wait_until(lambda: controller.released)
    assert the_comm_closed(comms)


def the_comm_closed(comms: list[RecordingComm]) -> bool:
    return bool(comms) and all(c.closed for c in comms)


def test_at_most_max_settled_runs_wait_out_their_grace(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    view._reaper.end_all()
    monkeypatch.setattr(_live_runs, "MAX_SETTLED", 2)
    controllers = []
    for _ in range(4):
        controller = live("hi", delay=0)
        settle(controller)
        controllers.append(controller)
    assert [c.released for c in controllers] == [True, True, False, False]
    assert view._reaper.waiting() == 2


def test_a_closed_chat_widget_is_kept_by_nothing(comms: list[RecordingComm]) -> None:
    # anywidget turns an ``_esm`` path into a FileContents whose signal holds every widget made
    # from it (to hot-reload the file): the module and stylesheet are text, shared by all.
    assert isinstance(ChatWidget._esm, str) and "export default" in ChatWidget._esm
    assert isinstance(ChatWidget._css, str)
    w = ChatWidget(bot_name="Hermes")
    assert w._esm is ChatWidget._esm
    assert w.layout is None and len(comms) == 1  # no Layout widget, no second comm
    refs = [weakref.ref(w)]
    w.close()
    assert all(c.closed for c in comms)
    del w
    gc.collect()
    assert [r() for r in refs] == [None]
