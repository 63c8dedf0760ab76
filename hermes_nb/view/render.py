"""Markdown → sanitised HTML, whole or incrementally by block.

:func:`markdown_to_html` renders a finished reply. :class:`MarkdownStream` renders a reply while
it streams: it splits the text into top-level Markdown blocks, renders each finished block once,
and re-renders only the growing tail, returning the blocks whose HTML changed so a view can
upsert them by index (DESIGN.md §4: frames are upserts of whole blocks).

The guarantee, pinned by ``tests/test_render.py``: after every call, the blocks of
:attr:`MarkdownStream.blocks` equal those of a full render of the text so far, block for block,
with one exception: while the last block is a code fence whose closing line has not arrived, it
is shown *without syntax colours* (same text, same ``<pre><code class="language-…">``).
Re-highlighting a growing fence on every refresh costs CPU and bytes quadratic in its length;
it is highlighted once, when it closes. After :meth:`MarkdownStream.final`, the concatenation
equals ``markdown_to_html(text)`` exactly.

When a block is finished (the boundary rule)
    A block is *stable* once the next top-level block has started and that block's first two
    lines are complete (terminated by a newline). In CommonMark a block can only be changed by
    later text through the line that ends it: a paragraph continues lazily or turns into a
    setext heading, a list or quote continues after blank lines, an unclosed fence swallows
    everything. Whether a line ends the previous block depends on that line alone, except that
    a table interrupts a paragraph only if the line *after* its header is a delimiter row —
    hence two complete lines. An unclosed fence never has a next block, so it stays in the tail.

Link reference definitions
    ``[label]: url`` may appear after the text that uses ``[label]``, changing an earlier,
    already stable block. Whenever the set of definitions changes (one appears, or a
    definition still being typed changes or stops parsing), stable blocks whose source
    mentions the label's words are rendered again and reported if their HTML changed. This
    is the one case in which a stable block is re-rendered; replies without reference
    definitions never re-render a stable block.

Everything in this module returns HTML that has been through the allow-list sanitiser.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

from . import _markdown
from ._markdown import highlight_css

__all__ = [
    "Block",
    "MarkdownStream",
    "escape",
    "highlight_css",
    "markdown_to_html",
    "render_tool_args",
]


def markdown_to_html(text: str) -> str:
    """Render a whole Markdown document to sanitised HTML."""
    return _markdown.render_source(_markdown.normalize(text), {})


def escape(text: str) -> str:
    """Escape ``text`` for HTML element content or a quoted attribute (tool output, errors)."""
    return html.escape(text, quote=True)


def render_tool_args(json_text: str) -> str:
    """Tool-call arguments as a code block: pretty, highlighted JSON if it parses, else escaped.

    Models often stream arguments that are not (yet) valid JSON; those are shown verbatim.
    """
    try:
        pretty = json.dumps(json.loads(json_text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):
        return f"<pre><code>{escape(json_text)}</code></pre>\n"
    return _markdown.sanitize(_markdown.highlight_json(pretty + "\n"))


@dataclass(frozen=True, slots=True)
class Block:
    """One top-level block of a reply.

    ``index`` always names the same region of the reply, so a view can upsert by it. An empty
    ``html`` means the block no longer exists (the tail was re-split into fewer blocks) and the
    view should drop it. ``stable`` blocks never change again, short of a later link reference
    definition (see the module docstring).
    """

    index: int
    html: str
    stable: bool


class MarkdownStream:
    """Incremental renderer for one streaming reply (use one per reply, from one thread).

    Feed it the whole text so far with :meth:`update` or new text with :meth:`append`; both
    return the blocks whose HTML changed since the previous call (new, changed or removed),
    ordered by index. :meth:`final` settles the reply.
    """

    def __init__(self) -> None:
        self._stable: list[Block] = []
        self._stable_sources: list[str] = []  # normalised source of each stable block
        self._stable_refs: dict[str, dict[str, Any]] = {}  # definitions in the stable part
        self._tail_src = ""  # normalised text after the last stable block
        self._tail: list[Block] = []  # tail blocks as last reported
        self._cache: dict[str, str] = {}  # tail block source -> html, from the last refresh
        self._refs: dict[str, tuple[object, object]] = {}  # definitions in effect, last refresh
        self._raw_len = 0
        self._raw_ends_cr = False
        self._last_text: str | None = None
        self._settled = False

    @property
    def blocks(self) -> list[Block]:
        """Every current block, in order: a full render of the text so far, block by block.

        (Up to the colours of a code fence still open at the end; see the module docstring.)
        """
        return [*self._stable, *self._tail]

    def update(self, text: str) -> list[Block]:
        """Take the whole reply so far and refresh.

        Raises :class:`ValueError` if ``text`` does not extend the text given before: a
        different reply needs a new stream.
        """
        if len(text) < self._raw_len or (
            self._last_text is not None and not text.startswith(self._last_text)
        ):
            raise ValueError(
                "MarkdownStream.update() needs the previous text plus new text; "
                "start a new MarkdownStream for a different reply."
            )
        delta = text[self._raw_len :]
        changed = self.append(delta)
        self._last_text = text
        return changed

    def append(self, delta: str) -> list[Block]:
        """Add ``delta`` to the reply and refresh."""
        if self._settled:
            raise RuntimeError(
                "This MarkdownStream is final; start a new MarkdownStream for a new reply."
            )
        self._last_text = None
        if not delta:
            return []
        self._raw_len += len(delta)
        if self._raw_ends_cr and delta.startswith("\n"):
            delta = delta[1:]  # the "\n" of a "\r\n" split across two deltas: already counted
        self._raw_ends_cr = delta.endswith("\r")
        self._tail_src += _markdown.normalize(delta)
        return self._refresh(settled=False)

    def final(self) -> list[Block]:
        """Settle the reply: every block becomes stable; returns the blocks that changed.

        Afterwards :attr:`blocks` is ``markdown_to_html(text)`` split into blocks, exactly.
        Calling it again returns nothing; appending afterwards raises :class:`RuntimeError`.
        """
        if self._settled:
            return []
        changed = self._refresh(settled=True)
        self._settled = True
        return changed

    # -- internals ----------------------------------------------------------------------------

    def _refresh(self, *, settled: bool) -> list[Block]:
        """Re-parse the tail, render what changed, move finished blocks to the stable list."""
        tail = self._tail_src
        env: dict[str, Any] = {"references": dict(self._stable_refs)}
        groups = _markdown.parse_blocks(tail, env)
        changed = self._apply_reference_changes(env)
        starts = _line_starts(tail)
        n_final = len(groups) if settled else _count_finished(groups, len(starts) - 1)

        base = len(self._stable)
        cache: dict[str, str] = {}
        sources: list[str] = []
        fresh: list[Block] = []
        for i, group in enumerate(groups):
            stop = starts[group.end] if group.end < len(starts) else len(tail)
            src = tail[starts[group.start] : stop]
            preview = (
                not settled
                and i == len(groups) - 1
                and _markdown.is_open_fence(group, tail, starts)
            )
            key = f"\0preview\0{src}" if preview else src
            html_ = self._cache.get(key) or cache.get(key)
            if html_ is None:
                html_ = _markdown.render_group(group, env, preview=preview)
            cache[key] = html_
            sources.append(src)
            fresh.append(Block(base + i, html_, i < n_final))

        for i in range(max(len(fresh), len(self._tail))):
            if i >= len(fresh):
                changed.append(Block(base + i, "", False))
            elif i >= len(self._tail) or self._tail[i].html != fresh[i].html:
                changed.append(fresh[i])

        if n_final:
            cut = groups[n_final - 1].end
            cut_at = starts[cut] if cut < len(starts) else len(tail)
            self._settle(fresh[:n_final], sources[:n_final], tail[:cut_at])
            self._tail_src = tail[cut_at:]
        self._tail = fresh[n_final:]
        self._cache = cache
        return sorted(changed, key=lambda block: block.index)

    def _settle(self, blocks: list[Block], sources: list[str], settled_src: str) -> None:
        """Make ``blocks`` stable; ``settled_src`` is the text they (and gaps between) span."""
        self._stable.extend(blocks)
        self._stable_sources.extend(sources)
        if "]:" in settled_src:  # every link definition has one: "[label]:", nothing between
            # Its definitions, found by parsing it alone: it starts and ends on block
            # boundaries, so it parses as it does in context.
            _markdown.parse_blocks(settled_src, {"references": self._stable_refs})

    def _apply_reference_changes(self, env: dict[str, Any]) -> list[Block]:
        """Re-render the stable blocks that may use a link definition that just changed.

        Returns those whose HTML changed. Cached tail renders are dropped too.
        """
        refs = _markdown.reference_targets(env)
        if refs == self._refs:
            return []
        old = self._refs
        labels = {label for label in refs.keys() | old.keys() if refs.get(label) != old.get(label)}
        self._refs = refs
        self._cache = {}
        changed = []
        for i, src in enumerate(self._stable_sources):
            if not _markdown.references_mentioned(src, labels):
                continue
            html_ = _markdown.render_source(src, {"references": dict(env["references"])})
            if html_ != self._stable[i].html:
                self._stable[i] = Block(i, html_, True)
                changed.append(self._stable[i])
        return changed


def _count_finished(groups: list[_markdown.TokenGroup], complete_lines: int) -> int:
    """How many leading blocks later text can no longer change (the boundary rule).

    Block ``i`` is finished once block ``i + 1`` has started and its first two lines are
    complete: see the module docstring for why one line is not enough (tables).
    """
    n = 0
    while n + 1 < len(groups) and groups[n + 1].start + 2 <= complete_lines:
        n += 1
    return n


def _line_starts(text: str) -> list[int]:
    """Offsets where each line of ``text`` starts, plus ``len(text)`` if it ends in a newline.

    ``len(result) - 1`` is then the number of complete lines.
    """
    starts = [0]
    find = text.find
    pos = find("\n")
    while pos >= 0:
        starts.append(pos + 1)
        pos = find("\n", pos + 1)
    return starts
