"""The ``hermes-nb`` command (also ``python -m hermes_nb``): check the setup from a terminal.

``hermes-nb doctor [PROFILE]`` checks the configuration, the profile's key and endpoint, the
session store and the Jupyter versions, and says what to fix; ``hermes-nb examples [FOLDER]``
copies the example notebooks (the quickstart first) and the documentation they link to into a
folder, for a pip user who has no clone of the repository; ``hermes-nb --version`` prints the
version.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from importlib import resources
from pathlib import Path

_DESCRIPTION = (
    "Check the hermes_nb setup (the notebook side: %hermes doctor) or copy its example notebooks."
)
#: The example notebooks, in reading order. The wheel carries them in ``hermes_nb/examples``
#: (``force-include`` in pyproject.toml); a checkout has them in ``notebooks/``.
EXAMPLES = (
    "quickstart.ipynb",
    "sessions.ipynb",
    "providers.ipynb",
    "python-api.ipynb",
    "prompts.ipynb",
    "tools.ipynb",
    "document.ipynb",
    "mcp.ipynb",
)
#: How the notebooks link to the documentation in a checkout (``notebooks/`` beside ``docs/``),
#: and in the copy, which holds the documentation in a ``docs`` folder beside the notebooks.
_DOCS_LINK, _COPIED_DOCS_LINK = "](../docs/", "](docs/"


def main(argv: list[str] | None = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(prog="hermes-nb", description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"hermes-nb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    doctor = sub.add_parser(
        "doctor",
        help="check config, key, endpoint, store and versions",
        description="Check the configuration, the profile's key and endpoint, the session "
        "store and the Jupyter versions; exit 1 if anything failed.",
    )
    doctor.add_argument("profile", nargs="?", help="profile to check (default: the default one)")
    doctor.add_argument("--timeout", type=float, default=5.0, help="seconds for the live check")
    examples = sub.add_parser(
        "examples",
        help="copy the example notebooks into a folder",
        description="Copy the example notebooks (quickstart, sessions, providers, Python API, "
        "prompts, tools) and the documentation they link to (FOLDER/docs) into FOLDER; files "
        "already there are kept.",
    )
    examples.add_argument(
        "folder", nargs="?", default="hermes-nb-examples", help="default: ./hermes-nb-examples"
    )
    args = parser.parse_args(argv)
    if args.command == "examples":
        return _copy_examples(Path(args.folder))
    from .doctor import doctor_report

    report = doctor_report(args.profile, timeout=args.timeout)
    print(report.text())
    return 0 if report.ok else 1


def _examples_source() -> Path:
    shipped = Path(str(resources.files("hermes_nb") / "examples"))
    return shipped if shipped.is_dir() else Path(__file__).resolve().parent.parent / "notebooks"


def _docs_source(examples: Path) -> Path:
    """The documentation: shipped in ``hermes_nb/examples/docs``, or ``docs/`` of a checkout."""
    shipped = examples / "docs"
    return shipped if shipped.is_dir() else examples.parent / "docs"


def _copy_examples(folder: Path) -> int:
    """Copy :data:`EXAMPLES` and the documentation into ``folder``, never over a file already
    there (it may be the person's own edits); say what was done and how to open the quickstart.
    """
    source = _examples_source()
    missing = [name for name in EXAMPLES if not (source / name).is_file()]
    if missing:
        print(f"hermes-nb: this installation has no example notebooks ({source} is missing).")
        return 1
    try:
        folder.mkdir(parents=True, exist_ok=True)
        copied, kept = [], []
        for name in EXAMPLES:
            target = folder / name
            if target.exists():
                kept.append(name)
                continue
            _copy_notebook(source / name, target)
            copied.append(name)
        _copy_docs(_docs_source(source), folder / "docs")
    except OSError as exc:
        print(f"hermes-nb: cannot copy the examples into {folder}: {exc.strerror or exc}.")
        return 1
    if copied:
        print(f"Copied {len(copied)} example notebooks into {folder}: {', '.join(copied)}.")
    if kept:
        print(f"Kept what was already there: {', '.join(kept)}.")
    print(f"Open the first one with: jupyter lab {folder / EXAMPLES[0]}")
    return 0


def _copy_notebook(source: Path, target: Path) -> None:
    """Copy a notebook with its Markdown cells' links to the documentation pointing at the
    copied ``docs`` folder (the checkout's notebooks reach it as ``../docs``)."""
    notebook = json.loads(source.read_text(encoding="utf-8"))
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            text = "".join(cell["source"]).replace(_DOCS_LINK, _COPIED_DOCS_LINK)
            cell["source"] = text.splitlines(keepends=True)
    # As nbformat writes a notebook, so the copy reads like the original in a diff.
    text = json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False)
    target.write_text(text + "\n", encoding="utf-8")


def _copy_docs(source: Path, target: Path) -> None:
    if not source.is_dir():
        return
    for path in sorted(source.rglob("*")):
        destination = target / path.relative_to(source)
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
        elif not destination.exists():
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


if __name__ == "__main__":
    sys.exit(main())
