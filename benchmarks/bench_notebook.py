"""What a notebook of short questions costs: on the wire while it runs, and on disk once saved.

Printed figures (targets from the issue "the view's code travels once", in brackets):

* iopub bytes per short interactive run after the first (a real kernel through jupyter_client,
  as JupyterLab drives it: ``%hermes`` returning at once, its live view streaming and settling),
  counted as the JSON of every iopub message the run caused                         [≤ 8 KB]
* a notebook of 10 short ``%hermes`` cells executed by ``jupyter nbconvert --execute``: its size
  against its outputs (the saved answers) + 5 KB                                   [≤ 1.5×]
* the widget state that notebook carries, per cell                                   [≤ 2 KB]

The first figure is measured against no baseline (it is bytes, not time); the second against the
outputs the same run saved. Run: ``.venv/bin/python benchmarks/bench_notebook.py``
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Report, median, use_tests_dir

ROOT = use_tests_dir()

from kernel_harness import KernelHarness  # noqa: E402  (tests/ is on the path now)

RUNS = 8
CELLS = 10


def _iopub_bytes_per_run(home: Path) -> list[int]:
    """Bytes on iopub for each of :data:`RUNS` short interactive runs (the first left out)."""
    sizes = []
    with KernelHarness(home) as kernel:
        kernel.execute("%load_ext hermes_nb")
        for i in range(RUNS + 1):
            start = kernel.mark()
            shown = kernel.execute(f"%hermes -o delay=0 short question {i}?")
            ((_, view),) = list(kernel.widget_views(shown))
            view.wait_frame(lambda f: f["status"] in {"done", "error", "stopped"}, timeout=30)
            time.sleep(0.5)  # the settle's display update and the view's last messages
            sent = kernel.iopub_since(start)
            if i:  # the first run also loads what every later one shares
                sizes.append(sum(len(json.dumps(m, default=str)) for m in sent))
    return sizes


def _executed_notebook(folder: Path, home: Path) -> tuple[int, int, int]:
    """Saved size, outputs' size and widget state's size of :data:`CELLS` short cells run by
    nbconvert."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext hermes_nb")] + [
        nbformat.v4.new_code_cell(f"%hermes -o delay=0 short question number {i}?")
        for i in range(CELLS)
    ]
    source = folder / "ten.ipynb"
    nbformat.write(nb, source)
    env = {**os.environ, "HERMES_NB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--output", "saved.ipynb", str(source)],
        env=env, cwd=folder, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    saved = folder / "saved.ipynb"
    data = json.loads(saved.read_text(encoding="utf-8"))
    outputs = sum(len(json.dumps(c.get("outputs", []))) for c in data["cells"])
    widgets = (
        len(json.dumps(data["metadata"].get("widgets", {}))) if "widgets" in data["metadata"] else 0
    )
    return saved.stat().st_size, outputs, widgets


def main() -> int:
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        sizes = _iopub_bytes_per_run(root / "home")
        report.figure(
            "iopub bytes per short run (median)", median(sizes) / 1024, "KB", 8,
            f"runs 2-{RUNS + 1}: {', '.join(f'{s / 1024:.1f}' for s in sizes)} KB",
        )  # fmt: skip
        size, outputs, widgets = _executed_notebook(root, root / "home")
        report.figure(
            f"{CELLS}-cell notebook by nbconvert vs outputs+5KB", size / (outputs + 5120), "x", 1.5,
            f"{size / 1024:.1f} KB saved, {outputs / 1024:.1f} KB of outputs",
        )  # fmt: skip
        report.figure(
            "widget state per cell", widgets / CELLS / 1024, "KB", 2,
            f"{widgets / 1024:.1f} KB in all",
        )  # fmt: skip
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
