"""A view's replay, Stop and malformed messages, the blocks a run shows, and the widget itself.

Replays are served from the block cache and answered once per retry burst; cancel from many
threads stops once; tool, reasoning, error and cut-off blocks match the static render; the widget's
repr, its reuse per run and its display after close. Recording comm of ``widget_support.py``.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest
from kernel_harness import ViewState
from widget_support import (
    CUT_LABEL,
    REPLY,
    RecordingComm,
    final_blocks,
    fixture_comms,  # noqa: F401  (comms: every ChatWidget's comm recorded)
    live,
    live_frames,
    reassembled,
    settle,
    the_comm,
)

import hermes_nb
from hermes_nb.view import display as view
from hermes_nb.view import render
from hermes_nb.view._protocol import parse_view_msg
from hermes_nb.view.widget import ChatWidget


def test_replay_is_served_from_the_cache_without_rendering(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    controller = live(REPLY, chunk_size=4, delay=0.001, reasoning="thinking hard")
    settle(controller)
    frames = [f for _, f in live_frames(controller)]
    changed_at: dict[str, int] = {}
    for f in frames:
        for b in f["blocks"]:
            changed_at[b["id"]] = f["seq"]

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("replay must not render")

    monkeypatch.setattr(render, "markdown_to_html", boom)
    monkeypatch.setattr(render, "MarkdownStream", boom)
    c = the_comm(controller)
    for k in sorted({0, 1, frames[len(frames) // 2]["seq"], frames[-1]["seq"] - 1}):
        c.deliver({"type": "replay", "after": k, "rid": f"r{k}"})
        answer = next(f for _, f in c.frames() if f["rid"] == f"r{k}")
        assert answer["prev"] == k
        assert answer["seq"] == controller.run.last_event_id
        assert {b["id"] for b in answer["blocks"]} == {i for i, s in changed_at.items() if s > k}
    c.deliver({"type": "replay", "after": frames[-1]["seq"], "rid": "none"})
    assert next(f for _, f in c.frames() if f["rid"] == "none")["blocks"] == []


def test_replay_retries_queued_behind_a_busy_shell_are_answered_once(
    comms: list[RecordingComm],
) -> None:
    controller = live(REPLY, delay=0)
    settle(controller)
    c = the_comm(controller)
    for n in range(1, 6):  # five retries of one view, delivered back to back
        c.deliver({"type": "replay", "after": 0, "rid": f"view-a:{n}"})
    c.deliver({"type": "replay", "after": 0, "rid": "view-b:1"})  # another view is answered
    answers = [f["rid"] for _, f in c.frames() if f["rid"]]
    assert answers == ["view-a:1", "view-b:1"]
    time.sleep(0.25)  # a real retry, ≥ 250 ms later, is answered again
    c.deliver({"type": "replay", "after": 0, "rid": "view-a:6"})
    assert [f["rid"] for _, f in c.frames() if f["rid"]][-1] == "view-a:6"


def test_cancel_from_many_threads_stops_once_and_keeps_the_partial(
    comms: list[RecordingComm],
) -> None:
    controller = live("x", reply="slow words " * 400, chunk_size=2, delay=0.01)
    c = the_comm(controller)
    run = controller.run
    deadline = time.monotonic() + 10
    while len(run.text) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    barrier = threading.Barrier(8)

    def click() -> None:
        barrier.wait()
        c.deliver({"type": "cancel"})

    threads = [threading.Thread(target=click) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    settle(controller)
    assert run.status == "stopped"
    assert sum(1 for _, e, _ in run.events(after_seq=0) if e == "cancel") == 1
    state = reassembled([f for _, f in live_frames(controller)])
    assert state.status == "stopped"
    assert 20 <= len(run.text) < len("slow words " * 400)
    kinds = {v["kind"] for v in state.visible().values()}
    assert {"prompt", "reply", "notice", "status"} <= kinds
    assert state.visible() == final_blocks(run)


def test_malformed_view_messages_are_ignored(comms: list[RecordingComm]) -> None:
    seen: list[Any] = []
    w = ChatWidget(handler=seen.append)
    c = w.comm
    assert isinstance(c, RecordingComm)
    for bad in (
        None,
        [],
        {"type": "replay"},
        {"type": "replay", "after": -1, "rid": "x"},
        {"type": "replay", "after": True, "rid": "x"},
        {"type": "replay", "after": 0, "rid": ""},
        {"type": "nope"},
    ):
        c.deliver(bad)  # type: ignore[arg-type]
    assert seen == []
    c.deliver({"type": "cancel"})
    c.deliver({"type": "replay", "after": 3, "rid": "ok", "extra": 1})
    assert seen == [{"type": "cancel"}, {"type": "replay", "after": 3, "rid": "ok"}]
    assert parse_view_msg({"type": "cancel", "x": 1}) == {"type": "cancel"}


def test_tool_reasoning_and_error_blocks(comms: list[RecordingComm]) -> None:
    controller = live(
        "look it up",
        reasoning="I should **search**.",
        tool_calls=[{"name": "search", "arguments": {"q": "<b>"}, "result": "found <it>"}],
        fail="auth",
        fail_after=2,
    )
    settle(controller)
    state = reassembled([f for _, f in live_frames(controller)])
    blocks = state.visible()
    assert state.status == "error"
    tool = blocks["tool:call_0"]
    assert tool["kind"] == "tool"
    assert 'class="hnb-tool"' in tool["html"] and 'data-state="done"' in tool["html"]
    assert "search" in tool["html"] and "found &lt;it&gt;" in tool["html"]
    assert "<b>" not in tool["html"] and "<it>" not in tool["html"]
    assert blocks["reasoning:0"]["kind"] == "reasoning"
    assert "<strong>search</strong>" in blocks["reasoning:0"]["html"]
    error = blocks["error"]["html"]
    assert 'class="hnb-error"' in error and 'class="hnb-hint"' in error
    assert blocks == final_blocks(controller.run)


def test_a_reply_cut_off_at_the_token_limit_shows_the_notice_and_status(
    comms: list[RecordingComm],
) -> None:
    controller = live("one two three " * 20, chunk_size=3, delay=0.001, max_tokens=6)
    settle(controller)
    run = controller.run
    assert run.truncated and run.text and run.notice
    frames = [f for _, f in live_frames(controller)]
    state = reassembled(frames)
    blocks = state.visible()
    assert state.status == "done"
    notice = blocks["notice"]
    assert notice["kind"] == "notice"
    assert 'class="hnb-notice"' in notice["html"]
    assert "output limit (finish_reason &quot;length&quot;)" in notice["html"]
    assert CUT_LABEL in blocks["status"]["html"]
    assert blocks == final_blocks(run)
    # A reloaded view (replay after=0) gets the notice and the label too.
    fresh = ViewState()
    assert fresh.apply(controller.replay(0, "fresh")) == "applied"
    assert fresh.visible() == blocks


def test_route_to_sender_overrides_ipykernel_reply_routing() -> None:
    from hermes_nb.view.widget import _route_to_sender

    class KernelComm:  # what ipykernel 7.4's BaseComm exposes
        def _reply_subshell_for(self, data: Any, default: str | None) -> str | None:
            return "stale-subshell"

    c = KernelComm()
    _route_to_sender(c)
    assert c._reply_subshell_for({"method": "custom"}, "fresh") == "fresh"
    assert c._reply_subshell_for({"method": "custom"}, None) is None


def test_widget_repr_is_stable(comms: list[RecordingComm]) -> None:
    a, b = ChatWidget(bot_name="Hermes", model="echo"), ChatWidget(bot_name="Hermes", model="echo")
    assert repr(a) == repr(b) == "ChatWidget(bot_name='Hermes', model='echo')"
    data, _ = a._repr_mimebundle_()
    assert data["text/plain"] == repr(a)
    assert not re.search(r"0x[0-9a-f]+", repr(a))


def test_same_run_reuses_one_widget_model(comms: list[RecordingComm]) -> None:
    run = hermes_nb.chat("hello", profile="echo", delay=0.01)
    first = view._controller_for(run)
    second = view._controller_for(run)
    assert first is second is not None
    run.wait(30)
    first.join(30)
    assert view._controller_for(run) is None  # settled: shown as the static bundle


def test_a_closed_widget_is_displayed_as_a_snapshot_not_a_type_error(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by mypy: ipywidgets sets ``_repr_mimebundle_`` to None on close
    # (``Widget.close_all()``), and displaying the run again raised "'NoneType' object is not
    # callable". The run's transcript so far is shown instead.
    import IPython.display

    shown: list[dict[str, Any]] = []
    monkeypatch.setattr(IPython.display, "display", lambda data, **kw: shown.append(data))
    controller = live("one two three " * 200, delay=0.01)
    try:
        controller.widget.close()
        controller.display()
        assert len(shown) == 1
        assert "application/vnd.jupyter.widget-view+json" not in shown[0]
        assert {"text/html", "text/markdown", "text/plain"} <= set(shown[0])
    finally:
        controller.run.cancel()
        controller.run.wait(30)
        controller.join(30)
