"""render.py's ``MarkdownStream``: a reply rendered block by block as it streams matches a whole
render at every step, stable blocks never change nor render again, and only what changed is
reported. Shared helpers: ``render_support.py``; the renderer's safety and whole renders:
``test_render.py``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest
from hostile_markdown import HOSTILE, TRICKY
from render_support import chunks, joined

from hermes_nb.view import _markdown
from hermes_nb.view.render import (
    Block,
    MarkdownStream,
    markdown_to_html,
)


def full_blocks(text: str) -> list[str]:
    """A full render of ``text``, block by block (the same functions markdown_to_html uses)."""
    env: dict[str, object] = {}
    src = _markdown.normalize(text)
    return [_markdown.render_group(group, env) for group in _markdown.parse_blocks(src, env)]


def uncoloured(block: str) -> str:
    """A highlighted code block with its Pygments colours taken off."""
    return re.sub(r"</?span[^>]*>", "", block).replace(' class="hnb-hl"', "")


def stream_all(text: str, mode: str = "random") -> MarkdownStream:
    md = MarkdownStream()
    for piece in chunks(text, mode):
        md.append(piece)
    md.final()
    return md


# ----------------------------------------------------------------------------- streaming

STREAM_DOCS = [*TRICKY, *((n, m) for n, m in HOSTILE if len(m) < 300)]


@pytest.mark.parametrize("mode", ["char", "random"])
@pytest.mark.parametrize(("name", "doc"), STREAM_DOCS, ids=[n for n, _ in STREAM_DOCS])
def test_streamed_blocks_match_a_full_render_at_every_step(name: str, doc: str, mode: str) -> None:
    """The core property of the streaming renderer.

    After every call, block i equals block i of a full render of the text so far; the only
    exception is the last block while it is a code fence still open, which is the same HTML
    without syntax colours. A view that upserts the returned blocks by index (an empty block
    deletes) holds exactly ``.blocks``. After final() everything equals markdown_to_html.
    """
    md = MarkdownStream()
    view: dict[int, str] = {}
    text = ""
    for piece in chunks(doc, mode, seed=len(doc)):
        text += piece
        for block in md.update(text):
            if block.html:
                view[block.index] = block.html
            else:
                view.pop(block.index, None)
        got = [block.html for block in md.blocks]
        want = full_blocks(text)
        assert [block.index for block in md.blocks] == list(range(len(got)))
        assert [view[i] for i in sorted(view)] == got
        assert got[:-1] == want[:-1], text
        if got and got[-1] != want[-1]:
            assert want[-1].startswith('<pre class="hnb-hl">'), text
            assert got[-1] == uncoloured(want[-1]), text
        assert len(got) == len(want)
    for block in md.final():
        view[block.index] = block.html
    assert all(block.stable for block in md.blocks)
    assert joined(md.blocks) == markdown_to_html(doc)
    assert "".join(view[i] for i in sorted(view) if view[i]) == markdown_to_html(doc)


def _paragraphs_doc(n: int = 40) -> str:
    parts = []
    for i in range(n):
        kind = i % 5
        if kind == 0:
            parts.append(f"## Section {i}")
        elif kind == 1:
            parts.append(f"Paragraph {i} has **bold** text,\nspans two lines and a [link](/p{i}).")
        elif kind == 2:
            parts.append(f"- item {i}a\n- item {i}b\n\n  more {i}b\n- item {i}c")
        elif kind == 3:
            parts.append(f"```python\ndef f{i}(x):\n    return x * {i}\n```")
        else:
            parts.append(f"| k | v |\n|---|--:|\n| a{i} | {i} |\n| b{i} | {i + 1} |")
    return "\n\n".join(parts) + "\n"


def test_stable_blocks_never_change_and_are_never_rendered_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    renders: list[str] = []
    real: Callable[..., str] = _markdown.render_group

    def counting(*args: object, **kwargs: object) -> str:
        out = real(*args, **kwargs)
        renders.append(out)
        return out

    monkeypatch.setattr(_markdown, "render_group", counting)
    doc = _paragraphs_doc()
    md = MarkdownStream()
    frozen: dict[int, str] = {}  # index -> html when it became stable
    renders_when_frozen: dict[int, int] = {}
    updates = 0
    for piece in chunks(doc, "random", seed=5):
        md.append(piece)
        updates += 1
        for block in md.blocks:
            if block.index in frozen:
                assert block.stable
                assert block.html == frozen[block.index]
            elif block.stable:
                frozen[block.index] = block.html
                renders_when_frozen[block.index] = len(renders)
    md.final()
    assert len(frozen) == len(md.blocks) - 1  # all but the last settled while streaming
    assert len({b.html for b in md.blocks}) == len(md.blocks)  # so a render is known by html
    for index, html_ in frozen.items():
        assert html_ in renders[: renders_when_frozen[index]]
        assert html_ not in renders[renders_when_frozen[index] :], f"block {index} re-rendered"
    # A block waiting in the tail for the next one is cached, not rendered on every update.
    assert len(renders) <= updates + len(md.blocks)


def test_changed_blocks_only_and_removed_blocks_reported_empty() -> None:
    md = MarkdownStream()
    assert md.update("Foo\n#") == [
        Block(0, "<p>Foo</p>\n", False),
        Block(1, "<h1></h1>\n", False),
    ]
    assert md.update("Foo\n#") == []
    # "#x" is not a heading: the line joins the paragraph and block 1 is gone.
    assert md.update("Foo\n#x") == [Block(0, "<p>Foo\n#x</p>\n", False), Block(1, "", False)]
    assert len(md.blocks) == 1


def test_open_fence_streams_uncoloured_and_is_highlighted_once_closed() -> None:
    md = MarkdownStream()
    (block,) = md.update("```python\ndef f():\n")
    assert block.html == '<pre><code class="language-python">def f():\n</code></pre>\n'
    assert md.update("```python\ndef f():\n    pass\n```") == [
        Block(0, '<pre><code class="language-python">def f():\n    pass\n</code></pre>\n', False)
    ]
    (block,) = md.update("```python\ndef f():\n    pass\n```\n")
    assert block.html.startswith('<pre class="hnb-hl"><code class="language-python">')
    assert block.html == markdown_to_html("```python\ndef f():\n    pass\n```\n")


def test_final_reports_what_changed_and_settles() -> None:
    md = MarkdownStream()
    md.update("Para\n\n```py\nx = 1")
    changed = md.final()
    assert changed == [Block(1, markdown_to_html("```py\nx = 1"), True)]
    assert all(block.stable for block in md.blocks)
    assert joined(md.blocks) == markdown_to_html("Para\n\n```py\nx = 1")
    assert md.final() == []
    with pytest.raises(RuntimeError, match="new MarkdownStream"):
        md.append("more")


def test_final_of_settled_text_changes_nothing() -> None:
    md = MarkdownStream()
    md.update("# Title\n\nText.\n")
    assert md.final() == []
    assert [b.stable for b in md.blocks] == [True, True]


def test_forward_reference_definition_updates_an_earlier_stable_block() -> None:
    md = MarkdownStream()
    md.update("See [docs].\n\nMiddle.\n\nMore.\n\n")
    assert md.blocks[0].stable
    assert md.blocks[0].html == "<p>See [docs].</p>\n"
    changed = md.update("See [docs].\n\nMiddle.\n\nMore.\n\n[docs]: https://example.com\n")
    assert Block(0, markdown_to_html("See [docs].\n\n[docs]: https://example.com"), True) in changed
    assert 'href="https://example.com"' in md.blocks[0].html


def test_update_requires_the_text_to_grow() -> None:
    md = MarkdownStream()
    md.update("Hello world")
    with pytest.raises(ValueError, match="previous text"):
        md.update("Goodbye")
    with pytest.raises(ValueError, match="previous text"):
        md.update("Hello")


def test_crlf_split_across_chunks_equals_a_full_render() -> None:
    md = MarkdownStream()
    for piece in ["a\r", "\nb\r", "\n\r", "\n# c\r", "\n"]:
        md.append(piece)
    md.final()
    assert joined(md.blocks) == markdown_to_html("a\r\nb\r\n\r\n# c\r\n")


def test_update_and_append_agree() -> None:
    doc = _paragraphs_doc(12)
    by_append = stream_all(doc)
    by_update = MarkdownStream()
    text = ""
    for piece in chunks(doc, "random", seed=9):
        text += piece
        by_update.update(text)
    by_update.final()
    assert by_update.blocks == by_append.blocks
    assert joined(by_update.blocks) == markdown_to_html(doc)


def test_block_is_frozen() -> None:
    block = Block(0, "<p>x</p>", True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.html = "<p>y</p>"  # type: ignore[misc]
