"""A run's token usage, added up over the requests of its tool loop.

A provider reports a request's usage once or more (a later report of the same request updates
the earlier one); a tool loop makes several requests, and each pays for its whole prompt again.
So a run's counts are the sum over its requests, while how full the model's context is — the
status line's ``ctx`` share, compression's estimate — is the *last* request's size alone
(``context_tokens``). The runtime (:class:`hermes_nb.Run.usage`) and the view's transcript both
keep one, fed the same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SUMMED", "UsageSum"]

#: The counts that add up over a run's requests; any other count is the latest request's.
SUMMED = ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens")


@dataclass
class UsageSum:
    """Feed it each ``usage`` event (:meth:`report`) and each new request (:meth:`next_request`,
    on a ``step`` event); :attr:`total` is the run's usage so far."""

    total: dict[str, int] = field(default_factory=dict)
    _before: dict[str, int] = field(default_factory=dict)  # the requests before this one
    _request: dict[str, int] = field(default_factory=dict)  # this one, as last reported

    def report(self, data: Mapping[str, Any]) -> dict[str, int]:
        """The current request's usage (its whole-number counts) was reported; the new total."""
        self._request.update({k: v for k, v in data.items() if isinstance(v, int)})
        request = self._request
        total = {**self._before, **{k: v for k, v in request.items() if k not in SUMMED}}
        for key in SUMMED:
            if key in request:
                total[key] = self._before.get(key, 0) + request[key]
        context = request.get("total_tokens") or (
            request.get("prompt_tokens", 0) + request.get("completion_tokens", 0)
        )
        if context:
            total["context_tokens"] = context
        self.total = total
        return total

    def next_request(self) -> None:
        """The tool loop asks the model again: later reports are a new request's."""
        self._before, self._request = dict(self.total), {}
