"""Drive a real Jupyter server for the browser tests.

:class:`JupyterServer` starts ``jupyter lab`` or ``jupyter notebook`` on 127.0.0.1 with every
Jupyter directory in a temporary tree (config, data, runtime, user settings, workspaces), a
kernelspec that runs this interpreter, and nothing that talks to the network (news, update
checks, terminals). Its pages are driven by ``notebook_page.py`` (:class:`NotebookPage`,
:class:`PageWatch`, :func:`browser_context`, :data:`INIT_SCRIPT`, :func:`tripwire_hits`),
re-exported here: tests and benchmarks import every harness name from this module.

The front end exposes its application object (``expose_app_in_browser``, as JupyterLab's own
UI tests do); the helpers use it only to *wait* (kernel idle, cell finished, model saved) and to
put source into a cell. Everything a test asserts is read from the DOM.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import nbformat
from notebook_page import (
    INIT_SCRIPT,
    NotebookPage,
    PageWatch,
    browser_context,
    tripwire_hits,
)

__all__ = [
    "ARTIFACTS",
    "CHROMIUM_ARGS",
    "INIT_SCRIPT",
    "JupyterServer",
    "NotebookPage",
    "PageWatch",
    "Ui",
    "browser_context",
    "new_notebook",
    "shoot",
    "tripwire_hits",
]

Ui = Literal["lab", "notebook7"]

ROOT = Path(__file__).resolve().parents[2]
#: Screenshots, server logs and kept notebooks (``artifacts/`` is gitignored).
ARTIFACTS = ROOT / "artifacts" / "browser"

#: Flags for Debian's Chromium: headless, no GPU, and no traffic of its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Belt and braces: no name resolves but the loopback one, so nothing leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
]

# (ui, application) → the server-side name of its app class, for its config.
_APPS = {"lab": ("jupyterlab", "LabApp"), "notebook7": ("notebook", "JupyterNotebookApp")}

# Front-end settings: no network, no autosave racing our Ctrl+S, every cell in the DOM.
_USER_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "checkForUpdates": False,
        "fetchNews": "false",
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}

# Variables a developer's shell might carry that would change what the server or kernel does.
_SCRUB = (
    "HERMES_NB_HOME",
    "HERMES_NB_PROFILE",
    "HERMES_HOME",
    "OPENAI_API_KEY",
    "OPENROUTER_API_KEY",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "JUPYTER_RUNTIME_DIR",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_PATH",
    "JUPYTER_PREFER_ENV_PATH",
    "JUPYTERLAB_SETTINGS_DIR",
    "JUPYTERLAB_WORKSPACES_DIR",
    "IPYTHONDIR",
    "PYTHONSTARTUP",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_notebook(
    path: Path,
    sources: list[str],
    kernel: str = "python3",
    display_name: str = "Python 3 (ipykernel)",
) -> Path:
    """Write a notebook with one code cell per source, bound to kernelspec ``kernel``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": display_name,
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def shoot(page_or_locator: Any, name: str) -> Path:
    """Save a screenshot of a page (its viewport) or of one element (all of it, scrolled into
    view) as ``artifacts/browser/<name>.png``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
    page_or_locator.screenshot(path=str(target))
    return target


@dataclass
class JupyterServer:
    """A ``jupyter lab`` / ``jupyter notebook`` server on 127.0.0.1, isolated under ``base``."""

    base: Path
    ui: Ui = "lab"
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Front-end extensions this server's pages do not load (as ``jupyter labextension
    #: disable NAME`` would, in the server's own config): e.g. ``("hermes-nb",)``.
    disabled_extensions: tuple[str, ...] = ()

    @property
    def root_dir(self) -> Path:
        """Where notebooks live (the server's ``root_dir``)."""
        return self.base / "root"

    @property
    def hermes_home(self) -> Path:
        """``$HERMES_NB_HOME`` of the server and of every kernel it starts."""
        return self.base / "hermes-home"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def _prepare(self) -> dict[str, str]:
        dirs = {
            name: self.base / name
            for name in ("config", "data", "runtime", "path", "ipython", "settings", "workspaces")
        }
        for d in (*dirs.values(), self.root_dir, self.hermes_home):
            d.mkdir(parents=True, exist_ok=True)
        # `python3` resolves to this interpreter (the venv with hermes_nb installed), whatever
        # kernelspecs the system or the user has. JUPYTER_PATH comes first in the data path.
        # ipykernel's own spec, whose argv starts with sys.executable.
        from ipykernel.kernelspec import write_kernel_spec

        spec = dirs["path"] / "kernels" / "python3"
        if not spec.exists():
            spec.parent.mkdir(parents=True, exist_ok=True)
            write_kernel_spec(spec)
        for rel, values in _USER_SETTINGS.items():
            target = dirs["settings"] / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(values), encoding="utf-8")
        app_cls = _APPS[self.ui][1]
        config = {
            "ServerApp": {"terminals_enabled": False},
            "LabApp": {
                "news_url": None,
                "check_for_updates_class": "jupyterlab.NeverCheckForUpdate",
            },
            app_cls: {
                "expose_app_in_browser": True,
                "user_settings_dir": str(dirs["settings"]),
                "workspaces_dir": str(dirs["workspaces"]),
            },
        }
        (dirs["config"] / "jupyter_server_config.json").write_text(
            json.dumps(config), encoding="utf-8"
        )
        if self.disabled_extensions:
            labconfig = dirs["config"] / "labconfig"
            labconfig.mkdir(exist_ok=True)
            disabled = dict.fromkeys(self.disabled_extensions, True)
            (labconfig / "page_config.json").write_text(
                json.dumps({"disabledExtensions": disabled}), encoding="utf-8"
            )
        env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        env.update(
            JUPYTER_CONFIG_DIR=str(dirs["config"]),
            JUPYTER_DATA_DIR=str(dirs["data"]),
            JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
            JUPYTER_PATH=str(dirs["path"]),
            JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
            JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
            IPYTHONDIR=str(dirs["ipython"]),
            HERMES_NB_HOME=str(self.hermes_home),
            PYTHONUNBUFFERED="1",
            # No proxy may swallow our loopback requests.
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        return env

    def start(self, timeout: float = 90.0) -> JupyterServer:
        env = self._prepare()
        module, app_cls = _APPS[self.ui]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        bare = "-without-" + "-".join(self.disabled_extensions) if self.disabled_extensions else ""
        self.log_path = ARTIFACTS / f"server-{self.ui}{bare}.log"
        for attempt in range(3):
            self.port = _free_port()
            argv = [
                sys.executable,
                "-m",
                module,
                "--no-browser",
                # CI containers run as root; harmless for everyone else.
                "--allow-root",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--ServerApp.root_dir={self.root_dir}",
                f"--IdentityProvider.token={self.token}",
                f"--{app_cls}.expose_app_in_browser=True",
            ]
            with self.log_path.open("ab") as log:
                log.write(f"\n=== start #{attempt + 1}: {' '.join(argv)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    argv,
                    env=env,
                    cwd=self.root_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise RuntimeError(
            f"jupyter {self.ui} did not start; see {self.log_path}:\n{self.log_tail()}"
        )

    @contextlib.contextmanager
    def running(self) -> Iterator[JupyterServer]:
        """Started for the ``with`` block and stopped after it, even when the block fails."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(OSError, ValueError):
                if self.api("GET", "/api/status", timeout=2) is not None:
                    return True
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """Shut down kernels and the server politely; kill the server if it will not go."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.api("POST", "/api/shutdown", timeout=5)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
                    try:
                        proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        else:
            proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # -- REST ------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        """Call the server's REST API with the token; the decoded JSON (or ``{}``)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        # No proxy handler: the test environment's proxy settings must not catch loopback.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else {}

    def shutdown_kernels(self, path: str | None = None) -> int:
        """End the sessions (and kernels) of ``path``, or all of them. How many ended."""
        ended = 0
        for session in self.api("GET", "/api/sessions"):
            if path is None or session.get("path") == path:
                with contextlib.suppress(urllib.error.HTTPError):
                    self.api("DELETE", f"/api/sessions/{session['id']}")
                    ended += 1
        return ended

    def interrupt_kernel(self, path: str) -> None:
        """Interrupt the kernel of notebook ``path`` (as Kernel → Interrupt does)."""
        for session in self.api("GET", "/api/sessions"):
            if session.get("path") == path:
                self.api("POST", f"/api/kernels/{session['kernel']['id']}/interrupt")

    def kernel_count(self) -> int:
        return len(self.api("GET", "/api/kernels"))

    def backend_report(self) -> str:
        """What the server and the kernels' session store say, for a failure message: each
        kernel's execution state and the newest runs (did the kernel settle the run?)."""
        lines = []
        try:
            for k in self.api("GET", "/api/kernels", timeout=5):
                lines.append(f"kernel {k['name']}: {k['execution_state']}")
        except Exception as exc:
            lines.append(f"kernels: not readable ({exc})")
        store = self.hermes_home / "sessions.db"
        try:
            with contextlib.closing(sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)) as db:
                rows = db.execute(
                    "SELECT run_id, state, started_at, finished_at FROM runs"
                    " ORDER BY started_at DESC LIMIT 3"
                ).fetchall()
            now = time.time()
            for run_id, state, started, finished in rows:
                ended = f"ended {now - finished:.1f}s ago" if finished else "not ended"
                lines.append(f"run {run_id[:8]}: {state}, began {now - started:.1f}s ago, {ended}")
        except Exception as exc:
            lines.append(f"runs: not readable ({exc})")
        return "; ".join(lines)

    # -- files -----------------------------------------------------------------------------

    def notebook(
        self, name: str, sources: list[str], kernel: str = "python3", display_name: str = ""
    ) -> str:
        """Create ``name`` in the root with these code cells, bound to kernelspec ``kernel``;
        its server path."""
        new_notebook(self.root_dir / name, sources, kernel, display_name or "Python 3 (ipykernel)")
        return name

    def add_kernel(self, name: str, python: Path, display_name: str) -> None:
        """Give the server kernelspec ``name`` running ipykernel in ``python`` (another
        interpreter than the server's). The server reads its spec directories on every request
        and a page loads the list when it opens, so this works while the server runs."""
        spec = self.base / "path" / "kernels" / name
        spec.mkdir(parents=True, exist_ok=True)
        kernel_json = {
            "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": display_name,
            "language": "python",
            "metadata": {"debugger": True},
        }
        (spec / "kernel.json").write_text(json.dumps(kernel_json, indent=1), encoding="utf-8")

    def read_notebook(self, name: str) -> nbformat.NotebookNode:
        return nbformat.read(self.root_dir / name, as_version=4)

    def page_url(self, name: str, workspace: str = "") -> str:
        """The URL that opens notebook ``name`` in this server's UI."""
        quoted = quote(name)
        if self.ui == "lab":
            prefix = f"/lab/workspaces/{quote(workspace)}" if workspace else "/lab"
            return f"{self.url}{prefix}/tree/{quoted}?token={self.token}"
        return f"{self.url}/notebooks/{quoted}?token={self.token}"


def poll(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """``predicate()`` once it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def iter_output_mimetypes(nb: nbformat.NotebookNode) -> Iterator[tuple[int, str]]:
    """(cell index, mimetype) of every output saved in ``nb``."""
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                yield i, f"stream/{out.get('name')}"
            for mime in out.get("data", {}):
                yield i, mime
