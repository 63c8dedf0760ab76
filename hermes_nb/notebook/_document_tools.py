"""The notebook as the agent's document: ``read_notebook`` and the edits the person accepts.

Part of the ``notebook`` toolset (:mod:`.tools`):

* ``read_notebook()`` — every cell in order with its id, type, execution count, source and
  outputs, from the page (unsaved changes included), else the saved file, else the kernel's
  history; it says which (:mod:`._document`);
* ``insert_cell(source, after, cell_type)``, ``edit_cell(cell_id, source)``,
  ``delete_cell(cell_id)``, ``run_cell(cell_id)`` — each one a card in the chat view (an edit's
  line diff, the new cell, the cell to delete, the source to run) with **Accept**, **Accept all
  from this run** and **Reject**; the extension applies an accepted one to the live notebook
  by cell id, as a change to the shared model (so JupyterLab's undo brings the old source
  back). Offered only where a page answered (:attr:`Bridge.ready`); elsewhere ``insert_cell``
  is offered alone and hands its cell to ``set_next_input``.

A cell the agent read and that changed since (the person typed in it, or it changed while the
card was open) is not edited: the request carries the source the card was made from, the page
compares, and the model is told to read again. The tools ask the person themselves (the diff
is made from the live cell, after the call started), through the run's broker
(:func:`hermes_nb.engine.calls.current_call`), so only a person answers.
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Callable
from typing import Any, Literal

from ..core import remember_newest
from ..core.prompts import Answer, Option
from ..engine.calls import current_call
from ..engine.tools import Tool, resolve_tools
from ._document import (
    cells_from_json,
    history_outline,
    outline,
    output_text,
    read_saved,
)
from ._document_bridge import Bridge, BridgeError, bridge_for
from ._main_thread import _main
from ._where import notebook_path

__all__ = ["DOCUMENT_TOOLS", "EDIT_TOOLS", "document_tools"]

#: Offered always (``insert_cell`` falls back to the next input without a page).
DOCUMENT_TOOLS = ("read_notebook", "insert_cell")
#: Offered where a notebook page with the extension answered.
EDIT_TOOLS = ("edit_cell", "delete_cell", "run_cell")

#: The card's buttons; ``%hermes approve`` (``once``) accepts, ``session`` / ``always`` accept
#: all, ``deny`` rejects.
OPTIONS = (
    Option("accept", "Accept", True),
    Option("accept_all", "Accept all from this run", True),
    Option("reject", "Reject", False),
)
_ALL = frozenset({"accept_all", "session", "always"})
_ONE = frozenset({"accept", "once"})
#: How long a run_cell waits for the cell to finish (Stop ends the wait sooner).
RUN_TIMEOUT = 1800.0

#: The runs whose person chose "Accept all from this run", newest last: at most
#: ``_ACCEPT_ALL_RUNS``, so a long-lived kernel does not keep every run id it ever saw (a run
#: still editing after that many later runs chose it would only be asked again).
_accept_all: dict[str, None] = {}
_accept_all_lock = threading.Lock()
_ACCEPT_ALL_RUNS = 64


def _accepts_all(run_id: str) -> bool:
    with _accept_all_lock:
        return run_id in _accept_all


def _accept_all_from(run_id: str) -> None:
    with _accept_all_lock:
        remember_newest(_accept_all, run_id, None, _ACCEPT_ALL_RUNS)


def _diff(old: str, new: str, before: str, after: str) -> str:
    a, b = old.splitlines(), new.splitlines()
    context = len(a) + len(b) if len(a) + len(b) <= 80 else 3
    return "\n".join(difflib.unified_diff(a, b, before, after, n=context, lineterm=""))


async def _approved(text: str, detail: str) -> tuple[bool, str]:
    """Ask the person (unless they accepted all from this run); ``(accepted, why not)``."""
    call = current_call()
    if call is None:
        return False, "the notebook's edit tools ask the person first, so they run only in a turn"
    if _accepts_all(call.run_id):
        return True, ""
    answer: Answer = await call.approve(text, detail, OPTIONS)
    if answer.value in _ALL:
        _accept_all_from(call.run_id)
        return True, ""
    if answer.value in _ONE:
        return True, ""
    why = {
        "timeout": "no answer came in time",
        "stop": "the run was stopped",
        "shutdown": "the kernel shut down",
    }.get(answer.by, "the person rejected it")
    return False, why


def _not_done(why: str, what: str) -> str:
    return f"Not done: {why}; {what}. Do not retry unless the person asks."


def document_tools(shell: Any) -> list[Tool]:
    """``read_notebook`` and ``insert_cell`` always; ``edit_cell``, ``delete_cell`` and
    ``run_cell`` where a page with the extension answered."""
    bridge = bridge_for(shell)

    async def read_notebook() -> str:
        """Read the whole notebook: every cell in order with its id, type (code, markdown),
        execution count, source and outputs (text; images as a marker with their size; errors
        as name and message). Use the ids with edit_cell, delete_cell, run_cell and
        insert_cell(after=...). Says where it read from: the page (unsaved changes included),
        the saved file, or the kernel's history."""
        if bridge.ready or await bridge.greet(0.5) is not None:
            try:
                result = await bridge.request("read", {})
            except BridgeError as exc:
                if exc.code != "no_page":
                    raise
            else:
                cells = cells_from_json(result.get("cells"))
                bridge.seen.update({c.id: c.source for c in cells if c.id})
                where = result.get("path") or "the notebook"
                dirty = " (unsaved changes included)" if result.get("dirty") else ""
                return outline(cells, f"The notebook {where} as it is on the page{dirty}:")
        path = notebook_path(shell)
        if path is not None:
            cells = read_saved(path)
            return outline(
                cells,
                f"The saved file {path} (unsaved changes on a page are not included: no page "
                "with hermes_nb's extension answered, so edits are not offered):",
            )
        return history_outline(
            shell,
            "This kernel has no notebook file to read (no page with hermes_nb's extension "
            "answered, and neither __session__ nor JPY_SESSION_NAME names a saved .ipynb).",
        )

    async def insert_cell(
        source: str,
        after: str | None = None,
        cell_type: Literal["code", "markdown", "raw"] = "code",
    ) -> str:
        """Insert a new cell into the notebook (the person accepts it first); it is not run.

        Args:
            source: The new cell's full source.
            after: The id of the cell to insert after (from read_notebook); none: at the end.
            cell_type: code, markdown or raw.
        """
        if not bridge.ready:
            shell.set_next_input(source, replace=False)
            return (
                "No notebook page can be edited from here (no page with hermes_nb's extension "
                "answered), so the cell was offered as the next input instead (set_next_input): "
                "the person sees it below the cell that runs now or next, and nothing was run."
            )
        where = "at the end"
        if after:
            found = await _cell(bridge, after)
            where = f"after cell {found['index'] + 1} (id {after})"
        lines = source.splitlines() or [""]
        detail = _diff("", source, "(nothing)", f"new {cell_type} cell") if source else ""
        ok, why = await _approved(
            f"Insert a new {cell_type} cell {where}?",
            detail or f"(an empty {cell_type} cell, {len(lines)} line)",
        )
        if not ok:
            return _not_done(why, "no cell was inserted")
        result = await bridge.request(
            "insert", {"source": source, "after": after or "", "cell_type": cell_type}
        )
        new_id = str(result.get("cell_id") or "")
        bridge.seen[new_id] = source
        return (
            f"Inserted a new {cell_type} cell {where}: id {new_id}, now cell "
            f"{int(result.get('index', 0)) + 1}. It was not run."
        )

    async def edit_cell(cell_id: str, source: str) -> str:
        """Replace a cell's source with new source (the person sees the diff and accepts it
        first). Read the notebook first: a cell changed since you read it is not edited.

        Args:
            cell_id: The cell's id, from read_notebook.
            source: The cell's full new source (not a patch).
        """
        found = await _cell(bridge, cell_id)
        old = str(found.get("source", ""))
        _check_unchanged(bridge, cell_id, old)
        if old == source:
            return f"No change: cell {cell_id} already has exactly this source."
        n = int(found["index"]) + 1
        detail = _diff(old, source, f"cell {n} (as it is)", f"cell {n} (proposed)")
        ok, why = await _approved(f"Edit cell {n} (id {cell_id})?", detail)
        if not ok:
            return _not_done(why, f"cell {cell_id} was not changed")
        await bridge.request("edit", {"cell_id": cell_id, "source": source, "expect": old})
        bridge.seen[cell_id] = source
        return f"Edited cell {n} (id {cell_id}); it was not run (run_cell runs it)."

    async def delete_cell(cell_id: str) -> str:
        """Delete a cell from the notebook (the person sees it and accepts first).

        Args:
            cell_id: The cell's id, from read_notebook.
        """
        found = await _cell(bridge, cell_id)
        old = str(found.get("source", ""))
        _check_unchanged(bridge, cell_id, old)
        n = int(found["index"]) + 1
        kind = str(found.get("cell_type") or "code")
        detail = _diff(old, "", f"cell {n} ({kind})", "(deleted)") if old else "(an empty cell)"
        ok, why = await _approved(f"Delete cell {n} (id {cell_id})?", detail)
        if not ok:
            return _not_done(why, f"cell {cell_id} was not deleted")
        await bridge.request("delete", {"cell_id": cell_id, "expect": old})
        bridge.seen.pop(cell_id, None)
        return f"Deleted cell {n} (id {cell_id}); the person can undo it in the notebook."

    async def run_cell(cell_id: str) -> str:
        """Run a cell of the notebook as the person would (the person sees its source and
        accepts first); returns its outputs.

        Args:
            cell_id: The cell's id, from read_notebook.
        """
        found = await _cell(bridge, cell_id)
        old = str(found.get("source", ""))
        _check_unchanged(bridge, cell_id, old)
        if _main.waiters > 0:
            raise BridgeError(
                "run_cell cannot run a cell now: the %%hermes --wait cell that started this "
                "turn holds the kernel until the turn ends; run the turn without --wait."
            )
        n = int(found["index"]) + 1
        ok, why = await _approved(f"Run cell {n} (id {cell_id})?", old or "(an empty cell)")
        if not ok:
            return _not_done(why, f"cell {cell_id} was not run")
        result = await bridge.request("run", {"cell_id": cell_id, "expect": old}, RUN_TIMEOUT)
        outputs = [text for text in map(output_text, result.get("outputs") or ()) if text]
        count = result.get("execution_count")
        head = f"Ran cell {n} (id {cell_id})" + (f" as In[{count}]" if count else "")
        if not outputs:
            return f"{head}; it showed no output."
        return f"{head}. Its outputs:\n" + "\n".join(f"- {text}" for text in outputs)

    tools: list[Callable[..., Any]] = [read_notebook, insert_cell]
    if bridge.ready:
        tools += [edit_cell, delete_cell, run_cell]
    # Made from the functions, not registered by name (a person's own tool of that name stays).
    return [next(t for t in resolve_tools([f]) if t.name == f.__name__) for f in tools]


async def _cell(bridge: Bridge, cell_id: str) -> dict[str, Any]:
    """The live cell ``cell_id`` (its index, type and source); one sentence if there is none."""
    if not cell_id.strip():
        raise BridgeError("A cell id is needed; read_notebook lists every cell with its id.")
    return await bridge.request("cell", {"cell_id": cell_id})


def _check_unchanged(bridge: Bridge, cell_id: str, live: str) -> None:
    """Refuse to change a cell whose source is not what the agent last read."""
    seen = bridge.seen.get(cell_id)
    if seen is not None and seen != live:
        bridge.seen[cell_id] = live
        raise BridgeError(
            f"Cell {cell_id} changed since you read it (it was edited on the page), so it was "
            "not touched; call read_notebook to see it as it is now, then try again.",
            code="changed",
        )
