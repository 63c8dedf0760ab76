"""Every message between the chat widget's views and the kernel, in one place.

Kernel → view (an anywidget custom message)::

    {"type": "frame", "seq", "prev", "status", "blocks": [{"id", "kind", "html"}], "rid", "meta"}

``seq`` is the journal seq the frame reflects and ``prev`` the seq its changes start after. A view
whose cursor is ``c`` applies a frame iff ``prev <= c < seq`` (then ``c = seq``), ignores it when
``seq <= c``, and asks for a replay ``after=c`` when ``c < prev`` (DESIGN.md §3, invariants 1–2).
Blocks are upserts of whole blocks by ``id``, or seq-guarded tail patches (``at``; see
:class:`BlockMsg`) — never blind appends (invariant 4). ``rid`` is ``None`` on live frames and
the request's ``rid`` on a replay answer.

View → kernel: ``{"type": "replay", "after", "rid"}`` and ``{"type": "cancel"}``.

No message carries a top-level ``"id"`` key on purpose: ipykernel 7.4 reads ``content["id"]`` of
comm data to route replies to a subshell (see docs/kernel-versions.md).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "BLOCK_KINDS",
    "BlockKind",
    "BlockMsg",
    "CancelMsg",
    "FrameMeta",
    "FrameMsg",
    "ReplayMsg",
    "ViewMsg",
    "frame",
    "parse_view_msg",
]

#: What a block shows. ``notice`` is the line after the reply: the cancel marker of a stopped
#: run, or — on a finished run whose provider cut the reply short (``finish_reason`` ``length``
#: or ``content_filter``) — the truncation notice; the ``status`` block's label then says
#: "Done — cut off at the token limit" (or "… by the content filter").
BlockKind = Literal["prompt", "info", "reasoning", "tool", "reply", "error", "notice", "status"]
#: Kinds in the order the view lays them out.
BLOCK_KINDS: tuple[str, ...] = (
    "prompt",
    "info",
    "reasoning",
    "tool",
    "reply",
    "error",
    "notice",
    "status",
)


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
    """What the status line needs between frames (the elapsed-time ticker runs in the view)."""

    bot_name: str
    model: str
    elapsed: float  # seconds since the run started, when the frame was built
    tokens: int  # reply chunks (or the provider's completion tokens) so far
    live: bool  # the run has not settled: show Stop and tick


class FrameMsg(TypedDict):
    """Kernel → view: the blocks that changed in ``(prev, seq]``."""

    type: Literal["frame"]
    seq: int
    prev: int
    status: str
    blocks: list[BlockMsg]
    rid: str | None
    meta: FrameMeta


class ReplayMsg(TypedDict):
    """View → kernel: send every block changed after ``after``, tagged with ``rid``."""

    type: Literal["replay"]
    after: int
    rid: str


class CancelMsg(TypedDict):
    """View → kernel: the Stop button."""

    type: Literal["cancel"]


ViewMsg = ReplayMsg | CancelMsg


def frame(
    *,
    seq: int,
    prev: int,
    status: str,
    blocks: list[BlockMsg],
    meta: FrameMeta,
    rid: str | None = None,
) -> FrameMsg:
    """Build a frame message."""
    return {
        "type": "frame",
        "seq": seq,
        "prev": prev,
        "status": status,
        "blocks": blocks,
        "rid": rid,
        "meta": meta,
    }


def parse_view_msg(content: Any) -> ViewMsg | None:
    """Validate a message from a view; ``None`` for anything malformed or unknown."""
    if not isinstance(content, dict):
        return None
    kind = content.get("type")
    if kind == "cancel":
        return {"type": "cancel"}
    if kind == "replay":
        after, rid = content.get("after"), content.get("rid")
        if (
            isinstance(after, int)
            and not isinstance(after, bool)
            and after >= 0
            and isinstance(rid, str)
            and 0 < len(rid) <= 200
        ):
            return ReplayMsg(type="replay", after=after, rid=rid)
    return None
