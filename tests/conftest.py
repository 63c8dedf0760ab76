"""Shared fixtures: every test gets its own data directory and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sse_server import sse_server  # noqa: F401  (the loopback OpenAI-style server)

# Variables that select a provider or carry keys: a developer's shell must not leak into tests.
_ISOLATED = (
    "HERMES_NB_HOME",
    "HERMES_NB_PROFILE",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "OPENROUTER_API_KEY",
    "HERMES_HOME",
)


@pytest.fixture(autouse=True)
def hermes_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ``$HERMES_NB_HOME`` per test, and no provider keys from the outside."""
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "hermes-home"
    home.mkdir()
    monkeypatch.setenv("HERMES_NB_HOME", str(home))
    return home


@pytest.fixture
def write_config(hermes_home: Path):
    """Write ``config.toml`` into the test's home and return its path."""

    def write(text: str) -> Path:
        path = hermes_home / "config.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def env_snapshot() -> dict[str, str]:
    """The process environment before the test (to assert it was restored exactly)."""
    return _env_without_pytest()


def _env_without_pytest() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}


@pytest.fixture
def current_env():
    """A callable returning the environment now, in the same shape as ``env_snapshot``."""
    return _env_without_pytest


@pytest.fixture
def agents_closed() -> Iterator[None]:
    """After the test: every ACP agent it started closed (the next test starts its own).
    Modules that run agents use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    yield
    from hermes_nb.engine.runtime import get_runtime
    from hermes_nb.providers.acp import restart_agents

    get_runtime().submit(restart_agents).result(10)


@pytest.fixture
def stores_closed() -> Iterator[None]:
    """After the test: background jobs (titles, compression) finished and every cached store
    closed, so the next test's ``hermes_home`` gets a fresh store. Modules that open stores use
    it with ``pytestmark = pytest.mark.usefixtures("stores_closed")``."""
    yield
    from hermes_nb.store import close_stores
    from hermes_nb.store.sessions import join_background

    join_background(10)
    close_stores()


@pytest.fixture
def ip() -> Iterator[object]:
    """An IPython shell with hermes_nb loaded, as terminal IPython has it (no kernel, no
    widgets); runs it left going are stopped afterwards."""
    from IPython.core.interactiveshell import InteractiveShell

    import hermes_nb
    from hermes_nb.engine.runtime import get_runtime

    shell = InteractiveShell.instance()
    hermes_nb.load_ipython_extension(shell)
    yield shell
    hermes_nb.unload_ipython_extension(shell)
    for run in get_runtime().runs():
        run.cancel()
        run.wait(10)
