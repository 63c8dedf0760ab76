"""An approval's detail that is a unified diff, shown as one: each line marked and coloured.

A card's detail is what the person approves, verbatim, and it stays text: the notebook's edit
tools and an ACP agent's file writes send a unified diff (``difflib.unified_diff``'s
``---`` / ``+++`` / ``@@`` form). Shown as plain code, added and removed lines look alike;
here each line is its own element whose ``+`` or ``−`` mark is real text in the line (so a
screen reader, a copy and a high-contrast theme all keep it) and whose colour only repeats
what the mark says. ``<ins>`` and ``<del>`` carry the meaning for assistive technology that
announces them. A legend and a count say in words what the marks mean.

Everything is escaped: a diff holds the model's text.
"""

from __future__ import annotations

from . import render

__all__ = ["detail_html", "is_unified_diff"]


def is_unified_diff(text: str) -> bool:
    """Whether ``text`` is a unified diff (``--- a``, ``+++ b``, then a ``@@`` hunk)."""
    lines = text.splitlines()
    return (
        len(lines) >= 3
        and lines[0].startswith("--- ")
        and lines[1].startswith("+++ ")
        and any(line.startswith("@@") for line in lines[2:])
    )


def detail_html(detail: str) -> str:
    """A card's detail: a unified diff line by line with its marks, anything else as code."""
    if not is_unified_diff(detail):
        return f'<pre class="hnb-ask-detail"><code>{render.escape(detail)}</code></pre>'
    rows: list[str] = []
    added = removed = 0
    for line in detail.splitlines()[2:]:  # the file header is said by the card's text
        if line.startswith("@@"):
            rows.append(_row("hunk", "", line))
        elif line.startswith("+"):
            added += 1
            rows.append(_row("add", "+", line[1:]))
        elif line.startswith("-"):
            removed += 1
            rows.append(_row("del", "−", line[1:]))
        elif line.startswith("\\"):  # "\ No newline at end of file"
            rows.append(_row("note", "", line))
        else:
            rows.append(_row("ctx", " ", line[1:] if line.startswith(" ") else line))
    count = f"{_lines(removed)} removed, {_lines(added)} added"
    body = "\n".join(rows)
    return (
        '<div class="hnb-ask-diff">'
        f'<div class="hnb-ask-diff-legend">Changes: {count} '
        "(<span>−</span> removed, <span>+</span> added)</div>"
        f'<pre class="hnb-ask-detail hnb-ask-diff-body"><code>{body}</code></pre></div>'
    )


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


def _row(op: str, mark: str, text: str) -> str:
    tag = {"add": "ins", "del": "del"}.get(op, "span")
    body = render.escape(text) or " "
    mark_html = f'<span class="hnb-ask-diff-mark">{mark}</span>' if mark else ""
    return f'<{tag} class="hnb-ask-diff-line" data-op="{op}">{mark_html}{body}</{tag}>'
