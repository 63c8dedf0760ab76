"""A run's events as the chat view's blocks: ``{id: (kind, html)}``, built incrementally.

One renderer for both outputs of a run: the live view's pump feeds it a batch of journal entries
per frame, the static bundle feeds it every event at once, so a live view and a saved notebook
show the same blocks (the ids are the DOM's ``data-block`` attributes, see ``static/chat.js``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.events import Event, RunState
from . import render

if TYPE_CHECKING:
    from ..core.journal import JournalEntry
    from ..engine.runtime import Run

__all__ = ["RESULT_PREVIEW", "Transcript", "status_label"]

#: How much of a tool's result a view (and the Markdown of a saved run) shows.
RESULT_PREVIEW = 2000
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


class Transcript:
    """Turns a run's events into blocks ``{id: (kind, html)}``, incrementally.

    Fed batches of journal entries in seq order; each call returns only the blocks that changed.
    Used by the view's pump (live) and by the static bundle (all events at once), so a live view
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
        label = status_label(self.state, self.finish_reason)
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


def status_label(state: str, finish_reason: str | None = None) -> str:
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
        preview = result[:RESULT_PREVIEW]
        if len(result) > RESULT_PREVIEW:
            preview += f"\n… ({len(result) - RESULT_PREVIEW} more characters)"
        body += f'<pre class="hnb-tool-result">{render.escape(preview)}</pre>'
    return f'<details class="hnb-tool" data-state="{state}">{head}{body}</details>'
