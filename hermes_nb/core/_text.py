"""Small text helpers shared by the user-facing commands (magics, doctor), and the tail of a
child process's log for a one-sentence error (an ACP agent's, an MCP server's)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["log_tail", "md_table", "money", "short"]


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


def log_tail(log: Path, offset: int, lines: int = 6, limit: int = 600) -> str:
    """The last ``lines`` non-blank lines written to ``log`` since ``offset`` (at most its last
    16 KB), as one line of at most ``limit`` characters: what a process said before it failed."""
    try:
        with log.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "…" + joined[-(limit - 1) :]
