"""Where the notebook this kernel runs lives: its ``.ipynb`` (what the document tools read when
the page cannot answer) and its folder (where a turn's rules are looked for from).

Both come from the same names, most specific first, so the rules and the document are the same
notebook's: ``__vsc_ipynb_file__`` (VS Code), ``__session__`` (ipykernel, from
``JPY_SESSION_NAME``) and ``JPY_SESSION_NAME`` itself (jupyter_server starts the kernel with the
notebook's path in it). With none of them, the folder is the kernel's working folder, which
JupyterLab and Notebook 7 also set to the notebook's folder, and a terminal to where IPython was
started.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["notebook_folder", "notebook_path"]


def _names(namespace: Any) -> list[str]:
    """The names this kernel was given for its notebook, most specific first."""
    found: Mapping[str, Any] = namespace if isinstance(namespace, Mapping) else {}
    named = (
        found.get("__vsc_ipynb_file__"),
        found.get("__session__"),
        os.environ.get("JPY_SESSION_NAME"),
    )
    return [name for name in named if isinstance(name, str) and name]


def notebook_path(shell: Any) -> Path | None:
    """The ``.ipynb`` this kernel was started for, if it knows and the file exists."""
    for name in _names(getattr(shell, "user_ns", None)):
        if not name.endswith(".ipynb"):
            continue
        path = Path(name).expanduser()
        # An older jupyter_server gives the path from its root; the kernel runs in the
        # notebook's folder, so the file's own name finds it there.
        for found in (path, Path.cwd() / path.name) if not path.is_absolute() else (path,):
            if found.is_file():
                return found.resolve()
    return None


def notebook_folder(namespace: Any = None) -> Path:
    """The folder of the notebook this kernel runs (see the module's docstring): the first name
    that is a whole path in a folder that exists, else the working folder."""
    for name in _names(namespace):
        if os.path.isabs(name) and Path(name).parent.is_dir():
            return Path(name).parent
    return Path.cwd()
