"""A real ipykernel, driven the way JupyterLab drives it: execute cells, read iopub, and act as
the widget front end (comm_open → model, custom messages both ways, subshells for comms).

Used by ``tests/test_widget_kernel.py`` (and handy from a REPL)::

    with KernelHarness(home) as k:
        k.execute("import hermes_nb")
        view = k.view_for(k.execute("...show(run)..."))

``HERMES_NB_KERNEL_PYTHON`` selects the interpreter that runs the kernel (default: this one), so
the same tests run against other ipykernel versions installed in a throwaway virtualenv.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager

__all__ = ["TOOL_CALLS_SETUP", "ExecResult", "KernelHarness", "ViewState", "WidgetFrontEnd"]

#: Kernel code for the tool tests: ``start(("tool", {args}), ...)`` begins a run of the offline
#: echo model scripted to call those tools (the "notebook" set offered), and ``results(run)``
#: is each call's ``tool_end`` data, in order. Test modules add their own helpers after it.
TOOL_CALLS_SETUP = """
import json, os, time
import hermes_nb

def start(*calls):
    return hermes_nb.chat("go", profile="echo", tools=["notebook"], delay=0,
                          tool_calls=[{"name": n, "arguments": a} for n, a in calls])

def results(run):
    return [e.data for e in run.events() if e.event == "tool_end"]
"""

WIDGET_TARGET = "jupyter.widget"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass
class ExecResult:
    """What one ``execute_request`` produced."""

    msg_id: str
    reply: dict[str, Any]
    iopub: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.reply["content"]["status"] == "ok"

    def stdout(self) -> str:
        return "".join(
            m["content"]["text"]
            for m in self.iopub
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )

    def error(self) -> str:
        c = self.reply["content"]
        return (
            ""
            if self.ok
            else f"{c.get('ename')}: {c.get('evalue')}\n" + "\n".join(c.get("traceback", []))
        )

    def displays(self) -> list[dict[str, Any]]:
        return [m for m in self.iopub if m["msg_type"] == "display_data"]


@dataclass
class ViewState:
    """One widget view, reimplementing the rule in ``labextension/src/view/render.ts`` in Python.

    Applies a frame iff ``prev <= cursor < seq``; ignores ``seq <= cursor``; on a gap
    (``cursor < prev``, or a patch it cannot apply) records that it must ask for a replay
    ``after=cursor``. Blocks are upserted by id; a block with ``at`` replaces the held HTML
    from that UTF-16 offset.
    """

    cursor: int = 0
    status: str | None = None
    blocks: dict[str, dict[str, str]] = field(default_factory=dict)
    gaps: int = 0
    applied: int = 0
    patches: int = 0

    def apply(self, frame: dict[str, Any]) -> str:
        """``"applied"``, ``"ignored"`` or ``"gap"``."""
        if frame["seq"] <= self.cursor:
            return "ignored"
        if frame["prev"] > self.cursor or not self._patchable(frame):
            self.gaps += 1
            return "gap"
        for block in frame["blocks"]:
            html = block["html"]
            if "at" in block:  # replace from a UTF-16 offset, as JavaScript strings count
                base = self.blocks[block["id"]]["html"].encode("utf-16-le")
                html = (base[: 2 * block["at"]] + html.encode("utf-16-le")).decode("utf-16-le")
                self.patches += 1
            if html:
                self.blocks[block["id"]] = {"kind": block["kind"], "html": html}
            else:
                self.blocks.pop(block["id"], None)
        self.cursor = frame["seq"]
        self.status = frame["status"]
        self.applied += 1
        return "applied"

    def _patchable(self, frame: dict[str, Any]) -> bool:
        for block in frame["blocks"]:
            if "at" in block:
                held = self.blocks.get(block["id"], {}).get("html")
                if self.cursor != frame["prev"] or held is None:
                    return False
                if len(held.encode("utf-16-le")) // 2 < block["at"]:
                    return False
        return True

    def visible(self) -> dict[str, dict[str, str]]:
        return dict(self.blocks)


class WidgetFrontEnd:
    """The widget side of one model: its comm id, state and the custom messages it received."""

    def __init__(self, harness: KernelHarness, comm_id: str, state: dict[str, Any]) -> None:
        self.harness = harness
        self.comm_id = comm_id
        self.state = dict(state)
        self.custom: list[dict[str, Any]] = []
        self.asked: str | None = None  # the rid of the replay asked by :meth:`ask`
        self._cond = threading.Condition()

    def _on_msg(self, data: dict[str, Any]) -> None:
        with self._cond:
            if data.get("method") == "custom":
                self.custom.append(data["content"])
            elif data.get("method") in ("update", "echo_update"):
                self.state.update(data.get("state", {}))
            self._cond.notify_all()

    def frames(self) -> list[dict[str, Any]]:
        with self._cond:
            return [c for c in self.custom if c.get("type") == "frame"]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Wait until ``predicate()`` is truthy (re-checked on every message for this model)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out waiting on widget {self.comm_id[:8]}")
                self._cond.wait(min(left, 0.2))

    def wait_frame(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0):
        return self.wait_for(
            lambda: next((f for f in self.frames() if predicate(f)), None), timeout
        )

    def send(self, content: dict[str, Any], *, subshell_id: str | None = None) -> str:
        """Send a custom message to the kernel-side widget (as ``model.send`` does)."""
        return self.harness.comm_msg(
            self.comm_id, {"method": "custom", "content": content}, subshell_id=subshell_id
        )

    def ask(self) -> str:
        """Ask for the replay after 0 without waiting, as a view does when it renders (a
        run's live frames wait for a view to ask: ``view._controller.LISTEN_WAIT``); the
        answer, tagged :attr:`asked`, is the first frame such a view applies."""
        self.asked = f"{self.comm_id[:8]}:1"
        self.send({"type": "replay", "after": 0, "rid": self.asked})
        return self.asked

    def view_frames(self) -> list[dict[str, Any]]:
        """The frames the view that :meth:`ask` ed takes, in order: its answer and the live
        ones (not the answers to other replays)."""
        return [f for f in self.frames() if f["rid"] is None or f["rid"] == self.asked]

    def replay(self, after: int, *, subshell_id: str | None = None, timeout: float = 20.0):
        """Ask for a replay and return the answering frame."""
        rid = uuid.uuid4().hex
        self.send({"type": "replay", "after": after, "rid": rid}, subshell_id=subshell_id)
        return self.wait_frame(lambda f: f.get("rid") == rid, timeout)


class KernelHarness:
    """Starts an ipykernel with ``HERMES_NB_HOME`` set, collects iopub on a thread."""

    def __init__(
        self,
        home: Path,
        *,
        python: str | None = None,
        cwd: Path | None = None,
        pythonpath: tuple[Path, ...] = (),
    ):
        self.home = home
        self.python = python or os.environ.get("HERMES_NB_KERNEL_PYTHON") or sys.executable
        self.cwd = cwd or Path(__file__).resolve().parent.parent
        #: Put before everything else the kernel imports (another IPython, for one).
        self.pythonpath = pythonpath
        self.km: KernelManager | None = None
        self.kc: Any = None
        self.iopub: list[dict[str, Any]] = []
        self.widgets: dict[str, WidgetFrontEnd] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._shell_lock = threading.Lock()
        self._replies: dict[str, dict[str, Any]] = {}

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> KernelHarness:
        km = KernelManager()
        km._kernel_spec = KernelSpec(
            argv=[self.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name="hermes-test",
            language="python",
        )
        env = dict(os.environ)
        env["HERMES_NB_HOME"] = str(self.home)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (*map(str, self.pythonpath), str(self.cwd), env.get("PYTHONPATH", "")) if p
        )
        for name in ("OPENAI_API_KEY", "OPENROUTER_API_KEY", "HERMES_NB_PROFILE", "HERMES_HOME"):
            env.pop(name, None)
        km.start_kernel(env=env, cwd=str(self.cwd))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        self.km, self.kc = km, kc
        self._reader = threading.Thread(target=self._read_iopub, daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km is not None:
            with suppress(Exception):
                self.km.shutdown_kernel(now=True)
        if self._reader is not None:
            self._reader.join(5)

    def __enter__(self) -> KernelHarness:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ipykernel_version(self) -> str:
        return self.execute("import ipykernel; print(ipykernel.__version__)").stdout().strip()

    def kernel_info(self) -> dict[str, Any]:
        msg = self.kc.session.msg("kernel_info_request", {})
        self._send_shell(msg)
        return self._wait_reply(msg["header"]["msg_id"], 30)

    # -- reading ----------------------------------------------------------------------------

    def _read_iopub(self) -> None:
        channel = self.kc.iopub_channel  # only this thread touches the iopub socket
        while not self._stop.is_set():
            try:
                msg = channel.get_msg(timeout=0.2)
            except queue.Empty:
                continue
            except Exception:  # channels closed during shutdown
                if self._stop.is_set():
                    return
                continue
            self._on_iopub(msg)

    def _on_iopub(self, msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "comm_open" and content.get("target_name") == WIDGET_TARGET:
            state = content.get("data", {}).get("state", {})
            with self._cond:
                self.widgets[content["comm_id"]] = WidgetFrontEnd(self, content["comm_id"], state)
        elif kind == "comm_msg":
            widget = self.widgets.get(content["comm_id"])
            if widget is not None:
                widget._on_msg(content.get("data", {}))
        with self._cond:
            self.iopub.append(msg)
            self._cond.notify_all()

    def wait_iopub(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0, start: int = 0
    ) -> dict[str, Any]:
        """The first iopub message (from index ``start``) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.iopub):
                    if predicate(self.iopub[i]):
                        return self.iopub[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("timed out waiting for an iopub message")
                self._cond.wait(min(left, 0.2))

    def iopub_since(self, start: int) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.iopub[start:])

    def mark(self) -> int:
        with self._cond:
            return len(self.iopub)

    def _wait_reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """Read the shell channel (under the lock that guards its socket) until the reply."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no shell reply to {msg_id}")
            with self._shell_lock:
                try:
                    msg = self.kc.shell_channel.get_msg(timeout=min(left, 0.1))
                except queue.Empty:
                    continue
            self._replies[msg["parent_header"].get("msg_id", "")] = msg
        return self._replies.pop(msg_id)

    # -- writing ----------------------------------------------------------------------------

    def _send_shell(self, msg: dict[str, Any]) -> None:
        with self._shell_lock:
            self.kc.shell_channel.send(msg)

    def submit(self, code: str, *, subshell_id: str | None = None, allow_stdin: bool = True) -> str:
        """Send an execute_request without waiting; returns its msg_id.

        ``allow_stdin`` as JupyterLab sends it (true: a person is there); false is what
        nbclient sends for nbconvert, papermill and nbval (a headless run).
        """
        msg = self.kc.session.msg(
            "execute_request",
            {
                "code": code,
                "silent": False,
                "store_history": True,
                "user_expressions": {},
                "allow_stdin": allow_stdin,
                "stop_on_error": True,
            },
        )
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self._send_shell(msg)
        return msg["header"]["msg_id"]

    def result(self, msg_id: str, timeout: float = 60.0) -> ExecResult:
        """Wait for the reply and the idle status of an execute_request."""
        reply = self._wait_reply(msg_id, timeout)
        self.wait_iopub(
            lambda m: (
                m["msg_type"] == "status"
                and m["content"]["execution_state"] == "idle"
                and m["parent_header"].get("msg_id") == msg_id
            ),
            timeout,
        )
        with self._cond:
            mine = [m for m in self.iopub if m["parent_header"].get("msg_id") == msg_id]
        return ExecResult(msg_id, reply, mine)

    def execute(self, code: str, timeout: float = 60.0, *, check: bool = True) -> ExecResult:
        result = self.result(self.submit(code), timeout)
        if check and not result.ok:
            raise AssertionError(f"cell failed:\n{code}\n{result.error()}")
        return result

    def comm_msg(
        self, comm_id: str, data: dict[str, Any], *, subshell_id: str | None = None
    ) -> str:
        msg = self.kc.session.msg("comm_msg", {"comm_id": comm_id, "data": data})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self._send_shell(msg)
        return msg["header"]["msg_id"]

    def comm_open(
        self, target: str, data: dict[str, Any], *, subshell_id: str | None = None
    ) -> str:
        """Open a comm from the front end to the kernel's ``target``; its comm id."""
        comm_id = uuid.uuid4().hex
        content = {"comm_id": comm_id, "target_name": target, "data": data}
        msg = self.kc.session.msg("comm_open", content)
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self._send_shell(msg)
        return comm_id

    def comm_info(self, target: str, *, subshell_id: str | None = None) -> dict[str, Any]:
        """The kernel's open comms of ``target`` (a ``comm_info_request``, as a page sends it)."""
        msg = self.kc.session.msg("comm_info_request", {"target_name": target})
        if subshell_id is not None:
            msg["header"]["subshell_id"] = subshell_id
        self._send_shell(msg)
        reply = self._wait_reply(msg["header"]["msg_id"], 20.0)
        return dict(reply["content"].get("comms") or {})

    # -- subshells (what JupyterLab >= 4.4 does for comms) -----------------------------------

    def _control(self, msg_type: str, content: dict[str, Any], timeout: float = 10.0):
        msg = self.kc.session.msg(msg_type, content)
        self.kc.control_channel.send(msg)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.control_channel.get_msg(timeout=max(0.01, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
                return reply

    def supports_subshells(self) -> bool:
        features = self.kernel_info()["content"].get("supported_features", [])
        return "kernel subshells" in features

    def create_subshell(self) -> str:
        reply = self._control("create_subshell_request", {})
        assert reply["content"]["status"] == "ok", reply["content"]
        return reply["content"]["subshell_id"]

    def delete_subshell(self, subshell_id: str) -> None:
        reply = self._control("delete_subshell_request", {"subshell_id": subshell_id})
        assert reply["content"]["status"] == "ok", reply["content"]

    # -- widgets ------------------------------------------------------------------------------

    def widget(self, model_id: str, timeout: float = 20.0) -> WidgetFrontEnd:
        deadline = time.monotonic() + timeout
        with self._cond:
            while model_id not in self.widgets:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no comm_open for model {model_id}")
                self._cond.wait(min(left, 0.2))
            return self.widgets[model_id]

    def widget_views(
        self, result: ExecResult, *, ask: bool = True
    ) -> Iterator[tuple[str, WidgetFrontEnd]]:
        """``(display_id, widget)`` for every widget view a cell displayed; with ``ask``, each
        widget asks for its replay once (:meth:`WidgetFrontEnd.ask`), as its first view does
        when it renders."""
        for msg in result.displays():
            view = msg["content"]["data"].get(WIDGET_VIEW)
            if view:
                display_id = msg["content"].get("transient", {}).get("display_id", "")
                widget = self.widget(view["model_id"])
                if ask and widget.asked is None:
                    widget.ask()
                yield display_id, widget
