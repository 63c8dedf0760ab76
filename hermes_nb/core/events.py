"""Event names and payload shapes, in one place.

A run is a sequence of ``(event, data)`` pairs. Providers yield them, the runtime journals them
with a gap-free ``seq`` and fans them out to subscribers, the widget renders them. Payloads are
plain JSON-able dicts so they can cross threads, the journal and the comm unchanged.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "TRUNCATING_REASONS",
    "AgentSessionData",
    "ApperrorData",
    "CancelData",
    "DoneData",
    "Event",
    "EventData",
    "FinishData",
    "PromptAnsweredData",
    "PromptData",
    "RunState",
    "StatusData",
    "StepData",
    "StreamEndData",
    "TextData",
    "ToolDeltaData",
    "ToolEndData",
    "ToolStartData",
    "UsageData",
]


class Event(StrEnum):
    """Every event a run can carry. ``stream_end`` is always the last one."""

    TOKEN = "token"
    REASONING = "reasoning"
    TOOL_START = "tool_start"
    TOOL_DELTA = "tool_delta"
    TOOL_END = "tool_end"
    TOOL_WAIT = "tool_wait"
    STEP = "step"
    PROMPT = "prompt"
    PROMPT_ANSWERED = "prompt_answered"
    USAGE = "usage"
    FINISH = "finish"
    STATUS = "status"
    AGENT_SESSION = "agent_session"
    APPERROR = "apperror"
    CANCEL = "cancel"
    DONE = "done"
    STREAM_END = "stream_end"


class RunState(StrEnum):
    """A run's lifecycle: queued → streaming ⇄ waiting → done | stopped | error.

    ``waiting``: a prompt (an approval or a question) is open and the run waits for the person.
    """

    QUEUED = "queued"
    STREAMING = "streaming"
    WAITING = "waiting"
    DONE = "done"
    STOPPED = "stopped"
    ERROR = "error"

    @property
    def settled(self) -> bool:
        return self in _SETTLED

    def can_become(self, other: RunState) -> bool:
        return other in _TRANSITIONS[self]


_SETTLED = frozenset({RunState.DONE, RunState.STOPPED, RunState.ERROR})
_TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.QUEUED: frozenset({RunState.STREAMING, RunState.STOPPED, RunState.ERROR}),
    RunState.STREAMING: _SETTLED | {RunState.WAITING},
    RunState.WAITING: _SETTLED | {RunState.STREAMING},
    RunState.DONE: frozenset(),
    RunState.STOPPED: frozenset(),
    RunState.ERROR: frozenset(),
}


class TextData(TypedDict):
    """``token`` and ``reasoning``: a piece of text to append."""

    text: str


class ToolStartData(TypedDict):
    """``tool_start``: a tool call began (``arguments`` may still grow through ``tool_delta``)."""

    id: str
    name: str
    arguments: str


class ToolDeltaData(TypedDict):
    """``tool_delta``: more argument text for the tool call ``id``."""

    id: str
    text: str


class ToolEndData(TypedDict):
    """``tool_end``: a tool call finished (agents that run tools report these)."""

    id: str
    name: str
    result: str
    error: bool
    duration_ms: NotRequired[float | None]
    #: False when the call was never made (its approval was denied or never came): the
    #: duration then counts nothing, and the view says "not run".
    ran: NotRequired[bool]


class ToolWaitData(TypedDict):
    """``tool_wait``: a tool call waits for the person's approval (``waiting`` true), or has its
    answer and goes on (false). The time waited is not the tool's: its ``duration_ms`` starts
    when it runs."""

    id: str
    waiting: bool


class StepData(TypedDict):
    """``step``: the tool loop asks the model again (step ``n`` ≥ 2) after running the tools of
    the previous reply; what follows is a new assistant message in the same run."""

    n: int


class PromptData(TypedDict):
    """``prompt``: the run asks the person and waits (an approval or a question).

    ``detail`` is, for an approval, the exact command or tool call with its arguments;
    ``choices`` is empty for a free-text question; ``deadline`` is epoch seconds or None.
    """

    id: str
    kind: Literal["approval", "question"]
    text: str
    detail: str
    choices: list[str]
    deadline: float | None


class PromptAnsweredData(TypedDict):
    """``prompt_answered``: the prompt ``id`` got its one answer, and from whom: ``view``,
    ``magic`` or ``api`` (a person), ``timeout``, ``stop`` or ``shutdown`` (for the person)."""

    id: str
    value: str
    by: str


class UsageData(TypedDict, total=False):
    """``usage``: token counts as the provider reported them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int


class FinishData(TypedDict):
    """``finish``: why the provider stopped generating, as it said (OpenAI's ``finish_reason``:
    ``stop``, ``length``, ``tool_calls``, ``content_filter``, …). Providers that do not know
    (the Hermes agent) send none; the turn then reports ``stop``."""

    finish_reason: str


#: Finish reasons that mean the reply was cut short, not finished by the model: the output-token
#: limit, the provider's content filter, or the tool loop's ``max_steps``.
TRUNCATING_REASONS = frozenset({"length", "content_filter", "max_steps"})


class StatusData(TypedDict):
    """``status``: the run moved to ``state``."""

    state: str
    detail: NotRequired[str]


class AgentSessionData(TypedDict):
    """``agent_session``: the turn runs in the agent's session ``id`` (an ACP agent's
    ``sessionId``), which the agent ``command`` of ``profile`` made (``loaded`` False) or
    loaded again (``loaded`` True). A stored session's transcript keeps it for the next turn
    after a restart. ``notice``: one sentence for the person when the agent could not load the
    session it had before and started a new one, told the recent conversation."""

    profile: str
    command: str
    id: str
    loaded: bool
    notice: NotRequired[str]


class ApperrorData(TypedDict):
    """``apperror``: the run failed; ``kind`` is an
    :class:`~hermes_nb.core.exceptions.ErrorKind`."""

    kind: str
    message: str
    hint: str
    status: int | None
    retry_after: NotRequired[float | None]


class CancelData(TypedDict):
    """``cancel``: the user stopped the run; ``message`` is the transcript's cancel marker."""

    message: str


class DoneData(TypedDict):
    """``done``: the provider finished normally. ``finish_reason`` is what the provider reported
    (``stop`` when it reported nothing); when it is one of :data:`TRUNCATING_REASONS`,
    ``notice`` says in one sentence that the reply was cut off and what to do."""

    text: str
    finish_reason: str | None
    notice: NotRequired[str]


class StreamEndData(TypedDict):
    """``stream_end``: nothing follows; ``state`` is the run's final state."""

    state: str


EventData = dict[str, Any]
EventName = Literal[
    "token",
    "reasoning",
    "tool_start",
    "tool_delta",
    "tool_end",
    "tool_wait",
    "step",
    "prompt",
    "prompt_answered",
    "usage",
    "finish",
    "status",
    "agent_session",
    "apperror",
    "cancel",
    "done",
    "stream_end",
]
