"""Every message between the chat widget's views and the kernel, in one place.

Kernel → view (an anywidget custom message)::

    {"type": "frame", "seq", "prev", "status", "blocks": [{"id", "kind", "html"}], "rid", "meta"}

``seq`` is the journal seq the frame reflects and ``prev`` the seq its changes start after. A view
whose cursor is ``c`` applies a frame iff ``prev <= c < seq`` (then ``c = seq``), ignores it when
``seq <= c``, and asks for a replay ``after=c`` when ``c < prev`` (DESIGN.md §3, invariants 1–2).
Blocks are upserts of whole blocks by ``id``, or seq-guarded tail patches (``at``; see
:class:`BlockMsg`) — never blind appends (invariant 4). ``rid`` is ``None`` on live frames and
the request's ``rid`` on a replay answer.

View → kernel: ``{"type": "replay", "after", "rid"}``, ``{"type": "cancel"}`` (Stop),
``{"type": "answer", "prompt_id", "value"}`` (a card's button or text field: the person answers
one of the run's open prompts; the kernel calls ``run.answer(prompt_id, value, by="view")``) and
``{"type": "removed"}`` (the view left its page — its output was replaced by the static bundle,
cleared or deleted — not sent while the page unloads): what tells the kernel, once the run has
settled, that a page no longer shows the live view, so it may close the widget. And
``{"type": "sight", "view", "seen"}``: view ``view``'s end (its status line) came on or went off
screen; while every view that said so is off screen, the kernel sends frames less often. And
``{"type": "pace", "view", "ms"}``: the least time between two of view ``view``'s DOM updates
changed (a reply that grows faster than anyone reads is drawn less often); the kernel sends its
frames at the quickest pace of the views in sight, a frame per update.

The view's code (a page without hermes_nb's JupyterLab extension, once per page): the widget's
module is a small loader (``static/loader.js``); where the extension did not register the view,
the loader sends ``{"type": "code"}`` and the kernel answers on the same comm with
``{"type": "code", "js", "css"}`` — the fallback module built from the extension's TypeScript
(``static/view.js``) and the view's stylesheet (``chat.css`` and the code colours) — or with
``{"type": "code", "error"}``, one sentence the view shows (the module was never built). The
widget answers it itself (``view/widget.py``); it never reaches a run's handler.

Open prompts are blocks like any other (kind ``ask``, id ``ask:<prompt id>``): the card with its
controls while the prompt is open, the same id upserted with the decision once it is answered,
so a replay shows an open card exactly once and every view shows the decision after it.

The conversation of a run (reply text, tool calls, cards) is laid out in *segments*: text, then
the tool calls and cards that followed it. A new segment starts when the tool loop asks the model
again (a ``step`` event) or when text follows a tool call. The first segment's ids are bare
(``reply:0``, ``tool:<call id>``, ``ask:<prompt id>``); a later segment ``n`` prefixes them with
``"<n>/"`` (``1/reply:0``, ``2/tool:call_2_0``): a block never moves, and a view finds where it
goes from its id alone (:func:`segment_of`).

No message carries a top-level ``"id"`` key on purpose: ipykernel 7.4 reads ``content["id"]`` of
comm data to route replies to a subshell (see docs/kernel-versions.md).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, TypeGuard

__all__ = [
    "BLOCK_KINDS",
    "FLOW_KINDS",
    "MAX_ANSWER",
    "AnswerMsg",
    "BlockKind",
    "BlockMsg",
    "CancelMsg",
    "CodeMsg",
    "CodeReplyMsg",
    "FrameMeta",
    "FrameMsg",
    "PaceMsg",
    "RemovedMsg",
    "ReplayMsg",
    "SightMsg",
    "ViewMsg",
    "frame",
    "parse_view_msg",
    "segment_id",
    "segment_of",
]

#: The longest answer a view may send (characters); a longer one is ignored as malformed.
MAX_ANSWER = 10_000
_MAX_PROMPT_ID = 100
_MAX_VIEW_ID = 200
_MAX_PACE_MS = 60_000

#: What a block shows. ``prompt`` is the person's message; ``ask`` a card for one of the run's
#: own prompts (an approval or a question for the person). ``notice`` is the line after the
#: reply: the cancel marker of a stopped run, or — on a finished run that was cut short
#: (``finish_reason`` ``length``, ``content_filter`` or ``max_steps``) — the truncation notice;
#: the ``status`` block's label then says "Done — cut off at the token limit" (or "… by the
#: content filter", "Done — stopped at the tool-step limit").
BlockKind = Literal[
    "prompt", "info", "reasoning", "reply", "tool", "ask", "error", "notice", "status"
]
#: Kinds in the order the view lays them out (``reply``, ``tool`` and ``ask`` segment by segment).
BLOCK_KINDS: tuple[str, ...] = (
    "prompt",
    "info",
    "reasoning",
    "reply",
    "tool",
    "ask",
    "error",
    "notice",
    "status",
)
#: The kinds that make up the conversation's segments (see the module docstring).
FLOW_KINDS: tuple[str, ...] = ("reply", "tool", "ask")


def segment_id(segment: int, key: str) -> str:
    """The block id of ``key`` (``reply:0``, ``tool:<call id>``) in conversation segment
    ``segment``: bare in the first, ``"<n>/<key>"`` after it."""
    return key if segment == 0 else f"{segment}/{key}"


def segment_of(block_id: str) -> int:
    """The conversation segment a block id belongs to (0 unless it starts with ``"<n>/"``)."""
    head, sep, _ = block_id.partition("/")
    return int(head) if sep and head.isdigit() else 0


class BlockMsg(TypedDict):
    """One transcript part; a view upserts it by ``id``.

    With ``at`` (live frames only) ``html`` replaces the block's HTML from UTF-16 offset ``at``:
    the growing tail of a reply costs its new text, not the whole block, every frame. It is an
    append guarded by seq: a view applies a live frame only when its cursor is the frame's
    ``prev``, so it holds exactly the HTML the offset refers to; a view that does not (or has no
    such block) asks for a replay instead. Empty ``html`` without ``at``: the block is gone.
    """

    id: str
    kind: str
    html: str
    at: NotRequired[int]


class FrameMeta(TypedDict, total=False):
    """What the status line needs between frames (the elapsed-time ticker runs in the view).

    A replay's is whole; a live frame's carries only the keys that changed since the previous
    live frame, and none at all when nothing did (a view keeps the others: every view that
    applies a live frame applied the one before it, or a replay after it). The bot's name and
    model are synced traits, not meta (``bot_name`` and ``model`` are no longer sent)."""

    bot_name: str
    model: str
    elapsed: float  # seconds since the run started, when the frame was built
    tokens: int  # reply chunks (or the provider's completion tokens) so far
    live: bool  # the run has not settled: show Stop and tick
    clock: float  # the kernel's epoch seconds when the frame was built (countdowns to deadlines)


class FrameMsg(TypedDict):
    """Kernel → view: the blocks that changed in ``(prev, seq]``."""

    type: Literal["frame"]
    seq: int
    prev: int
    status: str
    blocks: list[BlockMsg]
    rid: str | None
    meta: NotRequired[FrameMeta]  # absent: nothing in it changed (see FrameMeta)


class ReplayMsg(TypedDict):
    """View → kernel: send every block changed after ``after``, tagged with ``rid``."""

    type: Literal["replay"]
    after: int
    rid: str


class CancelMsg(TypedDict):
    """View → kernel: the Stop button."""

    type: Literal["cancel"]


class AnswerMsg(TypedDict):
    """View → kernel: the person answers the open prompt ``prompt_id`` with ``value`` (an
    approval's ``once``/``session``/``always``/``deny``, a question's choice or own text).

    The run decides whether it takes it (first answer wins; a late, empty or unknown answer is
    refused and changes nothing); either way every view then shows the prompt's decision."""

    type: Literal["answer"]
    prompt_id: str
    value: str


class RemovedMsg(TypedDict):
    """View → kernel: this view left its page (its output was replaced by the static bundle,
    cleared or deleted; never sent as the page unloads). Counted only once the run settled."""

    type: Literal["removed"]


class SightMsg(TypedDict):
    """View → kernel: whether view ``view``'s end is on screen (sent when that changes). Nobody
    sees a view scrolled away, collapsed or in a hidden tab grow, so while every view that has
    said anything is off screen the kernel sends frames at a slower pace (view/display.py)."""

    type: Literal["sight"]
    view: str
    seen: bool


class PaceMsg(TypedDict):
    """View → kernel: view ``view`` now draws at most one DOM update per ``ms`` milliseconds
    (sent when that changes: ``labextension/src/view/pace.ts``). A frame the view would only
    hold until its next update, together with the next frame, costs the page a message to
    decode and makes that update twice as long, so the kernel sends at the views' pace."""

    type: Literal["pace"]
    view: str
    ms: int


class CodeMsg(TypedDict):
    """View → kernel: send the view's code (this page has no view registered by the extension).
    Sent once per page, by the first view that needs it; answered with :class:`CodeReplyMsg`."""

    type: Literal["code"]


class CodeReplyMsg(TypedDict):
    """Kernel → view: the fallback module's text (``js``) and the stylesheet it needs (``css``),
    or ``error``, one sentence saying why there is no view to send."""

    type: Literal["code"]
    js: NotRequired[str]
    css: NotRequired[str]
    error: NotRequired[str]


ViewMsg = ReplayMsg | CancelMsg | AnswerMsg | RemovedMsg | SightMsg | PaceMsg | CodeMsg


def frame(
    *,
    seq: int,
    prev: int,
    status: str,
    blocks: list[BlockMsg],
    meta: FrameMeta,
    rid: str | None = None,
) -> FrameMsg:
    """Build a frame message (without ``meta`` when it is empty)."""
    msg: FrameMsg = {
        "type": "frame",
        "seq": seq,
        "prev": prev,
        "status": status,
        "blocks": blocks,
        "rid": rid,
    }
    if meta:
        msg["meta"] = meta
    return msg


def parse_view_msg(content: Any) -> ViewMsg | None:
    """Validate a message from a view; ``None`` for anything malformed or unknown."""
    if not isinstance(content, dict):
        return None
    kind = content.get("type")
    if kind == "cancel":
        return {"type": "cancel"}
    if kind == "removed":
        return {"type": "removed"}
    if kind == "code":
        return {"type": "code"}
    if kind == "replay":
        after, rid = content.get("after"), content.get("rid")
        if _whole(after) and after >= 0 and _text(rid, 200, least=1):
            return ReplayMsg(type="replay", after=after, rid=rid)
    if kind == "sight":
        view, seen = content.get("view"), content.get("seen")
        if _text(view, _MAX_VIEW_ID, least=1) and isinstance(seen, bool):
            return SightMsg(type="sight", view=view, seen=seen)
    if kind == "pace":
        view, ms = content.get("view"), content.get("ms")
        if _text(view, _MAX_VIEW_ID, least=1) and _whole(ms) and 0 < ms <= _MAX_PACE_MS:
            return PaceMsg(type="pace", view=view, ms=ms)
    if kind == "answer":
        prompt_id, value = content.get("prompt_id"), content.get("value")
        if _text(prompt_id, _MAX_PROMPT_ID, least=1) and _text(value, MAX_ANSWER):
            return AnswerMsg(type="answer", prompt_id=prompt_id, value=value)
    return None


def _whole(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (JSON ``true`` is not a number of anything)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: Any, most: int, *, least: int = 0) -> TypeGuard[str]:
    """A string of ``least`` to ``most`` characters."""
    return isinstance(value, str) and least <= len(value) <= most
