"""The engine layer: the runtime's event-loop thread and :class:`Run`, the turn driver, and the
prompt broker through which a run asks the person in front of the notebook.

The engine knows providers and core, never the store or the view: a turn writes back through
the :class:`Transcript` it is given, and a :class:`Run` is displayed by whatever the view
registers with IPython (see ``hermes_nb/__init__.py``), not by importing the view.
"""

from __future__ import annotations

from ._rules import Rules, find_rules, turn_rules
from .runtime import Run, Runtime, get_runtime
from .turn import MemoryTranscript, Transcript, TurnOutcome, TurnRequest

__all__ = [
    "MemoryTranscript",
    "Rules",
    "Run",
    "Runtime",
    "Transcript",
    "TurnOutcome",
    "TurnRequest",
    "find_rules",
    "get_runtime",
    "turn_rules",
]
