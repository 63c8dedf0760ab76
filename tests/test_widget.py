"""The chat widget's kernel side, fast: no kernel, one patched comm seam.

``comm.create_comm`` is replaced by a recording comm, so the widget's outgoing custom messages
are captured with the time they were sent, and view messages are delivered as a front end would
(from any thread). The Python view model (``ViewState``) applies frames with the same rule as
the view (``labextension/src/view/``). Real-kernel behaviour is in ``test_widget_kernel.py``.
"""

from __future__ import annotations

import gc
import io
import json
import re
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from kernel_harness import ViewState

import hermes_nb
from hermes_nb.view import _controller, _live_runs, render
from hermes_nb.view import display as view
from hermes_nb.view._blocks import Transcript
from hermes_nb.view._protocol import parse_view_msg, segment_of
from hermes_nb.view.widget import ChatWidget, _the_loader

REPLY = (
    "# Title\n\nFirst paragraph with **bold** text.\n\n"
    "- one\n- two\n\n```python\nprint('hi')\n```\n\nLast line.\n"
)


class RecordingComm:
    """Stands in for a kernel comm: records sends, delivers view messages to the widget."""

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or f"comm-{id(self):x}"
        self.open_data = kwargs.get("data")
        self.sent: list[tuple[float, dict[str, Any]]] = []
        self.closed = False
        self._callback: Any = None
        self._lock = threading.Lock()

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        with self._lock:
            self.sent.append((time.monotonic(), data))

    def on_msg(self, callback: Any) -> None:
        self._callback = callback

    def on_close(self, callback: Any) -> None:
        pass

    def close(self, *args: Any, **kwargs: Any) -> None:
        # As the kernel's comm manager does: a closed comm delivers nothing and is forgotten.
        self.closed = True
        self._callback = None

    def deliver(self, content: dict[str, Any]) -> None:
        """A custom message from a view, as the kernel would hand it to the widget."""
        if self._callback is None:  # closed: the kernel drops messages to an unknown comm
            return
        self._callback(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )

    def frames(self) -> list[tuple[float, dict[str, Any]]]:
        with self._lock:
            return [
                (t, d["content"])
                for t, d in self.sent
                if d.get("method") == "custom" and d["content"].get("type") == "frame"
            ]


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    made: list[RecordingComm] = []
    # The kernel's one loader widget (made with the first chat widget) is made here, before the
    # patch: ``made`` then holds the runs' comms alone, whichever test runs first.
    _the_loader()

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    # Live frames go out at once, as they do once a view has asked for its replay: these tests
    # read every live frame (a view's replay is not the point here; the gate's tests set it).
    monkeypatch.setattr(_controller, "LISTEN_WAIT", 0.0)
    yield made
    view._reaper.end_all()  # this test's settled runs let go while their comms are ours


def live(prompt: str = "hi", **options: Any) -> view._Controller:
    """Start an echo run and its controller's pump (no display: nothing to update)."""
    run = hermes_nb.chat(prompt, profile="echo", **options)
    controller = view._Controller(run)
    controller.start()
    return controller


def settle(controller: view._Controller, timeout: float = 30) -> None:
    controller.run.wait(timeout)
    controller.join(timeout)
    assert controller.finalized


def the_comm(controller: view._Controller) -> RecordingComm:
    c = controller.widget.comm
    assert isinstance(c, RecordingComm)
    return c


def live_frames(controller: view._Controller) -> list[tuple[float, dict[str, Any]]]:
    return [(t, f) for t, f in the_comm(controller).frames() if f["rid"] is None]


def final_blocks(run: hermes_nb.Run) -> dict[str, dict[str, str]]:
    """The settled transcript's blocks, rendered from scratch (the static path)."""
    transcript = Transcript(run)
    changed = transcript.consume(run.events(after_seq=0))
    return {k: {"kind": kind, "html": html} for k, (kind, html) in changed.items() if html}


def reassembled(frames: list[dict[str, Any]]) -> ViewState:
    state = ViewState()
    for f in frames:
        assert state.apply(f) == "applied"
    return state


# -- invariants -------------------------------------------------------------------------------


def test_invariant_1_live_frames_carry_the_seq_they_reflect(comms: list[RecordingComm]) -> None:
    # About a second of tokens: several frames at the pump's pace (view.MAX_FPS).
    controller = live("one two three " * 100, chunk_size=3, delay=0.002)
    settle(controller)
    run = controller.run
    frames = [f for _, f in live_frames(controller)]
    assert len(frames) >= 3
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(set(seqs)), "seqs strictly increase"
    assert [f["prev"] for f in frames] == [0, *seqs[:-1]], "each frame starts after the last"
    assert seqs[-1] == run.last_event_id
    tokens_upto = {}
    count = 0
    for seq, event, _data in run.events(after_seq=0):
        count += event == "token"
        tokens_upto[seq] = count
    counted = [f for f in frames[:-1] if "tokens" in f.get("meta", {})]  # only when it moved
    assert counted and counted[0] is frames[0]
    for f in counted:  # the frame reflects exactly the events up to its seq
        assert f["meta"]["tokens"] == tokens_upto[f["seq"]]
    assert frames[-1]["status"] == "done"


def test_invariant_2_view_applies_forward_only_and_repairs_gaps(
    comms: list[RecordingComm],
) -> None:
    # About 1.5 s of tokens: several frames at the pump's pace (view.MAX_FPS).
    controller = live(REPLY * 24, chunk_size=2, delay=0.001)
    settle(controller)
    frames = [f for _, f in live_frames(controller)]
    assert len(frames) >= 4
    lossy = ViewState()
    for i, f in enumerate(frames):
        if i % 2:  # every other frame never reaches this view
            continue
        if lossy.apply(f) == "gap":
            assert lossy.apply(controller.replay(lossy.cursor, "gap")) == "applied"
    assert lossy.gaps >= 1
    assert lossy.cursor == controller.run.last_event_id
    assert lossy.visible() == final_blocks(controller.run)
    # Old and repeated frames move nothing; a fresh view asks after=0 and gets everything.
    assert lossy.apply(frames[0]) == "ignored"
    assert lossy.apply(frames[-1]) == "ignored"
    fresh = ViewState()
    assert fresh.apply(controller.replay(0, "fresh")) == "applied"
    assert fresh.visible() == lossy.visible()


def test_invariant_4_frames_are_whole_block_upserts(comms: list[RecordingComm]) -> None:
    controller = live(REPLY * 2, chunk_size=1, delay=0.0005)
    settle(controller)
    frames = [f for _, f in live_frames(controller)]
    for f in frames:
        ids = [b["id"] for b in f["blocks"]]
        assert len(ids) == len(set(ids)), "a block appears at most once per frame"
    state = reassembled(frames)
    before = state.visible()
    # Applying every block again (a replay after=0 forced onto a complete view) changes nothing:
    # the view holds whole blocks by id, never text appended to what it had.
    for b in controller.replay(0, "again")["blocks"]:
        state.blocks[b["id"]] = {"kind": b["kind"], "html": b["html"]}
    assert state.visible() == before
    reply = "".join(v["html"] for k, v in before.items() if v["kind"] == "reply")
    assert reply.count("First paragraph") == 2  # twice in the prompt-echo, never more


def test_invariant_4_tail_patches_are_guarded_by_seq(comms: list[RecordingComm]) -> None:
    controller = live(
        "x", reply="A long paragraph that keeps growing " * 40, chunk_size=3, delay=0.001
    )
    settle(controller)
    frames = [f for _, f in live_frames(controller)]
    state = reassembled(frames)
    assert state.patches >= 1, "a growing block is sent as its new tail, not again whole"
    assert state.visible() == final_blocks(controller.run)
    i, patch = next((i, f) for i, f in enumerate(frames) if any("at" in b for b in f["blocks"]))
    before = reassembled(frames[:i])
    assert before.cursor == patch["prev"]
    some = next(b["id"] for b in patch["blocks"] if "at" in b)
    del before.blocks[some]  # a view without the HTML the patch starts from …
    assert before.apply(patch) == "gap"  # … asks for a replay instead of appending blindly
    assert before.apply(controller.replay(before.cursor, "fix")) == "applied"
    assert before.visible() == final_blocks(controller.run)


def test_invariant_5_at_most_30_frames_a_second_at_any_token_rate(
    comms: list[RecordingComm],
) -> None:
    # 100,000 one-character chunks, as fast as the runtime takes them: long enough (about a
    # second here) that the pump is pacing a flood, not sending a handful of frames.
    controller = live("x", reply="word " * 20000, chunk_size=1, delay=0)
    settle(controller, 120)
    times = [t for t, _ in live_frames(controller)]
    assert controller.run.last_event_id > 90000
    # Frames at the pump's pace (view.MAX_FPS a second) for about a second: several, not one.
    assert len(times) >= 0.5 * view.MAX_FPS, f"{len(times)} frames in {times[-1] - times[0]:.2f} s"
    worst = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert worst <= 30, f"{worst} frames within one second"


def test_frames_keep_flowing_while_tokens_flow(comms: list[RecordingComm]) -> None:
    controller = live("x", reply="abc " * 125, chunk_size=2, delay=0.004)
    settle(controller)
    times = [t for t, f in live_frames(controller) if f["status"] == "streaming"]
    span = times[-1] - times[0]
    assert span > 0.8, "the stream should last a while"
    assert (len(times) - 1) / span >= 0.8 * view.MAX_FPS  # the pump's pace, less jitter


def test_frames_slow_down_while_every_view_is_off_screen(comms: list[RecordingComm]) -> None:
    # About 4 s of tokens. Views a and b say where they are, as the view does when its status
    # line goes off or comes on screen (labextension/src/view/sight.ts).
    controller = live("x", reply="abc " * 1000, chunk_size=2, delay=0.002)
    c = the_comm(controller)
    c.deliver({"type": "sight", "view": "a", "seen": False})
    time.sleep(0.3)
    c.deliver({"type": "sight", "view": "b", "seen": False})
    hidden_from = time.monotonic()
    time.sleep(1.6)  # both off screen: about one frame a second
    c.deliver({"type": "sight", "view": "b", "seen": True})
    seen_at = time.monotonic()
    time.sleep(1.2)  # one of them on screen: the usual pace at once
    settle(controller)
    times = [t for t, f in live_frames(controller) if f["status"] == "streaming"]
    hidden = [t for t in times if hidden_from + 0.2 <= t < seen_at]
    assert len(hidden) <= 2, f"{len(hidden)} frames in 1.4 s while no view was on screen"
    after = [t for t in times if seen_at <= t < seen_at + 1.2]
    assert after, "no frame soon after a view came into sight"
    assert after[0] - seen_at < 0.25, f"the first frame came {after[0] - seen_at:.2f} s later"
    assert len(after) >= 0.8 * 1.2 * view.MAX_FPS, f"{len(after)} frames in 1.2 s once in sight"
    # Slower, and still exact: the frames reassemble into the final transcript.
    state = reassembled([f for _, f in live_frames(controller)])
    assert state.visible() == final_blocks(controller.run)


def test_a_run_that_settles_unseen_is_not_held_back(comms: list[RecordingComm]) -> None:
    controller = live("x", reply="short reply " * 20, chunk_size=4, delay=0.002)
    the_comm(controller).deliver({"type": "sight", "view": "a", "seen": False})
    controller.run.wait(10)
    settled_at = time.monotonic()
    controller.join(10)
    last = live_frames(controller)[-1]
    assert last[1]["status"] == "done"
    assert last[0] - settled_at < 0.3, "the last frame waited out the off-screen pace"


# -- live frames wait for a view to ask ----------------------------------------------------------

#: The kernel's own wait (the ``comms`` fixture sets 0 for the tests that read every frame).
LISTEN_WAIT = _controller.LISTEN_WAIT


@pytest.fixture
def asked_first(comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch) -> list[RecordingComm]:
    """The ``comms`` fixture with the kernel's wait for a view's replay request."""
    monkeypatch.setattr(_controller, "LISTEN_WAIT", LISTEN_WAIT)
    return comms


def test_a_reply_settled_before_any_view_asked_costs_no_frame(
    asked_first: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> None:
    displays = Displays(monkeypatch)
    controller = live("x", reply="short reply " * 10, chunk_size=4, delay=0.002)
    controller.display()
    settle(controller)
    assert the_comm(controller).frames() == [], "no view asked: no frame could be shown"
    assert displays.updated_ids() == displays.live_ids(), "the settle's update shows the answer"


def test_a_view_that_asks_gets_its_answer_then_live_frames_that_follow_it(
    asked_first: list[RecordingComm],
) -> None:
    controller = slow()
    time.sleep(LISTEN_WAIT / 3)
    c = the_comm(controller)
    assert c.frames() == [], "held while no view has asked"
    c.deliver({"type": "replay", "after": 0, "rid": "view:1"})
    settle(controller)
    frames = [f for _, f in c.frames()]
    assert frames[0]["rid"] == "view:1" and frames[0]["prev"] == 0
    assert len(frames) > 2, "live frames followed the answer"
    state = ViewState()
    for f in frames:
        assert state.apply(f) != "gap"
    assert state.status == "done" and state.visible() == final_blocks(controller.run)


def test_unasked_frames_go_out_after_the_wait_the_first_one_whole(
    asked_first: list[RecordingComm],
) -> None:
    # A view whose request waits behind a busy shell (ipykernel 6, a --wait cell) still sees
    # the reply grow: after LISTEN_WAIT the frames go out, the first from prev=0 with every block.
    started = time.monotonic()
    controller = live("x", reply="slow words " * 250, chunk_size=4, delay=0.004)
    settle(controller)
    timed = live_frames(controller)
    assert timed[0][0] - started >= LISTEN_WAIT * 0.9 and len(timed) > 2
    first = timed[0][1]
    assert first["prev"] == 0 and {"prompt", "status", "reply:0"} <= {
        b["id"] for b in first["blocks"]
    }
    state = reassembled([f for _, f in timed])
    assert state.visible() == final_blocks(controller.run)


# -- replay, cancel, blocks ---------------------------------------------------------------------


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


CUT_LABEL = "Done — cut off at the token limit"


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


# -- displays, the settle's updates, letting go ------------------------------------------------

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class Displays:
    """``IPython.display.display`` and ``update_display``, recorded as ``(data, kwargs)``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import IPython.display

        self.shown: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._lock = threading.Lock()
        monkeypatch.setattr(IPython.display, "display", self._record(self.shown))
        monkeypatch.setattr(IPython.display, "update_display", self._record(self.updates))

    def _record(self, into: list[tuple[dict[str, Any], dict[str, Any]]]) -> Any:
        def record(data: dict[str, Any], **kwargs: Any) -> None:
            with self._lock:
                into.append((data, kwargs))

        return record

    def live_ids(self) -> list[str]:
        return [kw["display_id"] for data, kw in self.shown if WIDGET_MIME in data]

    def updated_ids(self) -> list[str]:
        with self._lock:
            return [kw["display_id"] for _, kw in self.updates]


def slow(**options: Any) -> view._Controller:
    """A controller whose run streams for a few seconds (time to display it)."""
    return live("x", reply="slow words " * 100, chunk_size=4, delay=0.004, **options)


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


# -- static bundle and plain text -------------------------------------------------------------


def test_static_bundle_has_every_representation() -> None:
    run = hermes_nb.chat(REPLY, profile="echo", delay=0).wait(30)
    data, metadata = view.static_bundle(run)
    assert set(data) == {"text/html", "text/markdown", "text/plain"}
    html = data["text/html"]
    assert (
        '<div class="hnb-chat hnb-static mathjax_ignore tex2jax_ignore" data-state="done">' in html
    )
    assert "<style>" in html and ".hnb-chat" in html
    assert 'class="hnb-hl' in html and ".hnb-hl .nb{" in html  # code is highlighted
    for cls in ("hnb-prompt", "hnb-reply", "hnb-status"):
        assert f'class="{cls}' in html
    assert "Last line." in data["text/markdown"]
    plain = data["text/plain"]
    assert plain.startswith("Hermes (echo) · Done")
    assert run.run_id not in plain and not re.search(r"\d+(\.\d+)? ?(ms|s)\b", plain)
    again = view.static_bundle(hermes_nb.chat(REPLY, profile="echo", delay=0).wait(30))
    assert again[0]["text/plain"] == plain
    meta = metadata["hermes_nb"]
    assert meta["run"] == run.run_id and meta["status"] == "done" and meta["model"] == "echo"
    assert meta["usage"]["completion_tokens"] > 0
    json.dumps(metadata)
    # A reply that ran to its end carries no truncation notice anywhere.
    assert 'class="hnb-notice"' not in html and "finish_reason" not in meta
    assert "cut off" not in plain and "cut off" not in data["text/markdown"]


def test_a_saved_answer_carries_only_the_css_it_uses() -> None:
    # Every saved answer holds its own stylesheet: no rules for controls it does not have
    # (Stop, card buttons and fields), no card rules unless a prompt was asked, no comments.
    plain = view.static_bundle(hermes_nb.chat("hi", profile="echo", delay=0).wait(30))[0]
    css = re.search(r"<style>(.*?)</style>", plain["text/html"], re.S).group(1)
    assert ".hnb-chat{" in css and ".hnb-footer{" in css
    assert ".hnb-stop" not in css and ".hnb-ask" not in css and "/*" not in css
    asked = hermes_nb.chat("q", profile="echo", delay=0, tools=["ask_user"], tool_calls=[QUESTION])
    while not asked.pending:
        time.sleep(0.005)
    asked.answer(asked.pending[0].id, "blue")
    html = view.static_bundle(asked.wait(30))[0]["text/html"]
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert ".hnb-ask{" in css and ".hnb-ask-decision" in css
    assert ".hnb-ask-btn" not in css and ".hnb-ask-input" not in css


def test_static_bundle_of_a_reply_cut_off_at_the_token_limit_says_so() -> None:
    run = hermes_nb.chat(REPLY, profile="echo", delay=0, max_tokens=5).wait(30)
    assert run.truncated
    data, metadata = view.static_bundle(run)
    html, markdown, plain = data["text/html"], data["text/markdown"], data["text/plain"]
    assert 'data-state="done"' in html
    assert '<div class="hnb-notice">The reply was cut off at the model&#x27;s output limit' in html
    assert CUT_LABEL in html
    assert plain.startswith(f"Hermes (echo) · {CUT_LABEL}\n")
    assert plain.endswith("\n" + run.notice)
    assert f"*{run.notice}*" in markdown and f"*{CUT_LABEL}*" in markdown
    assert metadata["hermes_nb"]["status"] == "done"
    assert metadata["hermes_nb"]["finish_reason"] == "length"


def test_static_bundle_of_a_stopped_run_shows_the_notice() -> None:
    run = hermes_nb.chat("x", profile="echo", reply="a " * 500, delay=0.01)
    while not run.text:
        time.sleep(0.005)
    run.cancel()
    run.wait(30)
    data, metadata = view.static_bundle(run)
    assert 'data-state="stopped"' in data["text/html"]
    assert 'class="hnb-notice"' in data["text/html"]
    assert "Task cancelled." in data["text/plain"]
    assert metadata["hermes_nb"]["status"] == "stopped"


def test_stream_plain_prints_the_reply_and_the_error() -> None:
    out = io.StringIO()
    view.stream_plain(hermes_nb.chat("x", profile="echo", reply="Hello there."), out)
    assert out.getvalue() == "Hello there.\n"
    out = io.StringIO()
    view.stream_plain(hermes_nb.chat("x", profile="echo", fail="auth"), out)
    assert out.getvalue().startswith("Error: ")
    assert "Hint: " in out.getvalue()


def test_stream_plain_ends_a_cut_off_reply_with_the_notice() -> None:
    out = io.StringIO()
    run = hermes_nb.chat("x", profile="echo", reply="abcdefgh", chunk_size=4, max_tokens=1)
    view.stream_plain(run, out)
    assert out.getvalue() == f"abcd\n{run.notice}\n"
    assert 'finish_reason "length"' in out.getvalue()


def test_show_outside_a_kernel_streams_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    view.show(hermes_nb.chat("x", profile="echo", reply="Plain please."))
    assert capsys.readouterr().out == "Plain please.\n"


# -- prompts (approvals and questions) and the tool loop -----------------------------------------

QUESTION = {
    "name": "ask_user",
    "arguments": {"question": "Which colour?", "choices": ["red", "blue"]},
}


def deleted() -> tuple[Any, list[str]]:
    """An ``ask=True`` tool and the paths it was really called with."""
    calls: list[str] = []

    @hermes_nb.tool(ask=True)
    def delete(path: str) -> str:
        """Delete a file."""
        calls.append(path)
        return f"deleted {path}"

    return delete, calls


def wait_pending(run: hermes_nb.Run, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not run.pending:
        assert time.monotonic() < deadline, "the run never asked"
        time.sleep(0.005)
    return run.pending[0]


def wait_frame_with(controller: view._Controller, predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for _, f in live_frames(controller):
            if predicate(f):
                return f
        assert time.monotonic() < deadline, "no such frame"
        time.sleep(0.005)


def asks(blocks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {k: v["html"] for k, v in blocks.items() if v["kind"] == "ask"}


def test_a_held_card_goes_out_at_the_wait_though_no_event_follows_it(
    asked_first: list[RecordingComm],
) -> None:
    # The card waits for its answer, so no event follows it; a view that could not ask (its
    # request behind a busy shell) still gets the card, whole, once LISTEN_WAIT is over.
    started = time.monotonic()
    controller = live("pick", tools=["ask_user"], tool_calls=[QUESTION], delay=0.001)
    frame = wait_frame_with(controller, lambda f: f["status"] == "waiting", timeout=5)
    assert time.monotonic() - started >= LISTEN_WAIT * 0.9
    assert frame["prev"] == 0 and len(asks(reassembled([frame]).visible())) == 1
    assert len(live_frames(controller)) == 1, "held, then one whole frame"
    controller.run.cancel()
    settle(controller)


def test_a_question_is_one_card_upserted_from_open_to_decided(
    comms: list[RecordingComm],
) -> None:
    controller = live("pick", tools=["ask_user"], tool_calls=[QUESTION], delay=0.001)
    run = controller.run
    prompt = wait_pending(run)
    key = f"ask:{prompt.id}"
    opened = wait_frame_with(controller, lambda f: any(b["id"] == key for b in f["blocks"]))
    card = next(b for b in opened["blocks"] if b["id"] == key)
    assert card["kind"] == "ask"
    html = card["html"]
    assert 'data-state="open"' in html and 'role="group"' in html
    assert f'aria-labelledby="hnb-ask-{prompt.id}"' in html and f'id="hnb-ask-{prompt.id}"' in html
    assert "Which colour?" in html
    for choice in ("red", "blue"):
        assert f'data-prompt="{prompt.id}" data-answer="{choice}">{choice}</button>' in html
    assert 'aria-label="Your answer"' in html and ">Send</button>" in html
    assert 'class="hnb-countdown" role="timer" data-deadline="' in html
    # The status line says the run waits for the person, on the same frames.
    waiting = wait_frame_with(controller, lambda f: f["status"] == "waiting")
    assert (
        "Waiting for you"
        in reassembled(
            [f for _, f in live_frames(controller) if f["seq"] <= waiting["seq"]]
        ).blocks["status"]["html"]
    )

    the_comm(controller).deliver({"type": "answer", "prompt_id": prompt.id, "value": "blue"})
    settle(controller)
    assert run.prompt_record()[0]["value"] == "blue"
    assert run.prompt_record()[0]["by"] == "view"
    frames = [f for _, f in live_frames(controller)]
    sent = [f for f in frames if any(b["id"] == key for b in f["blocks"])]
    assert len(sent) == 2, "sent when it opened and when it was answered, never per tick"
    versions = [reassembled([f for f in frames if f["seq"] <= s["seq"]]).blocks[key] for s in sent]
    assert [v["kind"] for v in versions] == ["ask", "ask"]
    versions = [v["html"] for v in versions]
    assert 'data-state="open"' in versions[0] and 'data-state="decided"' in versions[1]
    decided = versions[1]
    assert "Answered “blue” — by you" in decided and 'aria-live="polite"' in decided
    assert "<button" not in decided and "<input" not in decided
    state = reassembled(frames)
    assert list(asks(state.visible())) == [key]
    assert state.visible() == final_blocks(run)
    assert "blue" in run.text  # the model got the answer as the tool's result


def test_replay_while_waiting_shows_the_card_once_and_then_its_decision(
    comms: list[RecordingComm],
) -> None:
    delete, calls = deleted()
    controller = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/tmp/x"}}]
    )
    run = controller.run
    prompt = wait_pending(run)
    wait_frame_with(controller, lambda f: f["status"] == "waiting")
    # A reload while waiting: a fresh view asks after=0 and gets the open card exactly once.
    fresh = ViewState()
    assert fresh.apply(controller.replay(0, "reload")) == "applied"
    cards = asks(fresh.visible())
    assert list(cards) == [f"ask:{prompt.id}"]
    card = cards[f"ask:{prompt.id}"]
    assert 'data-state="open"' in card
    assert '<pre class="hnb-ask-detail"><code>delete(path=&#x27;/tmp/x&#x27;)</code></pre>' in card
    labels = re.findall(r'data-answer="(\w+)">([^<]+)</button>', card)
    assert labels == [
        ("once", "Allow once"),
        ("session", "Allow for this session"),
        ("always", "Always allow"),
        ("deny", "Deny"),
    ]
    assert fresh.status == "waiting" and "Waiting for you" in fresh.blocks["status"]["html"]
    # The same replay again (a retry) changes nothing; answering replaces the card in place.
    before = fresh.visible()
    for b in controller.replay(0, "again")["blocks"]:
        fresh.blocks[b["id"]] = {"kind": b["kind"], "html": b["html"]}
    assert fresh.visible() == before
    the_comm(controller).deliver({"type": "answer", "prompt_id": prompt.id, "value": "once"})
    settle(controller)
    assert calls == ["/tmp/x"]
    assert fresh.apply(controller.replay(fresh.cursor, "later")) == "applied"
    cards = asks(fresh.visible())
    assert list(cards) == [f"ask:{prompt.id}"]
    assert "Allowed once — by you" in cards[f"ask:{prompt.id}"]
    assert fresh.visible() == final_blocks(run)
    assert run.prompt_record()[0]["by"] == "view"


def test_sight_messages_are_checked() -> None:
    for bad in (
        {"type": "sight"},
        {"type": "sight", "view": "a"},
        {"type": "sight", "view": "a", "seen": 1},
        {"type": "sight", "view": "", "seen": True},
        {"type": "sight", "view": "v" * 201, "seen": False},
        {"type": "sight", "view": ["a"], "seen": False},
    ):
        assert parse_view_msg(bad) is None, bad
    ok = {"type": "sight", "view": "a" * 200, "seen": False, "extra": 1}
    assert parse_view_msg(ok) == {"type": "sight", "view": "a" * 200, "seen": False}


def test_malformed_answer_messages_are_ignored(comms: list[RecordingComm]) -> None:
    for bad in (
        {"type": "answer"},
        {"type": "answer", "prompt_id": "p1", "value": None},
        {"type": "answer", "prompt_id": "", "value": "once"},
        {"type": "answer", "prompt_id": 3, "value": "once"},
        {"type": "answer", "prompt_id": "p" * 101, "value": "once"},
        {"type": "answer", "prompt_id": "p1", "value": "x" * 10_001},
        {"type": "answer", "prompt_id": "p1", "value": ["once"]},
    ):
        assert parse_view_msg(bad) is None, bad
    ok = {"type": "answer", "prompt_id": "p1-abc", "value": "x" * 10_000, "id": "ignored"}
    assert parse_view_msg(ok) == {"type": "answer", "prompt_id": "p1-abc", "value": "x" * 10_000}
    # Through the widget: malformed, unknown and wrong answers change nothing; the right one does.
    delete, calls = deleted()
    controller = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/a"}}]
    )
    run = controller.run
    prompt = wait_pending(run)
    c = the_comm(controller)
    for bad in (
        {"type": "answer", "prompt_id": prompt.id},
        {"type": "answer", "prompt_id": prompt.id, "value": "x" * 10_001},
        {"type": "answer", "prompt_id": "p9-000000", "value": "once"},
        {"type": "answer", "prompt_id": prompt.id, "value": "yes please"},
        {"type": "answer", "prompt_id": prompt.id, "value": ""},
    ):
        c.deliver(bad)
    assert [p.id for p in run.pending] == [prompt.id]
    c.deliver({"type": "answer", "prompt_id": prompt.id, "value": "deny"})
    c.deliver({"type": "answer", "prompt_id": prompt.id, "value": "once"})  # second: refused
    settle(controller)
    assert calls == []
    assert [(p["value"], p["by"]) for p in run.prompt_record()] == [("deny", "view")]
    assert "Denied — by you" in next(iter(asks(final_blocks(run)).values()))


def test_a_deadline_and_stop_decide_for_the_person_and_say_so(
    comms: list[RecordingComm],
) -> None:
    delete, calls = deleted()
    timed = live(
        "tidy",
        tools=[delete],
        tool_calls=[{"name": "delete", "arguments": {"path": "/a"}}],
        prompt_timeout=0.3,
    )
    settle(timed)
    [card] = asks(final_blocks(timed.run)).values()
    assert "Denied — time ran out" in card and 'data-verdict="denied"' in card
    question = live("pick", tools=["ask_user"], tool_calls=[QUESTION], prompt_timeout=0.3)
    settle(question)
    [card] = asks(final_blocks(question.run)).values()
    assert "No answer — time ran out" in card
    stopped = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/b"}}]
    )
    wait_pending(stopped.run)
    the_comm(stopped).deliver({"type": "cancel"})
    settle(stopped)
    assert stopped.run.status == "stopped" and calls == []
    state = reassembled([f for _, f in live_frames(stopped)])
    [card] = asks(state.visible()).values()
    assert "Denied — the run was stopped" in card
    assert state.status == "stopped" and "Task cancelled." in state.blocks["notice"]["html"]
    assert state.visible() == final_blocks(stopped.run)


def test_prompt_text_and_detail_are_shown_as_text_never_html(comms: list[RecordingComm]) -> None:
    delete, _ = deleted()
    hostile = '<img src=x onerror="alert(1)">'
    run = hermes_nb.chat(
        "x",
        profile="echo",
        tools=[delete, "ask_user"],
        tool_calls=[
            {"name": "delete", "arguments": {"path": hostile}},
            {"name": "ask_user", "arguments": {"question": hostile, "choices": [hostile]}},
        ],
        prompt_timeout=0.2,
    )
    wait_pending(run)
    live_cards = [h for kind, h in Transcript(run).consume(run.events()).values() if kind == "ask"]
    assert live_cards and all('data-state="open"' in h for h in live_cards)
    run.wait(30)
    blocks = Transcript(run).consume(run.events())
    cards = [html for kind, html in blocks.values() if kind == "ask"]
    assert len(cards) == 2
    for html in cards + live_cards:
        assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_tool_loop_steps_read_as_one_conversation(
    comms: list[RecordingComm], sse_server: Any
) -> None:
    from sse_server import Reply, content, finish, tool_call

    def lookup(city: str) -> str:
        """Look up the weather."""
        return f"Sunny in {city}"

    sse_server.enqueue(
        Reply(
            chunks=[
                content("Let me **check** the weather."),
                tool_call(0, id="call_w", name="lookup", arguments='{"city": "Oslo"}'),
                finish("tool_calls"),
            ],
            chunk_delay=0.01,
        ),
        Reply.text("It is sunny ", "in Oslo.", chunk_delay=0.01),
    )
    profile = hermes_nb.Profile(name="t", provider="openai", base_url=sse_server.url, model="m")
    run = hermes_nb.chat("Weather in Oslo?", profile=profile, tools=[lookup])
    controller = view._Controller(run)
    controller.start()
    settle(controller)
    assert run.status == "done", run.error
    state = reassembled([f for _, f in live_frames(controller)])
    blocks = state.visible()
    assert blocks == final_blocks(run)
    # Laid out by segment (the id says which), then reply, tools, cards within one.
    order = {"reply": 0, "tool": 1, "ask": 2}
    flow = sorted(
        (k for k, v in blocks.items() if v["kind"] in order),
        key=lambda k: (segment_of(k), order[blocks[k]["kind"]]),
    )
    assert flow == ["reply:0", "tool:call_w", "1/reply:0"]
    assert "Let me <strong>check</strong> the weather." in blocks["reply:0"]["html"]
    assert "Oslo" not in blocks["reply:0"]["html"]
    assert "It is sunny in Oslo." in blocks["1/reply:0"]["html"]
    tool = blocks["tool:call_w"]["html"]
    assert "lookup" in tool and "Sunny in Oslo" in tool and 'data-state="done"' in tool
    assert "Arguments" in tool and "Result" in tool and re.search(r"done · \d+ ms", tool)
    assert '<span class="nt">"city"</span>' in tool  # pretty, highlighted JSON arguments
    # The saved output lays the segments out in the same order: text, tool, text.
    data, _ = view.static_bundle(run)
    html = data["text/html"]
    first, call, second = (html.index(s) for s in ("Let me", "Sunny in Oslo", "It is sunny"))
    assert first < call < second
    assert html.count('class="hnb-seg"') == 2
    md = data["text/markdown"]
    assert md.index("Let me") < md.index("*Tool* `lookup`") < md.index("It is sunny")
    plain = data["text/plain"].splitlines()
    assert plain[2:] == [
        "Hermes: Let me **check** the weather.",
        "[tool lookup]",
        "Hermes: It is sunny in Oslo.",
    ]


def test_the_tool_step_limit_has_its_own_label(comms: list[RecordingComm]) -> None:
    run = hermes_nb.chat(
        "loop",
        profile="echo",
        tools=["ask_user"],
        tool_steps=[[QUESTION], [QUESTION], [QUESTION]],
        max_steps=1,
        prompt_timeout=0.05,
    ).wait(30)
    assert run.truncated and run.finish_reason == "max_steps"
    blocks = final_blocks(run)
    assert "Done — stopped at the tool-step limit" in blocks["status"]["html"]
    assert "tool loop reached its limit" in blocks["notice"]["html"]
    data, meta = view.static_bundle(run)
    assert data["text/plain"].startswith("Hermes (echo) · Done — stopped at the tool-step limit")
    assert meta["hermes_nb"]["finish_reason"] == "max_steps"


def test_static_bundle_records_each_prompt_and_its_answer() -> None:
    delete, _ = deleted()
    run = hermes_nb.chat(
        "tidy",
        profile="echo",
        tools=[delete],
        delay=0,
        tool_steps=[[{"name": "delete", "arguments": {"path": "/tmp/x"}}], [QUESTION]],
    )
    run.answer(wait_pending(run).id, "once", by="magic")
    deadline = time.monotonic() + 10
    while not (run.pending and run.pending[0].kind == "question"):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    run.answer(run.pending[0].id, "blue")
    run.wait(30)
    data, _ = view.static_bundle(run)
    html, md, plain = data["text/html"], data["text/markdown"], data["text/plain"]
    assert html.count('class="hnb-ask"') == 2
    assert "<button" not in html and "<input" not in html  # decided: no live controls
    assert "Allowed once — by you" in html and "Answered “blue” — by you" in html
    assert (
        "> **Approval:** Allow the tool delete to run? `delete(path='/tmp/x')`"
        " — Allowed once, by you"
    ) in md
    assert "> **Question:** Which colour? — Answered “blue”, by you" in md
    lines = plain.splitlines()
    assert (
        "Approval: Allow the tool delete to run? delete(path='/tmp/x') — Allowed once, by you"
        in lines
    )
    assert "Question: Which colour? — Answered “blue”, by you" in lines
    assert lines.index("[tool delete]") > lines.index(
        "Approval: Allow the tool delete to run? delete(path='/tmp/x') — Allowed once, by you"
    )
    assert "p1-" not in plain and "p2-" not in plain  # stable: no prompt ids


def test_stream_plain_prints_each_prompt_with_how_to_answer_and_its_decision() -> None:
    delete, _ = deleted()
    run = hermes_nb.chat(
        "tidy",
        profile="echo",
        tools=[delete],
        delay=0,
        tool_steps=[[{"name": "delete", "arguments": {"path": "/tmp/x"}}], [QUESTION]],
        prompt_timeout=60,
    )
    out = io.StringIO()
    seq = view.stream_plain(run, out, until_prompt=True)  # returns while the approval is open
    text = out.getvalue()
    assert text.endswith(
        "Approval needed: Allow the tool delete to run?\n"
        "    delete(path='/tmp/x')\n"
        "To answer: %hermes approve (allow once), %hermes approve session, "
        "%hermes approve always, or %hermes deny.\n"
        "After 60 s without an answer it is denied.\n"
    )
    assert run.pending and seq == max(e.seq for e in run.events() if e.event == "prompt")
    run.answer(run.pending[0].id, "session")
    question = io.StringIO()

    def answer_question() -> None:
        deadline = time.monotonic() + 10
        while not (run.pending and run.pending[0].kind == "question"):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        run.answer(run.pending[0].id, "blue")

    helper = threading.Thread(target=answer_question)
    helper.start()
    view.stream_plain(run, question, after_seq=seq)
    helper.join()
    rest = question.getvalue()
    assert rest.startswith("→ Allowed for this session, by you.\n[tool delete done]\n")
    assert (
        "Question: Which colour?\nChoices: red, blue\nTo answer: %hermes answer VALUE.\n"
        "After 60 s without an answer the model goes on without one.\n"
        "→ Answered “blue”, by you.\n"
    ) in rest
    assert "Approval needed" not in rest  # nothing printed twice
