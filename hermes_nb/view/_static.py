"""The static bundle a run leaves behind: what a saved notebook shows without a kernel.

``text/html`` is the live view's DOM frozen (the same skeleton and classes as ``static/chat.js``
builds, already sanitised block by block) with the stylesheet inline, so the saved output looks
like the live view in any front end that trusts the notebook; ``text/markdown`` and a stable
``text/plain`` (no ids, times or token counts: nbval compares it) serve everything else, and
``metadata["hermes_nb"]`` names the session and run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import render
from ._blocks import RESULT_PREVIEW, Transcript, status_label
from ._protocol import BLOCK_KINDS

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = ["bundle", "static_bundle"]

_STATIC = Path(__file__).parent / "static"


def static_bundle(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's transcript as ``(data, metadata)``: sanitised ``text/html`` with the live view's
    classes, ``text/markdown``, a stable ``text/plain`` and ``metadata["hermes_nb"]``.

    Call it once the run has settled (``run.wait()``); before that it shows the run so far.
    """
    transcript = Transcript(run)
    blocks = transcript.consume(run.events(after_seq=0))
    return bundle(run, blocks, transcript.state if blocks else str(run.status))


def bundle(
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
            line += f":\n\n{fence}\n{str(call.get('result', ''))[:RESULT_PREVIEW]}\n{fence}"
        parts.append(line)
    parts.append(f"**{bot}:**\n\n{run.text.strip()}" if run.text.strip() else f"**{bot}:**")
    if run.error:
        hint = run.error.get("hint")
        parts.append(f"> **Error:** {run.error.get('message', '')}" + (f" {hint}" if hint else ""))
    if run.notice:
        parts.append(f"*{run.notice}*")
    parts.append(f"*{status_label(state, run.finish_reason)}*")
    return "\n\n".join(parts) + "\n"


def _plain(run: Run, state: str, bot: str, model: str) -> str:
    """Stable text: no ids, addresses, times or token counts (nbval compares it)."""
    lines = [
        f"{bot} ({model}) · {status_label(state, run.finish_reason)}",
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
