"""Fixtures for the browser suite: Debian's Chromium driven by Playwright, against a JupyterLab
(or Notebook 7) server these fixtures start on 127.0.0.1.

Without ``/usr/bin/chromium`` (or the ``playwright`` package) every test here is skipped with
the reason — except in CI (``CI=true``), which installs Chromium, where they fail instead.

One server per UI per session (started on first use); one browser; one context per UI, so the
HTTP cache is warm after the first page; a fresh page per test, with the XSS tripwire installed
before any script runs. After each test its kernels are shut down; after a failure a screenshot
and the page's console go to ``artifacts/browser/FAILED-<test>.*``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ci_env import unavailable
from jupyter_harness import (
    ARTIFACTS,
    CHROMIUM_ARGS,
    JupyterServer,
    NotebookPage,
    PageWatch,
    Ui,
    browser_context,
    shoot,
    tripwire_hits,
)
from kernel_envs import KernelEnv, KernelEnvError, kernel_env

CHROMIUM = Path("/usr/bin/chromium")
_HERE = Path(__file__).parent
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def _unavailable() -> str | None:
    """Why the browser suite cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[browser]')"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the browser tests, and run them last: Playwright's sync API leaves an asyncio loop
    set on the main thread for the rest of the session, which breaks any later test that runs
    a loop of its own there (``asyncio.run``, ``anyio.run``)."""
    for item in items:
        if _HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.browser)
    items.sort(key=lambda item: _HERE in Path(str(item.path)).parents)  # stable: order kept


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(_REPORTS, {})
    return any(r.failed for r in reports.values())


# -- browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium; skips the suite without it (fails in CI, which installs it)."""
    reason = _unavailable()
    if reason:
        unavailable(f"browser suite not run: {reason}")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    """One headless Chromium for the session (Playwright gives it a fresh user-data dir)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


# -- servers ---------------------------------------------------------------------------------


def _server(factory: pytest.TempPathFactory, ui: Ui) -> Iterator[JupyterServer]:
    with JupyterServer(factory.mktemp(f"jupyter-{ui}"), ui=ui).running() as server:
        yield server


@pytest.fixture(scope="session")
def lab_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter lab`` for the session (started only if a test needs it)."""
    yield from _server(tmp_path_factory, "lab")


@pytest.fixture(scope="session")
def nb7_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """``jupyter notebook`` (Notebook 7: /tree, /notebooks/<path>) for the session."""
    yield from _server(tmp_path_factory, "notebook7")


@pytest.fixture(params=["lab"])
def ui(request: pytest.FixtureRequest) -> Ui:
    """Which front end a test drives; parametrize indirectly with ``["lab", "notebook7"]``."""
    return request.param


@pytest.fixture
def server(ui: Ui, request: pytest.FixtureRequest) -> JupyterServer:
    return request.getfixturevalue("lab_server" if ui == "lab" else "nb7_server")


# -- kernels ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kernel_envs() -> dict[str, KernelEnv | str]:
    """Per session: ipykernel version → its environment, or why it could not be made."""
    return {}


@pytest.fixture
def kernel(
    server: JupyterServer, kernel_envs: dict[str, KernelEnv | str], request: pytest.FixtureRequest
) -> KernelEnv | None:
    """The kernel a test's notebooks run: ``None`` for the project venv's own (the default), or
    an ipykernel version parametrized indirectly (``kernel_envs.EXTRA_KERNELS``), whose
    virtualenv under ``.venv-kernels/`` is built on first use. Skips if pip cannot install that
    version (fails under ``CI=true``)."""
    version = getattr(request, "param", None)
    if version is None:
        return None
    if version not in kernel_envs:
        try:
            kernel_envs[version] = kernel_env(version)
        except KernelEnvError as exc:
            kernel_envs[version] = str(exc)
    env = kernel_envs[version]
    if isinstance(env, str):
        unavailable(f"ipykernel {version} not tested: {env}", "CI must build it")
    server.add_kernel(env.spec_name, env.python, env.display_name)
    return env


@pytest.fixture(scope="session")
def lab_context(browser: Any, lab_server: JupyterServer) -> Iterator[Any]:
    """The browser context for JupyterLab pages (one per session: a warm HTTP cache)."""
    with browser_context(browser) as context:  # needs lab_server: closed before it stops
        yield context


@pytest.fixture(scope="session")
def nb7_context(browser: Any, nb7_server: JupyterServer) -> Iterator[Any]:
    """The browser context for Notebook 7 pages."""
    with browser_context(browser) as context:
        yield context


@pytest.fixture
def context(server: JupyterServer, request: pytest.FixtureRequest) -> Any:
    """The browser context for ``server``'s pages; a module with a server of its own overrides
    this (and ``server``) to get the suite's ``page`` and ``open_notebook`` on it."""
    return request.getfixturevalue("lab_context" if server.ui == "lab" else "nb7_context")


@pytest.fixture
def page(context: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page with the XSS tripwire; ``page.watch`` records dialogs, popups, errors."""
    pg = context.new_page()
    watch = PageWatch()
    watch.attach(pg)
    pg.watch = watch  # type: ignore[attr-defined]
    yield pg
    _keep_failure(request, pg)  # if open_notebook did not already (it leaves the page blank)
    with contextlib.suppress(Exception):
        pg.close()


def _keep_failure(request: pytest.FixtureRequest, pg: Any) -> None:
    """After a failed test, once: a screenshot of the page as it was and its console, to
    ``artifacts/browser/FAILED-<test>.*``."""
    if not _failed(request.node) or getattr(pg, "failure_kept", False):
        return
    pg.failure_kept = True
    watch: PageWatch = pg.watch
    name = f"FAILED-{_slug(request.node.name)}"
    with contextlib.suppress(Exception):
        shoot(pg, name)
    with contextlib.suppress(Exception):
        (ARTIFACTS / f"{name}.console.txt").write_text(
            "\n".join(
                [
                    *watch.console,
                    "--- page errors",
                    *watch.errors,
                    "--- dialogs",
                    *watch.dialogs,
                    "--- popups",
                    *watch.popups,
                    "--- requests in flight",
                    *watch.pending_requests(),
                ]
            ),
            encoding="utf-8",
        )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120]


# -- notebooks -------------------------------------------------------------------------------


@pytest.fixture
def open_notebook(
    server: JupyterServer, page: Any, kernel: KernelEnv | None, request: pytest.FixtureRequest
) -> Iterator[Callable[..., NotebookPage]]:
    """``open_notebook(sources, name=None)``: write a notebook with these code cells into the
    server's root and open it in ``page``, on the test's ``kernel`` (the session's kernelspec is
    checked once it runs). Kernels are shut down after the test; the notebook is copied to
    ``artifacts/browser/`` for inspection."""
    opened: list[NotebookPage] = []

    def open_(sources: list[str], name: str | None = None) -> NotebookPage:
        stem = name or _slug(request.node.name)
        if kernel is None:
            path = server.notebook(f"{stem}.ipynb", sources)
        else:
            path = server.notebook(f"{stem}.ipynb", sources, kernel.spec_name, kernel.display_name)
        # A dot in a workspace name (ids like lab-ipykernel7.3.0) breaks JupyterLab's routing.
        nb = NotebookPage(page, server, path, workspace=stem.replace(".", "_"))
        opened.append(nb)
        nb.open()
        if kernel is not None:
            # kernel_env checked that this spec's interpreter has ipykernel == kernel.version.
            running = nb.kernel_name()
            assert running == kernel.spec_name, f"the notebook runs kernel {running!r}"
        return nb

    yield open_
    # Any test, not only the hostile-output one: a payload that ran is an error.
    fired = [*tripwire_hits(page), *page.watch.dialogs] if opened else []
    _keep_failure(request, page)  # before the page leaves the notebook
    with contextlib.suppress(Exception):
        page.goto("about:blank")
    for nb in opened:
        with contextlib.suppress(Exception):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server.root_dir / nb.path, ARTIFACTS / nb.path)
    with contextlib.suppress(Exception):
        server.shutdown_kernels()
    if fired and not _failed(request.node):
        pytest.fail(f"script ran in the page (XSS tripwire or dialog): {fired}", pytrace=False)


@pytest.fixture
def hermes_config(server: JupyterServer) -> Iterator[Callable[[str], Path]]:
    """Write ``config.toml`` into the server's ``$HERMES_NB_HOME`` (read by its kernels when a
    turn starts); removed after the test."""
    target = server.hermes_home / "config.toml"

    def write(text: str) -> Path:
        target.write_text(text, encoding="utf-8")
        return target

    yield write
    target.unlink(missing_ok=True)


@pytest.fixture
def screenshot(page: Any) -> Callable[..., Path]:
    """``screenshot(name, element=None)`` → ``artifacts/browser/<name>.png``: the page's
    viewport, or all of one element (a locator, e.g. a notebook cell)."""

    def take(name: str, element: Any = None) -> Path:
        return shoot(page if element is None else element, name)

    return take
