"""The widget protocol through a real ipykernel, talked to the way JupyterLab talks to it.

One kernel serves the module. Each test starts an echo run in it, shows it, and acts as the
widget front end: it reads frames from iopub, applies them with the view's rule
(``labextension/src/view/``; ``ViewState``), sends replay and Stop as comm messages — on a
kernel subshell where the kernel supports them, as JupyterLab ≥ 4.4 does — and checks the
static bundle that replaces the output.

``HERMES_NB_KERNEL_PYTHON=/path/to/python`` runs the same tests against another ipykernel
(see docs/kernel-versions.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_harness import KernelHarness, ViewState, WidgetFrontEnd

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(90)]

SETUP = """
import json, time
import hermes_nb
from hermes_nb.view import _live_runs
from hermes_nb.view import display as view
from hermes_nb.view._blocks import Transcript
from hermes_nb.view.display import show

deleted = []

@hermes_nb.tool(ask=True)
def delete(path: str) -> str:
    "Delete a file (the tests only record the call)."
    deleted.append(path)
    return f"deleted {path}"

def settled_blocks(run):
    run.wait(60)
    blocks = Transcript(run).consume(run.events(after_seq=0))
    print(json.dumps({k: {"kind": c, "html": h} for k, (c, h) in blocks.items() if h}))
"""

PROMPT = "Why *is* my merge slow?\\n\\n- big diffs\\n- many files\\n\\n```\\ngit merge\\n```"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHarness]:
    home = tmp_path_factory.mktemp("kernel-home")
    with KernelHarness(home) as k:
        k.execute(SETUP)
        yield k


def start(k: KernelHarness, name: str, options: str, shows: int = 1) -> list[tuple[str, Any]]:
    """Start ``name = hermes_nb.chat(...)`` and show it; the (display_id, widget) pairs."""
    code = f'{name} = hermes_nb.chat("{PROMPT}", profile="echo", {options})\n'
    code += f"show({name})\n" * shows
    views = list(k.widget_views(k.execute(code)))
    assert len(views) == shows
    return views


def settled(k: KernelHarness, name: str) -> dict[str, dict[str, str]]:
    return json.loads(k.execute(f"settled_blocks({name})").stdout())


def live_frames(w: WidgetFrontEnd) -> list[dict[str, Any]]:
    """What the view that asked as it rendered takes, in order: the answer to its replay, then
    the live frames (a run's live frames wait for a view to ask). A live frame committed just
    before that answer comes after it, and is ignored (``seq <= cursor``); none leaves a gap."""
    return w.view_frames()


def wait_settled_frame(w: WidgetFrontEnd, timeout: float = 30) -> dict[str, Any]:
    return w.wait_frame(
        lambda f: f["rid"] in (None, w.asked) and not f.get("meta", {}).get("live", 1), timeout
    )


def subshell_or_none(k: KernelHarness) -> str | None:
    return k.create_subshell() if k.supports_subshells() else None


def test_a_runs_comm_open_carries_no_view_code_and_a_code_request_gets_the_module(
    kernel: KernelHarness,
) -> None:
    ((_, w),) = start(kernel, "coded", "delay=0.01")  # still live when shown
    # The state every run sends (and a saved notebook keeps): a stub that chooses the view, the
    # kernel's loader by reference, no stylesheet.
    assert "_css" not in w.state and "highlight_css" not in w.state
    assert len(w.state["_esm"]) < 500
    kind, _, loader_id = w.state["loader"].partition(":")
    assert kind == "anywidget"
    loader = kernel.widget(loader_id)  # its comm_open came first: once per kernel
    assert len(loader.state["_esm"]) < 3_000
    # A page without the extension asks once; the answer comes on the loader's comm.
    loader.send({"type": "code"}, subshell_id=subshell_or_none(kernel))
    reply = loader.wait_for(
        lambda: next((c for c in loader.custom if c.get("type") == "code"), None)
    )
    view_js = Path(__file__).resolve().parents[1] / "hermes_nb" / "view" / "static" / "view.js"
    assert set(reply) == {"type", "js", "css"}
    assert reply["js"] == view_js.read_text(encoding="utf-8")
    assert ".hnb-chat" in reply["css"]
    wait_settled_frame(w)


def test_stream_reassembles_and_settles_into_the_static_bundle(kernel: KernelHarness) -> None:
    mark = kernel.mark()
    (did_a, w), (did_b, w2) = start(
        kernel, "r1", "chunk_size=3, delay=0.003, reasoning='Think first.'", shows=2
    )
    assert w is w2 and did_a != did_b, "a second show is another view of the same model"
    last = wait_settled_frame(w)
    assert last["status"] == "done"
    view = ViewState()
    for f in live_frames(w):
        assert view.apply(f) != "gap", "live frames arrive in order, each after the last"
    expected = settled(kernel, "r1")
    assert view.visible() == expected
    assert {"prompt", "reasoning:0", "reply:0", "status"} <= set(expected)
    assert view.cursor == int(kernel.execute("print(r1.last_event_id)").stdout())
    fresh = json.loads(kernel.execute("print(json.dumps(view.static_bundle(r1)))").stdout())
    for did in (did_a, did_b):  # every display of the run gets the static bundle
        update = kernel.wait_iopub(
            lambda m, did=did: (
                m["msg_type"] == "update_display_data"
                and m["content"]["transient"].get("display_id") == did
            ),
            start=mark,
        )
        data, metadata = update["content"]["data"], update["content"]["metadata"]
        assert [data, metadata] == fresh, "built from the cache, equal to a full render"
        assert set(data) == {"text/html", "text/markdown", "text/plain"}
        assert (
            'class="hnb-chat hnb-static mathjax_ignore tex2jax_ignore" data-state="done"'
            in data["text/html"]
        )
        assert data["text/plain"].startswith("Hermes (echo) · Done")
        assert metadata["hermes_nb"]["status"] == "done"
        assert metadata["hermes_nb"]["run"].startswith("run-")
    # The frames carry the status: no widget trait update went with it (700 bytes each).
    updates = [
        m
        for m in kernel.iopub_since(mark)
        if m["msg_type"] == "comm_msg" and m["content"]["data"].get("method") == "update"
    ]
    assert not updates and w.state["status"] != "done"


def test_replay_returns_exactly_the_blocks_changed_after_k(kernel: KernelHarness) -> None:
    [(_, w)] = start(kernel, "r2", "chunk_size=2, delay=0.003, repeat=3")
    wait_settled_frame(w)
    frames = live_frames(w)
    assert len(frames) >= 3
    changed_at: dict[str, int] = {}
    for f in frames:
        for b in f["blocks"]:
            changed_at[b["id"]] = f["seq"]
    fresh = ViewState()
    assert fresh.apply(w.replay(0)) == "applied"
    assert fresh.visible() == settled(kernel, "r2")
    for k in (1, frames[len(frames) // 2]["seq"], frames[-2]["seq"]):
        answer = w.replay(k)
        assert answer["prev"] == k and answer["seq"] == frames[-1]["seq"]
        assert {b["id"] for b in answer["blocks"]} == {i for i, s in changed_at.items() if s > k}


def test_a_view_that_drops_frames_repairs_itself_by_gap_replay(kernel: KernelHarness) -> None:
    # long enough for several live frames at MAX_FPS (3 a second), two in three of them missed
    [(_, w)] = start(kernel, "r3", "chunk_size=2, delay=0.01, repeat=3")
    lossy = ViewState()
    seen = 0
    while True:
        w.wait_for(lambda n=seen: len(w.frames()) > n)
        frames = w.frames()
        for i in range(seen, len(frames)):
            f = frames[i]
            if f["rid"] is not None or (i % 3 and f.get("meta", {}).get("live", True)):
                continue  # this view misses two live frames in three
            if lossy.apply(f) == "gap":
                assert lossy.apply(w.replay(lossy.cursor)) in ("applied", "ignored")
        seen = len(frames)
        if lossy.status in ("done", "stopped", "error"):
            break
    assert lossy.gaps >= 1
    assert lossy.visible() == settled(kernel, "r3")


def test_stop_as_a_comm_message_keeps_the_partial(kernel: KernelHarness) -> None:
    [(_, w)] = start(kernel, "r4", "reply='slow words ' * 500, chunk_size=2, delay=0.01")
    w.wait_frame(lambda f: any("slow words slow" in b["html"] for b in f["blocks"]))
    w.send({"type": "cancel"})
    last = wait_settled_frame(w)
    assert last["status"] == "stopped"
    view = ViewState()
    for f in live_frames(w):
        view.apply(f)
    blocks = view.visible()
    assert "slow words" in blocks["reply:0"]["html"]
    assert "Task cancelled." in blocks["notice"]["html"]
    assert blocks == settled(kernel, "r4")
    out = kernel.execute("print(r4.status, 0 < len(r4.text) < len('slow words ' * 500))")
    assert out.stdout().split() == ["stopped", "True"]


def test_stop_and_replay_reach_the_kernel_while_a_cell_blocks(kernel: KernelHarness) -> None:
    subshell = subshell_or_none(kernel)
    if subshell is None:
        pytest.skip("this ipykernel has no subshells: comm messages wait for the running cell")
    [(_, w)] = start(kernel, "r5", "reply='slow words ' * 500, chunk_size=2, delay=0.01")
    w.wait_frame(lambda f: any("slow words slow" in b["html"] for b in f["blocks"]))
    # Like JupyterLab: the view asks for its replay on the comm subshell, frames keep streaming
    # (published from the pump, parented to the cell that showed the run), then the user runs a
    # cell that blocks the main shell and clicks Stop.
    w.replay(0, subshell_id=subshell)
    count = len(w.frames())
    w.wait_for(lambda: len(w.frames()) > count + 1)
    mark = kernel.mark()
    blocking = kernel.submit("for _ in range(150):\n    time.sleep(0.02)")
    kernel.wait_iopub(
        lambda m: m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == blocking,
        start=mark,
    )
    t0 = time.monotonic()
    answer = w.replay(0, subshell_id=subshell, timeout=2.5)
    w.send({"type": "cancel"}, subshell_id=subshell)
    last = wait_settled_frame(w, timeout=2.5)
    took = time.monotonic() - t0
    idle = [
        m
        for m in kernel.iopub_since(mark)
        if m["msg_type"] == "status"
        and m["content"]["execution_state"] == "idle"
        and m["parent_header"].get("msg_id") == blocking
    ]
    assert not idle and took < 2.0, "answered while the cell was still running"
    assert answer["blocks"] and last["status"] == "stopped"
    assert kernel.result(blocking).ok


def test_replay_after_a_page_reload_on_a_new_subshell(kernel: KernelHarness) -> None:
    first = subshell_or_none(kernel)
    if first is None:
        pytest.skip("this ipykernel has no subshells")
    [(_, w)] = start(kernel, "r6", "chunk_size=4, delay=0.002")
    wait_settled_frame(w)
    w.replay(0, subshell_id=first)  # answered from that subshell's thread
    # A reload: JupyterLab's old page deletes its comm subshell, the new page makes another.
    kernel.delete_subshell(first)
    second = kernel.create_subshell()
    fresh = ViewState()
    assert fresh.apply(w.replay(0, subshell_id=second, timeout=5)) == "applied"
    assert fresh.visible() == settled(kernel, "r6")


def test_a_settled_run_is_shown_as_the_static_bundle(kernel: KernelHarness) -> None:
    result = kernel.execute(
        'r7 = hermes_nb.chat("done already", profile="echo", delay=0).wait(30)\nshow(r7)'
    )
    [display] = result.displays()
    data = display["content"]["data"]
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert 'data-state="done"' in data["text/html"]
    assert display["content"]["metadata"]["hermes_nb"]["status"] == "done"


def test_a_cell_ending_in_a_run_shows_its_view_through_the_registered_hook(
    kernel: KernelHarness,
) -> None:
    # The engine does not import the view: ``import hermes_nb`` registers the view's ``show``
    # with IPython's display formatter, and a cell ending in a run displays its chat view.
    # (delay: the run still streams when the cell ends, so the hook shows the live view.)
    result = kernel.execute(
        f'r_hook = hermes_nb.chat("{PROMPT}", profile="echo", delay=0.05)\nr_hook'
    )
    views = list(kernel.widget_views(result))
    assert len(views) == 1
    _, w = views[0]
    assert wait_settled_frame(w)["status"] == "done"


# -- display ids, late replays, letting go -----------------------------------------------------

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def updates_for(kernel: KernelHarness, display_ids: list[str], start: int) -> list[dict[str, Any]]:
    """The first ``update_display_data`` for each display id, from iopub index ``start``."""
    return [
        kernel.wait_iopub(
            lambda m, did=did: (
                m["msg_type"] == "update_display_data"
                and m["content"]["transient"].get("display_id") == did
            ),
            start=start,
        )["content"]
        for did in display_ids
    ]


def test_live_displays_carry_their_id_and_a_replay_after_the_settle_replaces_them_again(
    kernel: KernelHarness,
) -> None:
    mark = kernel.mark()
    result = kernel.execute(
        f'rd = hermes_nb.chat("{PROMPT}", profile="echo", chunk_size=4, delay=0.01)\n'
        "show(rd)\nshow(rd)"
    )
    live = [m["content"] for m in result.displays() if WIDGET_VIEW in m["content"]["data"]]
    assert len(live) == 2
    ids = [c["transient"]["display_id"] for c in live]
    for content in live:  # saved with the output: what a reloaded page's extension finds it by
        display_id = content["transient"]["display_id"]
        assert content["metadata"]["hermes_nb"] == {"display_id": display_id}
    [(_, w), _] = kernel.widget_views(result)
    wait_settled_frame(w)
    first = updates_for(kernel, ids, mark)
    assert all(u["metadata"]["hermes_nb"]["status"] == "done" for u in first)
    assert all("display_id" not in u["metadata"]["hermes_nb"] for u in first)

    # A page reloaded as the run settled missed the update; its view renders again and asks,
    # which takes longer than a view rendered from the same messages as the update (that one
    # was answered above, by wait_settled_frame, without the update again).
    sent = [
        m
        for m in kernel.iopub_since(mark)
        if m["msg_type"] == "update_display_data" and m["content"]["transient"]["display_id"] in ids
    ]
    assert len(sent) == 2, "one update for each display, not again for the asking view"
    time.sleep(1.0)  # view._controller.SETTLE_RACE
    again = kernel.mark()
    fresh = ViewState()
    assert fresh.apply(w.replay(0)) == "applied"
    assert fresh.status == "done" and fresh.visible() == settled(kernel, "rd")
    assert updates_for(kernel, ids, again) == first, "every display replaced again, the same"


def test_a_settled_run_closes_its_widget_once_its_view_left_and_the_kernel_keeps_none_of_it(
    kernel: KernelHarness,
) -> None:
    kernel.execute(
        "import gc, weakref\n_grace = _live_runs.SETTLED_GRACE\n_live_runs.SETTLED_GRACE = 1.0"
    )
    try:
        result = kernel.execute(
            "rr = hermes_nb.chat('x', profile='echo', reply='slow words ' * 100, chunk_size=4,"
            " delay=0.005)\nshow(rr)\n"
            "_c = weakref.ref(view._controllers[rr.run_id])\n"
            "_w = weakref.ref(_c().widget)\n"
            "_ids = [_w().model_id]\n"
            "print(json.dumps([_w().model_id, _w().layout]))"
        )
        model_id, layout = json.loads(result.stdout())
        assert layout is None  # one model per run: no Layout widget
        [(did, w)] = kernel.widget_views(result)
        assert w.comm_id == model_id
        mark = kernel.mark()
        w.replay(0)  # the view renders (and asks), mid-reply
        wait_settled_frame(w)
        updates_for(kernel, [did], mark)
        time.sleep(1.5)  # the grace is over, but the page has not said its view left: kept
        assert not [m for m in kernel.iopub_since(mark) if m["msg_type"] == "comm_close"]
        out = kernel.execute("print(json.dumps([_c().dormant, _c().released]))")
        assert json.loads(out.stdout()) == [True, False]
        # The page applied the update: the view left it, and says so (the view, on removal).
        w.send({"type": "removed"})
        closed = [
            kernel.wait_iopub(
                lambda m, cid=cid: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == cid,
                timeout=15,
                start=mark,
            )
            for cid in (model_id,)
        ]
        update_at = next(
            i
            for i, m in enumerate(kernel.iopub_since(mark))
            if m["msg_type"] == "update_display_data"
        )
        assert all(kernel.iopub_since(mark).index(m) > update_at for m in closed), (
            "the static bundle replaces the view before its model goes"
        )
        out = kernel.execute(
            "gc.collect()\n"
            "from ipywidgets.widgets.widget import _instances\n"
            "print(json.dumps([_c() is None, _w() is None,"
            " any(i in _instances for i in _ids),"
            " any(i in get_ipython().kernel.comm_manager.comms for i in _ids)]))"
        )
        assert json.loads(out.stdout()) == [True, True, False, False]
        # A view of the closed model asking now (a page still open on it) changes nothing.
        later = kernel.mark()
        w.send({"type": "replay", "after": 0, "rid": "after-close"})
        assert kernel.execute("print(rr.status)").stdout().strip() == "done"
        assert not [
            m
            for m in kernel.iopub_since(later)
            if m["msg_type"] in ("comm_msg", "update_display_data", "error")
        ]
    finally:
        kernel.execute("_live_runs.SETTLED_GRACE = _grace")


# -- prompts: cards answered from the view ------------------------------------------------------

DELETE = "tools=[delete], tool_calls=[{'name': 'delete', 'arguments': {'path': '/tmp/x'}}]"
QUESTION = (
    "tools=['ask_user'], tool_calls=[{'name': 'ask_user', 'arguments': "
    "{'question': 'Which colour?', 'choices': ['red', 'blue']}}]"
)


def open_card(w: WidgetFrontEnd, timeout: float = 20) -> str:
    """Wait for the live frame that opens a card; the prompt's id."""
    frame = w.wait_frame(
        lambda f: (
            f["rid"] is None
            and any(b["kind"] == "ask" and 'data-state="open"' in b["html"] for b in f["blocks"])
        ),
        timeout,
    )
    block = next(b for b in frame["blocks"] if b["kind"] == "ask")
    return block["id"].rpartition("ask:")[2]


def live_view(w: WidgetFrontEnd) -> ViewState:
    """A view that applied every live frame so far (they arrive in order)."""
    view = ViewState()
    for f in live_frames(w):
        assert view.apply(f) != "gap"
    return view


def wait_decided(w: WidgetFrontEnd, prompt_id: str, timeout: float = 20) -> str:
    """Wait until the live frames show the card of ``prompt_id`` decided; its HTML."""

    def decided() -> str | None:
        html = cards(live_view(w)).get(f"ask:{prompt_id}", "")
        return html if 'data-state="decided"' in html else None

    return w.wait_for(decided, timeout)


def cards(view: ViewState) -> dict[str, str]:
    return {k: v["html"] for k, v in view.visible().items() if v["kind"] == "ask"}


def test_an_approval_answered_by_the_view_while_another_cell_sleeps(kernel: KernelHarness) -> None:
    subshell = subshell_or_none(kernel)
    [(_, w)] = start(kernel, "ra", DELETE)
    prompt_id = open_card(w)
    assert w.wait_frame(lambda f: f["status"] == "waiting")
    if subshell is not None:  # like JupyterLab: the view's comm messages go to its subshell
        w.replay(0, subshell_id=subshell)
    mark = kernel.mark()
    blocking = kernel.submit("for _ in range(100):\n    time.sleep(0.03)")
    kernel.wait_iopub(
        lambda m: m["msg_type"] == "execute_input" and m["parent_header"].get("msg_id") == blocking,
        start=mark,
    )
    t0 = time.monotonic()
    w.send({"type": "answer", "prompt_id": prompt_id, "value": "once"}, subshell_id=subshell)
    decided = wait_decided(w, prompt_id)
    took = time.monotonic() - t0
    idle = [
        m
        for m in kernel.iopub_since(mark)
        if m["msg_type"] == "status"
        and m["content"]["execution_state"] == "idle"
        and m["parent_header"].get("msg_id") == blocking
    ]
    if subshell is not None:
        assert not idle and took < 2.0, "the answer was taken while the cell was still running"
    else:
        # ipykernel 6.x has no subshells: the answer waits for the blocking cell, then lands.
        assert idle, "without subshells the answer is handled once the cell has ended"
    assert "Allowed once — by you" in decided
    last = wait_settled_frame(w)
    assert last["status"] == "done"
    assert kernel.result(blocking).ok
    view = ViewState()
    for f in live_frames(w):
        assert view.apply(f) != "gap"
    [(key, card)] = cards(view).items()
    assert key == f"ask:{prompt_id}"
    assert "Allowed once — by you" in card and "<button" not in card
    assert view.visible() == settled(kernel, "ra")
    out = kernel.execute(
        "print(json.dumps([deleted, [(p['value'], p['by']) for p in ra.prompt_record()]]))"
    )
    assert json.loads(out.stdout()) == [["/tmp/x"], [["once", "view"]]]
    assert "deleted /tmp/x" in kernel.execute("print(ra.text)").stdout()


def test_replay_after_the_prompt_shows_the_card_once(kernel: KernelHarness) -> None:
    mark = kernel.mark()
    [(did, w)] = start(kernel, "rq", QUESTION)
    prompt_id = open_card(w)
    # A reload while waiting: the fresh view asks after=0 and shows the open card once.
    fresh = ViewState()
    assert fresh.apply(w.replay(0)) == "applied"
    assert list(cards(fresh)) == [f"ask:{prompt_id}"]
    assert 'data-state="open"' in cards(fresh)[f"ask:{prompt_id}"]
    assert fresh.status == "waiting"
    assert "Waiting for you" in fresh.blocks["status"]["html"]
    again = ViewState()
    assert again.apply(w.replay(0)) == "applied"
    assert again.visible() == fresh.visible()
    w.send({"type": "answer", "prompt_id": prompt_id, "value": "blue"})
    wait_settled_frame(w)
    assert fresh.apply(w.replay(fresh.cursor)) == "applied"
    assert list(cards(fresh)) == [f"ask:{prompt_id}"]
    assert "Answered “blue” — by you" in cards(fresh)[f"ask:{prompt_id}"]
    assert fresh.visible() == settled(kernel, "rq")
    update = kernel.wait_iopub(
        lambda m: (
            m["msg_type"] == "update_display_data"
            and m["content"]["transient"].get("display_id") == did
        ),
        start=mark,
    )
    data = update["content"]["data"]
    assert "Answered “blue” — by you" in data["text/html"] and "<button" not in data["text/html"]
    assert "Question: Which colour? — Answered “blue”, by you" in data["text/plain"]


def test_stop_while_waiting_denies_and_stops(kernel: KernelHarness) -> None:
    before = int(kernel.execute("print(len(deleted))").stdout())
    [(_, w)] = start(kernel, "rs", DELETE)
    open_card(w)
    w.send({"type": "cancel"})
    last = wait_settled_frame(w)
    assert last["status"] == "stopped"
    view = live_view(w)
    [card] = cards(view).values()
    assert "Denied — the run was stopped" in card and "<button" not in card
    assert "Task cancelled." in view.visible()["notice"]["html"]
    assert view.visible() == settled(kernel, "rs")
    out = kernel.execute(
        "print(json.dumps([rs.status, len(deleted),"
        " [(p['value'], p['by']) for p in rs.prompt_record()]]))"
    )
    assert json.loads(out.stdout()) == ["stopped", before, [["deny", "stop"]]]
