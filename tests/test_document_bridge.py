"""The kernel's side of the document bridge, through a real ipykernel and a scripted page.

A ``FakePage`` plays the front-end extension on the wire (``labextension/src/document.ts``): it
answers the kernel's ``comm_open`` to ``hermes_nb.document`` with a hello, then the requests
addressed to it, from a list of nbformat cells — on a kernel subshell where the kernel offers
them, as JupyterLab ≥ 4.4 does. So the kernel's half is checked where the browser cannot pin
it: the edit tools offered once a page answered; a read answered while a ``%%hermes --wait``
cell holds the main thread (the reply handled on the subshell it came on); a cell changed
between the read and the edit refused in one sentence; an accepted edit sent with the source
it was made from; a page that reloaded announcing itself on a comm of its own (asked at once,
no request waits for the old one), and one that could not (a hello finds it, after a timeout);
a kernel without hermes_nb showing no comm to announce to (so no page opens one there and its
log stays clean). The page itself is tested in ``tests/browser/test_document_view.py``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

TARGET = "hermes_nb.document"

SETUP = """
import json, time
import hermes_nb
get_ipython().run_line_magic("load_ext", "hermes_nb")
from hermes_nb.engine.tools import resolve_tools
from hermes_nb.notebook._document_bridge import bridge_for

def start(*steps):
    return hermes_nb.chat("go", profile="echo", delay=0, tools=["notebook"],
                          tool_steps=[[{"name": n, "arguments": a} for n, a in s] for s in steps])

def results(run):
    return [e.data["result"] for e in run.events() if e.event == "tool_end"]

def answer(run, value, timeout=20):
    deadline = time.monotonic() + timeout
    while not run.pending:
        assert time.monotonic() < deadline and not run.settled, "no card"
        time.sleep(0.005)
    prompt = run.pending[0]
    assert run.answer(prompt.id, value)
    return prompt
"""


class FakePage:
    """A notebook page with hermes_nb's extension, on the wire."""

    def __init__(self, kernel: Any, cells: list[dict[str, Any]], subshell: str | None) -> None:
        self.kernel = kernel
        self.cells = cells
        self.subshell = subshell
        self.page = ""
        self.comm = ""
        self.deaf: set[str] = set()  # comms of a page that went away
        self.requests: list[dict[str, Any]] = []
        self.after_read: list[Any] = []  # what the person does right after a read
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def reload(self, announce: bool = True) -> None:
        """The page reloads: it forgets the comm, and (as the extension does once the kernel is
        connected) asks whether hermes_nb's comm is open there and opens its own with its hello;
        without ``announce`` it answers only a new hello."""
        self.deaf.add(self.comm)
        if not announce:
            return
        assert self.kernel.comm_info(TARGET, subshell_id=self.subshell), "no comm to announce to"
        self.page = f"p{uuid.uuid4().hex[:8]}"
        hello = {"page": self.page, "v": 1, "path": "nb.ipynb", "ops": [], "ui": "lab"}
        data = {"hello": True, "ok": True, "req": "", "result": hello}
        self.comm = self.kernel.comm_open(TARGET, data, subshell_id=self.subshell)

    def _send(self, data: dict[str, Any]) -> None:
        self.kernel.comm_msg(self.comm, data, subshell_id=self.subshell)

    def _serve(self) -> None:
        seen = 0
        while not self._stop.is_set():
            messages = self.kernel.iopub_since(seen)
            seen += len(messages)
            for msg in messages:
                content = msg["content"]
                if msg["msg_type"] == "comm_open" and content.get("target_name") == TARGET:
                    self.comm = content["comm_id"]
                    self.page = f"p{uuid.uuid4().hex[:8]}"
                    hello = {"page": self.page, "v": 1, "path": "nb.ipynb", "ops": [], "ui": "lab"}
                    req = content["data"]["req"]
                    self._send({"req": req, "ok": True, "hello": True, "result": hello})
                elif msg["msg_type"] == "comm_msg" and content["comm_id"] == self.comm:
                    data = content["data"]
                    if self.comm in self.deaf or data.get("page") != self.page:
                        continue
                    self.requests.append(data)
                    self._send({"req": data["req"], **self._answer(data)})
            time.sleep(0.005)

    def _find(self, cell_id: str) -> int:
        return next(i for i, c in enumerate(self.cells) if c["id"] == cell_id)

    def _answer(self, data: dict[str, Any]) -> dict[str, Any]:
        op = data["op"]
        if op == "read":
            result = {
                "path": "nb.ipynb",
                "dirty": True,
                "cells": json.loads(json.dumps(self.cells)),
            }
            for change in self.after_read:
                change()
            return {"ok": True, "result": result}
        ids = [c["id"] for c in self.cells]
        if data.get("cell_id") not in ids:
            return {"ok": False, "error": "unknown_cell", "message": "There is no cell with id."}
        i = self._find(data["cell_id"])
        if op == "cell":
            cell = self.cells[i]
            return {"ok": True, "result": {"index": i, **cell}}
        if "expect" in data and data["expect"] != self.cells[i]["source"]:
            return {"ok": False, "error": "changed", "message": "changed on the page"}
        if op == "edit":
            self.cells[i]["source"] = data["source"]
            return {"ok": True, "result": {"index": i}}
        return {"ok": False, "error": "unknown_op", "message": op}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from kernel_harness import KernelHarness

    with KernelHarness(tmp_path_factory.mktemp("kernel-home")) as k:
        yield k


def test_a_kernel_without_hermes_nb_has_no_comm_to_announce_to(kernel: Any) -> None:
    # First in the file: the ``page`` fixture loads hermes_nb. A page opens its comm only where
    # this answer is not empty, so a kernel without hermes_nb never sees an unknown target.
    assert kernel.comm_info(TARGET) == {}


@pytest.fixture(scope="module")
def page(kernel: Any) -> Iterator[FakePage]:
    subshell = kernel.create_subshell() if kernel.supports_subshells() else None
    cells = [
        {"id": "c1", "cell_type": "code", "source": "x = 1", "outputs": []},
        {"id": "m1", "cell_type": "markdown", "source": "# Notes"},
    ]
    fake = FakePage(kernel, cells, subshell)
    kernel.execute(SETUP)  # importing hermes_nb opens the comm; the page says hello
    deadline = time.monotonic() + 20
    while "True" not in kernel.execute("print(bridge_for(get_ipython()).ready)").stdout():
        assert time.monotonic() < deadline, "the page's hello never made the bridge ready"
        time.sleep(0.05)
    yield fake
    fake.close()


def kernel_json(k: Any, code: str) -> Any:
    return json.loads(k.execute(code).stdout().strip().splitlines()[-1])


def test_once_a_page_answered_the_edit_tools_are_offered(kernel: Any, page: FakePage) -> None:
    offered = kernel_json(
        kernel, "print(json.dumps([t.name for t in resolve_tools(['notebook'])]))"
    )
    assert {"read_notebook", "insert_cell", "edit_cell", "delete_cell", "run_cell"} <= set(offered)


def test_a_read_is_answered_while_a_wait_cell_holds_the_kernel(kernel: Any, page: FakePage) -> None:
    if page.subshell is None:
        pytest.skip("this kernel has no subshells: a page's reply waits for the running cell")
    started = time.monotonic()
    out = kernel.execute(
        '%%hermes --wait --tools notebook -o \'tool_calls=[{"name": "read_notebook"}]\'\n'
        "What is here?"
    )
    took = time.monotonic() - started
    text = json.dumps([m["content"] for m in out.iopub])
    assert "The notebook nb.ipynb as it is on the page (unsaved changes included)" in text
    assert "# Notes" in text
    assert took < 4, f"the read waited for a timeout ({took:.1f} s)"


def test_a_cell_changed_between_the_read_and_the_edit_is_refused(
    kernel: Any, page: FakePage
) -> None:
    page.after_read.append(lambda: page.cells[0].update(source="x = 100  # typed"))
    try:
        got = kernel_json(
            kernel,
            "r = start([('read_notebook', {})],"
            " [('edit_cell', {'cell_id': 'c1', 'source': 'x = 2'})])\nr.wait(30)\n"
            "print(json.dumps([r.status, results(r), bool(r.prompt_record())]))",
        )
    finally:
        page.after_read.clear()
    status, (read, edit), asked = got
    assert status == "done"
    assert "x = 1" in read
    assert edit.startswith("Error: BridgeError: Cell c1 changed since you read it")
    assert not asked, "no card for a refused edit"
    assert page.cells[0]["source"] == "x = 100  # typed"


def test_an_accepted_edit_carries_the_source_its_card_showed(kernel: Any, page: FakePage) -> None:
    before = page.cells[0]["source"]
    kernel.execute("r = start([('edit_cell', {'cell_id': 'c1', 'source': 'x = 5'})])")
    got = kernel_json(
        kernel,
        "p = answer(r, 'accept')\nr.wait(30)\n"
        "print(json.dumps([p.text, p.detail, [o.label for o in p.options], results(r)]))",
    )
    text, detail, buttons, [result] = got
    assert text == "Edit cell 1 (id c1)?"
    assert detail.splitlines()[2:] == ["@@ -1 +1 @@", f"-{before}", "+x = 5"]
    assert buttons == ["Accept", "Accept all from this run", "Reject"]
    assert result == "Edited cell 1 (id c1); it was not run (run_cell runs it)."
    assert page.cells[0]["source"] == "x = 5"
    edit = next(r for r in reversed(page.requests) if r["op"] == "edit")
    assert edit["expect"] == before and "id" not in edit


def test_an_unknown_cell_id_is_one_sentence(kernel: Any, page: FakePage) -> None:
    got = kernel_json(
        kernel,
        "r = start([('delete_cell', {'cell_id': 'nope'})])\nr.wait(30)\n"
        "print(json.dumps(results(r)))",
    )
    assert got == ["Error: BridgeError: There is no cell with id."]


def _timed_page_read(kernel: Any) -> float:
    """Seconds a read_notebook run took, after checking that the page (not the file) answered."""
    started = time.monotonic()
    got = kernel_json(
        kernel,
        "r = start([('read_notebook', {})])\nr.wait(60)\nprint(json.dumps(results(r)))",
    )
    took = time.monotonic() - started
    assert got[0].startswith("The notebook nb.ipynb as it is on the page"), got
    return took


def test_after_a_reload_the_page_that_announced_itself_answers_at_once(
    kernel: Any, page: FakePage
) -> None:
    page.reload()
    old_requests = len(page.requests)
    took = _timed_page_read(kernel)
    assert took < 3, f"a reload cost {took:.1f} s: the request waited for the old page"
    assert [r["page"] for r in page.requests[old_requests:]] == [page.page]
    print(f"read_notebook after a reload: {took:.2f} s")


def test_a_hello_of_an_older_protocol_is_closed(kernel: Any, page: FakePage) -> None:
    mark = kernel.mark()
    data = {"hello": True, "ok": True, "req": "", "result": {"page": "old", "v": 0}}
    comm = kernel.comm_open(TARGET, data, subshell_id=page.subshell)
    kernel.wait_iopub(
        lambda m: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == comm, 20, mark
    )
    pages = kernel_json(kernel, "print(json.dumps(list(bridge_for(get_ipython())._pages)))")
    assert "old" not in pages and pages[-1] == page.page


def test_a_page_that_could_not_announce_itself_is_found_by_a_hello(
    kernel: Any, page: FakePage
) -> None:
    page.reload(announce=False)
    took = _timed_page_read(kernel)
    assert 5 <= took < 9, f"took {took:.1f} s (one request's timeout, then a hello)"
