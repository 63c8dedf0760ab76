"""The tool call a tool function is running for, so that a tool can ask the person itself.

Most tools that need a person's yes are declared ``ask=True`` and the tool loop asks before it
calls them, showing the call and its arguments. A few must ask *while* they run, with a card
they build from what they found: the notebook's edit tools read the cell first and show the
diff of its source, and their buttons are their own (Accept, Accept all from this run,
Reject). The tool loop therefore sets :func:`current_call` around every call; a tool reads it
and asks through :meth:`ToolCall.ask`, which goes to the run's prompt broker (so only a
person answers, and Stop, deadlines and shutdown answer for them as for every card) and marks
the call as waiting for the person meanwhile, as the loop's own approvals do.

A context variable, not an argument: the tool's signature is its schema, and the model must
not see (or fill) a parameter that carries the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..core.prompts import Answer, Option

if TYPE_CHECKING:
    from ..providers.base import Asker

__all__ = ["ToolCall", "current_call"]


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool by the model, as the tool sees it while it runs."""

    run_id: str
    session_id: str | None
    call_id: str
    name: str
    asker: Asker = field(repr=False)
    #: Marks the call as waiting for the person (True) or running again (False).
    waiting: Callable[[bool], None] = field(repr=False)

    async def approve(self, text: str, detail: str, options: Sequence[Option] = ()) -> Answer:
        """Ask the person to approve what this call is about to do (``detail``: exactly that,
        as text; a unified diff is shown as one) and wait; ``options`` are the card's buttons
        (else the four approval answers)."""
        self.waiting(True)
        try:
            return await self.asker.ask("approval", text, detail, options=options)
        finally:
            self.waiting(False)


_CURRENT: ContextVar[ToolCall | None] = ContextVar("hermes_nb_tool_call", default=None)


def current_call() -> ToolCall | None:
    """The call the running tool function serves, or ``None`` outside the tool loop (a tool
    called from a cell as a plain function)."""
    return _CURRENT.get()


@contextlib.contextmanager
def calling(call: ToolCall) -> Iterator[None]:
    """Make ``call`` the current call for the code inside (the tool loop, around a call)."""
    token = _CURRENT.set(call)
    try:
        yield
    finally:
        _CURRENT.reset(token)
