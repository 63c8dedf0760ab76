"""Run the example notebooks with nbval, each in a kernel that cannot touch the user's data.

When pytest collects this directory (``python -m pytest`` with ``notebooks`` in ``testpaths``,
or ``python -m pytest notebooks/``), this file turns nbval on for the notebooks in it — with
the sanitizer file next to it and a kernel from the running interpreter — so no extra command
line flags are needed. Explicit flags (``--nbval-lax``, ``--nbval-sanitize-with …``) win.

Every notebook's kernel starts with a fresh, empty ``HERMES_NB_HOME`` and ``TMPDIR`` (in one
temporary directory, removed at the end of the test session) and without the variables that
would pick a real provider or the notebook's default session (``OPENAI_API_KEY``,
``JPY_SESSION_NAME``, …): the offline echo model answers, the user's ``config.toml`` and session
store are never read or written, no notebook sees another's sessions, and what a notebook puts in
its temporary directory goes too (nbval kills its kernels, so their own clean-up never runs).
The variables are set only while nbval starts the kernel (a kernel copies its environment when
it starts); the pytest process's own environment is restored at once.

``scripts/refresh_notebooks.py`` imports :func:`kernel_env` from here, so the saved outputs are
computed in exactly the environment nbval compares them in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SANITIZE_FILE = HERE / "sanitize.cfg"

#: The prefix of the temporary directory each notebook kernel gets (sanitize.cfg maps paths
#: under it to ``TMPDIR``); it holds the kernel's ``HERMES_NB_HOME`` and its ``TMPDIR``.
BASE_PREFIX = "hermes-nb-test-"

#: Variables a notebook kernel must not inherit: they select a provider, carry keys, or name the
#: notebook's default session (Jupyter sets ``JPY_SESSION_NAME``; nbval and nbclient do not).
UNSET = (
    "HERMES_NB_PROFILE",
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "HERMES_HOME",
    "JPY_SESSION_NAME",
)

_bases: list[str] = []
_started: set[str] = set()


@contextmanager
def kernel_env() -> Iterator[Path]:
    """``os.environ`` prepared for starting one notebook kernel: new empty ``HERMES_NB_HOME``
    (yielded) and ``TMPDIR``, and none of :data:`UNSET`. Restores the previous environment on
    exit; the directories stay (the kernel uses them) until :func:`remove_homes`."""
    base = Path(tempfile.mkdtemp(prefix=BASE_PREFIX))
    _bases.append(str(base))
    home, tmp = base / "home", base / "tmp"
    home.mkdir()
    tmp.mkdir()
    set_to = {"HERMES_NB_HOME": str(home), "TMPDIR": str(tmp)}
    saved = {name: os.environ.get(name) for name in (*UNSET, *set_to)}
    for name in UNSET:
        os.environ.pop(name, None)
    os.environ.update(set_to)
    try:
        yield home
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def remove_homes() -> None:
    """Delete the directories made by :func:`kernel_env`."""
    while _bases:
        shutil.rmtree(_bases.pop(), ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    option = config.option
    if not getattr(option, "nbval_lax", False):
        option.nbval = True
    if not getattr(option, "nbval_sanitize_with", None):
        option.nbval_sanitize_with = str(SANITIZE_FILE)
    if not getattr(option, "nbval_kernel_name", None):
        option.nbval_current_env = True


def pytest_unconfigure(config: pytest.Config) -> None:
    remove_homes()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Around the first cell of each notebook (when nbval starts its kernel): the isolated
    environment. Later cells of the same notebook run in the kernel already started."""
    notebook = item.parent
    if notebook is None or not str(notebook.path).endswith(".ipynb"):
        yield
        return
    key = str(notebook.path)
    if key in _started:
        yield
        return
    _started.add(key)
    with kernel_env():
        yield
