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
    "Option",
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
class Option:
    """One of the asker's own answers to an approval, offered as a button instead of the four
    (an ACP agent's permission options: the person picks among the agent's own choices)."""

    value: str
    """What the answer carries back (the option's id)."""
    label: str
    """The button's text and the decision's words (the option's name)."""
    allows: bool
    """Whether choosing it lets the action happen (allow) or not (reject)."""

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "label": self.label, "allows": self.allows}


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
    options: tuple[Option, ...] = ()
    """An approval's buttons when the asker brings its own (else the four answers); the four
    are taken as answers all the same (``%hermes approve``, ``run.answer(id, "once")``)."""

    def to_event(self) -> dict[str, Any]:
        """The payload of the journal's ``"prompt"`` event (plain JSON-able values)."""
        event: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "text": self.text,
            "detail": self.detail,
            "choices": list(self.choices),
            "deadline": self.deadline,
        }
        if self.options:
            event["options"] = [option.to_json() for option in self.options]
        return event


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
