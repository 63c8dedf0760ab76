"""What an agent's ``session/update`` notifications become in a run: tokens, reasoning, tools.

* ``agent_message_chunk`` → ``token``; ``agent_thought_chunk`` → ``reasoning`` (text blocks as
  they are; an image, audio or resource block as a one-line Markdown mention);
* ``tool_call`` → ``tool_start`` (the title as the name, the raw input as JSON arguments), and
  ``tool_call_update`` → ``tool_delta`` when the raw input arrives late, ``tool_end`` when the
  status becomes ``completed`` or ``failed`` (the content's text, each diff as a unified diff,
  else the raw output);
* ``plan`` → a tool block named ``Plan`` (id ``acp-plan``) whose result is the checklist, redrawn
  with each update (a later ``tool_end`` replaces the result in the view and in the run);
* anything else (available commands, modes, context usage, a replayed user message) is not part
  of a reply and is left out.

:class:`TurnSink.add` runs synchronously inside the SDK's notification task, so updates land in
the order the agent sent them; consecutive text of one kind is merged into one event (a
10,000-chunk reply costs the journal a few events per read, not one per chunk).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import time
from collections.abc import Iterable
from typing import Any

from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AgentThoughtChunk,
    ContentToolCallContent,
    FileEditToolCallContent,
    TerminalToolCallContent,
    ToolCallProgress,
    ToolCallStart,
)

from ...core.events import Event
from ..base import ProviderEvent

__all__ = ["PLAN_ID", "TurnSink", "block_text", "diff_text", "tool_detail"]

_TOKEN = Event.TOKEN.value
_REASONING = Event.REASONING.value
_TOOL_START = Event.TOOL_START.value
_TOOL_DELTA = Event.TOOL_DELTA.value
_TOOL_END = Event.TOOL_END.value

PLAN_ID = "acp-plan"
_PLAN_MARKS = {"completed": "[x]", "in_progress": "[~]", "pending": "[ ]"}


def block_text(block: Any) -> str:
    """A content block as text: its text, or a one-line mention of what it is."""
    kind = getattr(block, "type", "")
    if kind == "text":
        return str(block.text)
    if kind == "resource_link":
        return f"[{block.name}]({block.uri})"
    if kind == "resource":
        resource = block.resource
        return str(getattr(resource, "text", "") or f"[resource {resource.uri}]")
    return f"[{kind or 'content'}]"


def diff_text(path: str, old: str | None, new: str) -> str:
    """A unified diff of ``old`` → ``new`` (``old`` None: a new file)."""
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        new.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{path.lstrip('/')}",
        tofile=f"b/{path.lstrip('/')}",
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def content_text(content: Iterable[Any] | None) -> str:
    """A tool call's content as text: text blocks, diffs (unified), terminal references."""
    parts: list[str] = []
    for item in content or ():
        if isinstance(item, FileEditToolCallContent):
            parts.append(diff_text(item.path, item.old_text, item.new_text))
        elif isinstance(item, ContentToolCallContent):
            parts.append(block_text(item.content))
        elif isinstance(item, TerminalToolCallContent):
            parts.append(f"[terminal {item.terminal_id}]")
    return "\n".join(part for part in parts if part)


def _json(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


def tool_detail(call: Any, known: dict[str, Any] | None = None) -> str:
    """What a permission is asked for, verbatim: the command, the diff, or the raw input."""
    raw = call.raw_input if call.raw_input is not None else (known or {}).get("raw_input")
    content = call.content if call.content is not None else (known or {}).get("content")
    diffs = content_text(c for c in content or () if isinstance(c, FileEditToolCallContent))
    if diffs:
        return diffs
    if isinstance(raw, dict):
        for key in ("command", "cmd", "script", "code"):
            if isinstance(raw.get(key), str) and raw[key].strip():
                return str(raw[key])
    detail = _json(raw) or content_text(content)
    if not detail and call.locations:
        detail = "\n".join(str(location.path) for location in call.locations)
    return detail


class TurnSink:
    """Where one turn's updates go, already as events; :meth:`take` hands them over in order."""

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.closed = False
        self.calls: dict[str, dict[str, Any]] = {}  # tool call id -> what is known of it
        self._events: list[ProviderEvent] = []
        self._kind = ""  # the event the text being merged belongs to
        self._parts: list[str] = []

    def add(self, update: Any) -> None:
        """Apply one ``session/update`` (synchronously: the order of arrival is kept)."""
        if self.closed:
            return
        if isinstance(update, AgentMessageChunk):
            self._text(_TOKEN, block_text(update.content))
        elif isinstance(update, AgentThoughtChunk):
            self._text(_REASONING, block_text(update.content))
        elif isinstance(update, ToolCallStart | ToolCallProgress):
            self._tool(update)
        elif isinstance(update, AgentPlanUpdate):
            self._plan(update)
        else:
            return
        self.wake.set()

    def take(self) -> list[ProviderEvent]:
        """The events since the last call, text merged."""
        self._flush()
        events, self._events = self._events, []
        return events

    def _text(self, kind: str, text: str) -> None:
        if not text:
            return
        if kind is not self._kind:
            self._flush()
            self._kind = kind
        self._parts.append(text)

    def _flush(self) -> None:
        if self._parts:
            parts = self._parts
            text = parts[0] if len(parts) == 1 else "".join(parts)
            self._events.append((self._kind, {"text": text}))
            self._parts = []
        self._kind = ""

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        self._flush()
        self._events.append((event, data))

    def _tool(self, update: ToolCallStart | ToolCallProgress) -> None:
        call_id = str(update.tool_call_id)
        call = self.calls.get(call_id)
        if call is None:
            call = self.calls[call_id] = {
                "title": update.title or "tool",
                "raw_input": update.raw_input,
                "content": update.content,
                "started": time.perf_counter(),
                "ended": False,
            }
            arguments = _json(update.raw_input)
            self._emit(_TOOL_START, {"id": call_id, "name": call["title"], "arguments": arguments})
            call["sent_arguments"] = bool(arguments)
        else:
            if update.title:
                call["title"] = update.title
            if update.content is not None:
                call["content"] = update.content
            if update.raw_input is not None:
                call["raw_input"] = update.raw_input
                if not call["sent_arguments"]:
                    call["sent_arguments"] = True
                    self._emit(_TOOL_DELTA, {"id": call_id, "text": _json(update.raw_input)})
        if update.raw_output is not None:
            call["raw_output"] = update.raw_output
        if update.status in ("completed", "failed"):
            result = content_text(call["content"]) or _json(call.get("raw_output"))
            self._emit(
                _TOOL_END,
                {
                    "id": call_id,
                    "name": call["title"],
                    "result": result,
                    "error": update.status == "failed",
                    "duration_ms": round((time.perf_counter() - call["started"]) * 1000, 2),
                },
            )
            call["ended"] = True

    def _plan(self, update: AgentPlanUpdate) -> None:
        lines = [
            f"- {_PLAN_MARKS.get(str(entry.status), '[ ]')} {entry.content}"
            for entry in update.entries
        ]
        if PLAN_ID not in self.calls:
            self.calls[PLAN_ID] = {"title": "Plan", "started": time.perf_counter(), "ended": True}
            self._emit(_TOOL_START, {"id": PLAN_ID, "name": "Plan", "arguments": ""})
        self._emit(
            _TOOL_END,
            {"id": PLAN_ID, "name": "Plan", "result": "\n".join(lines), "error": False},
        )

    def unfinished(self) -> list[str]:
        """Tool calls that started and never ended (a stopped or failed turn)."""
        return [i for i, call in self.calls.items() if not call.get("ended")]
