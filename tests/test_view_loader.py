"""The chat widget's loader: the small module every run sends, and the fallback view it fetches.

Moved from ``test_widget.py`` (which keeps the recording comm and the run helpers these use).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from test_widget import RecordingComm, live, settle, the_comm

from hermes_nb.view import display as view
from hermes_nb.view import render
from hermes_nb.view._protocol import parse_view_msg
from hermes_nb.view.widget import ChatWidget


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
    made: list[RecordingComm] = []

    def create_comm(**kwargs: Any) -> RecordingComm:
        c = RecordingComm(**kwargs)
        made.append(c)
        return c

    monkeypatch.setattr(comm, "create_comm", create_comm)
    yield made
    view._reaper.end_all()  # this test's settled runs let go while their comms are ours


def test_a_runs_widget_carries_a_small_loader_not_the_view(comms: list[RecordingComm]) -> None:
    # Every run's comm_open (and a saved notebook's widget state) carries the widget's state:
    # the view's code and stylesheet travel once per page, on request, not in it.
    controller = live("hi", delay=0)
    settle(controller)
    state = the_comm(controller).open_data["state"]
    assert state["_css"] == "" and "highlight_css" not in state
    assert len(state["_esm"]) < 3_000, len(state["_esm"])
    assert len(json.dumps(state)) < 4_000, len(json.dumps(state))


_LOADER_DRIVE = """
const sent = [], listeners = {}, styles = [], rendered = [];
globalThis.document = {head: {append: (s) => styles.push(s.textContent)},
  createElement: () => ({})};
const model = {send: (m) => sent.push(m), on: (k, f) => (listeners[k] = f), off: () => {}};
// Node.js imports no blob: URL; a data: URL of the same text stands in for it.
globalThis.Blob = class { constructor(parts) { this.text = parts.join(""); } };
URL.createObjectURL = (blob) =>
  "data:text/javascript;base64," + Buffer.from(blob.text).toString("base64");
URL.revokeObjectURL = () => {};
const loader = (await import(LOADER)).default;
const done = loader.render({model, el: {}});
const view = "export default {version: VERSION, render: (p) => globalThis.RENDERED.push(p.el)};";
globalThis.RENDERED = rendered;
await listeners["msg:custom"]({type: "code", js: view, css: ".x{}"});
await done;
console.log(JSON.stringify({sent, styles, rendered: rendered.length}));
"""


def test_the_compacted_loader_still_fetches_imports_and_renders_the_fallback() -> None:
    # What every run sends is _compact(loader.js): run exactly that in Node.js with a fake
    # model and document — it asks for the code once, adds the stylesheet, renders the view.
    import re

    from hermes_nb.view.widget import _squeeze

    assert _squeeze('x = "a , b" + - y') == 'x="a , b"+ -y'  # strings and "+ -" kept
    esm = ChatWidget._esm
    version = re.search(r"const V=(\d+);", esm)
    assert version is not None, esm[:80]
    script = _LOADER_DRIVE.replace("LOADER", json.dumps(_module_url(esm)))
    assert _node(script.replace("VERSION", version.group(1))) == {
        "sent": [{"type": "code"}],
        "styles": [".x{}"],
        "rendered": 1,
    }


def _module_url(js: str) -> str:
    import base64

    return "data:text/javascript;base64," + base64.b64encode(js.encode()).decode()


def _node(script: str) -> Any:
    """What the ES module ``script`` prints (JSON), run by Node.js."""
    import shutil
    import subprocess

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


def test_the_code_message_is_answered_with_the_view_module_and_its_css(
    comms: list[RecordingComm],
) -> None:
    handled: list[Any] = []
    w = ChatWidget(handler=handled.append)
    c = w.comm
    assert isinstance(c, RecordingComm)
    assert parse_view_msg({"type": "code"}) == {"type": "code"}
    c.deliver({"type": "code"})
    (reply,) = [d["content"] for _, d in c.sent if d.get("method") == "custom"]
    assert set(reply) == {"type", "js", "css"}  # no top-level "id" (ipykernel 7.4 routing)
    assert reply["type"] == "code"
    # The stylesheet the extension's style carries: the view's and the code colours.
    assert ".hnb-chat" in reply["css"] and render.highlight_css() in reply["css"]
    # The fallback module, built from labextension/src/view/: the protocol's version, render()
    # (that the loader takes this version: browser/test_view_without_extension.py).
    exports = _view_module_exports(reply["js"])
    assert isinstance(exports["version"], int) and exports["render"] == "function", exports
    assert handled == []  # the widget's own business, never a run's
    w.close()


def test_without_the_fallback_module_a_view_gets_one_sentence(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from hermes_nb.view import widget

    monkeypatch.setattr(widget, "VIEW_MODULE", tmp_path / "view.js")
    widget._view_code.cache_clear()
    try:
        w = ChatWidget()
        c = w.comm
        assert isinstance(c, RecordingComm)
        c.deliver({"type": "code"})
        (reply,) = [d["content"] for _, d in c.sent if d.get("method") == "custom"]
        assert set(reply) == {"type", "error"}
        error = reply["error"]
        assert "view.js is missing" in error and "jlpm build" in error and "\n" not in error
        assert "Traceback" not in error
        w.close()
    finally:
        widget._view_code.cache_clear()
