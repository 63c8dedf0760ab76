"""The chat view's loading: a stub in every run's widget, the fallback loader once per kernel.

Every run's ``comm_open`` (and a saved notebook's widget state) carries a ``ChatWidget``'s
state: its module is a stub of ~300 B (``static/stub.js``) that renders with the extension's
view, or asks the kernel's one loader widget (``static/loader.js``, ``_ViewLoader``) through
anywidget's ``host.getWidget``. The loader asks for the fallback module once per page and the
kernel answers on the loader's comm. The kernel side runs on the recording comm of
``widget_support.py``; the exact compacted stub and loader run in Node.js against fake models.
"""

from __future__ import annotations

import base64
import gc
import json
import re
import shutil
import subprocess
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import ipywidgets  # type: ignore[import-untyped]
import pytest
from kernel_harness import WIDGET_TARGET, KernelHarness
from widget_support import RecordingComm, live, settle, the_comm

from hermes_nb.view import display as view
from hermes_nb.view import render, widget
from hermes_nb.view._protocol import parse_view_msg
from hermes_nb.view.widget import ChatWidget, _squeeze, _ViewLoader


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    """Every comm a widget opens in this test, and no loader from an earlier test: the first
    chat widget makes this test's own (``comms[0]``)."""
    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    monkeypatch.setattr(widget, "_loader", None)
    yield made
    view._reaper.end_all()  # this test's settled runs let go while their comms are ours


def replies(c: RecordingComm) -> list[dict[str, Any]]:
    return [d["content"] for _, d in c.sent if d.get("method") == "custom"]


# -- the kernel side ----------------------------------------------------------------------------

#: What a run's state holds: anywidget's model and view names, the stub, the run's traits and
#: the loader's reference. No ``_css``, ``_dom_classes``, ``layout``, ``tabbable``, ``tooltip``,
#: ``_view_count``, ``_anywidget_id``: the front ends' defaults (test_view_without_extension.py
#: and test_chat_view.py render without them).
RUN_STATE = {
    "_esm",
    "_model_module",
    "_model_module_version",
    "_model_name",
    "_view_module",
    "_view_module_version",
    "_view_name",
    "bot_name",
    "loader",
    "model",
    "run_id",
    "status",
}


def test_a_runs_widget_carries_a_stub_and_state_the_loader_travels_once(
    comms: list[RecordingComm],
) -> None:
    first, second = live("hi", delay=0), live("again", delay=0)
    for controller in (first, second):
        settle(controller)
    loader = widget._loader
    assert isinstance(loader, _ViewLoader)
    # One loader for the kernel, opened before the first run's widget; two runs' widgets.
    assert [c.comm_id for c in comms] == [
        loader.comm.comm_id,
        the_comm(first).comm_id,
        the_comm(second).comm_id,
    ]
    assert comms[0].open_data["state"]["_esm"] == _ViewLoader._esm
    assert "render(p)" in _ViewLoader._esm and "code" in _ViewLoader._esm
    for controller in (first, second):
        state = the_comm(controller).open_data["state"]
        assert set(state) == RUN_STATE, sorted(state)
        assert state["loader"] == f"anywidget:{loader.model_id}"  # host.getWidget's reference
        assert state["_esm"] == ChatWidget._esm and len(state["_esm"]) <= 320, len(state["_esm"])
        assert len(json.dumps(state)) <= 800, len(json.dumps(state))


def test_a_closed_loader_is_made_again_and_runs_never_keep_each_other(
    comms: list[RecordingComm],
) -> None:
    w = ChatWidget(bot_name="Hermes")
    loader = widget._loader
    assert loader is not None and w.loader is loader
    refs = [weakref.ref(w)]
    w.close()
    del w
    gc.collect()
    # The loader references no run's widget: a closed run's widget is freed, the loader stays.
    assert [r() for r in refs] == [None]
    assert not comms[0].closed and widget._loader is loader
    # Widget.close_all() (or a closed loader) leaves the next run's widget a new loader.
    ipywidgets.Widget.close_all()
    assert comms[0].closed
    again = ChatWidget()
    assert again.loader is widget._loader and again.loader is not loader
    assert again.loader.comm is comms[-2] and not comms[-2].closed
    again.close()


def test_the_loader_answers_the_code_message_with_the_view_module_and_its_css(
    comms: list[RecordingComm],
) -> None:
    handled: list[Any] = []
    w = ChatWidget(handler=handled.append)
    loader_comm, run_comm = comms
    assert parse_view_msg({"type": "code"}) == {"type": "code"}
    # A run's widget does not answer for the code: its module asks the loader.
    run_comm.deliver({"type": "code"})
    assert replies(run_comm) == [] and handled == []
    loader_comm.deliver({"type": "code"})
    (reply,) = replies(loader_comm)
    assert set(reply) == {"type", "js", "css"}  # no top-level "id" (ipykernel 7.4 routing)
    assert reply["type"] == "code"
    # The stylesheet the extension's style carries: the view's and the code colours.
    assert ".hnb-chat" in reply["css"] and render.highlight_css() in reply["css"]
    # The fallback module, built from labextension/src/view/: the protocol's version, render()
    # (that the loader takes this version: browser/test_view_without_extension.py).
    exports = _view_module_exports(reply["js"])
    assert exports == {"version": _version(), "render": "function"}, exports
    # Anything else on the loader's comm is nobody's business.
    loader_comm.deliver({"type": "cancel"})
    loader_comm.deliver({"type": "nonsense", "x": 1})
    assert len(replies(loader_comm)) == 1 and handled == []
    w.close()


def test_without_the_fallback_module_the_loader_answers_one_sentence(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setattr(widget, "VIEW_MODULE", tmp_path / "view.js")
    widget._view_code.cache_clear()
    try:
        w = ChatWidget()
        comms[0].deliver({"type": "code"})
        (reply,) = replies(comms[0])
        assert set(reply) == {"type", "error"}
        error = reply["error"]
        assert "view.js is missing" in error and "jlpm build" in error and "\n" not in error
        assert "Traceback" not in error
        w.close()
    finally:
        widget._view_code.cache_clear()


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_in_a_kernel_the_loader_opens_once_and_answers_the_code_on_its_comm(
    tmp_path: Path,
) -> None:
    # A real ipykernel, as JupyterLab talks to it: three runs open four models (the loader
    # with the first), the loader's comm answers a page's {type: "code"}.
    with KernelHarness(tmp_path) as k:
        k.execute("import hermes_nb\nfrom hermes_nb.view.display import show")
        mark = k.mark()
        for i in range(3):
            shown = k.execute(f"r{i} = hermes_nb.chat('q{i}', profile='echo')\nshow(r{i})")
            ((_, run),) = list(k.widget_views(shown))
            run.wait_frame(lambda f: f["status"] == "done", timeout=30)
        opened = [
            m["content"]
            for m in k.iopub_since(mark)
            if m["msg_type"] == "comm_open" and m["content"]["target_name"] == WIDGET_TARGET
        ]
        loader, *runs = opened
        assert len(runs) == 3 and "initialize" in loader["data"]["state"]["_esm"]
        for run_open in runs:
            state = run_open["data"]["state"]
            assert set(state) == RUN_STATE and state["loader"] == f"anywidget:{loader['comm_id']}"
        page = k.widgets[loader["comm_id"]]
        page.send({"type": "code"})
        reply = page.wait_for(lambda: next((c for c in page.custom if c["type"] == "code"), None))
        view_js = Path(widget.__file__).parent / "static" / "view.js"
        assert set(reply) == {"type", "js", "css"} and reply["js"] == view_js.read_text("utf-8")
        assert all("code" not in _types(k, r) for r in runs)  # a run's comm: frames only


def _types(k: KernelHarness, opened: dict[str, Any]) -> set[str]:
    return {c["type"] for c in k.widgets[opened["comm_id"]].custom}


# -- the page side: the exact compacted stub and loader in Node.js ------------------------------

#: A page, faked: the loader widget's model (its comm: ``sent``, ``listeners``), anywidget's
#: ``host.getWidget`` (what the loader's ``initialize`` returned), a run's model whose "loader"
#: is the reference, ``document`` (stylesheets added), and the views (``el``) rendered. Each
#: SCENARIO ends by printing what happened.
_PAGE = """
const out = {sent: [], styles: [], rendered: [], asked: [], text: {}};
const listeners = [];
globalThis.document = {head: {append: (s) => out.styles.push(s.textContent)},
  createElement: () => ({})};
// Node.js imports no blob: URL; a data: URL of the same text stands in for it.
globalThis.Blob = class { constructor(parts) { this.text = parts.join(""); } };
URL.createObjectURL = (blob) =>
  "data:text/javascript;base64," + Buffer.from(blob.text).toString("base64");
URL.revokeObjectURL = () => {};
globalThis.RENDERED = out.rendered;
const loaderModel = {send: (m) => out.sent.push(m),
  on: (k, f) => k === "msg:custom" && listeners.push(f),
  off: (k, f) => listeners.splice(listeners.indexOf(f) >>> 0, 1)};
const stub = (await import(STUB)).default;
const exports = await (await import(LOADER)).default.initialize({model: loaderModel});
const host = {getWidget: async (ref) => (out.asked.push(ref), {exports})};
const run = {get: (k) => (k === "loader" ? "anywidget:L" : undefined),
  send: () => { throw Error("a run's own comm is not for the code"); }};
const view = (el, extra) => ({model: run, host, el: {id: el,
  replaceChildren: (c) => (out.text[el] = [c.className, c.textContent]),
  set textContent(t) { out.text[el] = t; }}, ...extra});
const module =
  "export default {version: VERSION, render: (p) => globalThis.RENDERED.push(p.el.id)};";
const tick = () => new Promise((r) => setTimeout(r, 20));
const answer = async (msg) => { for (const f of [...listeners]) await f(msg); };
SCENARIO
out.listening = listeners.length;
console.log(JSON.stringify(out));
"""

_SCENARIOS = {
    # Two views of two runs: one request, one stylesheet, both rendered, nothing left listening.
    "fallback": """
const views = [stub.render(view("a")), stub.render(view("b"))];
await tick();
await answer({type: "code", js: module, css: ".x{}"});
await Promise.all(views);
""",
    # The extension registered this version: it renders; the loader is never asked.
    "extension": """
globalThis.__hermes_nb_view__ = {version: VERSION, render: (p) => out.rendered.push("own")};
await stub.render(view("a"));
""",
    # Another version registered (an older extension): the fallback, as without one.
    "other version": """
globalThis.__hermes_nb_view__ = {version: VERSION + 1, render: (p) => out.rendered.push("own")};
const done = stub.render(view("a"));
await tick();
await answer({type: "code", js: module, css: ""});
await done;
""",
    # The kernel has no fallback module: every waiting view shows its one sentence.
    "error": """
const views = [stub.render(view("a")), stub.render(view("b"))];
await tick();
await answer({type: "code", error: "The chat view cannot be shown: view.js is missing."});
await Promise.all(views);
""",
    # A fallback of another version: one sentence, never rendered.
    "mismatch": """
const done = stub.render(view("a"));
await tick();
await answer({type: "code", js: module.replace("version: VERSION", "version: 0"), css: ""});
await done;
""",
    # A view removed before the code came stops waiting (its timer and listener go).
    "removed": """
const gone = new AbortController();
stub.render(view("a", {signal: gone.signal}));
await tick();
gone.abort();
""",
    # anywidget before 0.11 gives render no host: one sentence.
    "no host": """
await stub.render({...view("a"), host: undefined});
""",
}


def _page(scenario: str) -> Any:
    """What the exact compacted stub and loader do on the fake page in ``scenario``."""
    script = (
        _PAGE.replace("STUB", json.dumps(_module_url(ChatWidget._esm)))
        .replace("LOADER", json.dumps(_module_url(_ViewLoader._esm)))
        .replace("SCENARIO", _SCENARIOS[scenario])
        .replace("VERSION", str(_version()))
    )
    return _node(script)


def _version() -> int:
    """The view protocol's version the stub and the loader ask for."""
    found = {re.search(r"const V=(\d+);", esm) for esm in (ChatWidget._esm, _ViewLoader._esm)}
    assert None not in found
    versions = {int(m.group(1)) for m in found if m is not None}
    assert len(versions) == 1, versions
    return versions.pop()


def test_the_compacted_stub_and_loader_fetch_once_import_and_render_the_fallback() -> None:
    assert _squeeze('x = "a , b" + - y') == 'x="a , b"+ -y'  # strings and "+ -" kept
    out = _page("fallback")
    assert out["sent"] == [{"type": "code"}] and out["styles"] == [".x{}"]
    assert sorted(out["rendered"]) == ["a", "b"] and out["asked"] == ["anywidget:L"] * 2
    assert out["listening"] == 0 and out["text"] == {}


def test_the_extensions_view_renders_and_the_loader_is_never_asked() -> None:
    out = _page("extension")
    assert out["rendered"] == ["own"] and out["asked"] == [] and out["sent"] == []
    other = _page("other version")
    assert other["rendered"] == ["a"] and other["sent"] == [{"type": "code"}]


def test_a_view_that_cannot_load_shows_one_sentence() -> None:
    out = _page("error")
    sentence = ["hnb-chat-unavailable", "The chat view cannot be shown: view.js is missing."]
    assert out["text"] == {"a": sentence, "b": sentence} and out["rendered"] == []
    mismatch = _page("mismatch")["text"]["a"]
    assert mismatch == [
        "hnb-chat-unavailable",
        "This chat view does not match its kernel: reinstall hermes-nb.",
    ]
    assert _page("no host")["text"] == {"a": "The chat view needs anywidget 0.11+."}


def test_a_removed_view_stops_waiting_for_the_code() -> None:
    out = _page("removed")  # Node.js exits: no timer left asking
    assert out["sent"] == [{"type": "code"}] and out["listening"] == 0 and out["rendered"] == []


def _module_url(js: str) -> str:
    return "data:text/javascript;base64," + base64.b64encode(js.encode()).decode()


def _node(script: str) -> Any:
    """What the ES module ``script`` prints (JSON), run by Node.js."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (./dev needs it to build the view)")
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _view_module_exports(js: str) -> dict[str, Any]:
    """What the module ``js`` exports by default, imported by Node.js as a browser would."""
    return _node(  # type: ignore[no-any-return]
        f"const m = (await import({json.dumps(_module_url(js))})).default;"
        "console.log(JSON.stringify({version: m.version, render: typeof m.render}));"
    )
