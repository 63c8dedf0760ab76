"""The ``notebook`` toolset: the model reads the notebook and runs code in it.

``tools=["notebook"]`` (``%%hermes --tools notebook``, a profile's ``tools = ["notebook"]``)
offers these tools, built for one shell by :func:`notebook_tools`:

* ``list_variables()`` — the person's variables: name, type, shape or length, a short repr
  (values of names that look like secrets redacted);
* ``describe(name)`` — one variable summarised as ``{name}`` interpolation does it;
* ``get_cell(n)`` — ``In[n]`` as typed and everything it showed: its display outputs (a
  table's text, a figure as an image for a model with ``vision``) and ``Out[n]``;
* ``last_error()`` — the last exception, the cell that raised it and the plain traceback;
* ``run_python(code)`` — runs code in the notebook's namespace; ``ask=True``;
* ``read_notebook()`` and ``insert_cell(...)``, and where a notebook page with hermes_nb's
  extension answered ``edit_cell``, ``delete_cell`` and ``run_cell``: the notebook as the
  agent's document, each edit accepted by the person on a card (:mod:`._document_tools`).

The four readers are sync tools (the tool loop runs them in worker threads; they only read).

**run_python and the main thread.** Code the agent runs must run where a cell runs — on the
kernel's main thread, in the user namespace — and never *while* a cell runs: the tool queues
it for the main thread (:mod:`._main_thread`: the kernel runs the queue between cells, a
``%%hermes --wait`` cell while it waits), and Stop drops or interrupts it. Output is captured
and goes back to the model, never to the notebook (:mod:`._run_code`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import reprlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..core import md_table, short
from ..core.exceptions import HermesError
from ..engine.tools import Tool, ToolResult, register_toolset, resolve_tools
from ._document_bridge import bridge_for
from ._document_tools import DOCUMENT_TOOLS, document_tools
from ._fix import (
    REDACTED,
    describe_failure,
    describe_value,
    last_failure,
    looks_secret,
    redact_text,
    user_variables,
    watch_failures,
)
from ._interpolate import as_code, cell_source, summarise
from ._main_thread import _main
from ._main_thread import queued as queued
from ._main_thread import run_queued as run_queued
from ._main_thread import serving_main_thread as serving_main_thread
from ._main_thread import wait_for_run as wait_for_run
from ._outputs import cell_outputs, describe_outputs, watch_outputs

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
NOTEBOOK_TOOLS = (
    "list_variables",
    "describe",
    "get_cell",
    "last_error",
    *DOCUMENT_TOOLS,
    "run_python",
)

_MAX_VARIABLES = 200

_short_repr = reprlib.Repr()
_short_repr.maxstring = 80
_short_repr.maxother = 80
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxset = 6
_short_repr.maxdict = 4
_short_repr.maxlevel = 2


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
    watch_outputs(shell)

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

    def get_cell(n: int) -> str | ToolResult:
        """Read cell In[n] as the person typed it, and everything it showed: its display
        outputs (tables as text, figures as images) and its output value Out[n].

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
        shown = describe_outputs(n, cell_outputs(shell, n))
        if shown.parts:
            parts.append("Displayed:")
            parts.extend(f"```\n{p}\n```" if "\n" in p else p for p in shown.parts)
        outputs: Mapping[int, Any] = shell.user_ns.get("Out") or {}
        if n in outputs:
            text = summarise(outputs[n], 6000)
            parts.append(f"Out[{n}]:\n```\n{text}\n```" if "\n" in text else f"Out[{n}]: {text}")
        elif not shown.parts:
            parts.append(
                f"Out[{n}]: none (the cell's last line gave no value, it displayed nothing; "
                "printed output is not kept)"
            )
        text = redact_text("\n".join(parts))
        return ToolResult(text, images=tuple(shown.images)) if shown.images else text

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
        *document_tools(shell),
        _as_tool(run_python, ask=True),
    ]


def register(shell: Any = None) -> None:
    """Register the ``notebook`` toolset: for ``shell``, or (by default) for the IPython shell
    running when a turn starts. Importing this module registers the default (and starts
    remembering failing cells in a running shell, for ``last_error`` and ``%hermes fix``, and what
    each cell displays, for ``get_cell`` and ``{Out[n]}``)."""
    if shell is None:
        register_toolset("notebook", lambda: notebook_tools(_current_shell()))
        from IPython.core.getipython import get_ipython

        running = get_ipython()
        if running is not None:
            watch_failures(running)
            watch_outputs(running)
            bridge_for(running).open()  # the page's extension answers, if there is one
    else:
        register_toolset("notebook", lambda: notebook_tools(shell))
        watch_failures(shell)
        watch_outputs(shell)
        bridge_for(shell).open()


register()
