"""Running one ``run_python`` job's code on the main thread, in the user namespace:
:func:`_execute` compiles it as a cell, captures what it prints and displays, lets Stop
interrupt exactly this code (SIGINT), and returns it all as the text the model reads.

Apart from :mod:`._main_thread` (which decides when a job runs) because this is how it runs:
the cell's compilation, IPython's hooks and display publisher, the traceback.

Output is captured (stdout, stderr, ``display()`` and the value of the last expression, as
text) and goes back to the model; nothing is written to the notebook's cells, and ``In``,
``Out`` and the execution count are untouched. Errors in the agent's code do not become the
notebook's "last error" (``sys.last_*``). ``pre_execute``/``post_execute`` fire around the
code as they do around a cell, so an inline matplotlib figure is captured too.
"""

from __future__ import annotations

import ast
import builtins
import io
import linecache
import re
import signal
import sys
import traceback
from collections.abc import Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._fix import redact_text, strip_ansi, trim_middle
from ._interpolate import summarise

if TYPE_CHECKING:
    from ._main_thread import _Job

_RICH_TEXT = ("text/markdown", "text/latex")
_DEFAULT_REPR = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>")
_SECTION_CHARS = 8000


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
