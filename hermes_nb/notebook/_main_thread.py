"""The main-thread queue ``run_python`` goes through: its jobs, who runs them and when
(:func:`run_queued`, :func:`wait_for_run`, :func:`serving_main_thread`).

Apart from :mod:`.tools` because it is the toolset's only shared, threaded state, and the
magics' ``--wait`` serves it too; how one job's code runs is in :mod:`._run_code`.

**run_python and the main thread.** Code the agent runs must run where a cell runs — on the
kernel's main thread, in the user namespace — and never *while* a cell runs. The tool (async,
on the runtime's loop) queues a :class:`_Job` and awaits its ``concurrent.futures.Future``;
whoever owns the main thread runs the queue (:func:`run_queued`):

* **the kernel, between cells.** The job asks the kernel's main event loop (tornado, on the
  main thread; ``io_loop.add_callback`` is thread-safe) to run the queue *in the kernel's own
  order of shell messages*, so it runs after the request being handled and before the next:

  - ipykernel 7 handles each main-shell message as a task holding ``kernel._main_asyncio_lock``
    (``Kernel.shell_main``), so the callback takes that lock: it waits for a running cell —
    including an async cell that awaits — and the next request waits for it;
  - ipykernel 6 handles shell messages one at a time from ``kernel.msg_queue``
    (``dispatch_queue`` → ``process_one``), so the callback goes through
    ``kernel.schedule_dispatch``, into the same queue, behind the running cell.

  The loop only gets control back when a synchronous cell ends, so a cell never overlaps the
  code; kernel subshells (ipykernel 7) are separate threads and are not held.
* **a cell that waits on a run** (``%%hermes --wait``) holds the main thread until the run
  settles, so the queue could never run between cells: :func:`wait_for_run` waits *and* runs
  queued jobs; a cell that blocks some other way (``run.wait()``) holds queued code until it
  ends (Stop, or the kernel's interrupt, frees it).
* anything else (terminal IPython, a plain ``InteractiveShell``): only :func:`wait_for_run` runs
  the queue; with nobody waiting, the tool says so at once instead of hanging.

Stop cancels the tool's await: a job still queued is dropped; a running one gets SIGINT sent to
the main thread, and the handler installed for the job raises ``KeyboardInterrupt`` in the
code (the kernel ignores SIGINT between cells, so the handler is installed only while the
job's code runs, and it only raises while that code runs). The kernel's own interrupt button
stops it the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..core.exceptions import HermesError, RunError
from ._run_code import _execute

if TYPE_CHECKING:
    from ..engine.runtime import Run

_NO_KERNEL_GRACE = 1.0  # s: how long run_python waits for a main-thread wait, with no kernel


class _Job:
    """One ``run_python`` call: its code, the future its tool awaits, and the flags that let
    Stop interrupt exactly this code and nothing after it."""

    _numbers = itertools.count(1)

    def __init__(self, shell: Any, code: str) -> None:
        self.shell = shell
        self.code = code
        self.number = next(self._numbers)
        self.future: concurrent.futures.Future[str] = concurrent.futures.Future()
        self.lock = threading.Lock()
        self.interrupt_requested = False
        self.armed = False  # our SIGINT handler is installed for this job
        self.in_user_code = False
        self.scheduled = False  # the kernel will run it between cells

    def cancel(self) -> None:
        """Stop: drop the job if it has not started, interrupt its code if it is running."""
        if self.future.cancel() or self.future.done():
            return
        with self.lock:
            self.interrupt_requested = True
            armed = self.armed
        if armed:
            _interrupt_main_thread()


def _interrupt_main_thread() -> None:
    main = threading.main_thread().ident
    if hasattr(signal, "pthread_kill") and main is not None:
        # A signal to the main thread also wakes a blocking call there (time.sleep, I/O).
        signal.pthread_kill(main, signal.SIGINT)
    else:  # pragma: no cover - Windows: raised at the next bytecode
        import _thread

        _thread.interrupt_main(signal.SIGINT)


class _MainThread:
    """The jobs waiting for the main thread, and who will run them."""

    def __init__(self) -> None:
        self.jobs: deque[_Job] = deque()
        self.cond = threading.Condition()
        self.waiters = 0  # main-thread waits that run the queue (serving_main_thread)

    def submit(self, shell: Any, code: str) -> _Job:
        """Queue ``code``; ``job.scheduled`` says whether the kernel will run it between cells
        (otherwise only a main-thread wait, :func:`wait_for_run`, does)."""
        job = _Job(shell, code)
        with self.cond:
            self.jobs.append(job)
            self.cond.notify_all()
        kernel = getattr(shell, "kernel", None)
        job.scheduled = kernel is not None and _schedule_between_cells(kernel, run_queued)
        return job

    async def claimed(self, job: _Job) -> None:
        """With no kernel to run ``job``, wait a moment for a main-thread wait to take it (the
        cell that started the run may not be waiting yet); else withdraw it and say why."""
        deadline = time.monotonic() + _NO_KERNEL_GRACE
        while True:
            with self.cond:
                if self.waiters > 0 or job.future.done() or job.future.running():
                    return
                if time.monotonic() >= deadline:
                    if job in self.jobs:
                        self.jobs.remove(job)
                    break
            await asyncio.sleep(0.01)
        job.future.cancel()
        if getattr(job.shell, "kernel", None) is not None:
            raise HermesError(
                "run_python cannot run code between cells on this kernel (an ipykernel it "
                "does not know).",
                hint="Use ipykernel 6.29+ or 7.4+, or a %%hermes --wait cell, which runs the "
                "code while it waits.",
            )
        raise HermesError(
            "run_python needs a Jupyter kernel: here nothing runs code between cells.",
            hint="Use a notebook (ipykernel), or a %%hermes --wait cell, which runs it while "
            "it waits.",
        )

    def next_job(self) -> _Job | None:
        with self.cond:
            return self.jobs.popleft() if self.jobs else None


_main = _MainThread()


def _schedule_between_cells(kernel: Any, callback: Callable[[], object]) -> bool:
    """Ask ``kernel`` to call ``callback`` on its main thread after the shell request in
    progress (if any) and before the next; ``False`` if this kernel offers no way to."""
    io_loop = getattr(kernel, "io_loop", None)
    add_callback = getattr(io_loop, "add_callback", None)
    if not callable(add_callback):
        return False
    lock = getattr(kernel, "_main_asyncio_lock", None)
    schedule = getattr(kernel, "schedule_dispatch", None)
    if isinstance(lock, asyncio.Lock):  # ipykernel 7: main-shell requests hold this lock

        async def under_lock() -> None:
            async with lock:
                callback()

        target: Callable[..., object] = under_lock
        args: tuple[Any, ...] = ()
    elif callable(schedule) and hasattr(kernel, "msg_queue"):  # ipykernel 6: one queue

        async def dispatch() -> None:
            callback()

        target, args = schedule, (dispatch,)
    else:
        return False
    try:
        add_callback(target, *args)
    except RuntimeError:  # the loop is closed: the kernel is shutting down
        return False
    return True


def run_queued() -> int:
    """Run the agent's queued ``run_python`` code now, on this (the main) thread; return how
    many ran. The kernel calls it between cells; a cell that holds the main thread while it
    waits for a run calls it (or :func:`wait_for_run`) so the run can go on."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("run_queued() runs code on the main thread; call it from there.")
    ran = 0
    while (job := _main.next_job()) is not None:
        if not job.future.set_running_or_notify_cancel():
            continue  # stopped before it started
        try:
            result = _execute(job)
        except BaseException as exc:  # a late interrupt, or a failure of ours: never lost
            result = f"The code could not be run ({type(exc).__name__}: {exc})."
        job.future.set_result(result)
        ran += 1
    return ran


def queued() -> int:
    """How many ``run_python`` calls are waiting for the main thread (a cell is running, or
    nothing has run them yet)."""
    with _main.cond:
        return sum(1 for job in _main.jobs if not job.future.done())


@contextlib.contextmanager
def serving_main_thread() -> Iterator[None]:
    """Say that this (main) thread calls :func:`run_queued` while it waits, so ``run_python``
    queues its code for it even where no kernel runs code between cells (terminal IPython):
    wrap a wait loop that calls :func:`run_queued` in it. :func:`wait_for_run` does."""
    with _main.cond:
        _main.waiters += 1
    try:
        yield
    finally:
        with _main.cond:
            _main.waiters -= 1


def wait_for_run(run: Run, timeout: float | None = None) -> Run:
    """Block until ``run`` settles, running its queued ``run_python`` code meanwhile (call from
    the main thread: ``%%hermes --wait`` does). ``KeyboardInterrupt`` propagates, as from
    ``run.wait()``; :class:`RunError` on timeout."""
    if threading.current_thread() is not threading.main_thread():
        return run.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout

    def wake_when_settled() -> None:
        run.wait()
        with _main.cond:
            _main.cond.notify_all()

    threading.Thread(target=wake_when_settled, name="hermes-wait", daemon=True).start()
    with serving_main_thread():
        while True:
            run_queued()
            if run.settled:
                return run
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise RunError(
                    f"{run.run_id} did not finish within {timeout:g} s.",
                    hint="Call run.cancel() to stop it, or wait longer.",
                )
            with _main.cond:
                if not _main.jobs and not run.settled:
                    _main.cond.wait(left)
