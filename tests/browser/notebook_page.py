"""The page side of the browser tests: a Playwright page showing one notebook.

:class:`NotebookPage` opens one notebook of a :class:`~jupyter_harness.JupyterServer` in a
Playwright page — in JupyterLab or in Notebook 7 — and runs its cells the way a user does
(Shift+Enter), saves (Ctrl+S), reloads, and reads outputs from the DOM. :func:`browser_context`
makes the context every test page lives in, with :data:`INIT_SCRIPT` (the XSS tripwire and the
``__hnb_panel`` lookup) installed before any script; :class:`PageWatch` records what a page did
besides rendering; :func:`tripwire_hits` reads the tripwire.

The server side stays in ``jupyter_harness.py``, which re-exports every name here, so tests and
benchmarks keep importing them from ``jupyter_harness``. This module never imports it at run
time (only for type hints), so there is no import cycle.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jupyter_harness import JupyterServer

__all__ = ["INIT_SCRIPT", "NotebookPage", "PageWatch", "browser_context", "tripwire_hits"]

# Browser-side helpers, installed in every page before any of its scripts runs.
#
# The XSS tripwire: a payload that executes sets ``__hnb_xss`` or calls ``__hnb_pwn(tag)``
# (also reachable as ``top.__hnb_pwn`` from a frame). Nothing in hermes_nb touches these names.
INIT_SCRIPT = """
(() => {
  window.__hnb_xss = 0;
  window.__hnb_xss_log = [];
  window.__hnb_pwn = (tag) => {
    window.__hnb_xss += 1;
    window.__hnb_xss_log.push(String(tag));
  };
  // The main-area widget showing `path` (a NotebookPanel), in JupyterLab and in Notebook 7.
  window.__hnb_panel = (path) => {
    const app = window.jupyterapp;
    if (!app || !app.shell) { return null; }
    for (const w of app.shell.widgets('main')) {
      if (w.context && w.context.path === path && w.content && w.content.widgets) { return w; }
    }
    return null;
  };
})();
"""

# What a page that shows no notebook is waiting for. Lumino attaches the shell only once every
# startup plugin has activated, so a plugin whose activation never settles leaves a blank page.
_STARTUP_STATE_JS = """
() => {
  const app = window.jupyterapp;
  if (!app) { return 'no application object yet'; }
  const registry = app.pluginRegistry;
  const pending = [];
  if (registry && registry._plugins) {
    for (const [id, data] of registry._plugins) {
      if (data.promise && !data.activated) { pending.push(id); }
    }
  }
  const main = app.shell ? Array.from(app.shell.widgets('main')).map(w => w.id) : [];
  return JSON.stringify({
    shellAttached: !!(app.shell && app.shell.isAttached), activating: pending, main,
  });
}
"""


@contextlib.contextmanager
def browser_context(browser: Any) -> Iterator[Any]:
    """A Playwright context as every test page wants it: 1280x1000, 30 s timeouts, the XSS
    tripwire (``INIT_SCRIPT``) before any script. Close it before its server stops: the server
    waits for open connections to close."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(30_000)
    context.add_init_script(INIT_SCRIPT)
    try:
        yield context
    finally:
        context.close()


@dataclass
class PageWatch:
    """What a page did besides rendering: dialogs, popups, errors, console lines."""

    dialogs: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    #: Requests sent and not yet finished or failed: request → (monotonic start, "METHOD url").
    inflight: dict[Any, tuple[float, str]] = field(default_factory=dict)

    def pending_requests(self, older_than: float = 2.0) -> list[str]:
        """In-flight requests older than ``older_than`` seconds, oldest first."""
        now = time.monotonic()
        return [
            f"{now - start:.1f}s {what}"
            for start, what in sorted(self.inflight.values())
            if now - start >= older_than
        ]

    def attach(self, page: Any) -> None:
        def on_dialog(dialog: Any) -> None:
            if dialog.type == "beforeunload":
                # A reload with unsaved outputs asks; a user reloading means it.
                dialog.accept()
                return
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", lambda msg: self.console.append(f"[{msg.type}] {msg.text}"))
        page.on("popup", lambda p: self.popups.append(p.url))
        page.on(
            "request",
            lambda r: self.inflight.__setitem__(r, (time.monotonic(), f"{r.method} {r.url}")),
        )
        page.on("requestfinished", lambda r: self.inflight.pop(r, None))
        page.on("requestfailed", lambda r: self.inflight.pop(r, None))


class NotebookPage:
    """One notebook open in a page, in JupyterLab or Notebook 7."""

    def __init__(self, page: Any, server: JupyterServer, path: str, workspace: str = "") -> None:
        self.page = page
        self.server = server
        self.path = path
        self.workspace = workspace

    # -- opening ---------------------------------------------------------------------------

    def open(self, timeout: float = 120_000) -> NotebookPage:
        self.page.goto(self.server.page_url(self.path, self.workspace))
        return self.wait_ready(timeout)

    def reload(self, timeout: float = 120_000) -> NotebookPage:
        self.page.reload()
        return self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120_000) -> NotebookPage:
        """The notebook is shown, its cells are in the DOM and its kernel is idle.

        Generous: a kernel from a just-built venv compiles its bytecode on first start, which
        took over a minute once on two busy cores. No retry and no reload: a page that never
        gets ready is a failure, reported with what the front end was still waiting for."""
        try:
            self._wait_ready(timeout)
        except Exception as exc:
            state = "?"
            with contextlib.suppress(Exception):
                state = self.page.evaluate(
                    """(path) => {
                        const p = window.__hnb_panel && window.__hnb_panel(path);
                        if (!p) { return 'no notebook panel'; }
                        const k = p.sessionContext.session && p.sessionContext.session.kernel;
                        return JSON.stringify({ready: p.context.isReady,
                            cells: p.content.widgets.length, kernel: k && k.name,
                            status: k && k.status, connection: k && k.connectionStatus});
                    }""",
                    self.path,
                )
            raise AssertionError(
                f"{self.path} not ready: {state}\n{self.stall_report()}\n"
                f"{self.server.backend_report()}"
            ) from exc
        return self

    def stall_report(self) -> str:
        """Why the page shows no notebook yet: the front end's startup plugins still activating
        (the shell is attached only when all have), requests still in flight, the console."""
        try:
            state = self.page.evaluate(_STARTUP_STATE_JS)
        except Exception as exc:  # the page may be navigating
            state = f"(page not readable: {exc})"
        watch = getattr(self.page, "watch", None)
        lines = [f"front end: {state}"]
        if watch is not None:
            lines += [f"in flight: {r}" for r in watch.pending_requests()]
            lines += [f"console: {c}" for c in watch.console[-15:]]
        return "\n".join(lines)

    def _wait_ready(self, timeout: float) -> None:
        self.page.wait_for_function(
            """(path) => {
                const p = window.__hnb_panel && window.__hnb_panel(path);
                if (!p || !p.context.isReady || !p.content.widgets.length) { return false; }
                const kernel = p.sessionContext.session && p.sessionContext.session.kernel;
                return !!kernel && kernel.status === 'idle'
                    && kernel.connectionStatus === 'connected';
            }""",
            arg=self.path,
            timeout=timeout,
            polling=100,
        )
        # Tag the panel's node with its path: locators made before a reload still find it.
        self._eval("(p, path) => { p.node.dataset.hnbPath = path; }", self.path)
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(state="visible")

    def _eval(self, body: str, arg: Any = None) -> Any:
        """Evaluate ``(panel, arg) => …`` against this notebook's panel."""
        return self.page.evaluate(
            f"([path, arg]) => {{ const f = {body}; return f(window.__hnb_panel(path), arg); }}",
            [self.path, arg],
        )

    # -- locators --------------------------------------------------------------------------

    @property
    def panel(self) -> Any:
        return self.page.locator(f".jp-NotebookPanel[data-hnb-path={json.dumps(self.path)}]")

    def cell(self, index: int) -> Any:
        return self.panel.locator(".jp-Notebook > .jp-WindowedPanel-outer .jp-Cell").nth(index)

    def outputs(self, index: int) -> Any:
        return self.cell(index).locator(".jp-OutputArea-output")

    def output(self, index: int, mime: str) -> Any:
        """Cell ``index``'s rendered outputs of one mimetype (``application/vnd.jupyter.stdout``
        for printed text)."""
        return self.cell(index).locator(f'.jp-OutputArea-output[data-mime-type="{mime}"]')

    def kernel_name(self) -> str:
        """The kernelspec name of the kernel this notebook's session runs."""
        return self._eval("p => p.sessionContext.session.kernel.name")

    def cell_count(self) -> int:
        return self._eval("p => p.content.widgets.length")

    # -- editing and running ---------------------------------------------------------------

    def set_source(self, index: int, source: str) -> None:
        """Replace cell ``index``'s source through the notebook model (exact, no autoclose)."""
        self._eval(
            "(p, a) => p.content.widgets[a[0]].model.sharedModel.setSource(a[1])", [index, source]
        )

    def type_into(self, index: int, text: str) -> None:
        """Click into cell ``index``'s editor and type ``text`` on the keyboard."""
        editor = self.cell(index).locator(".cm-content")
        editor.click()
        self.page.keyboard.type(text)

    def _select(self, index: int) -> None:
        """Make cell ``index`` the active cell, notebook in command mode and focused."""
        self._eval(
            """(p, i) => {
                window.jupyterapp.shell.activateById(p.id);
                p.content.activeCellIndex = i;
                p.content.mode = 'command';
                p.content.node.focus();
            }""",
            index,
        )
        self.page.wait_for_function(
            """(path) => {
                const p = window.__hnb_panel(path);
                return p.content.node.contains(document.activeElement);
            }""",
            arg=self.path,
            timeout=10_000,
        )

    def execution_count(self, index: int) -> int | None:
        return self._eval("(p, i) => p.content.widgets[i].model.executionCount", index)

    def run(self, index: int, *, wait: bool = True, timeout: float = 30_000) -> None:
        """Run cell ``index`` with Shift+Enter; with ``wait``, until it has finished."""
        before = self.execution_count(index)
        self._select(index)
        self.page.keyboard.press("Shift+Enter")
        # Started: the cell is queued or running in the model (then the DOM shows [*]).
        self.page.wait_for_function(
            """([path, i, before]) => {
                const m = window.__hnb_panel(path).content.widgets[i].model;
                return m.executionState === 'running' || m.executionCount !== before;
            }""",
            arg=[self.path, index, before],
            timeout=10_000,
        )
        if wait:
            self.wait_cell_done(index, timeout)

    def wait_cell_done(self, index: int, timeout: float = 30_000) -> None:
        """Cell ``index`` has finished running: a fresh count, idle, ``[n]`` in its prompt."""
        self.page.wait_for_function(
            """([path, i]) => {
                const m = window.__hnb_panel(path).content.widgets[i].model;
                return m.executionState === 'idle' && m.executionCount !== null;
            }""",
            arg=[self.path, index],
            timeout=timeout,
        )
        prompt = self.cell(index).locator(".jp-InputArea-prompt")
        prompt.filter(has_text=re.compile(r"\[\d+\]")).wait_for()

    def watch_finish(self, index: int) -> None:
        """Start recording when cell ``index``'s prompt next shows a finished count ``[n]``
        (call it while the prompt shows ``[*]``); read it with :meth:`finished_at`."""
        self._eval(
            """(p, i) => {
                const node = p.content.widgets[i].node;
                const key = p.context.path + '#' + i;
                const done = (window.__hnb_finished = window.__hnb_finished || {});
                done[key] = null;
                const check = () => {
                    const prompt = node.querySelector('.jp-InputArea-prompt');
                    if (done[key] === null && prompt && /\\[\\d+\\]/.test(prompt.textContent)) {
                        done[key] = performance.now();
                        observer.disconnect();
                    }
                };
                const observer = new MutationObserver(check);
                observer.observe(node, { subtree: true, childList: true, characterData: true });
                check();
            }""",
            index,
        )

    def finished_at(self, index: int) -> float | None:
        """The page's ``performance.now()`` when :meth:`watch_finish` saw cell ``index``
        finish (the clock of ``ChatView.history``), or None."""
        return self.page.evaluate(
            "(k) => (window.__hnb_finished || {})[k] ?? null", f"{self.path}#{index}"
        )

    def run_all(self, sources: list[str] | None = None) -> None:
        for i in range(len(sources) if sources else self.cell_count()):
            self.run(i)

    # -- saving ----------------------------------------------------------------------------

    def save(self, timeout: float = 15_000) -> None:
        """Ctrl+S, then wait until the document context reports the save *completed* (the
        server answered the PUT: the file is whole) and the file on disk is newer.

        A newer mtime alone is not enough: the server writes the notebook in place, so the
        file can be seen empty or half-written between the truncate and the last write."""
        target = self.server.root_dir / self.path
        before = target.stat().st_mtime_ns if target.exists() else 0
        self._eval(
            """p => {
                const saves = (window.__hnb_saves = window.__hnb_saves || {});
                saves[p.context.path] = [];
                if (!p.__hnb_save_hooked) {
                    p.__hnb_save_hooked = true;
                    p.context.saveState.connect((_, state) => {
                        (window.__hnb_saves[p.context.path] || []).push(state);
                    });
                }
                window.jupyterapp.shell.activateById(p.id);
                p.content.node.focus();
            }"""
        )
        self.page.keyboard.press("Control+s")
        try:
            self.page.wait_for_function(
                """(path) => {
                    const states = (window.__hnb_saves || {})[path] || [];
                    return states.includes('completed') || states.includes('failed');
                }""",
                arg=self.path,
                timeout=timeout,
                polling=50,
            )
        except Exception as exc:
            raise AssertionError(f"Ctrl+S did not save {self.path}") from exc
        states = self.page.evaluate("(path) => window.__hnb_saves[path]", self.path)
        assert "completed" in states, f"saving {self.path} failed: {states}"
        assert target.stat().st_mtime_ns != before, f"{self.path} unchanged on disk after a save"

    # -- reading ---------------------------------------------------------------------------

    def output_text(self, index: int) -> str:
        return "\n".join(self.outputs(index).all_inner_texts())

    def xss_hits(self) -> list[str]:
        """Every tripwire that fired, in any frame of the page."""
        return tripwire_hits(self.page)


def tripwire_hits(page: Any) -> list[str]:
    """``__hnb_xss`` / ``__hnb_pwn`` calls recorded in any frame of ``page``."""
    hits: list[str] = []
    for frame in page.frames:
        with contextlib.suppress(Exception):
            count, log = frame.evaluate(
                "() => [window.__hnb_xss || 0, (window.__hnb_xss_log || []).slice()]"
            )
            if count:
                hits.append(f"{frame.url}: __hnb_xss={count} {log}")
    return hits
