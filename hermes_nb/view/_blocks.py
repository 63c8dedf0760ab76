"""A run's events as the chat view's blocks: ``{id: (kind, html)}``, built incrementally.

One renderer for both outputs of a run: the live view's pump feeds it a batch of journal entries
per frame, the static bundle feeds it every event at once, so a live view and a saved notebook
show the same blocks (the ids are the DOM's ``data-block`` attributes, see the view's
``labextension/src/view/blocks.ts``).

The conversation is laid out in segments (:class:`Conversation`): text, then the tool calls and
the cards (the run's prompts for the person) that followed it; the tool loop's next reply, or
text after a tool call, starts the next segment. So a run of several steps reads as one
conversation — text, tool calls, text — and every block keeps the place it was first shown in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core import short
from ..core.events import Event, RunState
from ..core.prompts import ANSWERED_BY, APPROVAL_DECISIONS, APPROVAL_LABELS, NO_ANSWER
from ..core.usage import UsageSum
from . import render
from ._context import context_parts, rules_blocks
from ._diff import detail_html
from ._markdown import sanitize
from ._protocol import segment_id

if TYPE_CHECKING:
    from ..core.journal import JournalEntry
    from ..engine.runtime import Run

__all__ = [
    "RESULT_PREVIEW",
    "Conversation",
    "Segment",
    "Transcript",
    "conversation",
    "decision",
    "status_label",
]

#: How much of a tool's result a view (and the Markdown of a saved run) shows.
RESULT_PREVIEW = 2000
#: How much of a person's own answer a decided card quotes.
_ANSWER_PREVIEW = 300
_LABELS = {
    "queued": "Queued",
    "streaming": "Streaming…",
    "waiting": "Waiting for you",
    "done": "Done",
    "stopped": "Stopped",
    "error": "Error",
}
#: The status label of a finished reply that was cut short, by finish_reason.
_CUT_LABELS = {
    "length": "Done — cut off at the token limit",
    "content_filter": "Done — cut off by the content filter",
    "max_steps": "Done — stopped at the tool-step limit",
}
_OFFLINE_INFO = (
    "Offline echo model: it repeats your prompt. For real answers set OPENAI_API_KEY, or add a "
    "profile to config.toml (%hermes profiles shows where)."
)
_PERSON = frozenset({"view", "magic", "api"})


# -- the conversation's segments --------------------------------------------------------------


@dataclass
class Segment:
    """One stretch of the conversation: the text said, then the tool calls and prompts after it."""

    text: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)  # call ids, in the order they started
    asks: list[str] = field(default_factory=list)  # prompt ids, in the order they opened

    @property
    def empty(self) -> bool:
        return not (self.text or self.tools or self.asks)


class Conversation:
    """Splits a run's events into :class:`Segment` s, and keeps its prompts with their answers.

    A new segment starts at a ``step`` event (the tool loop asks the model again) and when text
    follows a tool call or a prompt (an agent that runs its tools itself and then answers).
    """

    def __init__(self) -> None:
        self.segments: list[Segment] = [Segment()]
        self.prompts: dict[str, dict[str, Any]] = {}  # id -> prompt data (+ value, by)
        self.tool_segments: dict[str, int] = {}

    @property
    def current(self) -> int:
        return len(self.segments) - 1

    def _next(self) -> None:
        if not self.segments[-1].empty:
            self.segments.append(Segment())

    def feed(self, event: str, data: dict[str, Any]) -> int | None:
        """Take one event; the segment it belongs to, or None if it is not part of the flow."""
        if event == Event.TOKEN:
            if self.segments[-1].tools or self.segments[-1].asks:
                self._next()
            self.segments[-1].text.append(data["text"])
            return self.current
        if event in (Event.TOOL_START, Event.TOOL_DELTA, Event.TOOL_END, Event.TOOL_WAIT):
            call_id = data["id"]
            if call_id not in self.tool_segments:
                self.tool_segments[call_id] = self.current
                self.segments[-1].tools.append(call_id)
            return self.tool_segments[call_id]
        if event == Event.PROMPT:
            if data["id"] not in self.prompts:
                self.prompts[data["id"]] = {**data, "segment": self.current}
                self.segments[-1].asks.append(data["id"])
            return int(self.prompts[data["id"]]["segment"])
        if event == Event.PROMPT_ANSWERED:
            prompt = self.prompts.get(data["id"])
            if prompt is None:
                return None
            prompt.update(value=data["value"], by=data["by"])
            return int(prompt["segment"])
        if event == Event.STEP:
            self._next()
        return None


def conversation(run: Run) -> Conversation:
    """The run's whole conversation so far, segmented (for the static bundle's text)."""
    conv = Conversation()
    for _seq, event, data in run.events(after_seq=0):
        conv.feed(event, data)
    return conv


def decision(
    kind: str, value: str, by: str, options: Sequence[Mapping[str, Any]] = ()
) -> tuple[str, str]:
    """What was decided and who decided it: ``("Allowed once", "by you")``,
    ``("Denied", "time ran out")``, ``("Answered “blue”", "by you")``; an answer that is one of
    the asker's own ``options`` (an ACP agent's) in that option's words: ``("Allow", "by you")``."""
    who = ANSWERED_BY.get(by, f"by {by}")
    if kind == "approval":
        chosen = _option(options, value)
        if chosen is not None:
            return str(chosen["label"]), who
        return APPROVAL_DECISIONS.get(value, f"Answered “{value}”"), who
    if value == NO_ANSWER and by not in _PERSON:
        return "No answer", who
    return f"Answered “{short(value, _ANSWER_PREVIEW)}”", who


# -- the blocks --------------------------------------------------------------------------------


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
        self.usage: dict[str, int] = {}  # the run's, over its requests (see core.usage)
        self._usage = UsageSum()
        self.finish_reason: str | None = None
        self.conversation = Conversation()
        self._replies: list[render.MarkdownStream] = []  # one per segment
        self._reasoning = render.MarkdownStream()
        self._reasoned = False
        self._tools: dict[str, dict[str, Any]] = {}
        self._started = False

    def consume(self, entries: Iterable[JournalEntry]) -> dict[str, tuple[str, str]]:
        changed: dict[str, tuple[str, str]] = {}
        reply: dict[int, list[str]] = {}
        reasoning: list[str] = []
        tools: list[str] = []
        asks: list[str] = []
        conv = self.conversation
        for _seq, event, data in entries:
            if not self._started:
                self._started = True
                changed.update(self._header())
            segment = conv.feed(event, data)
            if event == Event.TOKEN:
                reply.setdefault(conv.current, []).append(data["text"])
                self.tokens += 1
            elif event == Event.REASONING:
                reasoning.append(data["text"])
            elif event in (Event.TOOL_START, Event.TOOL_DELTA, Event.TOOL_END, Event.TOOL_WAIT):
                self._tool_event(event, data)
                if data["id"] not in tools:
                    tools.append(data["id"])
            elif event in (Event.PROMPT, Event.PROMPT_ANSWERED):
                if segment is not None and data["id"] not in asks:
                    asks.append(data["id"])
            elif event == Event.STEP:
                self._usage.next_request()
                if self._reasoned or "".join(reasoning).strip():
                    reasoning.append("\n\n")  # the next reply's reasoning: its own paragraph
            elif event == Event.USAGE:
                self.usage = self._usage.report(data)
            elif event == Event.STATUS:
                self.state = str(data["state"])
                changed["status"] = ("status", self._status_html())
            elif event == Event.APPERROR:
                changed["error"] = ("error", _error_html(data))
            elif event == Event.AGENT_SESSION and data.get("notice"):  # the agent started over
                changed["notice:agent"] = _notice_block(data["notice"])
            elif event == Event.CANCEL:
                changed["notice"] = _notice_block(data["message"])
            elif event == Event.DONE:
                self.finish_reason = data.get("finish_reason")
                if data.get("notice"):  # the reply was cut short
                    changed["notice"] = _notice_block(data["notice"])
            elif event == Event.STREAM_END:
                self.ended = True
        if reasoning:
            self._reasoned = self._reasoned or bool("".join(reasoning).strip())
            changed.update(_blocks("reasoning", self._reasoning.append("".join(reasoning))))
        for call_id in tools:
            key = segment_id(conv.tool_segments[call_id], f"tool:{call_id}")
            changed[key] = ("tool", _tool_html(self._tools[call_id], self.ended))
        for prompt_id in asks:
            prompt = conv.prompts[prompt_id]
            key = segment_id(prompt["segment"], f"ask:{prompt_id}")
            changed[key] = ("ask", ask_html(prompt, self.ended))
        for segment in sorted(reply):
            stream = self._reply(segment)
            changed.update(_reply_blocks(segment, stream.append("".join(reply[segment]))))
        if self.ended:
            changed.update(self._finish())
        return changed

    @property
    def token_count(self) -> int:
        return self.usage.get("completion_tokens") or self.tokens

    def _reply(self, segment: int) -> render.MarkdownStream:
        while len(self._replies) <= segment:
            self._replies.append(render.MarkdownStream())
        return self._replies[segment]

    def _header(self) -> dict[str, tuple[str, str]]:
        blocks = {"prompt": ("prompt", render.markdown_to_html(self.run.request.prompt))}
        if getattr(self.run.profile, "provider", "") == "echo":
            blocks["info"] = ("info", _div("hnb-info", render.escape(_OFFLINE_INFO)))
        blocks.update(rules_blocks(self.run))
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
        elif event == Event.TOOL_WAIT:
            call["waiting"] = bool(data.get("waiting"))
        else:
            call["name"] = data.get("name") or call["name"]
            call["result"] = str(data.get("result", ""))
            call["error"] = bool(data.get("error"))
            call["duration_ms"] = data.get("duration_ms")
            call["ran"] = data.get("ran", True)
            call["images"] = list(data.get("images") or ())

    def _finish(self) -> dict[str, tuple[str, str]]:
        """The final render: Markdown re-parsed whole, tools and prompts left open marked
        unfinished, final status."""
        changed: dict[str, tuple[str, str]] = {}
        changed.update(_blocks("reasoning", self._reasoning.final()))
        for segment, stream in enumerate(self._replies):
            changed.update(_reply_blocks(segment, stream.final()))
        conv = self.conversation
        for call_id, call in self._tools.items():
            if call["result"] is None:
                key = segment_id(conv.tool_segments[call_id], f"tool:{call_id}")
                changed[key] = ("tool", _tool_html(call, True))
        for prompt_id, prompt in conv.prompts.items():
            if "value" not in prompt:
                key = segment_id(prompt["segment"], f"ask:{prompt_id}")
                changed[key] = ("ask", ask_html(prompt, True))
        changed["status"] = ("status", self._status_html())
        return changed

    def _status_html(self) -> str:
        label = status_label(self.state, self.finish_reason)
        detail = ""
        if self.ended and self.run.finished_at is not None:
            parts = [_duration(self.run.finished_at - self.run.created_at)]
            if self.token_count:
                parts.append(f"{self.token_count} tokens")
            parts += context_parts(self.run)
            detail = " · " + " · ".join(parts)
        return (
            f'<span class="hnb-status-label">{render.escape(label)}</span>'
            f'<span class="hnb-status-detail">{render.escape(detail)}</span>'
        )


def status_label(state: str, finish_reason: str | None = None) -> str:
    """The status line's label: ``Done``, ``Waiting for you``, ``Stopped``, …, and ``Done — cut
    off at the token limit`` for a finished reply that was cut short."""
    cut = _CUT_LABELS.get(finish_reason or "") if state == RunState.DONE else None
    return cut or _LABELS.get(state, state.capitalize())


def _notice_block(message: str) -> tuple[str, str]:
    """A ``notice`` block: the cancel marker, why a finished reply was cut short, or (id
    ``notice:agent``) that an ACP agent could not load its session and started a new one."""
    return "notice", _div("hnb-notice", render.escape(message))


def _blocks(kind: str, blocks: list[render.Block]) -> dict[str, tuple[str, str]]:
    """Markdown blocks as ``{"reasoning:3": ("reasoning", html)}``; empty html: the block is
    gone."""
    return {f"{kind}:{b.index}": (kind, b.html) for b in blocks}


def _reply_blocks(segment: int, blocks: list[render.Block]) -> dict[str, tuple[str, str]]:
    """One segment's reply blocks: ``reply:3`` in the first, ``2/reply:3`` in the third."""
    return {segment_id(segment, f"reply:{b.index}"): ("reply", b.html) for b in blocks}


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
    if result is None and call.get("waiting") and not ended:
        state, meta = "waiting", "waits for your approval"
    elif result is None:
        state, meta = ("unfinished", "not finished") if ended else ("running", "running…")
    else:
        state = "error" if call["error"] else "done"
        ms = call.get("duration_ms")
        meta = "failed" if call["error"] else "done" if call.get("ran", True) else "not run"
        if isinstance(ms, int | float):
            meta += f" · {_duration(ms / 1000)}"
    head = (
        f'<summary class="hnb-tool-head"><span class="hnb-tool-name">'
        f"{render.escape(call['name'] or 'tool')}</span> "
        f'<span class="hnb-tool-meta">{render.escape(meta)}</span></summary>'
    )
    body = ""
    if call["arguments"]:
        body += _div("hnb-tool-label", "Arguments")
        body += _div("hnb-tool-args", render.render_tool_args(call["arguments"]))
    if result:
        preview = result[:RESULT_PREVIEW]
        if len(result) > RESULT_PREVIEW:
            preview += f"\n… ({len(result) - RESULT_PREVIEW} more characters)"
        body += _div("hnb-tool-label", "Error" if call["error"] else "Result")
        body += f'<pre class="hnb-tool-result">{render.escape(preview)}</pre>'
    body += _tool_images(call.get("images") or ())
    opened = " open" if state == "error" else ""  # a failure is shown, not folded away
    return f'<details class="hnb-tool" data-state="{state}"{opened}>{head}{body}</details>'


#: The image types a tool block shows, and the largest one it embeds (base64 characters).
_TOOL_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_TOOL_IMAGE_LIMIT = 2 << 20
_BASE64 = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def _tool_images(images: Any) -> str:
    """The images a tool returned (an MCP server's), as ``data:`` URLs inside the tool block.

    Only here does a ``data:`` URL come from a tool's result rather than from the model's text;
    each is checked (a raster type, base64 only, not too big) and passed through the sanitizer
    like every other image."""
    shown: list[str] = []
    for n, image in enumerate(images, 1):
        mime, data = str(image.get("mime", "")), str(image.get("data", ""))
        if mime not in _TOOL_IMAGE_TYPES or not _BASE64.match(data):
            continue
        if len(data) > _TOOL_IMAGE_LIMIT:
            shown.append(_div("hnb-tool-label", f"Image {n} ({mime}) is too big to show here"))
            continue
        img = f'<img src="data:{mime};base64,{data}" alt="image {n} from the tool">'
        shown.append(sanitize(img))
    if not shown:
        return ""
    return _div("hnb-tool-label", "Images") + _div("hnb-tool-images", "".join(shown))


def ask_html(prompt: dict[str, Any], ended: bool = False) -> str:
    """A prompt's card: the question or what is to be approved (its detail verbatim), with
    its controls while it is open, or the decision once it has one.

    Every value is escaped: the text and detail come from the model or a tool call. The
    controls carry ``data-prompt`` and ``data-answer``; the view's ``cards.ts`` wires them (one
    delegated listener) and ticks the countdown to ``data-deadline`` (epoch seconds)."""
    pid = render.escape(str(prompt["id"]))
    kind = "approval" if prompt.get("kind") == "approval" else "question"
    label_id = f"hnb-ask-{pid}"
    heading = "Question" if kind == "question" else "Approval"
    if kind == "approval" and "value" not in prompt and not ended:
        heading = "Approval needed"
    parts = [
        '<div class="hnb-ask-head">'
        f'<span class="hnb-ask-kind">{heading}</span>'
        f'<span class="hnb-ask-text" id="{label_id}">{render.escape(str(prompt["text"]))}</span>'
        "</div>"
    ]
    detail = str(prompt.get("detail") or "")
    if detail:
        parts.append(detail_html(detail))
    options = prompt.get("options") or ()
    if "value" in prompt:
        state = "decided"
        value = str(prompt["value"])
        what, who = decision(kind, value, str(prompt["by"]), options)
        chosen = _option(options, value)
        denied = value == "deny" or (chosen is not None and not chosen["allows"])
        verdict = "denied" if kind == "approval" and denied else "allowed"
        if kind == "question":
            verdict = "answered" if prompt["by"] in _PERSON else "unanswered"
        parts.append(
            f'<div class="hnb-ask-decision" data-verdict="{verdict}" aria-live="polite">'
            f"{render.escape(what)} — {render.escape(who)}</div>"
        )
    elif ended:
        state = "closed"
        parts.append(
            '<div class="hnb-ask-decision" data-verdict="unanswered" aria-live="polite">'
            "Not answered — the run ended</div>"
        )
    else:
        state = "open"
        choices = [str(c) for c in prompt.get("choices") or ()]
        parts.append(_controls(pid, kind, choices, options))
        deadline = prompt.get("deadline")
        countdown = (
            f'<span class="hnb-countdown" role="timer" data-deadline="{float(deadline):.3f}">'
            "</span>"
            if isinstance(deadline, int | float)
            else ""
        )
        parts.append(
            f'<div class="hnb-ask-foot">{countdown}'
            '<span class="hnb-ask-decision" aria-live="polite"></span></div>'
        )
    return (
        f'<div class="hnb-ask" role="group" aria-labelledby="{label_id}" data-prompt="{pid}" '
        f'data-kind="{kind}" data-state="{state}">{"".join(parts)}</div>'
    )


def _option(options: Sequence[Mapping[str, Any]], value: str) -> Mapping[str, Any] | None:
    return next((o for o in options if o.get("value") == value), None)


def _controls(
    pid: str, kind: str, choices: list[str], options: Sequence[Mapping[str, Any]] = ()
) -> str:
    """An open card's buttons (and a question's text field with Send): an approval's are the
    four answers, or the asker's own options by their labels (the first that allows is the
    primary one; those that reject look like Deny)."""

    def button(value: str, label: str, cls: str = "") -> str:
        v = render.escape(value)
        return (
            f'<button type="button" class="hnb-ask-btn{cls}" data-prompt="{pid}" '
            f'data-answer="{v}">{render.escape(label)}</button>'
        )

    if kind == "approval" and options:
        primary = next((o for o in options if o.get("allows")), None)
        buttons = "".join(
            button(
                str(o["value"]),
                str(o["label"]),
                " hnb-ask-primary" if o is primary else "" if o.get("allows") else " hnb-ask-deny",
            )
            for o in options
        )
        return f'<div class="hnb-ask-actions">{buttons}</div>'
    if kind == "approval":
        values = choices or list(APPROVAL_LABELS)
        buttons = "".join(
            button(
                v,
                APPROVAL_LABELS.get(v, v),
                " hnb-ask-primary" if v == "once" else " hnb-ask-deny" if v == "deny" else "",
            )
            for v in values
        )
        return f'<div class="hnb-ask-actions">{buttons}</div>'
    html = ""
    if choices:
        html += f'<div class="hnb-ask-actions">{"".join(button(c, c) for c in choices)}</div>'
    html += (
        '<div class="hnb-ask-other"><label class="hnb-ask-field">'
        '<span class="hnb-ask-field-label">Your answer</span>'
        f'<input type="text" class="hnb-ask-input" data-prompt="{pid}" aria-label="Your answer" '
        'autocomplete="off" spellcheck="true"></label>'
        f'<button type="button" class="hnb-ask-send" data-prompt="{pid}">Send</button></div>'
    )
    return html
