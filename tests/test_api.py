"""The public surface: ``__all__`` is complete, alphabetised, and names only what exists."""

from __future__ import annotations

import subprocess
import sys
import types

import hermes_nb


def test_all_names_exist_and_are_sorted() -> None:
    for name in hermes_nb.__all__:
        assert hasattr(hermes_nb, name), name
    public = [n for n in hermes_nb.__all__ if n != "__version__"]
    assert public == sorted(public)


def test_no_public_name_is_missing_from_all() -> None:
    exported = set(hermes_nb.__all__)
    for name, value in vars(hermes_nb).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in ("annotations", "Any"):
            continue
        assert name in exported, f"{name} is public but not in __all__"


def test_import_does_not_start_anything() -> None:
    code = (
        "import threading, hermes_nb, sys; "
        "print(len(threading.enumerate()), 'IPython' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    threads, ipython, httpx = out.stdout.split()
    assert threads == "1"  # no runtime thread until the first turn
    assert ipython == "False"  # the magics module is imported by load_ipython_extension
    assert httpx == "False"  # the HTTP client is created on the runtime thread when needed
