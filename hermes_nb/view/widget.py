"""The chat widget: an anywidget model whose views render frames sent by the kernel.

The class holds the widget's module, a few synced traits that a reloaded page can show before its
replay arrives, and the dispatch of view messages to a handler. Rendering, the pump thread and
replay live in :mod:`hermes_nb.view`; the wire format in :mod:`hermes_nb.view._protocol`.

Every run is a widget, and every widget's ``comm_open`` carries its state (and a saved notebook's
widget state keeps it), so a run's module is a stub of a few hundred bytes (``static/stub.js``) and
its state holds only what the front ends read: the keys DOMWidgetModel has defaults for
(``_dom_classes``, ``layout``, ``tabbable``, ``tooltip``, ``_view_count``) and anywidget's
stylesheet and its name (``_css``, ``_anywidget_id``) are not synced. The view itself is TypeScript
(``labextension/src/view/``) built twice: into hermes_nb's JupyterLab / Notebook 7 extension, which
registers it on the page (its stylesheet too), and into the self-contained fallback module
``static/view.js`` for pages where the extension is absent (VS Code, Colab).

The machinery that fetches that fallback (``static/loader.js``: ask with retry, import, check the
version, add the CSS, one sentence on failure) is the module of one more widget, the kernel's
loader (:class:`_ViewLoader`), made with the first run's widget and again after it was closed
(``Widget.close_all()``): its ``comm_open`` is the only one that carries it, once per kernel.
Each run's widget references it (``loader``, ``"anywidget:<model id>"``); where the extension's view
is missing, the stub takes the loader's exports through anywidget's ``host.getWidget`` (the
composition API of anywidget 0.11: what a widget's ``initialize`` returns, for other widgets)
and calls its ``render``. The loader asks with ``{"type": "code"}`` on its own comm and the
kernel answers there with the module and the CSS it needs (:func:`_code_reply`, read when first
asked, not at import). Why a widget and not a module on ``globalThis``: each run reaches its own
kernel's loader (two notebooks on one page, one kernel gone), the page forgets it with its
kernel, and a saved notebook's widget state holds it once. The reference points one way (run →
loader), so the loader keeps no run's widget alive.
"""

from __future__ import annotations

import functools
import pathlib
import threading
from collections.abc import Callable
from typing import Any

import anywidget
import traitlets
from ipywidgets import Layout, widget_serialization  # type: ignore[import-untyped]

from . import render
from ._protocol import CodeReplyMsg, FrameMsg, ViewMsg, parse_view_msg
from ._stylesheet import stylesheet

__all__ = ["ChatWidget"]

_STATIC = pathlib.Path(__file__).parent / "static"


def _compact(source: str) -> str:
    """``source`` (the hand-written stub or loader) without its comment lines, indentation and
    the spaces beside punctuation: every run's comm_open carries the stub (and a saved
    notebook's widget state), a kernel's first the loader. Safe for those files, as
    :func:`_squeeze` explains; line ends stay, so automatic semicolon insertion reads them as
    before."""
    lines = (line.strip() for line in source.splitlines())
    return "\n".join(_squeeze(line) for line in lines if line and not line.startswith("//"))


def _squeeze(line: str) -> str:
    """``line`` less every space outside a string literal that does not stand between two
    word characters (``return x``) or two of ``+``/``-`` (``a - -b``). The stub and the loader
    have no regular expression literal and no string that spans lines, which this would
    misread."""
    out: list[str] = []
    quote = ""
    escaped = False
    for i, ch in enumerate(line):
        if quote:
            out.append(ch)
            quote = "" if ch == quote and not escaped else quote
            escaped = ch == "\\" and not escaped
        elif ch in "\"'`":
            quote = ch
            out.append(ch)
        elif ch != " ":
            out.append(ch)
        else:
            before, after = out[-1] if out else "", line[i + 1 : i + 2]
            if (_word(before) and _word(after)) or (before + after in ("++", "+-", "-+", "--")):
                out.append(ch)
    return "".join(out)


def _word(ch: str) -> bool:
    return bool(ch) and (ch.isalnum() or ch in "_$")


#: Synced traits the front ends take from DOMWidgetModel's defaults or need only with a stylesheet
#: (anywidget reads ``_anywidget_id`` to name the ``_css`` it adds): not sent, so every run's
#: comm_open and saved state is smaller. Checked in the browser (test_view_without_extension.py,
#: test_chat_view.py): no ``_css`` loads no style, no ``layout`` makes no layout view, the rest
#: default to ``[]``/``null``.
_FRONT_END_DEFAULTS = frozenset(
    {"_anywidget_id", "_css", "_dom_classes", "layout", "tabbable", "tooltip", "_view_count"}
)


class _Lean(anywidget.AnyWidget):
    """An anywidget that syncs only what the front ends need and makes no layout widget."""

    #: No layout widget: a DOMWidget makes a ``Layout`` of its own, one more comm_open (1.8 KB
    #: on iopub) and a model that the page and ipywidgets keep, for styles nothing here sets.
    #: The front end renders a view without one.
    layout = traitlets.Instance(Layout, allow_none=True).tag(sync=True, **widget_serialization)

    @traitlets.default("keys")
    def _default_keys(self) -> list[str]:
        return [k for k in self.traits(sync=True) if k not in _FRONT_END_DEFAULTS]

    def add_traits(self, **traits: Any) -> None:
        # anywidget adds ``_css`` and ``_anywidget_id`` (synced) to each widget: kept, unsynced.
        for name in _FRONT_END_DEFAULTS & traits.keys():
            traits[name].metadata.pop("sync", None)
        super().add_traits(**traits)


class _ViewLoader(_Lean):
    """The kernel's one loader of the fallback view: its module travels once per kernel.

    Never displayed; each :class:`ChatWidget` references it. It answers ``{"type": "code"}`` on
    its own comm, so every page of the kernel hears the answer and each page takes the first.
    """

    _esm = _compact((_STATIC / "loader.js").read_text(encoding="utf-8"))

    def __init__(self) -> None:
        super().__init__()
        self.on_msg(self._on_view_msg)
        _route_to_sender(self.comm)

    def _on_view_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        msg = parse_view_msg(content)
        if msg is not None and msg["type"] == "code":
            self.send(_code_reply())

    def __repr__(self) -> str:
        return "_ViewLoader()"


_loader: _ViewLoader | None = None
_loader_lock = threading.Lock()


def _the_loader() -> _ViewLoader:
    """The kernel's loader widget, made now if there is none or it was closed."""
    global _loader
    with _loader_lock:
        if _loader is None or _loader.comm is None:
            _loader = _ViewLoader()
        return _loader


class ChatWidget(_Lean):
    """One model per run; every view of it shows the same transcript.

    Closing it (:meth:`close`) closes its only comm (it has no layout widget; the loader it
    references is the kernel's, not its own), so nothing in the kernel keeps a closed view: not
    ipywidgets' registry, not anywidget, not the loader.
    """

    # Text, read once, not a path: anywidget turns a path into a FileContents whose ``changed``
    # signal holds every widget ever made (a closure over it, to hot-reload the file), so no
    # widget could be freed; and the string is shared by all of them.
    _esm = _compact((_STATIC / "stub.js").read_text(encoding="utf-8"))
    # The extension's style has the view's stylesheet; the fallback gets it with its code. Not
    # synced (``_FRONT_END_DEFAULTS``).
    _css = ""

    #: The kernel's loader (``"anywidget:<model id>"`` on the wire: anywidget's widget
    #: reference, which ``host.getWidget`` takes), for pages without the extension.
    loader = anywidget.WidgetTrait().tag(sync=True)
    run_id = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("queued").tag(sync=True)
    bot_name = traitlets.Unicode("Hermes").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)

    def __init__(self, handler: Callable[[ViewMsg], None] | None = None, **traits: Any) -> None:
        traits.setdefault("loader", _the_loader())
        super().__init__(**traits)
        self._handler = handler
        self.on_msg(self._on_view_msg)
        _route_to_sender(self.comm)

    def send_frame(self, msg: FrameMsg) -> None:
        """Send one frame to every open view (safe from any thread: iopub is)."""
        self.send(msg)

    def _on_view_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        msg = parse_view_msg(content)
        # The loader answers for the code; a run handles the rest.
        if msg is not None and msg["type"] != "code" and self._handler is not None:
            self._handler(msg)

    def __repr__(self) -> str:
        # Stable text/plain (nbval compares it): no model id, no address, no live status.
        return f"ChatWidget(bot_name={self.bot_name!r}, model={self.model!r})"


#: Where the fallback module is built (``jlpm build:view``; the wheel carries it).
VIEW_MODULE = _STATIC / "view.js"


def _code_reply() -> CodeReplyMsg:
    """The view's fallback module and its CSS, or the one sentence saying why there is none."""
    try:
        return _view_code()
    except OSError:
        # Not cached: building it (./dev, jlpm build) mends a running kernel's next page.
        return {
            "type": "code",
            "error": (
                f"The chat view cannot be shown: {VIEW_MODULE.name} is missing from hermes_nb "
                "(build it with `cd labextension && jlpm build`, or reinstall hermes-nb)."
            ),
        }


@functools.cache
def _view_code() -> CodeReplyMsg:
    # The view's stylesheet and the code colours, as the extension's style has them.
    css = stylesheet() + "\n" + render.highlight_css()
    return {"type": "code", "js": VIEW_MODULE.read_text(encoding="utf-8"), "css": css}


def _route_to_sender(comm: Any) -> None:
    """Handle this widget's messages on the subshell the front end sent them on.

    ipykernel 7.4 reroutes an incoming ``comm_msg`` to the subshell that last *published* on the
    comm (``BaseComm._reply_subshell_for``). Our frames are published from a pump thread and from
    whichever subshell answered the last replay, so that routing sends a Stop click to the main
    shell (stuck behind a running cell) or, after a page reload deleted the old subshell, to a
    subshell that no longer exists ("Unknown subshell_id": the message is dropped). Our messages
    never wait for a reply in a cell, so the sender's own choice is always right. Other kernels
    and ipykernel versions have no such hook and route by the header already.
    """
    if comm is not None and callable(getattr(comm, "_reply_subshell_for", None)):
        comm._reply_subshell_for = _sender_subshell


def _sender_subshell(_data: Any, default: str | None) -> str | None:
    return default
