"""The live runs the view keeps: which runs have a live controller (``_controllers``), the
kept threads their pumps run on (:class:`_Pumps`), and the reaper that ends settled runs'
graces (:class:`_Reaper`).

Apart from :mod:`._controller` because these outlive any one run: process-wide state, shared
by every controller, that knows a controller only by the few methods it calls.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._controller import _Controller

log = logging.getLogger(__name__)

#: Seconds a settled run keeps its block cache and widget after its settle (and after a page said
#: its view was removed), so a view rendered meanwhile — a page reloading as the run settled — is
#: answered from the cache and its output replaced before the widget closes.
SETTLED_GRACE = 30.0
#: At most this many settled runs wait out their grace at once; beyond that the oldest one's
#: grace ends at once (a notebook running many short turns in a row keeps a bounded few).
MAX_SETTLED = 16


class _Pumps:
    """The threads pumps run on: kept and reused, a new one only when none is idle.

    A thread per run would do, but a kernel pays for every thread that ever sent a message:
    ipykernel opens an iopub pipe (a zmq socket) per sending thread, and new threads'
    allocations spread over malloc arenas that keep fragments of every run they served: 50 to
    100 KB of resident memory per settled turn in ``benchmarks/bench_memory.py``, a few KB with
    kept threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = 0
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on an idle pump thread, or on a new one: never queued behind another
        pump (each runs until its run settles)."""
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._threads += 1
                name = f"hermes-nb-pump-{self._threads}"
            else:
                self._idle -= 1
        self._tasks.put(task)
        if spawn:
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except BaseException:  # pragma: no cover - _pump catches what it can
                log.exception("A chat view pump failed.")
            finally:
                del task  # nothing of the last run stays on this thread while it waits
                with self._lock:
                    self._idle += 1


_pumps = _Pumps()
_controllers: dict[str, _Controller] = {}
_controllers_lock = threading.Lock()


def _forget(controller: _Controller) -> None:
    with _controllers_lock:
        if _controllers.get(controller.run.run_id) is controller:
            del _controllers[controller.run.run_id]


class _Reaper:
    """Ends settled runs' graces (:meth:`_Controller.grace_over`): one daemon thread, started on
    first use, asleep while nothing waits. At most :data:`MAX_SETTLED` wait at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: OrderedDict[int, tuple[float, _Controller]] = OrderedDict()
        self._thread: threading.Thread | None = None

    def hold(self, controller: _Controller) -> None:
        """End ``controller``'s grace after :data:`SETTLED_GRACE` seconds (or sooner, to keep
        at most :data:`MAX_SETTLED` waiting)."""
        excess: list[_Controller] = []
        with self._cond:
            self._due.pop(id(controller), None)  # held again (woken, removed): a fresh grace
            self._due[id(controller)] = (time.monotonic() + SETTLED_GRACE, controller)
            while len(self._due) > MAX_SETTLED:
                excess.append(self._due.popitem(last=False)[1][1])
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hermes-nb-grace", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        for old in excess:
            _end_grace(old)

    def end_all(self) -> None:
        """End every waiting grace now (tests)."""
        with self._cond:
            waiting = [c for _, c in self._due.values()]
            self._due.clear()
        for controller in waiting:
            _end_grace(controller)

    def waiting(self) -> int:
        with self._cond:
            return len(self._due)

    def _run(self) -> None:
        while True:
            _end_grace(self._next())  # no local keeps the controller while the thread sleeps

    def _next(self) -> _Controller:
        """Wait for the first controller whose grace is over; take it."""
        with self._cond:
            while True:
                now = time.monotonic()
                key, due = min(
                    ((k, d) for k, (d, _) in self._due.items()),
                    key=lambda item: item[1],
                    default=(None, 0.0),
                )
                if key is not None and due <= now:
                    return self._due.pop(key)[1]
                self._cond.wait(None if key is None else due - now)


def _end_grace(controller: _Controller) -> None:
    try:
        controller.grace_over()
    except Exception:  # a closed kernel, a comm gone: nothing left to show it anyway
        log.exception("Could not release the chat view of %s.", controller.run.run_id)


_reaper = _Reaper()
