"""Asking the person at the notebook for the Hermes agent: its approvals and its ``clarify``.

:func:`_bind_approvals` sets, in the worker thread, how hermes-agent's approvals go for one run
(the ``approvals`` option of :mod:`~hermes_nb.providers.hermes_agent`'s docstring);
:func:`_approver` and :func:`_clarifier` are the callbacks that ask through the run's
:class:`~hermes_nb.providers.base.Asker` and turn the answer into what hermes-agent accepts.
Apart from the provider because what hermes-agent makes of each answer (any value but
``"deny"`` approves) is a contract of its own, tested on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..core.prompts import NO_ANSWER
from ._agent_bridge import _Control
from ._agent_request import _Turn
from .base import Asker

#: hermes_agent's logger, as before the split: one name to configure for all the provider's records.
log = logging.getLogger("hermes_nb.providers.hermes_agent")


def _deny(*_: Any, **__: Any) -> str:
    return "deny"


def _approval_text(description: str) -> str:
    """What is to be approved, in words, from the description hermes-agent hands its callback."""
    description = " ".join(description.split())
    if description.startswith("Save to memory"):  # tools/write_approval.py's memory gate
        return f"Let the agent {description[0].lower()}{description[1:]}?"
    if description:
        return f"Run a command the agent flags as dangerous ({description})?"
    return "Run a command the agent flags as dangerous?"


def _approval_choice(value: str, *, allow_permanent: bool, smart_denied: bool) -> str:
    """The answer hermes-agent gets: it approves on *any* value but ``"deny"``, so only the
    three approving answers pass, narrowed to what hermes-agent offered this time."""
    if value not in ("once", "session", "always"):
        return "deny"
    if smart_denied:  # overriding its smart-approval model's DENY: this operation only
        return "once"
    if value == "always" and not allow_permanent:
        return "session"
    return value


def _approver(asker: Asker, control: _Control) -> Callable[..., str]:
    """hermes-agent's approval callback for one run: ask this run's person, in this thread."""

    def approve(
        command: Any,
        description: Any = "",
        *,
        allow_permanent: bool = True,
        smart_denied: bool = False,
        **_: Any,
    ) -> str:
        if control.stopped:
            return "deny"
        try:
            answer = asker.ask_blocking(
                "approval",
                _approval_text(str(description or "")),
                detail=str(command),  # the exact command (secrets masked by hermes-agent)
                cancelled=control.cancelled,
            )
        except Exception:
            log.warning("Could not ask for approval; the command is refused.", exc_info=True)
            return "deny"
        return _approval_choice(
            answer.value, allow_permanent=allow_permanent, smart_denied=smart_denied
        )

    return approve


def _clarifier(asker: Asker, control: _Control) -> Callable[..., str]:
    """hermes-agent's ``clarify_callback`` for one run: the agent's question to the person."""

    def clarify(question: Any, choices: Any = None) -> str:
        if control.stopped:
            return NO_ANSWER
        offered = [str(c) for c in choices or () if str(c).strip()]
        try:
            answer = asker.ask_blocking(
                "question",
                str(question).strip() or "The agent has a question.",
                choices=offered,
                cancelled=control.cancelled,
            )
        except Exception:
            log.warning("Could not ask the agent's question.", exc_info=True)
            return NO_ANSWER
        return answer.value

    return clarify


def _bind_approvals(turn: _Turn, control: _Control, session_id: str) -> str | None:
    """In the worker thread: how hermes-agent's approvals go for this run (the module
    docstring's ``approvals``); the approval session key it used, if any.

    Everything here is thread- or context-local in hermes-agent (the approval callback is
    thread-local, the interactive flag and the session key are contextvars, and its tool pools
    copy all three), so concurrent runs never see each other's. Only its ``session`` and
    ``always`` approvals are process-wide, keyed by the session key: a key of this run's own
    keeps one run's ``session`` answer from approving another's commands.
    """
    from tools.approval import set_current_session_key, set_hermes_interactive_context
    from tools.terminal_tool import set_approval_callback

    if turn.approvals == "allow":
        # Not interactive (whatever HERMES_INTERACTIVE says) nor gateway: hermes-agent runs them.
        set_hermes_interactive_context(False)
        return None

    # "Allow for this session" lasts for the notebook session (every turn of it); a plain
    # history has none, so there it lasts for this run.
    key = f"hermes-nb:{turn.notebook_session or session_id}"
    set_hermes_interactive_context(True)
    set_current_session_key(key)
    if turn.approvals == "ask" and turn.asker is not None:
        set_approval_callback(_approver(turn.asker, control))
    else:  # "deny", or nobody to ask
        set_approval_callback(_deny)
    return key
