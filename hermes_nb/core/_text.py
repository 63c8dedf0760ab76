"""Small text helpers shared by the user-facing commands (magics, doctor)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["md_table", "money", "short"]


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; ``|`` inside cells is escaped and ``None`` shows as empty."""
    escaped = "\\|"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = ("" if c is None else str(c).replace("|", escaped) for c in row)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def money(cost: float) -> str:
    """A cost in US dollars as people read one: four decimals below a cent (``$0.0042``), two
    above (``$1,234.50``). The status line and ``%hermes usage`` say the same figure alike."""
    return f"${cost:.4f}" if cost < 0.01 else f"${cost:,.2f}"


def short(text: str, limit: int = 60) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    one = " ".join(str(text).split())
    return one if len(one) <= limit else one[: limit - 1] + "…"
