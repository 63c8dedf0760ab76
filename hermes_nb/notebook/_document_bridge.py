"""The kernel's line to the notebook on the page: a comm to hermes_nb's front-end extension.

Two ways in, so that no request waits for a page that is gone. When hermes_nb loads, the kernel
registers a comm target ``hermes_nb.document`` of its own and opens a comm to the page's target
of the same name (``labextension/src/document.ts`` registers it on every notebook panel's kernel
connection); each page there answers the opening ``hello`` with its capabilities. A page that
connects later — a reload forgets every comm, a second tab — announces itself instead: it asks
the kernel (``comm_info``, on its comms' subshell) whether a ``hermes_nb.document`` comm is open,
and if so opens one to the kernel's target with its hello as the ``comm_open`` data. Asking
first keeps a kernel without hermes_nb silent (an unknown target would be an error in its log).
Requests go to the newest page's own comm. Only when that page does not answer (a tab closed, a
reload while the main shell was busy with a cell) does the kernel greet again: a 5 s wait, once.
Then:

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
        self._comm: Any = None  # the comm the kernel opened to every page (its hellos)
        self._pages: dict[str, Page] = {}
        self._comms: dict[str, Any] = {}  # page id -> the comm that page answers on
        self._target = False  # whether the kernel-side comm target is registered
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
        self._register_target()
        req = self._req()
        hello = {"op": "hello", "req": req, "v": PROTOCOL, "path": _session_path()}
        self._greeted.clear()
        with self._lock:
            old, self._pages, self._comms, self._hello = self._comm, {}, {}, req
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
        comm.on_msg(lambda msg: self._on_msg(comm, msg))
        comm.on_close(lambda _msg: self._on_close(comm))
        with self._lock:
            self._comm = comm
        return True

    def _register_target(self) -> None:
        """Let a page that connects later open its own comm (see the module docstring)."""
        if self._target:
            return
        manager = getattr(getattr(self.shell, "kernel", None), "comm_manager", None)
        if manager is None or not callable(getattr(manager, "register_target", None)):
            return
        manager.register_target(TARGET, self._on_page_open)
        self._target = True

    def _on_page_open(self, comm: Any, msg: dict[str, Any]) -> None:
        """A page announced itself (``comm_open`` to the kernel's target, its hello as data)."""
        page = _page_from((msg.get("content") or {}).get("data"))
        if page is None:
            comm.close()  # not a page of this protocol: it is told, quietly
            return
        _route_to_sender(comm)
        comm.on_msg(lambda reply: self._on_msg(comm, reply))
        comm.on_close(lambda _msg: self._on_close(comm))
        self._add(page, comm)

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
                comm = self._comms.get(page.page)
            try:
                if comm is None:  # its comm closed meanwhile
                    raise TimeoutError
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

    def _on_msg(self, comm: Any, msg: dict[str, Any]) -> None:
        data = (msg.get("content") or {}).get("data") or {}
        if not isinstance(data, dict):
            return
        if data.get("hello"):
            page = _page_from(data)
            with self._lock:
                current = comm is self._comm and data.get("req") == self._hello
            if page is not None and current:  # not the hello of a comm since replaced
                self._add(page, comm)
            return
        with self._lock:
            future = self._replies.get(str(data.get("req")))
        if future is not None and not future.done():
            future.set_result(data)

    def _add(self, page: Page, comm: Any) -> None:
        """``page`` answered on ``comm``: the newest page, the one requests go to."""
        with self._lock:
            self._pages.pop(page.page, None)
            self._pages[page.page] = page
            self._comms[page.page] = comm
        self._greeted.set()

    def _on_close(self, comm: Any) -> None:
        """Forget the pages that answered on ``comm`` (all of them, for the kernel's own)."""
        with self._lock:
            if comm is self._comm:
                self._comm = None
            gone = [p for p, c in self._comms.items() if c is comm]
            for page in gone:
                self._pages.pop(page, None)
                self._comms.pop(page, None)


def _page_from(data: Any) -> Page | None:
    """The page a hello describes (``{hello: true, result: {page, v, path, ops, ui}}``), or
    ``None`` for one without an id or of an older protocol."""
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data.get("hello") or not isinstance(result, dict):
        return None
    try:
        version = int(result.get("v") or 0)
    except (TypeError, ValueError):
        return None
    page = Page(
        page=str(result.get("page") or ""),
        path=str(result.get("path") or ""),
        version=version,
        ops=tuple(str(o) for o in result.get("ops") or ()),
        ui=str(result.get("ui") or ""),
    )
    return page if page.page and page.version >= PROTOCOL else None


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
