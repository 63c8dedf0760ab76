"""Code back into the notebook (``%hermes code``, ``--code``) and headless runs that save the
answer (nbconvert ``--execute``, papermill: no front end, no view, so the turn waits).

Kernel tests drive a real ipykernel through ``jupyter_client`` (``allow_stdin`` true, as
JupyterLab sends it, unless a test plays nbclient); the headless ones run the real tools on a
notebook file."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from kernel_harness import ExecResult, KernelHarness

from hermes_nb.notebook._code import code_blocks, pick

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
BUNDLE = {"text/html", "text/markdown", "text/plain"}
# The echo model repeats the prompt: a prompt holding two code blocks gets a reply holding them.
TWO_BLOCKS = "Two blocks:\n\n```python\nx = 1\n```\n\ntext\n\n```\nprint(x)\n```"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHarness]:
    home = tmp_path_factory.mktemp("code-kernel-home")
    with KernelHarness(home) as k:
        k.execute("%load_ext hermes_nb")
        yield k


def next_input(result: ExecResult) -> str | None:
    """The text a cell asked to put into the next cell (``set_next_input``'s reply payload)."""
    for payload in result.reply["content"].get("payload", []):
        if payload.get("source") == "set_next_input":
            return str(payload["text"])
    return None


def displays(result: ExecResult) -> list[dict[str, Any]]:
    return [m["content"]["data"] for m in result.displays()]


# -- %hermes code and --code ----------------------------------------------------------------------


def test_code_blocks_are_what_the_view_renders_as_code() -> None:
    reply = "Use `inline`.\n\n```python\na = 1\n\n```\n\n    indented\n\n~~~\nb\n~~~\n"
    assert code_blocks(reply) == ["a = 1", "indented", "b"]
    assert pick(["a", "b"], "") == ("a\n\nb", "the 2 code blocks")
    assert pick(["a", "b"], "-1") == ("b", "code block 2 of 2")


@pytest.mark.kernel
def test_code_puts_the_last_replys_blocks_into_the_next_cell(kernel: KernelHarness) -> None:
    kernel.execute(f"%%hermes --wait -o delay=0\n{TWO_BLOCKS}")
    every = kernel.execute("%hermes code")
    assert next_input(every) == "x = 1\n\nprint(x)"
    assert every.stdout() == "hermes: the 2 code blocks of the reply are in the next cell.\n"
    second = kernel.execute("%hermes code 2")
    assert next_input(second) == "print(x)"
    for bad, says in (("3", "has 2 code blocks, so there is no block 3"), ("x", "block number")):
        result = kernel.execute(f"%hermes code {bad}", check=False)
        assert not result.ok and next_input(result) is None
        assert result.reply["content"]["ename"] == "UsageError"
        assert says in result.reply["content"]["evalue"]


@pytest.mark.kernel
def test_code_wait_asks_for_code_only_and_fills_the_next_cell(kernel: KernelHarness) -> None:
    result = kernel.execute(f"%%hermes --code --wait --new -o delay=0\n{TWO_BLOCKS}")
    assert next_input(result) == "x = 1\n\nprint(x)"
    system = kernel.execute(
        "from hermes_nb.engine import get_runtime\nprint(get_runtime().runs()[-1].request.system)"
    ).stdout()
    assert system.startswith("Answer with code only: a single fenced code block")


# -- headless runs --------------------------------------------------------------------------------


@pytest.mark.kernel
def test_a_headless_turn_waits_and_leaves_the_answer_not_the_view(kernel: KernelHarness) -> None:
    # nbclient sends allow_stdin false: no person, no view; the cell waits for the answer.
    headless = kernel.result(
        kernel.submit("%hermes -o delay=0.001 Explain lists vs tuples", allow_stdin=False)
    )
    shown = displays(headless)
    assert shown[-1].keys() == BUNDLE and "Explain lists vs tuples" in shown[-1]["text/markdown"]
    # ... and it is the cell's only output: no widget was made, so none is saved with it.
    assert [WIDGET_VIEW in d for d in shown] == [False]
    assert not [m for m in headless.iopub if m["msg_type"] == "comm_open"]
    # A person at JupyterLab (allow_stdin true) gets the live view at once, as before.
    live = kernel.execute("%hermes -o delay=0.001 Explain sets")
    assert [WIDGET_VIEW in d for d in displays(live)] == [True]
    # --no-wait keeps a headless cell from waiting.
    quick = kernel.result(kernel.submit("%hermes --no-wait -o delay=0.05 hi", allow_stdin=False))
    assert WIDGET_VIEW in displays(quick)[0]


def _notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext hermes_nb"),
        nbformat.v4.new_code_cell("%hermes Explain lists vs tuples"),
        nbformat.v4.new_code_cell("%%hermes\nAnd **sets**?"),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def _assert_answers_saved(path: Path) -> None:
    nb = nbformat.read(path, 4)
    for cell, said in zip(nb.cells[1:], ("Explain lists vs tuples", "And **sets**?"), strict=True):
        outputs = [o for o in cell.outputs if o.output_type in ("display_data", "execute_result")]
        assert outputs, cell
        assert all(WIDGET_VIEW not in o.data for o in outputs), outputs
        assert outputs[-1].data.keys() >= BUNDLE
        assert said in outputs[-1].data["text/markdown"]
        assert "Done" in outputs[-1].data["text/plain"]
        assert "hermes_nb" in outputs[-1].metadata
    assert "widgets" not in nb.metadata, "a headless run made a widget: its state was saved"


@pytest.mark.kernel
@pytest.mark.slow
def test_nbconvert_execute_saves_every_answer(tmp_path: Path, hermes_home: Path) -> None:
    path = _notebook(tmp_path / "plain.ipynb")
    done = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--inplace", str(path)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_answers_saved(path)


@pytest.mark.kernel
@pytest.mark.slow
def test_papermill_saves_every_answer(tmp_path: Path, hermes_home: Path) -> None:
    path = _notebook(tmp_path / "plain.ipynb")
    out = tmp_path / "out.ipynb"
    done = subprocess.run(
        [sys.executable, "-m", "papermill", "-k", "python3", str(path), str(out)],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    _assert_answers_saved(out)
    assert "papermill" in json.loads(out.read_text())["metadata"]
