"""The two ways across the thread boundary between the runtime's loop and the Hermes agent.

:class:`_Bridge` carries the agent's callbacks (called on the agent's threads) to
:meth:`~hermes_nb.providers.hermes_agent.HermesAgentProvider.stream` as journal events, through
an anyio memory object stream; :class:`_Control` carries Stop from the loop to the running
agent (``interrupt()``, and a prompt it waits on released). Apart from the provider because it
is the threading, and nothing of hermes-agent is imported here.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any

import anyio
import anyio.from_thread

from ..core.events import Event
from ..core.profiles import Secret

#: hermes_agent's logger, as before the split: one name to configure for all the provider's records.
log = logging.getLogger("hermes_nb.providers.hermes_agent")

#: How much of a tool's result the ``tool_end`` event carries.
RESULT_PREVIEW = 2000


def _preview(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return text if len(text) <= RESULT_PREVIEW else text[: RESULT_PREVIEW - 1] + "…"


def _looks_failed(result: Any) -> bool:
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return bool(result.lstrip().lower().startswith("error"))
    return isinstance(result, dict) and bool(result.get("error"))


class _Bridge:
    """The agent's callbacks, turned into ``(event, data)`` items on the memory stream.

    Callbacks arrive on the agent's threads; each item is handed to the loop with
    ``anyio.from_thread.run_sync`` and the loop's token, so items from one thread keep their
    order. After Stop (or when the loop is gone) items are dropped.
    """

    def __init__(self, send: Any, token: Any) -> None:
        self._send = send
        self._token = token
        self._lock = threading.Lock()
        self._closed = False
        self._started: dict[str, float] = {}
        self._completed: dict[str, deque[tuple[Any, Any]]] = {}
        self.streamed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def put(self, event: str, data: Any) -> None:
        with self._lock:
            if self._closed:
                return
        try:
            anyio.from_thread.run_sync(self._deliver, event, data, token=self._token)
        except Exception:  # the loop has stopped: nobody is listening any more
            self.close()

    def _deliver(self, event: str, data: Any) -> None:
        with self._lock:
            closed = self._closed
        if not closed:
            try:
                self._send.send_nowait((event, data))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self.close()

    # hermes-agent callbacks ---------------------------------------------------------------

    def on_delta(self, text: Any) -> None:
        if isinstance(text, str) and text:  # None only flushes the agent's own display
            self.streamed = True
            self.put(Event.TOKEN.value, {"text": text})

    def on_reasoning(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self.put(Event.REASONING.value, {"text": text})

    def on_tool_start(self, call_id: Any, name: Any, args: Any) -> None:
        with self._lock:
            self._started[str(call_id)] = time.perf_counter()
        arguments = args if isinstance(args, str) else json.dumps(args, default=str)
        self.put(
            Event.TOOL_START.value, {"id": str(call_id), "name": str(name), "arguments": arguments}
        )

    def on_progress(self, event: Any, name: Any = None, *_: Any, **details: Any) -> None:
        if event == "tool.completed":
            with self._lock:
                self._completed.setdefault(str(name), deque()).append(
                    (details.get("duration"), details.get("is_error"))
                )

    def on_tool_complete(self, call_id: Any, name: Any, args: Any, result: Any) -> None:
        with self._lock:
            started = self._started.pop(str(call_id), None)
            queued = self._completed.get(str(name))
            duration, is_error = queued.popleft() if queued else (None, None)
        if duration is None and started is not None:
            duration = time.perf_counter() - started
        self.put(
            Event.TOOL_END.value,
            {
                "id": str(call_id),
                "name": str(name),
                "result": _preview(result),
                "error": bool(is_error) if is_error is not None else _looks_failed(result),
                "duration_ms": None if duration is None else round(float(duration) * 1000, 1),
            },
        )

    def on_status(self, *args: Any, **_: Any) -> None:
        log.info("hermes-agent: %s", " ".join(str(a) for a in args))

    def on_event(self, name: Any, data: Any = None) -> None:
        log.debug("hermes-agent event %s: %s", name, data)


def _log_print(*args: Any, **_: Any) -> None:
    """Where the agent's console output goes: library code never prints into a cell."""
    log.debug("hermes-agent: %s", " ".join(str(a) for a in args).strip())


class _Control:
    """The running agent, so that Stop (from the loop) can interrupt it (in its thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agent: Any = None
        self.stopped = False
        #: Set by Stop: a prompt the worker waits on is answered for the person at once.
        self.cancelled = threading.Event()
        self.secrets: list[Secret] = []

    def attach(self, agent: Any) -> bool:
        """Register the built agent; False if Stop came first (then do not run it)."""
        with self._lock:
            self._agent = agent
            return not self.stopped

    def detach(self) -> None:
        with self._lock:
            self._agent = None

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            agent = self._agent
        try:
            if agent is not None:
                agent.interrupt("Stopped from the notebook.")
        finally:
            # After interrupt(): an approval released here (deny) or a question (no answer)
            # lets the worker go on, and the agent must already know to end its run.
            self.cancelled.set()
