"""A session as Markdown (``Session.export("md")``): the header, each message by role, tool
calls with their arguments and results, and the prompts the run asked with their answers.

Apart from :mod:`._session` because it only formats stored records: nothing here reads the
store or changes a session.
"""

from __future__ import annotations

import builtins
import json
import re
from datetime import UTC, datetime
from typing import Any

from ..core.prompts import ANSWERED_BY, APPROVAL_DECISIONS
from .database import SessionRecord, StoredMessage

#: How much of a tool's arguments or result the Markdown export shows (the JSON export has all).
_MD_CUT = 2000


def _markdown(record: SessionRecord, messages: builtins.list[StoredMessage]) -> str:
    when = datetime.fromtimestamp(record.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {record.title or record.name or 'Untitled session'}", ""]
    lines.append(f"- session: `{record.id}`" + (f" (name `{record.name}`)" if record.name else ""))
    lines.append(f"- profile: {record.profile or 'default'}, model {record.model or 'unknown'}")
    if record.parent_session_id:
        lines.append(f"- {record.source} of session `{record.parent_session_id}`")
    lines.append(f"- created: {when}" + (" · archived" if record.archived else ""))
    for i, m in enumerate(messages):
        # The ids the tool messages right after this one answer: those calls' results come
        # from them; any other call's (an agent's own, one Stop cut off) from its record.
        answered = set()
        for later in messages[i + 1 :] if m.tool_calls else ():
            if later.role != "tool":
                break
            answered.add((later.metadata or {}).get("tool_call_id"))
        for prompt in (m.metadata or {}).get("prompts") or ():
            lines.append("")
            lines.extend(_markdown_prompt(prompt))
        lines.append("")
        lines.extend(_markdown_message(m, answered))
    return "\n".join(lines).rstrip() + "\n"


def _markdown_message(m: StoredMessage, answered: set[Any]) -> builtins.list[str]:
    if m.role == "notice":
        return [f"> *{m.content}*"]
    if m.role == "error":
        error = m.error or {}
        kind = f" ({error['kind']})" if error.get("kind") else ""
        hint = f"\n> {error['hint']}" if error.get("hint") else ""
        return [f"> **Error**{kind}: {m.content}{hint}"]
    if m.role == "user":
        return ["## You", "", m.content]
    if m.role == "system":
        summary = (m.metadata or {}).get("kind") == "summary"
        return ["## Summary" if summary else "## System", "", m.content]
    if m.role == "tool":
        metadata = m.metadata or {}
        name, call_id = metadata.get("name") or "tool", metadata.get("tool_call_id", "")
        return [f"**Result** of `{name}` (`{call_id}`):", "", *_fenced(m.content, "text")]
    out = ["## Assistant" + (" (partial)" if m.partial else ""), ""]
    if m.reasoning:
        out += ["<details><summary>Reasoning</summary>", "", m.reasoning, "", "</details>", ""]
    calls: builtins.list[str] = []
    for call in m.tool_calls or []:
        calls += _markdown_call(call, with_result=call.get("id") not in answered)
    text = [m.content, ""] if m.content else []
    # A step of the tool loop says its text, then calls (the results follow as tool messages);
    # an agent reports the tools it ran itself before its answer.
    out += [*text, *calls] if answered else [*calls, *text]
    return out[:-1] if out[-1] == "" else out


def _markdown_call(call: dict[str, Any], *, with_result: bool) -> builtins.list[str]:
    """A tool call: its name and arguments (pretty JSON), and its result when no ``tool``
    message carries it."""
    facts = [f"`{call.get('id')}`"] if call.get("id") else []
    if isinstance(call.get("duration_ms"), int | float):
        facts.append(f"{call['duration_ms']:,.0f} ms")
    if call.get("error"):
        facts.append("failed")
    raw = call.get("arguments") or ""
    try:
        arguments = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        arguments = str(raw)
    about = f" ({', '.join(facts)})" if facts else ""
    out = [f"**Tool call** `{call.get('name') or 'tool'}`{about}:", ""]
    out += [*_fenced(arguments, "json"), ""]
    if with_result and "result" in call:
        out += ["Result:", "", *_fenced(str(call["result"]), "text"), ""]
    return out


def _markdown_prompt(prompt: dict[str, Any]) -> builtins.list[str]:
    """A prompt the run asked the person, and the answer, as a quote."""
    approval = prompt.get("kind") == "approval"
    lines = [f"**{'Approval' if approval else 'Question'}:** {prompt.get('text', '')}"]
    if prompt.get("detail"):
        lines += ["", *_fenced(str(prompt["detail"]), "text")]
    if not approval and prompt.get("choices"):
        lines += ["", "Choices: " + ", ".join(str(c) for c in prompt["choices"])]
    value, by = prompt.get("value"), prompt.get("by")
    if value is None:
        answer = "*No answer.*"
    else:
        said = APPROVAL_DECISIONS.get(str(value), str(value)) if approval else str(value)
        who = ANSWERED_BY.get(str(by), f"by {by}") if by else ""
        answer = f"**Answer:** {said}" + (f" — {who}" if who else "")
    lines += ["", answer]
    return [f"> {line}" if line else ">" for line in lines]


def _fenced(text: str, language: str) -> builtins.list[str]:
    """``text`` as a fenced code block that nothing in it can close, cut if long."""
    if len(text) > _MD_CUT:
        text = text[:_MD_CUT] + f"\n[… cut: {len(text) - _MD_CUT:,} more characters]"
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return [fence + language, *text.splitlines(), fence]
