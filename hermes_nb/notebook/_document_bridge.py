"""The kernel's line to the notebook on the page: a comm to hermes_nb's front-end extension.

The extension (``labextension/src/document.ts``) registers the comm target
``hermes_nb.document`` on every notebook panel's kernel connection. The kernel opens a comm to
it when hermes_nb loads (and again whenever it has lost the page: a reload forgets every comm),
and each page that has the extension answers the opening ``hello`` with its capabilities. Then:

* requests, kernel → page: ``{op, req, page, ...}`` (``op``: ``read``, ``cell``, ``insert``,
  ``edit``, ``delete``, ``run``; ``page``: the page the request is for, so that a second view
  of the same kernel ignores it);
* replies, page → kernel: ``{req, ok: true, result}`` or ``{req, ok: false, error, message}``.

No message has a top-level ``id`` key: ipykernel 7.4 reads one to route a comm reply. A tool
awaits the reply on the runtime's loop, never on the main thread; the reply arrives on the
shell channel, handled at once on a kernel subshell where the front end uses them (JupyterLab
≥ 4.4 with ipykernel 7), else between cells — which the kernel is, since a turn's cell has
returned (a ``%%hermes --wait`` cell on ipykernel 6 holds the reply back, and the tool then
falls back as if there were no page). As for the chat view's comm, a reply is handled on the
subshell it came on (ipykernel 7.4 would send it to the main shell, behind a running cell).

Where no page answered — a headless run, VS Code, terminal IPython, a page without the
extension — :attr:`Bridge.ready` stays false and the edit tools are not offered.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from ..core.exceptions import HermesError

__all__ = ["TARGET", "Bridge", "BridgeError", "Page", "bridge_for"]

log = logging.getLogger(__name__)

TARGET = "hermes_nb.document"
#: The protocol's version: the page says which it speaks in its hello.
PROTOCOL = 1
#: How long a page has to answer a hello, and an ordinary request (the page answers in ms).
HELLO_TIMEOUT = 2.0
REQUEST_TIMEOUT = 5.0


class BridgeError(HermesError):
    """The page refused a request (an unknown cell, a cell changed since it was read) or did
    not answer; ``code`` is the page's error code (``no_page`` when none answered)."""

    def __init__(self, message: str, code: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.code = code


@dataclass(frozen=True)
class Page:
    """A notebook page that answered: its random id, the notebook's path and what it does."""

    page: str
    path: str
    version: int
    ops: tuple[str, ...]
    ui: str


class Bridge:
    """The comm to the notebook page(s) showing this kernel, and the requests in flight."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self._lock = threading.Lock()
        self._comm: Any = None
        self._pages: dict[str, Page] = {}
        self._replies: dict[str, concurrent.futures.Future[dict[str, Any]]] = {}
        self._numbers = itertools.count(1)
        self._greeted = threading.Event()
        self._hello = ""  # the req of the current comm's hello: a closed comm's late one is not
        #: The source of each cell as the agent last read or wrote it (by cell id): an edit of
        #: a cell that has changed since is refused.
        self.seen: dict[str, str] = {}

    # -- state -----------------------------------------------------------------------------------

    @property
    def page(self) -> Page | None:
        """The page requests go to: the one showing the kernel's own notebook, else the latest
        to answer."""
        with self._lock:
            pages = list(self._pages.values())
        if not pages:
            return None
        own = _session_path()
        mine = [p for p in pages if own and p.path and own.endswith(p.path)]
        return (mine or pages)[-1]

    @property
    def ready(self) -> bool:
        """Whether a page with the extension answered (the edit tools are offered then)."""
        return self.page is not None

    # -- the comm --------------------------------------------------------------------------------

    def open(self) -> bool:
        """Open a comm to the page(s) and say hello; ``False`` where there is no kernel to open
        one from (terminal IPython). Pages answer asynchronously (:meth:`greet` waits)."""
        if getattr(self.shell, "kernel", None) is None:
            return False
        try:
            from comm import create_comm
        except ImportError:  # pragma: no cover - ipykernel always brings it
            return False
        req = self._req()
        hello = {"op": "hello", "req": req, "v": PROTOCOL, "path": _session_path()}
        self._greeted.clear()
        with self._lock:
            old, self._pages, self._hello = self._comm, {}, req
        if old is not None:
            try:
                old.close()
            except Exception:  # a comm whose kernel is going away
                log.debug("closing the old document comm failed", exc_info=True)
        try:
            comm = create_comm(target_name=TARGET, data=hello)
        except Exception:
            log.debug("the document comm could not be opened", exc_info=True)
            return False
        _route_to_sender(comm)
        comm.on_msg(self._on_msg)
        comm.on_close(self._on_close)
        with self._lock:
            self._comm = comm
        return True

    async def greet(self, timeout: float = HELLO_TIMEOUT) -> Page | None:
        """Open a fresh comm and wait up to ``timeout`` for a page to answer; the page."""
        if not self.open():
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._greeted.is_set():
            await asyncio.sleep(0.02)
        return self.page

    async def request(
        self, op: str, fields: dict[str, Any], timeout: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        """Send ``op`` to the page and await its result; :class:`BridgeError` with one sentence
        if it refuses or no page answers (a page that went away is greeted again, once)."""
        page = self.page or await self.greet()
        for attempt in (1, 2):
            if page is None:
                break
            req = self._req()
            future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
            with self._lock:
                self._replies[req] = future
                comm = self._comm
            try:
                comm.send({"op": op, "req": req, "page": page.page, **fields})
                reply = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except TimeoutError:
                if attempt == 2 or op == "run":
                    break
                page = await self.greet()  # reloaded or closed: ask who is there now
                continue
            finally:
                with self._lock:
                    self._replies.pop(req, None)
            if reply.get("ok"):
                result = reply.get("result")
                return result if isinstance(result, dict) else {}
            raise BridgeError(
                str(reply.get("message") or "The notebook page refused the request."),
                code=str(reply.get("error") or ""),
            )
        raise BridgeError(
            "No notebook page with hermes_nb's extension answered, so the notebook on the page "
            "cannot be read or changed from the kernel.",
            code="no_page",
            hint="Open the notebook in JupyterLab or Notebook 7 with hermes_nb installed where "
            "the server runs.",
        )

    def _req(self) -> str:
        return f"d{next(self._numbers)}"

    def _on_msg(self, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if not isinstance(data, dict):
            return
        result = data.get("result")
        if data.get("hello") and isinstance(result, dict):
            page = Page(
                page=str(result.get("page") or ""),
                path=str(result.get("path") or ""),
                version=int(result.get("v") or 0),
                ops=tuple(str(o) for o in result.get("ops") or ()),
                ui=str(result.get("ui") or ""),
            )
            with self._lock:
                if not page.page or page.version < PROTOCOL or data.get("req") != self._hello:
                    return  # an older protocol, or the hello of a comm since replaced
                self._pages.pop(page.page, None)
                self._pages[page.page] = page
            self._greeted.set()
            return
        with self._lock:
            future = self._replies.get(str(data.get("req")))
        if future is not None and not future.done():
            future.set_result(data)

    def _on_close(self, _msg: Any) -> None:
        with self._lock:
            self._comm = None
            self._pages = {}


def _session_path() -> str:
    import os

    return os.environ.get("JPY_SESSION_NAME", "")


def _route_to_sender(comm: Any) -> None:
    """Handle the page's replies on the subshell they arrive on (see
    ``hermes_nb.view.widget._route_to_sender``: ipykernel 7.4 would route them to the subshell
    that last published on the comm — the runtime's, or the main shell behind a cell)."""
    if comm is not None and callable(getattr(comm, "_reply_subshell_for", None)):
        comm._reply_subshell_for = lambda _data, default: default


_bridges: dict[int, Bridge] = {}
_bridges_lock = threading.Lock()


def bridge_for(shell: Any) -> Bridge:
    """The one bridge of ``shell`` (made on first use)."""
    with _bridges_lock:
        found = _bridges.get(id(shell))
        if found is None or found.shell is not shell:
            found = _bridges[id(shell)] = Bridge(shell)
        return found
