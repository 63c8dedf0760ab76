"""What the chat widget's fast kernel-side tests share: one patched comm seam, no kernel.

``comm.create_comm`` is replaced by a recording comm (the ``comms`` fixture), so the widget's
outgoing custom messages are captured with the time they were sent, and view messages are
delivered as a front end would (from any thread). The Python view model (``ViewState``) applies
frames with the same rule as the view (``labextension/src/view/``). Used by the ``test_view_*``
modules that were once ``test_widget.py``; real-kernel behaviour is in ``test_widget_kernel.py``.
Not a test module. The fixtures are named with ``@pytest.fixture(name=...)``: a test module
imports ``fixture_comms`` (and ``fixture_asked_first``) to use ``comms`` (``asked_first``), so the
test's parameter does not shadow an import (ruff F811).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from kernel_harness import ViewState

import hermes_nb
from hermes_nb.view import _controller
from hermes_nb.view import display as view
from hermes_nb.view._blocks import Transcript
from hermes_nb.view.widget import _the_loader

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


@pytest.fixture(name="comms")
def fixture_comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RecordingComm]]:
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


#: The kernel's own wait (the ``comms`` fixture sets 0 for the tests that read every frame).
LISTEN_WAIT = _controller.LISTEN_WAIT


@pytest.fixture(name="asked_first")
def fixture_asked_first(
    comms: list[RecordingComm], monkeypatch: pytest.MonkeyPatch
) -> list[RecordingComm]:
    """The ``comms`` fixture with the kernel's wait for a view's replay request."""
    monkeypatch.setattr(_controller, "LISTEN_WAIT", LISTEN_WAIT)
    return comms


CUT_LABEL = "Done — cut off at the token limit"


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


QUESTION = {
    "name": "ask_user",
    "arguments": {"question": "Which colour?", "choices": ["red", "blue"]},
}
