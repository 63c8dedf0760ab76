"""The ``notebook`` toolset: the model reads the notebook and runs code in it.

``tools=["notebook"]`` (``%%hermes --tools notebook``, a profile's ``tools = ["notebook"]``)
offers five tools, built for one shell by :func:`notebook_tools`:

* ``list_variables()`` — the person's variables: name, type, shape or length, a short repr
  (values of names that look like secrets redacted);
* ``describe(name)`` — one variable summarised as ``{name}`` interpolation does it;
* ``get_cell(n)`` — ``In[n]`` as typed and the text of ``Out[n]``;
* ``last_error()`` — the last exception, the cell that raised it and the plain traceback;
* ``run_python(code)`` — runs code in the notebook's namespace; ``ask=True``.

The four readers are sync tools (the tool loop runs them in worker threads; they only read).

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

Output is captured (stdout, stderr, ``display()`` and the value of the last expression, as
text) and goes back to the model; nothing is written to the notebook's cells, and ``In``,
``Out`` and the execution count are untouched. Errors in the agent's code do not become the
notebook's "last error" (``sys.last_*``). ``pre_execute``/``post_execute`` fire around the
code as they do around a cell, so an inline matplotlib figure is captured too.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import concurrent.futures
import contextlib
import dataclasses
import inspect
import io
import itertools
import linecache
import re
import reprlib
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..core import md_table, short
from ..core.exceptions import HermesError, RunError
from ..engine.tools import Tool, register_toolset, resolve_tools
from ._fix import (
    REDACTED,
    describe_failure,
    describe_value,
    last_failure,
    looks_secret,
    redact_text,
    strip_ansi,
    trim_middle,
    user_variables,
    watch_failures,
)
from ._interpolate import as_code, cell_source, summarise

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = [
    "NOTEBOOK_TOOLS",
    "notebook_tools",
    "queued",
    "register",
    "run_queued",
    "serving_main_thread",
    "wait_for_run",
]

#: The toolset's tool names, in the order the model sees them.
NOTEBOOK_TOOLS = ("list_variables", "describe", "get_cell", "last_error", "run_python")

_MAX_VARIABLES = 200
_NO_KERNEL_GRACE = 1.0  # s: how long run_python waits for a main-thread wait, with no kernel
_RICH_TEXT = ("text/markdown", "text/latex")
_DEFAULT_REPR = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>")
_SECTION_CHARS = 8000

_short_repr = reprlib.Repr()
_short_repr.maxstring = 80
_short_repr.maxother = 80
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxset = 6
_short_repr.maxdict = 4
_short_repr.maxlevel = 2


# -- the main-thread queue -----------------------------------------------------------------------


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


# -- running the code ----------------------------------------------------------------------------


def _no_input(prompt: object = "") -> str:
    raise RuntimeError(
        "input() is not available to code the agent runs; ask the person with ask_user."
    )


def _execute(job: _Job) -> str:
    """Run ``job`` on the main thread in the user namespace; its output as text."""
    shell = job.shell
    filename = f"<run_python-{job.number}>"
    try:
        transform = getattr(shell, "transform_cell", None)
        source = transform(job.code) if callable(transform) else job.code
        tree = ast.parse(source, filename)
    except Exception as exc:  # a SyntaxError, or a magic line IPython could not transform
        text = "".join(traceback.format_exception_only(type(exc), exc))
        return "error:\n" + strip_ansi(text).rstrip()
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    last: ast.expr | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = tree.body[-1].value
        del tree.body[-1]
    try:
        body = compile(tree, filename, "exec")
        tail = compile(ast.Expression(last), filename, "eval") if last is not None else None
    except SyntaxError as exc:
        text = "".join(traceback.format_exception_only(type(exc), exc))
        hint = (
            "\n(top-level await is not supported here: put the code in a cell instead)"
            if "await" in str(exc)
            else ""
        )
        return "error:\n" + strip_ansi(text).rstrip() + hint

    from IPython.core.displaypub import CapturingDisplayPublisher

    out, err = io.StringIO(), io.StringIO()
    publisher = CapturingDisplayPublisher()  # type: ignore[no-untyped-call]
    saved_streams = sys.stdout, sys.stderr
    saved_pub = getattr(shell, "display_pub", None)
    saved_input = builtins.input
    value: Any = None
    value_text: str | None = None
    failure: str | None = None
    interrupted = False

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        if job.in_user_code:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    sys.stdout, sys.stderr = out, err
    shell.display_pub = publisher
    builtins.input = _no_input
    try:
        with job.lock:
            job.armed = True
        _trigger(shell, "pre_execute")
        try:
            job.in_user_code = True
            if job.interrupt_requested:
                raise KeyboardInterrupt
            exec(body, shell.user_global_ns, shell.user_ns)
            if tail is not None:
                value = eval(tail, shell.user_global_ns, shell.user_ns)
        finally:
            job.in_user_code = False
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:  # SystemExit too: the agent's code must not end the kernel
        failure = _user_traceback(exc, filename)
    finally:
        job.in_user_code = False
        try:
            _trigger(shell, "post_execute")
            if value is not None and not interrupted:
                value_text = _value_text(shell, value)
        finally:
            with job.lock:
                job.armed = False
            signal.signal(signal.SIGINT, previous)
            sys.stdout, sys.stderr = saved_streams
            shell.display_pub = saved_pub
            builtins.input = saved_input

    sections: list[str] = []
    if out.getvalue():
        sections.append("stdout:\n" + trim_middle(out.getvalue(), 200, _SECTION_CHARS))
    if err.getvalue():
        sections.append("stderr:\n" + trim_middle(err.getvalue(), 200, _SECTION_CHARS))
    for shown in publisher.outputs:
        sections.append("display:\n" + _mime_text(shown.get("data") or {}))
    if value_text is not None:
        sections.append("result:\n" + trim_middle(value_text, 200, _SECTION_CHARS))
    if failure is not None:
        sections.append("error:\n" + failure)
    if interrupted:
        sections.append("Interrupted (KeyboardInterrupt): the code was stopped before it ended.")
    if not sections:
        sections.append("The code ran without output.")
    return redact_text("\n\n".join(section.rstrip("\n") for section in sections))


def _trigger(shell: Any, event: str) -> None:
    events = getattr(shell, "events", None)
    if events is not None:
        events.trigger(event)  # IPython reports a failing handler itself and goes on


def _value_text(shell: Any, value: Any) -> str:
    formatter = getattr(shell, "display_formatter", None)
    if formatter is not None:
        try:
            data, _ = formatter.format(value)
        except Exception:
            data = {}
        if data:
            return _mime_text(data)
    return summarise(value, _SECTION_CHARS)


def _mime_text(data: Mapping[str, Any]) -> str:
    """A display's data as text: its ``text/plain`` form, or Markdown or LaTeX when the plain
    form is only a default ``<… object>`` repr; naming the other (non-text) forms it had."""
    plain = data.get("text/plain")
    placeholder = not isinstance(plain, str) or _DEFAULT_REPR.fullmatch(plain) is not None
    order = (*_RICH_TEXT, "text/plain") if placeholder else ("text/plain", *_RICH_TEXT)
    text = next((data[m] for m in order if isinstance(data.get(m), str)), "")
    others = [m for m in data if m not in (*_RICH_TEXT, "text/plain")]
    note = f" [also {', '.join(others)}, not shown]" if others else ""
    return trim_middle(text or "(no text form)", 100, _SECTION_CHARS) + note


def _user_traceback(exc: BaseException, filename: str) -> str:
    """The traceback from the agent's code down, without our own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))
    text = text.replace(f'File "{filename}"', 'File "<run_python>"')
    return trim_middle(strip_ansi(text).rstrip("\n"), 60, 6000)


# -- the tools -----------------------------------------------------------------------------------


def _current_shell() -> Any:
    from IPython.core.getipython import get_ipython

    shell = get_ipython()
    if shell is None:
        raise HermesError(
            "The notebook tools need IPython: there is no notebook here to read.",
            hint="Use tools=['notebook'] inside Jupyter or IPython.",
        )
    return shell


def _as_tool(func: Callable[..., Any], *, ask: bool = False) -> Tool:
    """A tool for ``func`` with its schema from the signature, not registered by name (a
    person's own ``@hermes_nb.tool def describe`` keeps its name)."""
    made = next(t for t in resolve_tools([func]) if t.name == func.__name__)
    return dataclasses.replace(made, ask=ask) if ask else made


def _size(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
        return " × ".join(map(str, shape)) if shape else "scalar"
    if isinstance(value, type) or not hasattr(type(value), "__len__"):
        return ""
    try:
        return f"length {len(value)}"
    except Exception:
        return ""


def _one_line(name: str, value: Any) -> str:
    kind = type(value).__name__
    module = type(value).__module__.split(".")[0]
    try:
        if module == "pandas" and kind == "DataFrame":
            columns = [str(c) for c in list(value.columns)[:12]]
            more = ", …" if len(value.columns) > 12 else ""
            return short(f"columns: {', '.join(columns)}{more}", 80)
        if module == "pandas" and kind == "Series":
            return short(f"name {value.name!r}, dtype {value.dtype}", 80)
        if module == "numpy" and kind == "ndarray":
            return f"dtype {value.dtype}"
    except Exception:
        pass
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        try:
            return f"{name}{inspect.signature(value)}"
        except (TypeError, ValueError):
            return f"{name}(…)"
    try:
        text = _short_repr.repr(value)
    except Exception as exc:
        text = f"<repr failed: {type(exc).__name__}>"
    return redact_text(short(text, 80))


def notebook_tools(shell: Any) -> list[Tool]:
    """The ``notebook`` toolset for ``shell``: read the variables, cells and last error, and
    run code in the notebook (``run_python``, approval required)."""
    watch_failures(shell)

    def list_variables() -> str:
        """List the variables defined in the notebook: name, type, shape or length and a short
        value. IPython's own names and imported modules are left out; values of names that
        look like secrets are redacted."""
        variables = user_variables(shell)
        if not variables:
            return "The notebook defines no variables yet."
        rows = []
        for name, value in list(variables.items())[:_MAX_VARIABLES]:
            secret = looks_secret(name)
            rows.append(
                (
                    name,
                    type(value).__name__,
                    "" if secret else _size(value),
                    REDACTED if secret else _one_line(name, value),
                )
            )
        more = len(variables) - len(rows)
        table = md_table(("name", "type", "shape / length", "value"), rows)
        return table + (f"\n… and {more} more." if more > 0 else "")

    def describe(name: str) -> str:
        """Describe one notebook variable in detail: a table's shape, columns, types and first
        rows; an array's shape, dtype and values; a function's source; otherwise its value.

        Args:
            name: The variable's name, as in list_variables.
        """
        namespace: Mapping[str, Any] = shell.user_ns
        hidden: Mapping[str, Any] = getattr(shell, "user_ns_hidden", {})
        missing = object()
        if name not in namespace or namespace[name] is hidden.get(name, missing):
            raise LookupError(
                f"There is no variable named {name!r} in the notebook; "
                "list_variables shows the names there are."
            )
        value = namespace[name]
        text = describe_value(name, value, limit=6000)
        dtypes = getattr(value, "dtypes", None)
        if (
            not looks_secret(name)
            and type(value).__name__ == "DataFrame"
            and hasattr(dtypes, "items")
        ):
            assert dtypes is not None
            listed = ", ".join(f"{col}: {kind}" for col, kind in list(dtypes.items())[:50])
            text += f"\nColumn types: {listed}"
        return text

    def get_cell(n: int) -> str:
        """Read cell In[n] as the person typed it, and the text of its output value Out[n].

        Args:
            n: The cell's execution number, as in In[n] (1 is the first cell run).
        """
        history: Sequence[Any] = shell.user_ns.get("In") or ()
        last = len(history) - 1
        source = cell_source(shell.user_ns, n) if n >= 1 else None
        if source is None:
            span = f"In[1] to In[{last}]" if last >= 1 else "none yet"
            raise LookupError(f"There is no cell In[{n}]; the cells run so far are {span}.")
        parts = [f"In[{n}]:", as_code(source).strip("\n") if source.strip() else "(empty)"]
        outputs: Mapping[int, Any] = shell.user_ns.get("Out") or {}
        if n in outputs:
            text = summarise(outputs[n], 6000)
            parts.append(f"Out[{n}]:\n```\n{text}\n```" if "\n" in text else f"Out[{n}]: {text}")
        else:
            parts.append(
                f"Out[{n}]: none (the cell's last line gave no value; printed output is not kept)"
            )
        return redact_text("\n".join(parts))

    def last_error() -> str:
        """The last error in the notebook: the exception's type and message, the cell that
        raised it with its source, and the traceback."""
        failure = last_failure(shell)
        if failure is None:
            return "Nothing has failed yet in this kernel."
        return describe_failure(failure)

    async def run_python(code: str) -> str:
        """Run Python code in the notebook's kernel, in its namespace, between cells (the
        person approves each run). Variables it defines stay for later cells. Returns what it
        printed (stdout, stderr), what it displayed, and the value of its last expression, as
        text; an exception's traceback if it raised.

        Args:
            code: The Python code, as in a notebook cell (magics like %timeit work).
        """
        job = _main.submit(shell, code)
        try:
            if not job.scheduled:
                await _main.claimed(job)
            return await asyncio.wrap_future(job.future)
        except BaseException:  # Stop: drop it if queued, interrupt it if running
            job.cancel()
            raise

    return [
        _as_tool(list_variables),
        _as_tool(describe),
        _as_tool(get_cell),
        _as_tool(last_error),
        _as_tool(run_python, ask=True),
    ]


def register(shell: Any = None) -> None:
    """Register the ``notebook`` toolset: for ``shell``, or (by default) for the IPython shell
    running when a turn starts. Importing this module registers the default (and starts
    remembering failing cells in a running shell, for ``last_error`` and ``%hermes fix``)."""
    if shell is None:
        register_toolset("notebook", lambda: notebook_tools(_current_shell()))
        from IPython.core.getipython import get_ipython

        running = get_ipython()
        if running is not None:
            watch_failures(running)
    else:
        register_toolset("notebook", lambda: notebook_tools(shell))
        watch_failures(shell)


register()
