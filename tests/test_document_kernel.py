"""The notebook as the agent's document where no page answers (a headless run): read_notebook
reads the saved .ipynb the kernel was started for (``JPY_SESSION_NAME``, as jupyter_server sets
it), says that unsaved changes are not included, and falls back to the kernel's history where
there is no file; the edit tools are not offered and ``insert_cell`` becomes the next input.

Through a real ipykernel (``kernel_harness``); the offline echo model is scripted to call the
tools. The page's side is in ``tests/browser/test_document_view.py``.
"""

from __future__ import annotations

import base64
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_harness import TOOL_CALLS_SETUP, KernelHarness

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(120)]


def png(width: int, height: int) -> str:
    """A real (blank) PNG of this size, base64."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff" * width * 3 for _ in range(height))
    raw = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(raw).decode()


def saved_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    title = nbformat.v4.new_markdown_cell("# Sales\nWhat sold where.", id="intro")
    load = nbformat.v4.new_code_cell("x = load()\nx.plot()", id="load-cell", execution_count=3)
    load.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="loaded 12 rows\n"),
        nbformat.v4.new_output(
            "display_data", data={"image/png": png(64, 48), "text/plain": "<Figure 64x48>"}
        ),
        nbformat.v4.new_output(
            "error", ename="ValueError", evalue="bad month 13", traceback=["Traceback …"]
        ),
    ]
    nb.cells = [title, load, nbformat.v4.new_code_cell("", id="empty")]
    nbformat.write(nb, path)


SETUP = TOOL_CALLS_SETUP + "from hermes_nb.engine.tools import resolve_tools\n"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("nb-folder")
    saved_notebook(folder / "sales.ipynb")
    (folder / "broken.ipynb").write_text("{not json", encoding="utf-8")
    home = tmp_path_factory.mktemp("kernel-home")
    harness = KernelHarness(home, cwd=folder)
    # What jupyter_server gives a kernel it starts for a notebook (the full path since 2.x).
    import os

    before = os.environ.get("JPY_SESSION_NAME")
    os.environ["JPY_SESSION_NAME"] = str(folder / "sales.ipynb")
    try:
        harness.start()
    finally:
        if before is None:
            os.environ.pop("JPY_SESSION_NAME", None)
        else:
            os.environ["JPY_SESSION_NAME"] = before
    try:
        harness.execute(f"import sys; sys.path.insert(0, {str(Path.cwd())!r})\n" + SETUP)
        yield harness
    finally:
        harness.stop()


def tool_result(k: Any, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    out = k.execute(
        f"r = start(({name!r}, {arguments or {}!r}))\nr.wait(30)\nprint(json.dumps(results(r)))"
    )
    (result,) = json.loads(out.stdout().strip().splitlines()[-1])
    return result


def test_read_notebook_headless_reads_the_saved_file(kernel: Any) -> None:
    result = tool_result(kernel, "read_notebook")
    text = result["result"]
    assert not result["error"], text
    assert text.startswith("The saved file ")
    assert "sales.ipynb" in text.splitlines()[0]
    assert "unsaved changes on a page are not included" in text
    assert "3 cells, in order." in text
    assert "### Cell 1 · id intro · markdown" in text
    assert "# Sales\nWhat sold where." in text
    assert "### Cell 2 · id load-cell · code, In[3]" in text
    assert "x = load()\nx.plot()" in text
    assert "loaded 12 rows" in text
    assert "[image: 64×48 PNG," in text
    assert "error: ValueError: bad month 13" in text
    assert "### Cell 3 · id empty · code, not run\n(empty)" in text


def test_without_a_page_the_edit_tools_are_not_offered(kernel: Any) -> None:
    out = kernel.execute("print(json.dumps([t.name for t in resolve_tools(['notebook'])]))")
    offered = json.loads(out.stdout())
    assert "read_notebook" in offered and "insert_cell" in offered
    assert not {"edit_cell", "delete_cell", "run_cell"} & set(offered)


def test_insert_cell_without_a_page_is_the_next_input(kernel: Any) -> None:
    out = kernel.execute(
        "r = start(('insert_cell', {'source': 'total = x.sum()'}))\nr.wait(30)\n"
        "print(json.dumps(results(r)))"
    )
    (result,) = json.loads(out.stdout().strip().splitlines()[-1])
    assert "offered as the next input instead (set_next_input)" in result["result"]
    payloads = out.reply["content"].get("payload", [])
    assert {"source": "set_next_input", "text": "total = x.sum()", "replace": False} in payloads


def test_an_unreadable_file_is_one_sentence(kernel: Any) -> None:
    kernel.execute("os.environ['JPY_SESSION_NAME'] = __session__ = os.path.abspath('broken.ipynb')")
    try:
        result = tool_result(kernel, "read_notebook")
    finally:
        kernel.execute(
            "os.environ['JPY_SESSION_NAME'] = __session__ = os.path.abspath('sales.ipynb')"
        )
    assert result["error"]
    assert result["result"].endswith("broken.ipynb is not a notebook (not valid JSON).")
    assert "Traceback" not in result["result"]


def test_no_file_reads_the_kernels_history(kernel: Any) -> None:
    kernel.execute("monthly = [3, 5, 8]\nsum(monthly)")
    kernel.execute("saved = __session__\ndel __session__\nos.environ.pop('JPY_SESSION_NAME')")
    try:
        result = tool_result(kernel, "read_notebook")
    finally:
        kernel.execute("__session__ = saved\nos.environ['JPY_SESSION_NAME'] = saved")
    text = result["result"]
    assert not result["error"], text
    assert text.startswith("This kernel has no notebook file to read")
    assert "the kernel's history instead" in text
    assert "monthly = [3, 5, 8]\nsum(monthly)" in text
    assert "\n    16" in text  # Out[n] of that cell
