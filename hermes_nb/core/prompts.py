"""What a prompt is: the values a run's question or approval request carries, and its answer.

The broker that opens prompts, waits and takes answers lives in the engine
(:mod:`hermes_nb.engine.prompts`); these plain values live here, below it, because providers (the
Hermes agent's approval and clarify callbacks) and the view (the cards) speak of them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ANSWERED_BY",
    "APPROVAL_DECISIONS",
    "APPROVAL_LABELS",
    "APPROVAL_VALUES",
    "NO_ANSWER",
    "Answer",
    "AnsweredBy",
    "ApprovalValue",
    "Prompt",
    "PromptKind",
]

ApprovalValue = Literal["once", "session", "always", "deny"]
#: The four answers to an approval, in the order a card offers them.
APPROVAL_VALUES: tuple[str, ...] = ("once", "session", "always", "deny")
#: How each approval answer reads on a card's button and in the transcript.
APPROVAL_LABELS: dict[str, str] = {
    "once": "Allow once",
    "session": "Allow for this session",
    "always": "Always allow",
    "deny": "Deny",
}

#: How an approval's answer reads once decided (the cards, the saved transcript, exports).
APPROVAL_DECISIONS: dict[str, str] = {
    "once": "Allowed once",
    "session": "Allowed for this session",
    "always": "Always allowed",
    "deny": "Denied",
}
#: Who answered, as a decision says it: a person (any channel) or what answered for them.
ANSWERED_BY: dict[str, str] = {
    "view": "by you",
    "magic": "by you",
    "api": "by you",
    "timeout": "time ran out",
    "stop": "the run was stopped",
    "shutdown": "the kernel shut down",
}

NO_ANSWER = "no answer; decide yourself"
"""What a question gets when nobody answered it (deadline, Stop, shutdown): the model is told
plainly to go on by its own judgement instead of receiving an invented answer."""

AnsweredBy = Literal["view", "magic", "api", "timeout", "stop", "shutdown"]
PromptKind = Literal["approval", "question"]


@dataclass(frozen=True)
class Prompt:
    """One question or approval request, as journaled and as shown to the person.

    Frozen: the journal, the view and the waiter all hold the same object, and what the person
    approves must be exactly what the run asked about.
    """

    id: str
    """Short unique id, e.g. ``"p1-3f9a2c"``: the counter keeps it readable, the random tail
    keeps an answer for another run's prompt from landing here."""
    kind: PromptKind
    text: str
    """The question, or what is to be approved, in words."""
    detail: str
    """Approval: the exact command or tool call with its arguments; may be ``""`` for a
    question."""
    choices: tuple[str, ...]
    """Empty for a free-text question; :data:`APPROVAL_VALUES` for an approval."""
    deadline: float | None
    """Epoch seconds after which the broker answers for the person, or ``None``."""

    def to_event(self) -> dict[str, Any]:
        """The payload of the journal's ``"prompt"`` event (plain JSON-able values)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "detail": self.detail,
            "choices": list(self.choices),
            "deadline": self.deadline,
        }


@dataclass(frozen=True)
class Answer:
    """The one answer a prompt got, and who gave it (:data:`AnsweredBy`)."""

    prompt_id: str
    value: str
    by: str

    @property
    def approved(self) -> bool:
        """For an approval: True unless it was denied (by the person, a deadline or Stop)."""
        return self.value in ("once", "session", "always")
