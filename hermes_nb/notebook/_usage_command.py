"""What sessions cost: ``%hermes usage``."""

from __future__ import annotations

from typing import Any

from ..core import md_table, money, short
from ._help import _md
from ._options import _no_args

__all__ = ["usage_command"]


def _money(cost: float | None) -> str:
    return "—" if cost is None else money(cost)


def usage_command(magics: Any, arg: str) -> Any:
    """``%hermes usage``: per live session, its turns, tokens in and out, and its cost at the
    prices of the profiles it used (``—`` where none has prices), the current one marked."""
    from ..core.config import load_config
    from ..store import get_store, session_spend

    _no_args("usage", arg)
    store = get_store()
    profiles = load_config().profiles
    current = magics._session.id if getattr(magics, "_session", None) is not None else None
    rows = []
    total_in = total_out = 0
    total_cost: float | None = None
    for record in store.list_sessions(limit=1000):
        spend = session_spend(store, record.id, profiles)
        if not spend.turns and record.id != current:
            continue
        total_in += spend.prompt_tokens
        total_out += spend.completion_tokens
        if spend.cost is not None:
            total_cost = (total_cost or 0.0) + spend.cost
        rows.append(
            (
                f"`{record.id[:12]}`" + (" ◀ current" if record.id == current else ""),
                short(record.name or record.title or "", 40),
                str(spend.turns),
                f"{spend.prompt_tokens:,}",
                f"{spend.completion_tokens:,}",
                _money(spend.cost),
            )
        )
    if not rows:
        return _md("No tokens spent yet: ask something with `%hermes` first.")
    if len(rows) > 1:
        rows.append(("**all**", "", "", f"{total_in:,}", f"{total_out:,}", _money(total_cost)))
    header = ("session", "name", "turns", "tokens in", "tokens out", "cost")
    note = (
        "\n\nCost is shown for profiles with `price_in` / `price_out` (per million tokens) in "
        "config.toml."
        if total_cost is None
        else ""
    )
    return _md(md_table(header, rows) + note)
