"""The static bundle a run leaves behind: what a saved notebook shows without a kernel.

``text/html`` is the live view's DOM frozen (the same skeleton and classes as the view
(``labextension/src/view/``) builds, already sanitised block by block, less its empty
containers) with the rules of the stylesheet it uses inline (:mod:`._css_subset`), so the saved
output looks like the live view in any front end that trusts the notebook; ``text/markdown``
and a stable ``text/plain`` (no ids, times or token counts: nbval compares it) serve everything
else, and ``metadata["hermes_nb"]`` names the session and run.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from . import render
from ._blocks import RESULT_PREVIEW, Conversation, Transcript, conversation, decision, status_label
from ._css_subset import css_subset
from ._protocol import BLOCK_KINDS, FLOW_KINDS, segment_of
from ._stylesheet import stylesheet

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = ["bundle", "static_bundle"]

log = logging.getLogger(__name__)


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


@lru_cache(maxsize=8)  # a settled run's bundle is built again for a view rendered after it
def _css(html: str) -> str:
    """The rules of the view's stylesheet (:mod:`._stylesheet`) the answer's HTML uses, and
    the code colours of the tokens its highlighted code has (if it has any), shortened: a short
    answer's is 1.5 KB, where the whole stylesheet less the live view's controls was 4 KB, and a
    code answer's every Pygments rule 16 KB more. Should the subset ever fail (a bug), the answer
    carries the whole: the run still settles, styled."""
    css = stylesheet()
    if 'class="hnb-hl' in html:  # highlighted code (reply or tool arguments)
        css += render.highlight_css()
    try:
        return css_subset(css, html)
    except Exception:
        log.exception("The saved answer's stylesheet could not be subset; it carries the whole.")
        return css


def _static_html(blocks: dict[str, tuple[str, str]], state: str, bot: str, model: str) -> str:
    """The live view's DOM, frozen: same skeleton and classes as the view builds, less the
    containers left empty (the view hides those; here they would cost their markup and the
    ``:empty`` rules that hide them, in every saved answer)."""
    by_kind: dict[str, list[str]] = {kind: [] for kind in BLOCK_KINDS}
    flow: dict[int, dict[str, list[str]]] = {}
    for key, (kind, html) in blocks.items():
        if not html:
            continue
        # No data-block (nor data-seg below): the live view finds a block by it; a saved one
        # is never looked up, and each cost its 20-odd bytes in every saved answer.
        node = f'<div class="hnb-block">{html}</div>'
        if kind in FLOW_KINDS:
            flow.setdefault(segment_of(key), {k: [] for k in FLOW_KINDS})[kind].append(node)
        else:
            by_kind.setdefault(kind, []).append(node)

    def slot(kind: str) -> str:
        return "".join(by_kind[kind])

    parts = [
        # mathjax_ignore (MathJax 3's name; tex2jax_ignore, MathJax 2's): the live view shows
        # a reply's text as written, so the settled answer does too. Without it JupyterLab's
        # MathJax typesets the answer's HTML output: "$5 or $10" became a formula once the
        # reply settled, and it combed every long answer's text for one.
        f'<div class="hnb-chat hnb-static mathjax_ignore tex2jax_ignore"'
        f' data-state="{render.escape(state)}">',
        '<div class="hnb-head">'
        f'<span class="hnb-bot">{render.escape(bot)}</span>'
        f'<span class="hnb-model">{render.escape(model)}</span></div>',
        _box("hnb-prompt jp-RenderedHTMLCommon", slot("prompt")),
        _box("hnb-infos", slot("info")),
    ]
    if by_kind["reasoning"]:
        parts.append(
            '<details class="hnb-reasoning"><summary>Reasoning</summary>'
            f'<div class="hnb-reasoning-body jp-RenderedHTMLCommon">{slot("reasoning")}</div>'
            "</details>"
        )
    parts += [
        _box("hnb-flow", "".join(_segment_html(flow[n]) for n in sorted(flow))),
        _box("hnb-errors", slot("error")),
        _box("hnb-notices", slot("notice")),
        f'<div class="hnb-footer"><div class="hnb-status">{slot("status")}</div></div>',
        "</div>",
    ]
    html = "".join(parts)
    return f"<style>{_css(html)}</style>{html}"


def _segment_html(nodes: dict[str, list[str]]) -> str:
    """One conversation segment, as the view builds it: reply, tools, cards."""
    return (
        '<div class="hnb-seg">'
        + _box("hnb-reply jp-RenderedHTMLCommon", "".join(nodes["reply"]))
        + _box("hnb-tools", "".join(nodes["tool"]))
        + _box("hnb-asks", "".join(nodes["ask"]))
        + "</div>"
    )


def _box(classes: str, inner: str) -> str:
    """A container of the view's skeleton, left out when it holds nothing."""
    return f'<div class="{classes}">{inner}</div>' if inner else ""


def _quote(text: str) -> str:
    return "\n".join(f"> {line}" if line else ">" for line in text.strip().splitlines())


def _fence(text: str) -> str:
    """A code fence that ``text`` cannot close."""
    return "~~~~" if "```" in text else "```"


def _inline_code(text: str) -> str:
    """``text`` as inline code (on one line), with enough backticks around it."""
    one = " ".join(text.split())
    ticks = "`"
    while ticks in one:
        ticks += "`"
    pad = " " if one.startswith("`") or one.endswith("`") else ""
    return f"{ticks}{pad}{one}{pad}{ticks}"


def _prompt_line(prompt: dict[str, Any], markdown: bool) -> str:
    """One prompt and its answer on a line: ``Approval: Allow …? `delete(path='/tmp/x')` —
    Allowed once, by you`` (the Markdown one bold and quoted)."""
    kind = "Approval" if prompt.get("kind") == "approval" else "Question"
    text = str(prompt.get("text", "")).strip()
    detail = str(prompt.get("detail") or "").strip()
    if detail:
        text += " " + (_inline_code(detail) if markdown else " ".join(detail.split()))
    if "value" in prompt:
        what, who = decision(
            kind.lower(), str(prompt["value"]), str(prompt["by"]), prompt.get("options") or ()
        )
        outcome = f"{what}, {who}"
    else:
        outcome = "not answered"
    if markdown:
        return f"> **{kind}:** {text} — {outcome}"
    return f"{kind}: {text} — {outcome}"


def _markdown(run: Run, state: str, bot: str) -> str:
    conv = conversation(run)
    parts = [f"**You:**\n\n{_quote(run.request.prompt)}"]
    if run.reasoning.strip():
        parts.append(f"*Reasoning:*\n\n{_quote(run.reasoning)}")
    parts.append(f"**{bot}:**")
    for segment in conv.segments:
        text = "".join(segment.text).strip()
        if text:
            parts.append(text)
        # A segment's prompts first: what was asked and decided, then the calls that ran.
        parts.extend(_prompt_line(conv.prompts[pid], True) for pid in segment.asks)
        for call_id in segment.tools:
            call = run.tool_calls.get(call_id, {})
            line = f"*Tool* `{call.get('name') or 'tool'}`"
            if "result" in call:
                line += " (failed)" if call.get("error") else ""
                result = str(call.get("result", ""))[:RESULT_PREVIEW]
                fence = _fence(result)
                line += f":\n\n{fence}\n{result}\n{fence}"
            parts.append(line)
    if run.error:
        hint = run.error.get("hint")
        parts.append(f"> **Error:** {run.error.get('message', '')}" + (f" {hint}" if hint else ""))
    if run.notice:
        parts.append(f"*{run.notice}*")
    parts.append(f"*{status_label(state, run.finish_reason)}*")
    return "\n\n".join(parts) + "\n"


def _plain(run: Run, state: str, bot: str, model: str) -> str:
    """Stable text: no ids, addresses, times or token counts (nbval compares it)."""
    conv: Conversation = conversation(run)
    lines = [
        f"{bot} ({model}) · {status_label(state, run.finish_reason)}",
        f"You: {run.request.prompt.strip()}",
    ]
    for segment in conv.segments:
        text = "".join(segment.text).strip()
        if text:
            lines.append(f"{bot}: {text}")
        lines.extend(_prompt_line(conv.prompts[pid], False) for pid in segment.asks)
        for call_id in segment.tools:
            call = run.tool_calls.get(call_id, {})
            flag = " (failed)" if call.get("error") else ""
            lines.append(f"[tool {call.get('name') or 'tool'}{flag}]")
    if run.error:
        lines.append(f"Error: {run.error.get('message', '')}")
        if run.error.get("hint"):
            lines.append(f"Hint: {run.error['hint']}")
    if run.notice:
        lines.append(run.notice)
    return "\n".join(lines)
