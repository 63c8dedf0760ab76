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

import re

from . import render

__all__ = ["detail_html", "is_unified_diff"]

# "@@ -3,7 +3,8 @@": how many old and new lines the hunk holds (1 when the count is left out).
_HUNK = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


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
    rows, added, removed = _rows(detail.splitlines())
    count = f"{_lines(removed)} removed, {_lines(added)} added"
    body = "\n".join(rows)
    return (
        '<div class="hnb-ask-diff">'
        f'<div class="hnb-ask-diff-legend">Changes: {count} '
        "(<span>−</span> removed, <span>+</span> added)</div>"
        f'<pre class="hnb-ask-detail hnb-ask-diff-body"><code>{body}</code></pre></div>'
    )


def _rows(lines: list[str]) -> tuple[list[str], int, int]:
    """The diff's rows, and how many lines it adds and removes. Each hunk's lines are read by
    the counts in its ``@@`` header, so a removed line that reads ``-- x`` is never taken for a
    file header. One file's header is the card's text's job; several files are named."""
    headers = [
        i
        for i in range(len(lines) - 1)
        if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ ")
    ]
    rows: list[str] = []
    added = removed = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if i in headers:
            if len(headers) > 1:
                new, old = lines[i + 1][4:].strip(), line[4:].strip()
                rows.append(_row("file", "", old if new == "/dev/null" else new))
            i += 2
            continue
        hunk = _HUNK.match(line)
        i += 1
        if hunk is None:
            rows.append(_row("note", "", line))
            continue
        rows.append(_row("hunk", "", line))
        old_left = int(hunk.group(1) if hunk.group(1) is not None else 1)
        new_left = int(hunk.group(2) if hunk.group(2) is not None else 1)
        while i < len(lines) and (old_left > 0 or new_left > 0 or lines[i].startswith("\\")):
            text = lines[i]
            if text.startswith("\\"):  # "\ No newline at end of file"
                rows.append(_row("note", "", text))
            elif text.startswith("+"):
                added, new_left = added + 1, new_left - 1
                rows.append(_row("add", "+", text[1:]))
            elif text.startswith("-"):
                removed, old_left = removed + 1, old_left - 1
                rows.append(_row("del", "−", text[1:]))
            else:
                old_left, new_left = old_left - 1, new_left - 1
                rows.append(_row("ctx", " ", text[1:] if text.startswith(" ") else text))
            i += 1
    return rows, added, removed


def _lines(n: int) -> str:
    return f"{n} line{'s' if n != 1 else ''}"


def _row(op: str, mark: str, text: str) -> str:
    tag = {"add": "ins", "del": "del"}.get(op, "span")  # file, hunk, note, ctx: plain rows
    body = render.escape(text) or " "
    mark_html = f'<span class="hnb-ask-diff-mark">{mark}</span>' if mark else ""
    return f'<{tag} class="hnb-ask-diff-line" data-op="{op}">{mark_html}{body}</{tag}>'
