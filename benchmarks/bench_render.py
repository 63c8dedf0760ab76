"""Streaming render cost against one full render of the same reply, measured in the same run.

A ~50 KB reply (paragraphs, lists, code, a table; generated deterministically) arrives in 10,000
chunks over ~10 s of simulated stream time. The widget pump refreshes at most 30 times a second
(DESIGN.md §3, invariant 5), so ``MarkdownStream.update()`` runs ~300 times, then ``final()``.

Printed ratios (targets in brackets):

* CPU, 30 Hz: all updates + final vs one ``markdown_to_html`` of the final text   [≤ 3×]
* CPU, every chunk: the same with ``update()`` after each of the 10,000 chunks    [reported]
* bytes, 30 Hz: HTML of the changed blocks sent across all updates vs the final HTML [≤ 3×]

Run: ``.venv/bin/python benchmarks/bench_render.py``
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from _common import prose_sentence  # benchmarks/ is sys.path[0]

from hermes_nb.view.render import MarkdownStream, markdown_to_html

CHUNKS = 10_000
STREAM_SECONDS = 10.0
PUMP_HZ = 30
TARGET_BYTES = 50_000
_VOCABULARY = (
    "the merge sorts each partition before it joins rows so memory grows with the largest "
    "key group index pandas frame column query plan latency cache"
)
_WORDS = _VOCABULARY.split()


def make_reply(size: int = TARGET_BYTES, seed: int = 7) -> str:
    """A deterministic Markdown reply of about ``size`` characters, shaped like a model's."""
    rng = random.Random(seed)
    words = _WORDS

    def sentence() -> str:
        return prose_sentence(rng, words, longest=18, link=0.2)

    def paragraph() -> str:
        return " ".join(sentence() for _ in range(rng.randint(2, 5)))

    def code() -> str:
        lines = ["```python", "import pandas as pd", ""]
        for i in range(rng.randint(6, 18)):
            name = rng.choice(words)
            lines.append(f"def step_{i}(df: pd.DataFrame) -> pd.DataFrame:")
            lines.append(f'    """Apply {name}."""')
            lines.append(f"    return df.groupby('{name}').agg({{'x': 'sum'}})  # {i}")
        lines.append("```")
        return "\n".join(lines)

    def bullets() -> str:
        marker = rng.choice(["-", "1."])
        return "\n".join(f"{marker} {sentence()}" for _ in range(rng.randint(3, 7)))

    def table() -> str:
        rows = ["| step | rows | time (ms) |", "|:-----|-----:|----------:|"]
        rows += [
            f"| {rng.choice(words)} | {rng.randint(1, 10**6)} | {rng.random() * 100:.1f} |"
            for _ in range(rng.randint(5, 12))
        ]
        return "\n".join(rows)

    parts: list[str] = []
    section = 0
    while sum(len(p) + 2 for p in parts) < size:
        section += 1
        parts.append(f"## {section}. {sentence()[:40]}")
        for make in rng.sample([paragraph, paragraph, bullets, code, table], k=3):
            parts.append(make())
    return "\n\n".join(parts) + "\n"


def chunked(text: str, n: int = CHUNKS) -> list[str]:
    """``text`` split into ``n`` chunks of deterministic, uneven sizes (like tokens)."""
    rng = random.Random(11)
    cuts = sorted(rng.sample(range(1, len(text)), n - 1))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


def stream(chunks: list[str], every: int) -> tuple[float, int]:
    """Feed ``chunks``, calling ``update()`` when ``every`` chunks arrived; (CPU s, bytes sent)."""
    md = MarkdownStream()
    sent = 0
    text = ""
    start = time.process_time()
    for i, chunk in enumerate(chunks, 1):
        text += chunk
        if i % every == 0:
            sent += sum(len(block.html) for block in md.update(text))
    md.update(text)
    sent += sum(len(block.html) for block in md.final())
    return time.process_time() - start, sent


def best(repeat: int, fn: Callable[[], float]) -> float:
    return min(fn() for _ in range(repeat))


def main() -> None:
    reply = make_reply()
    chunks = chunked(reply)
    final_html = markdown_to_html(reply)

    def full() -> float:
        start = time.process_time()
        markdown_to_html(reply)
        return time.process_time() - start

    full_cpu = best(5, full)
    per_update = max(1, round(CHUNKS / (STREAM_SECONDS * PUMP_HZ)))
    pump_cpu, pump_bytes = min(stream(chunks, per_update) for _ in range(3))
    chunk_cpu, chunk_bytes = stream(chunks, 1)

    updates = CHUNKS // per_update
    print(f"reply: {len(reply):,} chars in {CHUNKS:,} chunks; final HTML {len(final_html):,} B")
    print(f"full render (once):            {full_cpu * 1000:8.1f} ms CPU")
    print(
        f"30 Hz ({updates} updates):         {pump_cpu * 1000:8.1f} ms CPU  "
        f"ratio {pump_cpu / full_cpu:5.2f}x  (target <= 3x)"
    )
    print(
        f"every chunk ({CHUNKS:,} updates): {chunk_cpu * 1000:8.1f} ms CPU  "
        f"ratio {chunk_cpu / full_cpu:5.2f}x  (reported)"
    )
    print(
        f"bytes sent, 30 Hz:             {pump_bytes:8,} B      "
        f"ratio {pump_bytes / len(final_html):5.2f}x  (target <= 3x)"
    )
    print(
        f"bytes sent, every chunk:       {chunk_bytes:8,} B      "
        f"ratio {chunk_bytes / len(final_html):5.2f}x  (reported)"
    )


if __name__ == "__main__":
    main()
