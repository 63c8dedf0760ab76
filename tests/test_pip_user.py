"""What a pip user meets first: the PyPI page and ``hermes-nb examples``.

The wheel itself (built, installed into a clean virtualenv, the quickstart copied out of it by
``hermes-nb examples`` and run with nbval) is ``scripts/release_check.sh``, run by ``./dev test``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hermes_nb.__main__ import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hermes_nb", *args], cwd=cwd, capture_output=True, text=True
    )


def test_the_pypi_page_has_no_link_pypi_cannot_resolve() -> None:
    """README.md links into the repository; the PyPI page built from it (hatch-fancy-pypi-readme)
    names those files instead, leaves the screenshot out and says where the pages are."""
    pytest.importorskip("hatch_fancy_pypi_readme")
    page = subprocess.run(
        [sys.executable, "-m", "hatch_fancy_pypi_readme", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.findall(r"\]\((?!https?://|#)[^)]*\)", page) == []
    assert "![" not in page
    assert 'pip install "hermes-nb[lab]"' in page and "hermes-nb examples" in page
    assert "Getting started (`docs/getting-started.md`)" in page
    # Nothing else of the README is lost on the way.
    readme = (ROOT / "README.md").read_text()
    assert page.count("\n## ") == readme.count("\n## ")


def test_examples_copies_the_notebooks_and_keeps_what_is_there(tmp_path: Path) -> None:
    mine = tmp_path / "ex" / "quickstart.ipynb"
    mine.parent.mkdir()
    mine.write_text("my own edits")
    done = _cli("examples", "ex", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in mine.parent.iterdir()) == sorted([*EXAMPLES, "docs"])
    assert mine.read_text() == "my own edits"  # never overwritten
    for name in EXAMPLES[1:]:
        copied = json.loads((mine.parent / name).read_text())
        original = json.loads((ROOT / "notebooks" / name).read_text())
        for cell in original["cells"]:  # links to ../docs/ lead to the copied docs/ folder
            if cell["cell_type"] == "markdown":
                text = "".join(cell["source"]).replace("](../docs/", "](docs/")
                cell["source"] = text.splitlines(keepends=True)
        assert copied == original
    links = _doc_links(mine.parent, EXAMPLES[1:])
    assert links, "the examples link to the documentation"
    assert all((mine.parent / link).is_file() for link in links), links
    assert f"Copied {len(EXAMPLES) - 1} example notebooks into ex" in done.stdout
    assert "Kept what was already there: quickstart.ipynb." in done.stdout
    assert done.stdout.rstrip().endswith("jupyter lab ex/quickstart.ipynb")


def _doc_links(folder: Path, names: tuple[str, ...] = EXAMPLES) -> set[str]:
    """The relative links in the Markdown cells of those notebooks in ``folder``."""
    links = set()
    for notebook in map(folder.joinpath, names):
        for cell in json.loads(notebook.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                links |= set(re.findall(r"\]\(((?![a-z]+:)[^)#\s]+)", "".join(cell["source"])))
    return links


def test_examples_default_folder_and_one_sentence_on_failure(tmp_path: Path) -> None:
    done = _cli("examples", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "hermes-nb-examples" / "quickstart.ipynb").is_file()
    (tmp_path / "blocked").write_text("a file, not a folder")
    failed = _cli("examples", "blocked/inside", cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr == ""
    assert failed.stdout.strip().count("\n") == 0
    assert failed.stdout.startswith("hermes-nb: cannot copy the examples into blocked/inside:")


def test_every_example_notebook_is_shipped_and_listed() -> None:
    """The wheel's ``force-include`` table, ``EXAMPLES`` and ``notebooks/`` agree."""
    import tomllib

    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    shipped = table["targets"]["wheel"]["force-include"]
    assert shipped == {
        **{f"notebooks/{n}": f"hermes_nb/examples/{n}" for n in EXAMPLES},
        "docs": "hermes_nb/examples/docs",
    }
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(EXAMPLES)
