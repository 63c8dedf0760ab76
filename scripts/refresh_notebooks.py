"""Re-execute the example notebooks and save their outputs in place.

    .venv/bin/python scripts/refresh_notebooks.py                 # every notebooks/*.ipynb
    .venv/bin/python scripts/refresh_notebooks.py quickstart.ipynb

nbval compares each cell's fresh output with the output saved in the notebook, so the saved
outputs must come from the same place nbval's come from: this script runs every notebook with
nbclient in the environment ``notebooks/conftest.py`` gives nbval's kernels (a fresh temporary
``HERMES_NB_HOME``, no provider keys, no ``JPY_SESSION_NAME``), with a kernel from this
interpreter, in the ``notebooks/`` directory. Run it after changing a notebook or anything that
changes what hermes_nb shows (the transcript's HTML, its stylesheet, messages), then check the
diff and run ``python -m pytest notebooks``.

Saved as JupyterLab would save them: a live chat view whose run settles after its cell has
finished (the cells tagged ``nbval-ignore-output`` that demonstrate non-blocking streaming
and Stop) is replaced by the static transcript hermes_nb sends as a display update — JupyterLab
applies such updates to any cell; nbclient on its own applies them only while the cell that
showed the view is running. No widget state and no timing metadata are stored.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import time
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete
from nbclient.util import ensure_async
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
CELL_TIMEOUT = 120  # seconds
SETTLE_TIMEOUT = 15.0  # seconds to wait, after the last cell, for live views to settle


def _conftest() -> Any:
    """``notebooks/conftest.py`` (for :func:`kernel_env`), loaded by path."""
    spec = importlib.util.spec_from_file_location("_notebooks_conftest", NOTEBOOKS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Client(NotebookClient):
    """nbclient, plus display updates for cells that have already finished (as JupyterLab)."""

    async def _async_poll_output_msg(
        self, parent_msg_id: str, cell: nbformat.NotebookNode, cell_index: int
    ) -> None:
        assert self.kc is not None
        while True:
            msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=None))
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                self._late_update(msg)
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                return

    def _late_update(self, msg: dict[str, Any]) -> None:
        if msg["msg_type"] != "update_display_data":
            return
        display_id = (msg["content"].get("transient") or {}).get("display_id")
        if display_id:
            self._update_display_id(display_id, msg)

    def live_outputs(self) -> list[tuple[int, int]]:
        """(cell, output) indices of outputs that are still a live widget view."""
        return [
            (i, j)
            for i, cell in enumerate(self.nb.cells)
            for j, out in enumerate(cell.get("outputs", []))
            if WIDGET_VIEW in out.get("data", {})
        ]

    async def run_all(self) -> None:
        self.reset_execution_trackers()
        async with self.async_setup_kernel():
            assert self.kc is not None
            # As a front end records it (JupyterLab would otherwise mark the notebook modified).
            info = await self.async_wait_for_reply(await ensure_async(self.kc.kernel_info()))
            if info is not None:
                self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index, cell in enumerate(self.nb.cells):
                await self.async_execute_cell(
                    cell, index, execution_count=self.code_cells_executed + 1
                )
            deadline = time.monotonic() + SETTLE_TIMEOUT
            while self.live_outputs() and (left := deadline - time.monotonic()) > 0:
                try:
                    msg = await ensure_async(self.kc.iopub_channel.get_msg(timeout=left))
                except Empty:
                    break
                self._late_update(msg)


def refresh(path: Path, conftest: Any) -> list[str]:
    """Execute ``path`` in place; return the problems found in its new outputs."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            cell.metadata.pop("execution", None)
    with conftest.kernel_env():
        km = AsyncKernelManager(
            kernel_name=CURRENT_ENV_KERNEL_NAME, kernel_spec_manager=NbvalKernelspecManager()
        )
        client = _Client(
            nb,
            km=km,
            timeout=CELL_TIMEOUT,
            allow_errors=False,
            record_timing=False,
            store_widget_state=False,
            resources={"metadata": {"path": str(path.parent)}},
        )
        try:
            asyncio.run(_run(client, km))
        finally:
            conftest.remove_homes()
    nb.metadata.pop("widgets", None)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return _problems(nb)


async def _run(client: _Client, km: AsyncKernelManager) -> None:
    try:
        await client.run_all()
    finally:
        if km.has_kernel:
            await km.shutdown_kernel(now=False)


def _problems(nb: nbformat.NotebookNode) -> list[str]:
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", ()))
        ignored = "nbval-ignore-output" in tags
        if "raises-exception" in tags:  # a failure the notebook shows on purpose
            continue
        for out in cell.outputs:
            if out.output_type == "error":
                problems.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                problems.append(f"cell {i}: wrote to stderr: {out.text[:200]!r}")
            elif WIDGET_VIEW in out.get("data", {}) and not ignored:
                problems.append(f"cell {i}: a live widget view was saved (use --wait)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to refresh (default: all)")
    args = parser.parse_args(argv)
    paths = [
        (Path(name) if Path(name).exists() else NOTEBOOKS / name).resolve()
        for name in args.notebooks
    ] or sorted(NOTEBOOKS.glob("*.ipynb"))
    conftest = _conftest()
    failed = False
    for path in paths:
        start = time.monotonic()
        problems = refresh(path, conftest)
        took = time.monotonic() - start
        print(f"{path.relative_to(ROOT)}: {'ok' if not problems else 'PROBLEMS'} ({took:.1f} s)")
        for problem in problems:
            print(f"  {problem}")
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
