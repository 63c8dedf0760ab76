"""Reading hermes_nb's chat view from the DOM of a notebook cell.

The contract (the view, ``labextension/src/view/``, builds it live; ``view.static_html`` freezes
it for saved notebooks): a root ``.hnb-chat`` with ``data-state`` (queued, streaming, waiting,
done, stopped, error), ``.hnb-prompt``, ``.hnb-reasoning`` (a ``<details>``), the conversation
in ``.hnb-flow`` as segments ``.hnb-seg[data-seg]`` each holding ``.hnb-reply`` (rendered
Markdown blocks), ``.hnb-tools`` (``.hnb-tool``) and ``.hnb-asks`` (prompt cards
``.hnb-ask[data-state]``), then ``.hnb-error``, ``.hnb-notice``, ``.hnb-status`` and a ``.hnb-stop``
button shown while the run is live. Once settled, the output is replaced by the same markup with
``.hnb-chat.hnb-static``. ``reply`` below is the text of every segment's reply, in order.

:class:`ChatView` reads a cell's views at once (:meth:`~ChatView.views`), waits on them, and can
keep a *history*: a MutationObserver in the page records every change of state, of the reply's
length and of static-ness, with ``performance.now()`` times — so a test can say "stopped within
1 s of the click" or "the text grew in several steps" from what the DOM really showed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jupyter_harness import NotebookPage

__all__ = [
    "CANCEL_NOTICE",
    "FOLLOW_JS",
    "LIVE",
    "SETTLED",
    "ChatView",
    "code_requests",
    "words",
]

LIVE = ("queued", "streaming", "waiting")
SETTLED = ("done", "stopped", "error")
CANCEL_NOTICE = (
    "Task cancelled. The run was cancelled by the user before Hermes finished. "
    "No provider failure occurred."
)

# Every `.hnb-chat` in one cell, described. `cell` is the cell's DOM node.
# ``innerText`` leaves out the text of an element whose rendering Chromium skips: the live
# view's finished chunks of blocks off screen (``content-visibility: auto``, chat.css) — text
# the page shows as soon as it is scrolled to, and that find-in-page and a selection include.
# While a description is read, a stylesheet renders every chunk; it goes before the page paints.
_DESCRIBE = """
(cell) => {
  const unskip = document.createElement('style');
  unskip.textContent = '.hnb-chat .hnb-chunk { content-visibility: visible !important; }';
  document.head.appendChild(unskip);
  try { return describe(cell); } finally { unskip.remove(); }
}
"""
_DESCRIBE_CHAT = """
(cell) => [...cell.querySelectorAll('.hnb-chat')].map((r) => {
  const q = (s) => r.querySelector(s);
  const all = (s) => [...r.querySelectorAll(s)];
  const stop = q('.hnb-stop');
  const replies = all('.hnb-reply');
  const reply = replies[0];
  return {
    state: r.dataset.state || null,
    static: r.classList.contains('hnb-static'),
    prompt: q('.hnb-prompt') ? q('.hnb-prompt').innerText : '',
    reply: replies.map((n) => n.innerText).filter((t) => t).join('\\n'),
    reply_html: replies.map((n) => n.innerHTML).join(''),
    reasoning: all('.hnb-reasoning').map((n) => n.textContent).join('\\n'),
    tools: all('.hnb-tool').map((n) => n.textContent),
    // The conversation, segment by segment: [[kind, text], ...] in document order.
    flow: all('.hnb-seg').map((seg) => [
      ...[...seg.querySelectorAll('.hnb-reply')].filter((n) => n.innerText.trim())
        .map((n) => ['reply', n.innerText]),
      ...[...seg.querySelectorAll('.hnb-tool')].map((n) => ['tool', n.textContent]),
      ...[...seg.querySelectorAll('.hnb-ask')].map((n) => ['ask', n.innerText]),
    ]),
    asks: all('.hnb-ask').map((n) => ({
      prompt: n.dataset.prompt || '',
      kind: n.dataset.kind || '',
      state: n.dataset.state || '',
      sending: n.dataset.sending === 'true',
      text: n.innerText,
      buttons: [...n.querySelectorAll('button')].map((b) => b.textContent),
      inputs: n.querySelectorAll('input').length,
      decision: (n.querySelector('.hnb-ask-decision') || {}).textContent || '',
      countdown: (n.querySelector('.hnb-countdown') || {}).textContent || '',
    })),
    errors: all('.hnb-error').map((n) => n.innerText),
    notices: all('.hnb-notice').map((n) => n.innerText),
    status: q('.hnb-status') ? q('.hnb-status').innerText : '',
    stop_visible: !!stop && !stop.hidden && stop.getClientRects().length > 0,
    rich: {
      h1: !!(reply && reply.querySelector('h1')),
      ul: !!(reply && reply.querySelector('ul li')),
      table: !!(reply && reply.querySelector('table td')),
      pre: !!(reply && reply.querySelector('pre')),
    },
  };
})
"""
_DESCRIBE = _DESCRIBE.replace("describe(cell)", f"({_DESCRIBE_CHAT.strip()})(cell)")

# Install a recorder on one cell: an entry per change of (state, static, reply length).
_WATCH = """
([cell, key]) => {
  window.__hnb_history = window.__hnb_history || {};
  const hist = (window.__hnb_history[key] = []);
  const snap = () => {
    const r = cell.querySelector('.hnb-chat');
    const replies = r ? [...r.querySelectorAll('.hnb-reply')] : [];
    const reply = replies[0];
    const e = {
      t: performance.now(),
      state: r ? r.dataset.state || null : null,
      static: !!r && r.classList.contains('hnb-static'),
      len: replies.reduce((n, x) => n + x.textContent.length, 0),
      rich: !!reply && !!reply.querySelector('h1') && !!reply.querySelector('ul li')
        && !!reply.querySelector('table td') && !!reply.querySelector('pre'),
    };
    const last = hist[hist.length - 1];
    if (!last || last.state !== e.state || last.static !== e.static || last.len !== e.len
        || last.rich !== e.rich) {
      hist.push(e);
    }
  };
  snap();
  new MutationObserver(snap).observe(cell, {
    subtree: true, childList: true, attributes: true, characterData: true,
  });
}
"""


# Scroll the live view's end (its status line) of `cell` into view now and every `ms`
# milliseconds, until the static output has replaced the view (also benchmarks/bench_browser.py).
FOLLOW_JS = """
([cell, ms]) => {
  const follow = () => {
    const end = cell.querySelector('.hnb-chat:not(.hnb-static) .hnb-footer');
    if (end) end.scrollIntoView({ block: 'end' });
    else if (cell.querySelector('.hnb-static')) clearInterval(timer);
  };
  const timer = setInterval(follow, ms);
  follow();
}
"""


def words(text: str) -> list[str]:
    """The ``w001``-style tokens in ``text``, in order (the prompts below are made of them)."""
    return re.findall(r"\bw\d{3}\b", text)


class ChatView:
    """The chat view(s) in cell ``index`` of a notebook."""

    def __init__(self, nb: NotebookPage, index: int) -> None:
        self.nb = nb
        self.index = index

    @property
    def page(self) -> Any:
        return self.nb.page

    @property
    def key(self) -> str:
        return f"{self.nb.path}#{self.index}"

    @property
    def root(self) -> Any:
        return self.nb.cell(self.index).locator(".hnb-chat").first

    def _cell_js(self) -> str:
        return f"window.__hnb_panel({json.dumps(self.nb.path)}).content.widgets[{self.index}].node"

    def cell(self) -> Any:
        """The notebook cell's node, as a handle for ``page.evaluate``."""
        return self.page.evaluate_handle(self._cell_js())

    def views(self) -> list[dict[str, Any]]:
        """Every ``.hnb-chat`` in the cell, described (state, texts, notices, …)."""
        return self.page.evaluate(f"() => ({_DESCRIBE})({self._cell_js()})")

    def view(self) -> dict[str, Any]:
        found = self.views()
        assert len(found) == 1, f"expected one chat view in cell {self.index}, found {found}"
        return found[0]

    # -- waiting ---------------------------------------------------------------------------

    def wait(self, condition: str, timeout: float = 30_000, what: str = "") -> dict[str, Any]:
        """Wait until JS ``condition`` (over ``v``, the first view's description) holds."""
        try:
            self.page.wait_for_function(
                f"""() => {{
                    const vs = ({_DESCRIBE})({self._cell_js()});
                    if (!vs.length) {{ return false; }}
                    const v = vs[0];
                    return !!({condition});
                }}""",
                timeout=timeout,
                polling=50,
            )
        except Exception as exc:
            raise AssertionError(
                f"cell {self.index}: {what or condition} not seen within {timeout / 1000:.0f}s; "
                f"views now: {self.views()}; {self.nb.server.backend_report()}"
            ) from exc
        return self.view()

    def wait_live(self, min_chars: int = 1, timeout: float = 30_000) -> dict[str, Any]:
        return self.wait(
            f"v.state === 'streaming' && !v.static && v.reply.length >= {min_chars}",
            timeout,
            f"a streaming view with at least {min_chars} reply characters",
        )

    def wait_settled(self, timeout: float = 60_000, static: bool = False) -> dict[str, Any]:
        """The run has settled (done, stopped, error); with ``static``, the output has also
        been replaced by the static bundle."""
        cond = (
            "v.static" if static else "v.static || ['done', 'stopped', 'error'].includes(v.state)"
        )
        return self.wait(cond, timeout, "the settled view" + (" (static)" if static else ""))

    # -- history ---------------------------------------------------------------------------

    def watch(self) -> None:
        """Start recording this cell's view changes (again after a page reload)."""
        self.page.evaluate(f"(a) => ({_WATCH})([{self._cell_js()}, a])", self.key)

    def history(self) -> list[dict[str, Any]]:
        return self.page.evaluate("(k) => (window.__hnb_history || {})[k] || []", self.key)

    def follow(self, every_ms: int = 100) -> None:
        """Keep the live view's end (its status line) in view until the run settles, as a
        person reading along scrolls: a view whose end is off screen draws its updates only
        every few seconds (``labextension/src/view/render.ts``), and nobody would see them."""
        self.page.evaluate(FOLLOW_JS, [self.page.evaluate_handle(self._cell_js()), every_ms])

    def now(self) -> float:
        """The page's ``performance.now()`` (the history's clock)."""
        return self.page.evaluate("() => performance.now()")


def stream_live(open_notebook: Any, prompt: str, reply: str, **options: Any) -> ChatView:
    """A new notebook whose cell 1 streams ``reply`` (``hermes_nb.chat(prompt, reply=...,
    **options)``), its view recorded (:meth:`ChatView.watch`) and already showing some of it."""
    call = ", ".join([repr(prompt), "reply=REPLY", *(f"{k}={v!r}" for k, v in options.items())])
    nb = open_notebook(
        [f"import hermes_nb\nREPLY = {reply!r}", f"run = hermes_nb.chat({call})\nrun"]
    )
    chat = ChatView(nb, 1)
    nb.run(0)
    chat.watch()
    nb.run(1)
    chat.wait_live(min_chars=20)
    return chat


def set_theme(page: Any, name: str) -> None:
    """Switch JupyterLab to the theme ``name`` ("JupyterLab Light" / "JupyterLab Dark") and
    wait until its stylesheet applies."""
    page.evaluate(
        "(t) => window.jupyterapp.commands.execute('apputils:change-theme', {theme: t})", name
    )
    light = "true" if name == "JupyterLab Light" else "false"
    page.wait_for_function(
        f"() => document.body.dataset.jpThemeLight === '{light}'", timeout=15_000
    )
    page.wait_for_timeout(300)  # the theme's stylesheet applied


# A view's request for the view's code, as it crosses the kernel's websocket (JSON in a text
# frame, or in the binary v1 protocol's message part).
_CODE_REQUEST = '"content":{"type":"code"}'


def code_requests(page: Any) -> list[str]:
    """A list that collects every ``{type: "code"}`` message the page sends to a kernel from
    now on (call it before the page opens the notebook): the loader's request for the
    fallback view, which a page should send at most once, and never with the extension."""
    sent: list[str] = []

    def on_socket(ws: Any) -> None:
        def on_frame(payload: Any) -> None:
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            if _CODE_REQUEST in text:
                sent.append(ws.url)

        ws.on("framesent", on_frame)

    page.on("websocket", on_socket)
    return sent
