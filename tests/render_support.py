"""What the renderer's tests share (``test_render.py``, ``test_render_stream.py``): a Markdown
text cut into chunks the way a model's tokens arrive, and a stream's blocks joined."""

from __future__ import annotations

import random
from collections.abc import Iterator

from hermes_nb.view.render import Block


def chunks(text: str, mode: str, seed: int = 0) -> Iterator[str]:
    """``text`` cut into pieces: one character at a time, or seeded random sizes (1–16)."""
    rng = random.Random(seed)
    i = 0
    while i < len(text):
        size = 1 if mode == "char" else rng.randint(1, 16)
        yield text[i : i + size]
        i += size


def joined(blocks: list[Block]) -> str:
    return "".join(block.html for block in blocks)
