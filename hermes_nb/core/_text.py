"""Small text helpers shared by the user-facing commands (magics, doctor)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["md_table", "short"]


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; ``|`` inside cells is escaped and ``None`` shows as empty."""
    escaped = "\\|"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = ("" if c is None else str(c).replace("|", escaped) for c in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"
