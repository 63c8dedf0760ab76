"""Small helpers shared by the benchmark scripts: statistics and one-line reports.

Every figure a benchmark prints is compared with a target and, where it makes sense, with a
baseline measured in the same run, so a slow or busy machine moves both sides together.
"""

from __future__ import annotations

import math
import random
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["Report", "median", "percentile", "prose_sentence", "use_tests_dir"]


def use_tests_dir() -> Path:
    """Put ``tests/`` on ``sys.path`` (for ``sse_server``) and the repo root (for ``hermes_nb``)."""
    root = Path(__file__).resolve().parent.parent
    for path in (root, root / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    return root


def prose_sentence(rng: random.Random, words: Sequence[str], *, longest: int, link: float) -> str:
    """One sentence of a model-like Markdown reply: 8 to ``longest`` words, with inline code,
    a link (probability ``link``) and bold now and then; deterministic for a seeded ``rng``."""
    text = " ".join(rng.choice(words) for _ in range(rng.randint(8, longest)))
    if rng.random() < 0.3:
        text += f" with `df.{rng.choice(words)}()`"
    if rng.random() < link:
        text += f" (see [the docs](https://example.com/{rng.choice(words)}))"
    if rng.random() < 0.2:
        text += f" and **{rng.choice(words)}**"
    return text[0].upper() + text[1:] + "."


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (nearest rank): ``percentile(v, 100)`` is the maximum."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class Report:
    """Collects ``name: figure (target) ok/MISS`` lines and says at the end whether all passed."""

    def __init__(self) -> None:
        self.missed: list[str] = []

    def figure(self, name: str, value: float, unit: str, target: float, detail: str = "") -> None:
        """Print one figure that should be at most ``target``."""
        ok = value <= target
        if not ok:
            self.missed.append(name)
        extra = f"  [{detail}]" if detail else ""
        print(
            f"{name:<44} {value:>10.3f} {unit:<4} target <= {target:g} {unit:<4} "
            f"{'ok' if ok else 'MISS'}{extra}",
            flush=True,
        )

    def ratio(self, name: str, measured: float, baseline: float, target: float) -> None:
        """Print ``measured / baseline`` against a target ratio, with both absolute values."""
        self.figure(
            name,
            measured / baseline,
            "x",
            target,
            f"{measured * 1000:.1f} ms vs baseline {baseline * 1000:.1f} ms",
        )

    def summary(self) -> int:
        """Print the verdict; the exit status (0 when every target was met)."""
        if self.missed:
            print(f"missed: {', '.join(self.missed)}")
            return 1
        print("all targets met")
        return 0
