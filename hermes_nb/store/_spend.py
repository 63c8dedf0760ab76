"""What a session has spent: tokens in and out over its turns, and their cost at the prices of
the profiles that ran them (``price_in`` / ``price_out`` per million tokens).

Each turn's run row keeps its profile's name and its usage, so the cost is added run by run at
the prices of the profile each used (a session may switch profiles); a run whose profile has no
prices adds tokens but no cost, and a session none of whose profiles is priced has no cost at
all — never a made-up zero. The status line (after each reply) and ``%hermes usage`` read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..core.profiles import Profile
from .database import Store

__all__ = ["Spend", "session_spend"]


@dataclass(frozen=True)
class Spend:
    """A session's tokens and cost; ``cost`` None when no run of it was priced."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None
    turns: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def session_spend(store: Store, session_id: str, profiles: Mapping[str, Profile]) -> Spend:
    """What the session ``session_id`` spent, priced with ``profiles`` (by name)."""
    prompt = completion = turns = 0
    cost: float | None = None
    for run in store.runs(session_id):
        if not run.usage:
            continue
        turns += 1
        prompt += int(run.usage.get("prompt_tokens", 0))
        completion += int(run.usage.get("completion_tokens", 0))
        profile = profiles.get(run.profile or "")
        priced = profile.cost(run.usage) if profile is not None else None
        if priced is not None:
            cost = (cost or 0.0) + priced
    return Spend(prompt, completion, cost, turns)
