"""Showing a run: the live chat view, its frames and replay, and the static bundle it leaves.

:func:`show` displays a :class:`~hermes_nb.widget.ChatWidget` for a run. Each live run gets one
controller (and one widget model, so a second ``show(run)`` is another view of the same model):

* a **pump** thread sleeps on ``run.wait_for_event(cursor)``, wakes at most ~30 times a second,
  reads ``run.events(after_seq=cursor)``, updates the renderers and sends ONE frame holding the
  blocks that changed — whole, or as the new tail of a growing block — tagged with the seq it
  reflects (DESIGN.md §3, invariants 1, 4 and 5);
* a **cache** of rendered blocks, each with the seq at which it last changed, answers replay
  requests (``after=k`` → every block changed after ``k``) without re-rendering the run;
* **Stop** (``{"type": "cancel"}``) calls ``run.cancel()``; it may arrive on a kernel subshell
  thread, so everything it touches is thread-safe.

When the run settles the pump does the final render, sends a last frame with the settled status
and replaces every display of the run with :func:`static_bundle`: sanitised ``text/html`` (the
same classes as the live view, with the stylesheet inline so a saved notebook looks the same),
``text/markdown``, a stable ``text/plain`` and ``metadata["hermes_nb"]``.

Where widgets cannot render (terminal IPython, a script) :func:`stream_plain` prints the reply.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import render
from ._protocol import BLOCK_KINDS, BlockMsg, FrameMeta, FrameMsg, ViewMsg, frame
from .events import Event, RunState

if TYPE_CHECKING:
    from .journal import JournalEntry
    from .runtime import Run
    from .widget import ChatWidget

__all__ = ["MAX_FPS", "show", "static_bundle", "stream_plain", "widgets_available"]

log = logging.getLogger(__name__)

#: The most frames a second one run sends to its views (jupyter_server drops iopub above its
#: rate limit; DESIGN.md §9).
MAX_FPS = 30.0
_FRAME_INTERVAL = 1.0 / MAX_FPS + 0.0005  # a hair over: no one-second window holds 31 frames
_RESULT_PREVIEW = 2000
_MIN_PATCH = 64  # a shorter common prefix is sent as a whole block
_STATIC = Path(__file__).parent / "static"
_LABELS = {
    "queued": "Queued",
    "streaming": "Streaming…",
    "done": "Done",
    "stopped": "Stopped",
    "error": "Error",
}
#: The status label of a finished reply that the provider cut short, by finish_reason.
_CUT_LABELS = {
    "length": "Done — cut off at the token limit",
    "content_filter": "Done — cut off by the content filter",
}
_OFFLINE_INFO = (
    "Offline echo model: it repeats your prompt. For real answers set OPENAI_API_KEY, or add a "
    "profile to config.toml (%hermes profiles shows where)."
)


# -- the transcript as blocks ---------------------------------------------------------------


class _Transcript:
    """Turns a run's events into blocks ``{id: (kind, html)}``, incrementally.

    Fed batches of journal entries in seq order; each call returns only the blocks that changed.
    Used by the pump (live) and by :func:`static_bundle` (all events at once), so a live view
    and a saved notebook show the same blocks.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.state = RunState.QUEUED.value
        self.ended = False
        self.tokens = 0
        self.usage: dict[str, int] = {}
        self.finish_reason: str | None = None
        self._reply = render.MarkdownStream()
        self._reasoning = render.MarkdownStream()
        self._tools: dict[str, dict[str, Any]] = {}
        self._started = False

    def consume(self, entries: Iterable[JournalEntry]) -> dict[str, tuple[str, str]]:
        changed: dict[str, tuple[str, str]] = {}
        reply: list[str] = []
        reasoning: list[str] = []
        tools: list[str] = []
        for _seq, event, data in entries:
            if not self._started:
                self._started = True
                changed.update(self._header())
            if event == Event.TOKEN:
                reply.append(data["text"])
                self.tokens += 1
            elif event == Event.REASONING:
                reasoning.append(data["text"])
            elif event in (Event.TOOL_START, Event.TOOL_DELTA, Event.TOOL_END):
                self._tool_event(event, data)
                if data["id"] not in tools:
                    tools.append(data["id"])
            elif event == Event.USAGE:
                self.usage.update({k: v for k, v in data.items() if isinstance(v, int)})
            elif event == Event.STATUS:
                self.state = str(data["state"])
                changed["status"] = ("status", self._status_html())
            elif event == Event.APPERROR:
                changed["error"] = ("error", _error_html(data))
            elif event == Event.CANCEL:
                changed["notice"] = _notice_block(data["message"])
            elif event == Event.DONE:
                self.finish_reason = data.get("finish_reason")
                if data.get("notice"):  # the provider cut the reply short
                    changed["notice"] = _notice_block(data["notice"])
            elif event == Event.STREAM_END:
                self.ended = True
        if reasoning:
            changed.update(_blocks("reasoning", self._reasoning.append("".join(reasoning))))
        for call_id in tools:
            changed[f"tool:{call_id}"] = ("tool", _tool_html(self._tools[call_id], self.ended))
        if reply:
            changed.update(_blocks("reply", self._reply.append("".join(reply))))
        if self.ended:
            changed.update(self._finish())
        return changed

    @property
    def token_count(self) -> int:
        return self.usage.get("completion_tokens") or self.tokens

    def _header(self) -> dict[str, tuple[str, str]]:
        blocks = {"prompt": ("prompt", render.markdown_to_html(self.run.request.prompt))}
        if getattr(self.run.profile, "provider", "") == "echo":
            blocks["info"] = ("info", _div("hnb-info", render.escape(_OFFLINE_INFO)))
        return blocks

    def _tool_event(self, event: str, data: dict[str, Any]) -> None:
        call = self._tools.setdefault(
            data["id"], {"name": "", "arguments": "", "result": None, "error": False}
        )
        if event == Event.TOOL_START:
            call["name"] = data.get("name") or call["name"]
            call["arguments"] += data.get("arguments") or ""
        elif event == Event.TOOL_DELTA:
            call["arguments"] += data["text"]
        else:
            call["name"] = data.get("name") or call["name"]
            call["result"] = str(data.get("result", ""))
            call["error"] = bool(data.get("error"))
            call["duration_ms"] = data.get("duration_ms")

    def _finish(self) -> dict[str, tuple[str, str]]:
        """The final render: Markdown re-parsed whole, tools marked unfinished, final status."""
        changed: dict[str, tuple[str, str]] = {}
        changed.update(_blocks("reasoning", self._reasoning.final()))
        changed.update(_blocks("reply", self._reply.final()))
        for call_id, call in self._tools.items():
            if call["result"] is None:
                changed[f"tool:{call_id}"] = ("tool", _tool_html(call, True))
        changed["status"] = ("status", self._status_html())
        return changed

    def _status_html(self) -> str:
        label = _label(self.state, self.finish_reason)
        detail = ""
        if self.ended and self.run.finished_at is not None:
            parts = [_duration(self.run.finished_at - self.run.created_at)]
            if self.token_count:
                parts.append(f"{self.token_count} tokens")
            detail = " · " + " · ".join(parts)
        return (
            f'<span class="hnb-status-label">{render.escape(label)}</span>'
            f'<span class="hnb-status-detail">{render.escape(detail)}</span>'
        )


def _label(state: str, finish_reason: str | None = None) -> str:
    """The status line's label: ``Done``, ``Stopped``, …, and ``Done — cut off at the token
    limit`` for a finished reply the provider cut short."""
    cut = _CUT_LABELS.get(finish_reason or "") if state == RunState.DONE else None
    return cut or _LABELS.get(state, state.capitalize())


def _notice_block(message: str) -> tuple[str, str]:
    """The ``notice`` block: the cancel marker, or why a finished reply was cut short."""
    return "notice", _div("hnb-notice", render.escape(message))


def _blocks(kind: str, blocks: list[render.Block]) -> dict[str, tuple[str, str]]:
    """Markdown blocks as ``{"reply:3": ("reply", html)}``; empty html: the block is gone."""
    return {f"{kind}:{b.index}": (kind, b.html) for b in blocks}


def _div(cls: str, inner: str) -> str:
    return f'<div class="{cls}">{inner}</div>'


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _error_html(data: dict[str, Any]) -> str:
    message = render.escape(str(data.get("message") or "The run failed."))
    hint = str(data.get("hint") or "")
    inner = _div("hnb-error-message", message)
    if hint:
        inner += _div("hnb-hint", render.escape(hint))
    return f'<div class="hnb-error" role="alert">{inner}</div>'


def _tool_html(call: dict[str, Any], ended: bool) -> str:
    result = call["result"]
    if result is None:
        state, meta = ("unfinished", "not finished") if ended else ("running", "running…")
    else:
        state = "error" if call["error"] else "done"
        ms = call.get("duration_ms")
        meta = "failed" if call["error"] else "done"
        if isinstance(ms, int | float):
            meta += f" · {_duration(ms / 1000)}"
    head = (
        f'<summary class="hnb-tool-head"><span class="hnb-tool-name">'
        f"{render.escape(call['name'] or 'tool')}</span> "
        f'<span class="hnb-tool-meta">{render.escape(meta)}</span></summary>'
    )
    body = _div("hnb-tool-args", render.render_tool_args(call["arguments"]))
    if result:
        preview = result[:_RESULT_PREVIEW]
        if len(result) > _RESULT_PREVIEW:
            preview += f"\n… ({len(result) - _RESULT_PREVIEW} more characters)"
        body += f'<pre class="hnb-tool-result">{render.escape(preview)}</pre>'
    return f'<details class="hnb-tool" data-state="{state}">{head}{body}</details>'


# -- the controller: cache, pump, replay, displays ---------------------------------------------


@dataclass(slots=True)
class _Cached:
    kind: str
    html: str
    seq: int  # the seq at which this block last changed


class _Controller:
    """Everything the live view of one run needs. Thread-safe: the pump writes the cache, view
    messages (replay, Stop) read it from whatever thread the kernel handles comms on."""

    def __init__(self, run: Run) -> None:
        from .widget import ChatWidget

        self.run = run
        self._lock = threading.Lock()
        self._blocks: dict[str, _Cached] = {}
        self._seq = 0
        self._tokens = 0
        self._status = str(run.status)
        self._display_ids: list[str] = []
        self._answered: dict[str, tuple[int, int, float]] = {}  # view -> (after, seq, when)
        self._finalized = False
        self._thread: threading.Thread | None = None
        profile = run.profile
        self.bot_name = str(getattr(profile, "bot_name", "") or "Hermes")
        self.model = str(getattr(profile, "model", "") or "")
        self.widget: ChatWidget = ChatWidget(
            handler=self.handle,
            run_id=run.run_id,
            status=self._status,
            bot_name=self.bot_name,
            model=self.model,
            highlight_css=render.highlight_css(),
        )

    # -- view messages (any thread) -----------------------------------------------------------

    def handle(self, msg: ViewMsg) -> None:
        """A message from a view, on whatever thread the kernel handles comms."""
        if msg["type"] == "cancel":
            self.run.cancel()
        elif msg["type"] == "replay" and not self._repeated(msg["rid"], msg["after"]):
            self.widget.send_frame(self.replay(msg["after"], msg["rid"]))

    def _repeated(self, rid: str, after: int) -> bool:
        """True for a retry that queued behind a busy shell together with the request it
        repeats (same view, same ``after``, nothing new), arriving right after its answer.

        A view retries unanswered replays with backoff (≥ 250 ms apart); when the kernel could
        not read them (a cell blocking the shell), they all arrive at once and each answer would
        be the whole transcript. The first answer carries it; the view's next retry, sent after
        it landed, asks from the advanced cursor and gets (almost) nothing.
        """
        view, sep, _ = rid.rpartition(":")
        if not sep:
            return False
        now = time.monotonic()
        with self._lock:
            last = self._answered.get(view)
            self._answered[view] = (after, self._seq, now)
        return last is not None and last[:2] == (after, self._seq) and now - last[2] < 0.2

    def replay(self, after: int, rid: str | None = None) -> FrameMsg:
        """One frame with every block changed after ``after`` — from the cache, no rendering."""
        with self._lock:
            blocks = [
                {"id": key, "kind": b.kind, "html": b.html}
                for key, b in self._blocks.items()
                if b.seq > after
            ]
            seq, status, tokens = self._seq, self._status, self._tokens
        return frame(
            seq=seq,
            prev=min(after, seq),
            status=status,
            blocks=blocks,  # type: ignore[arg-type]
            meta=self._meta(status, tokens),
            rid=rid,
        )

    def _meta(self, status: str, tokens: int) -> FrameMeta:
        return {
            "bot_name": self.bot_name,
            "model": self.model,
            "elapsed": round(time.time() - self.run.created_at, 3),
            "tokens": tokens,
            "live": not RunState(status).settled,
        }

    # -- the pump -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump (once). It runs in a copy of the caller's context, so its output
        (frames, the final display update) is parented to the cell that showed the run."""
        with self._lock:
            if self._thread is not None:
                return
            ctx = contextvars.copy_context()
            self._thread = threading.Thread(
                target=ctx.run, args=(self._pump,), name=f"hermes-nb-pump-{self.run.run_id}"
            )
            self._thread.daemon = True
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _pump(self) -> None:
        complete = False
        try:
            self._stream()
            complete = True
        except Exception:  # a bug here must not leave the view stuck without its final state
            log.exception("The chat view of %s stopped updating.", self.run.run_id)
            self.run.wait()
        self._finalize(complete=complete)

    def _stream(self) -> None:
        run = self.run
        transcript = _Transcript(run)  # this thread's alone
        cursor, last = 0, 0.0
        while not transcript.ended:
            run.wait_for_event(cursor)
            pause = last + _FRAME_INTERVAL - time.monotonic()
            if pause > 0:
                time.sleep(pause)  # coalesce: whatever arrives meanwhile joins this frame
            entries = run.events(after_seq=cursor)
            if not entries:
                continue
            seq = entries[-1].seq
            msg = self._commit(transcript, transcript.consume(entries), cursor, seq)
            self.widget.send_frame(msg)
            last = time.monotonic()
            if msg["status"] != self.widget.status:
                self.widget.status = msg["status"]
            cursor = seq

    def _commit(
        self, transcript: _Transcript, changed: dict[str, tuple[str, str]], prev: int, seq: int
    ) -> FrameMsg:
        """Store the changed blocks at ``seq`` and build the live frame for ``(prev, seq]``."""
        blocks: list[BlockMsg] = []
        with self._lock:
            for key, (kind, html) in changed.items():
                cached = self._blocks.get(key)
                if cached is not None and cached.html == html:
                    continue
                self._blocks[key] = _Cached(kind, html, seq)
                blocks.append(_upsert(key, kind, html, cached.html if cached else ""))
            self._seq = seq
            self._status = status = transcript.state
            self._tokens = tokens = transcript.token_count
        return frame(
            seq=seq, prev=prev, status=status, blocks=blocks, meta=self._meta(status, tokens)
        )

    def _finalize(self, *, complete: bool) -> None:
        """Replace every display of the run with the static bundle — built from the cache when
        it holds the final render (``complete``), so settling costs no second full render."""
        with self._lock:
            self._finalized = True
            display_ids = list(self._display_ids)
            blocks = {key: (b.kind, b.html) for key, b in self._blocks.items()}
            state = self._status
        _forget(self)
        if not display_ids:
            return
        from IPython.display import update_display

        data, metadata = _bundle(self.run, blocks, state) if complete else static_bundle(self.run)
        for display_id in display_ids:
            update_display(data, metadata=metadata, raw=True, display_id=display_id)

    # -- displays -----------------------------------------------------------------------------

    @property
    def finalized(self) -> bool:
        return self._finalized

    def display(self, *, include_plain: bool = True) -> None:
        """Display another view of this run's widget with a fresh display id (or the static
        bundle if the run has already been finalised)."""
        from IPython.display import display

        with self._lock:
            if not self._finalized:
                display_id = uuid.uuid4().hex
                data, metadata = self.widget._repr_mimebundle_()
                if not include_plain:
                    data = {k: v for k, v in data.items() if k != "text/plain"}
                # Inside the lock: the final update cannot overtake this display.
                display(data, metadata=metadata, raw=True, display_id=display_id)
                self._display_ids.append(display_id)
                return
        if include_plain:  # else the caller displays the static bundle itself
            data, metadata = static_bundle(self.run)
            display(data, metadata=metadata, raw=True)


def _upsert(key: str, kind: str, html: str, old: str) -> BlockMsg:
    """The block for a live frame: a patch from the common prefix with what every view that
    applies this frame holds (``old``), or the whole block when that saves little."""
    same = _common_prefix(old, html) if old and html else 0
    if same < _MIN_PATCH:
        return {"id": key, "kind": kind, "html": html}
    prefix = html[:same]  # views index JavaScript strings: UTF-16 code units, not code points
    at = same if prefix.isascii() else len(prefix.encode("utf-16-le")) // 2
    return {"id": key, "kind": kind, "html": html[same:], "at": at}


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix (binary search over C-speed slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


_controllers: dict[str, _Controller] = {}
_controllers_lock = threading.Lock()


def _controller_for(run: Run) -> _Controller | None:
    """The run's controller (created and started on first use); None once it has settled."""
    with _controllers_lock:
        controller = _controllers.get(run.run_id)
        if controller is None:
            if run.settled:
                return None
            controller = _controllers[run.run_id] = _Controller(run)
    controller.start()
    return controller


def _forget(controller: _Controller) -> None:
    with _controllers_lock:
        if _controllers.get(controller.run.run_id) is controller:
            del _controllers[controller.run.run_id]


# -- the public functions ---------------------------------------------------------------------


def show(run: Run, *, include_plain: bool = True) -> None:
    """Display ``run``: the live chat view in a kernel that can show widgets, the static bundle
    if it has already settled, plain streamed text anywhere else (terminal IPython, scripts).

    Every call shows another view of the same widget model; all views stay identical.
    ``include_plain=False`` is for a caller that displays the static bundle itself once the run
    settles (``%hermes --wait``): the live display leaves out ``text/plain``, and a run that has
    already settled displays nothing here (it would otherwise appear twice).
    """
    if not widgets_available():
        stream_plain(run)
        return
    controller = None if run.settled else _controller_for(run)
    if controller is None:
        if not include_plain:
            return
        from IPython.display import display

        data, metadata = static_bundle(run)
        display(data, metadata=metadata, raw=True)
        return
    controller.display(include_plain=include_plain)


def widgets_available() -> bool:
    """True inside a Jupyter kernel (where a comm can reach a front end)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def static_bundle(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's transcript as ``(data, metadata)``: sanitised ``text/html`` with the live view's
    classes, ``text/markdown``, a stable ``text/plain`` and ``metadata["hermes_nb"]``.

    Call it once the run has settled (``run.wait()``); before that it shows the run so far.
    """
    transcript = _Transcript(run)
    blocks = transcript.consume(run.events(after_seq=0))
    return _bundle(run, blocks, transcript.state if blocks else str(run.status))


def _bundle(
    run: Run, blocks: dict[str, tuple[str, str]], state: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    profile = run.profile
    bot_name = str(getattr(profile, "bot_name", "") or "Hermes")
    model = str(getattr(profile, "model", "") or "")
    data = {
        "text/html": _static_html(blocks, state, bot_name, model),
        "text/markdown": _markdown(run, state, bot_name),
        "text/plain": _plain(run, state, bot_name, model),
    }
    metadata = {
        "hermes_nb": {
            "session": run.session_id,
            "run": run.run_id,
            "model": model,
            "usage": dict(run.usage),
            "status": state,
        }
    }
    if run.truncated:  # only then: a normal reply's saved metadata stays as it was
        metadata["hermes_nb"]["finish_reason"] = run.finish_reason
    return data, metadata


@cache
def _stylesheet() -> str:
    return (_STATIC / "chat.css").read_text(encoding="utf-8")


def _static_html(blocks: dict[str, tuple[str, str]], state: str, bot: str, model: str) -> str:
    """The live view's DOM, frozen: same skeleton and classes as ``static/chat.js`` builds."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in BLOCK_KINDS}
    for key, (kind, html) in blocks.items():
        if html:
            by_kind.setdefault(kind, []).append(
                f'<div class="hnb-block" data-block="{render.escape(key)}">{html}</div>'
            )

    def slot(kind: str) -> str:
        return "".join(by_kind[kind])

    parts = [
        f'<div class="hnb-chat hnb-static" data-state="{render.escape(state)}">',
        '<div class="hnb-head">'
        f'<span class="hnb-bot">{render.escape(bot)}</span>'
        f'<span class="hnb-model">{render.escape(model)}</span></div>',
        f'<div class="hnb-prompt jp-RenderedHTMLCommon">{slot("prompt")}</div>',
        f'<div class="hnb-infos">{slot("info")}</div>',
    ]
    if by_kind["reasoning"]:
        parts.append(
            '<details class="hnb-reasoning"><summary>Reasoning</summary>'
            f'<div class="hnb-reasoning-body jp-RenderedHTMLCommon">{slot("reasoning")}</div>'
            "</details>"
        )
    parts += [
        f'<div class="hnb-tools">{slot("tool")}</div>',
        f'<div class="hnb-reply jp-RenderedHTMLCommon">{slot("reply")}</div>',
        f'<div class="hnb-errors">{slot("error")}</div>',
        f'<div class="hnb-notices">{slot("notice")}</div>',
        f'<div class="hnb-footer"><div class="hnb-status">{slot("status")}</div></div>',
        "</div>",
    ]
    html = "".join(parts)
    css = _stylesheet()
    if 'class="hnb-hl' in html:  # highlighted code (reply or tool arguments)
        css += render.highlight_css()
    return f"<style>{css}</style>{html}"


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def _markdown(run: Run, state: str, bot: str) -> str:
    parts = [f"**You:**\n\n{_quote(run.request.prompt)}"]
    if run.reasoning.strip():
        parts.append(f"*Reasoning:*\n\n{_quote(run.reasoning)}")
    for call in run.tool_calls.values():
        line = f"*Tool* `{call.get('name') or 'tool'}`"
        if "result" in call:
            line += " (failed)" if call.get("error") else ""
            fence = "~~~~" if "```" in str(call.get("result")) else "```"
            line += f":\n\n{fence}\n{str(call.get('result', ''))[:_RESULT_PREVIEW]}\n{fence}"
        parts.append(line)
    parts.append(f"**{bot}:**\n\n{run.text.strip()}" if run.text.strip() else f"**{bot}:**")
    if run.error:
        hint = run.error.get("hint")
        parts.append(f"> **Error:** {run.error.get('message', '')}" + (f" {hint}" if hint else ""))
    if run.notice:
        parts.append(f"*{run.notice}*")
    parts.append(f"*{_label(state, run.finish_reason)}*")
    return "\n\n".join(parts) + "\n"


def _plain(run: Run, state: str, bot: str, model: str) -> str:
    """Stable text: no ids, addresses, times or token counts (nbval compares it)."""
    lines = [
        f"{bot} ({model}) · {_label(state, run.finish_reason)}",
        f"You: {run.request.prompt.strip()}",
    ]
    for call in run.tool_calls.values():
        flag = " (failed)" if call.get("error") else ""
        lines.append(f"[tool {call.get('name') or 'tool'}{flag}]")
    if run.text.strip():
        lines.append(f"{bot}: {run.text.strip()}")
    if run.error:
        lines.append(f"Error: {run.error.get('message', '')}")
        if run.error.get("hint"):
            lines.append(f"Hint: {run.error['hint']}")
    if run.notice:
        lines.append(run.notice)
    return "\n".join(lines)


def stream_plain(run: Run, out: TextIO | None = None) -> None:
    """Print the run as plain text while it streams (terminal IPython, ``--plain``) and return
    when it settles. Ctrl-C stops the run; what streamed so far stays."""
    out = out if out is not None else sys.stdout
    q = run.subscribe(after_seq=0)
    wrote = False
    at_line_start = True

    def write(text: str) -> None:
        nonlocal wrote, at_line_start
        if text:
            out.write(text)
            out.flush()
            wrote = True
            at_line_start = text.endswith("\n")

    def line(text: str) -> None:
        write(("" if at_line_start else "\n") + text + "\n")

    try:
        while True:
            try:
                event, data = q.get()
            except KeyboardInterrupt:
                run.cancel()
                continue
            if event == Event.TOKEN:
                write(data["text"])
            elif event == Event.TOOL_START:
                line(f"[tool {data.get('name') or 'tool'}]")
            elif event == Event.TOOL_END:
                flag = "failed" if data.get("error") else "done"
                line(f"[tool {data.get('name') or 'tool'} {flag}]")
            elif event == Event.APPERROR:
                line(f"Error: {data.get('message', '')}")
                if data.get("hint"):
                    line(f"Hint: {data['hint']}")
            elif event == Event.CANCEL:
                line(str(data["message"]))
            elif event == Event.DONE and data.get("notice"):  # the reply was cut short
                line(str(data["notice"]))
            elif event == Event.STREAM_END:
                break
    finally:
        run.unsubscribe(q)
    if wrote and not at_line_start:
        write("\n")
