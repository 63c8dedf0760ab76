"""The example notebooks as files: saved the way nbval and a reader need them.

nbval (``python -m pytest notebooks``) re-runs the notebooks and compares their outputs; these
checks are about what is saved — every code cell run in order, transcripts saved as static
output rather than as a widget that needs a kernel, ignored outputs only where a live view makes
them depend on timing — and run without a kernel, in milliseconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = (
    "quickstart",
    "sessions",
    "providers",
    "python-api",
    "prompts",
    "tools",
    "document",
    "mcp",
)
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: nbval's markers live in the cells' tags, out of a reader's sight (never comments in the code).
IGNORE = "nbval-ignore-output"
TRANSCRIPT = ("text/html", "text/markdown", "text/plain")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _ignored(cell: nbformat.NotebookNode) -> bool:
    return IGNORE in cell.metadata.get("tags", ())


def test_the_example_notebooks_are_all_there() -> None:
    found = sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    assert found == sorted(EXPECTED)


@pytest.mark.parametrize("name", EXPECTED)
def test_valid_and_run_top_to_bottom(name: str) -> None:
    nb = _read(name)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    assert "widgets" not in nb.metadata, "no saved widget state: transcripts are static output"
    counts = [c.execution_count for c in _code(nb)]
    assert counts == list(range(1, len(counts) + 1)), "run with scripts/refresh_notebooks.py"


@pytest.mark.parametrize("name", EXPECTED)
def test_outputs_are_clean_and_static(name: str) -> None:
    for i, cell in enumerate(_code(_read(name))):
        if "raises-exception" in cell.metadata.get("tags", ()):
            assert cell.outputs, f"cell {i} is tagged raises-exception: it shows a failure"
            continue  # a failure the notebook shows on purpose (a refused answer, %hermes fix)
        for out in cell.outputs:
            assert out.output_type != "error", f"cell {i}: {out.get('evalue')}"
            assert out.get("name") != "stderr", f"cell {i} wrote to stderr: {out.text!r}"
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                assert _ignored(cell), f"cell {i} saved a live widget view; use --wait"
            if "hermes_nb" in out.get("metadata", {}):
                assert all(k in data for k in TRANSCRIPT), f"cell {i}: incomplete transcript"


@pytest.mark.parametrize("name", EXPECTED)
def test_test_markers_stay_out_of_sight(name: str) -> None:
    """What nbval needs is in the cells' tags; a reader sees no comment meant for the tests."""
    for i, cell in enumerate(_read(name).cells):
        assert "nbval" not in cell.source.lower(), f"cell {i}: nbval marker in its source"


@pytest.mark.parametrize("name", EXPECTED)
def test_a_live_view_whose_output_is_ignored_is_checked_next(name: str) -> None:
    """A live view's content depends on timing, so its output is ignored; the next cell checks
    what it showed (the run's outcome) instead."""
    cells = _code(_read(name))
    for i, cell in enumerate(cells):
        if _ignored(cell) and "hermes_nb.chat(" in cell.source:
            assert i + 1 < len(cells) and not _ignored(cells[i + 1]), "the next cell checks it"


def test_quickstart_starts_by_loading_the_extension() -> None:
    first = _code(_read("quickstart"))[0]
    assert first.source.strip() == "%load_ext hermes_nb"


@pytest.mark.parametrize("name", EXPECTED)
def test_local_links_resolve(name: str) -> None:
    for cell in _read(name).cells:
        if cell.cell_type != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", cell.source):
            if "://" not in target:
                assert (NOTEBOOKS / target).exists(), f"broken link {target!r}"


def test_sanitizers_parse_and_compile() -> None:
    plugin = pytest.importorskip("nbval.plugin")
    text = (NOTEBOOKS / "sanitize.cfg").read_text(encoding="utf-8")
    patterns = plugin.get_sanitize_patterns(text)
    assert len(patterns) == text.count("\nregex: ") > 0, "each regex: needs a replace: line"
    for regex, replace in patterns:
        re.sub(regex, replace, "")
