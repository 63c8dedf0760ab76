"""What the view says about a run's context: the rules file it carried (the head's ``rules:
AGENTS.md``) and, once it settled, how full the model's context was and what the session has
spent (``ctx 12% · session 3,456 tokens · $0.0042``).

Apart from :mod:`._blocks` because these read the request and the transcript a run was given,
not its events: the rules are on the request, the session's totals on the store's transcript
after it wrote the turn back (``SessionTranscript.spend``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core import money
from . import render

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = ["context_parts", "rules_blocks"]


def rules_blocks(run: Run) -> dict[str, tuple[str, str]]:
    """The head's ``info:rules`` block naming the run's rules file (or why it was skipped);
    none when the turn carried no rules."""
    rules = getattr(run.request, "rules", None)
    if rules is None:
        return {}
    cls = "hnb-info hnb-rules" + (" hnb-rules-skipped" if rules.problem else "")
    title = render.escape(str(rules.path))
    html = f'<div class="{cls}" title="{title}">{render.escape(rules.label)}</div>'
    return {"info:rules": ("info", html)}


def context_parts(run: Run) -> list[str]:
    """The settled status line's context and cost: the last request's tokens against
    the profile's ``context_window`` (``ctx 12%``), the session's tokens, and the cost where
    the profile has prices (the session's in a stored session, else this run's)."""
    parts: list[str] = []
    profile = run.profile
    prompt = run.usage.get("context_tokens")
    window = getattr(profile, "context_window", 0)
    if isinstance(prompt, int) and prompt > 0 and window:
        share = 100 * prompt / window
        parts.append(f"ctx {'<1' if share < 1 else f'{share:.0f}'}%")
    spend: Any = getattr(run.request.transcript, "spend", None)
    if spend is not None and spend.tokens:
        parts.append(f"session {spend.tokens:,} tokens")
    cost = spend.cost if spend is not None else profile.cost(run.usage)
    if cost is not None:
        parts.append(money(cost))
    return parts
