"""A bounded memory of the latest few keys: what the view controller keeps of each view (its
sight, its pace) and the edit tools of each run that chose "Accept all", without growing for
as long as a kernel lives."""

from __future__ import annotations

from typing import TypeVar

__all__ = ["remember_newest"]

_K = TypeVar("_K")
_V = TypeVar("_V")


def remember_newest(recent: dict[_K, _V], key: _K, value: _V, limit: int) -> _V | None:
    """Set ``recent[key] = value`` as the newest entry (a dict keeps insertion order) and forget
    the oldest beyond ``limit``; return the value ``key`` had before, if any."""
    before = recent.pop(key, None)
    recent[key] = value
    while len(recent) > limit:
        del recent[next(iter(recent))]
    return before
