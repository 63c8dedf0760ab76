"""One user turn, from the pending prompt to a settled transcript.

:func:`drive_turn` runs on the runtime's loop: it asks the :class:`Transcript` to record the
prompt (before anything is sent), streams the provider's events into the :class:`Run`, and when
the stream ends — normally, by Stop, or by a failure — builds a :class:`TurnOutcome` and asks the
transcript to write it back. Only the owner of the session's ``active_stream_id`` writes; a late
finaliser writes nothing and emits no cancel event (DESIGN.md §3, invariant 10).

The transcript is an interface so that a plain in-memory history (``chat(history=...)``) and the
persistent session store plug in the same way.

A reply the provider cut short — ``finish_reason`` ``"length"`` (the output-token limit) or
``"content_filter"`` — settles as *done*, but its outcome carries the provider's
``finish_reason`` and a one-sentence :func:`truncation_notice`, which the ``done`` event, the
transcript (a ``notice`` message after the reply) and the view show, so a cut-off reply never
looks complete.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from ..core.events import TRUNCATING_REASONS, Event, RunState
from ..core.exceptions import ErrorKind, HermesError, ProviderError
from ..core.profiles import Profile, profile_env
from ..providers import get_provider
from ..providers.base import Message, ProviderRequest, provider_error

if TYPE_CHECKING:
    from .runtime import Run, Runtime

log = logging.getLogger(__name__)

__all__ = [
    "SHUTDOWN_NOTICE",
    "MemoryTranscript",
    "Transcript",
    "TurnOutcome",
    "TurnRequest",
    "cancel_marker",
    "drive_turn",
    "truncation_notice",
]


#: The notice for a turn cut short because the kernel exited (not the user's Stop).
SHUTDOWN_NOTICE = (
    "The run was interrupted because the kernel shut down before it finished. "
    "What arrived is kept above; ask again to continue."
)


def cancel_marker(bot_name: str | None) -> str:
    """The transcript line that follows a stopped turn (DESIGN.md §3, invariant 8)."""
    name = (bot_name or "").strip() or "Hermes"
    return (
        f"Task cancelled. The run was cancelled by the user before {name} finished. "
        "No provider failure occurred."
    )


#: Per truncating finish reason (:data:`~hermes_nb.events.TRUNCATING_REASONS`): what happened
#: to the reply, and what to do about it.
_TRUNCATED: dict[str, tuple[str, str]] = {
    "length": (
        "at the model's output limit",
        "raise max_tokens in the profile "
        "(for one turn: -o max_tokens=N, or max_tokens=N in chat())",
    ),
    "content_filter": (
        "by the provider's content filter",
        "rephrase the request, or check the provider's moderation settings",
    ),
}


def truncation_notice(finish_reason: str | None) -> str:
    """The sentence that follows a reply the provider cut short (``finish_reason`` in
    :data:`~hermes_nb.events.TRUNCATING_REASONS`); ``""`` for any other reason."""
    cut = _TRUNCATED.get(finish_reason or "")
    if cut is None:
        return ""
    what, fix = cut
    extra = " or ask it to continue" if finish_reason == "length" else ""
    return f'The reply was cut off {what} (finish_reason "{finish_reason}"); {fix}{extra}.'


def _empty_reply(finish_reason: str | None) -> ProviderError:
    """The error for a turn that ended cleanly without any reply (never a blank, invariant 14)."""
    cut = _TRUNCATED.get(finish_reason or "")
    if cut is None:
        return provider_error(ErrorKind.EMPTY_REPLY, "The model returned an empty reply.")
    what, fix = cut
    error = provider_error(
        ErrorKind.EMPTY_REPLY,
        f"The model returned an empty reply: it was cut off {what} "
        f'(finish_reason "{finish_reason}") before it wrote anything.',
    )
    error.hint = fix[0].upper() + fix[1:] + "."
    return error


@dataclass
class TurnOutcome:
    """How a turn ended and what it produced; what a transcript writes back."""

    state: RunState
    text: str = ""
    reasoning: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    #: for STOPPED: the cancel marker, or the shutdown notice; for DONE: the truncation notice
    #: when the provider cut the reply short (``truncated``), else empty
    notice: str = ""
    #: why the provider stopped generating (``stop``, ``length``, …); None unless DONE
    finish_reason: str | None = None

    @property
    def has_reply(self) -> bool:
        """True if the turn produced any assistant content at all."""
        return bool(self.text.strip() or self.reasoning.strip() or self.tool_calls)

    @property
    def partial(self) -> bool:
        return self.state is not RunState.DONE

    @property
    def truncated(self) -> bool:
        """True for a finished reply that the provider cut short (output limit, filter)."""
        return self.state is RunState.DONE and self.finish_reason in TRUNCATING_REASONS


class Transcript(Protocol):
    """Where a turn's history comes from and where its result goes."""

    def begin(self, run: Run) -> list[Message]:
        """Record the prompt as pending, claim ``run.stream_id``; return the messages to send."""
        ...

    def settle(self, run: Run, outcome: TurnOutcome) -> bool:
        """Write the outcome back if ``run.stream_id`` still owns the session; True if written."""
        ...


class MemoryTranscript:
    """An in-memory history: what :func:`hermes_nb.chat` uses without a session.

    ``messages`` holds the conversation (system prompt excluded); it grows by the prompt and the
    reply of each turn, so passing the same transcript again continues the conversation.
    """

    def __init__(self, history: list[Message] | None = None) -> None:
        self.messages: list[Message] = [dict(m) for m in history or []]
        self.active_stream_id: str | None = None

    def begin(self, run: Run) -> list[Message]:
        self.active_stream_id = run.stream_id
        self.messages.append({"role": "user", "content": run.request.prompt})
        return list(self.messages)

    def settle(self, run: Run, outcome: TurnOutcome) -> bool:
        if self.active_stream_id != run.stream_id:
            return False
        self.active_stream_id = None
        if outcome.has_reply:
            message: Message = {"role": "assistant", "content": outcome.text}
            if outcome.partial:
                message["partial"] = True
            self.messages.append(message)
        if outcome.state is RunState.STOPPED or outcome.truncated:
            self.messages.append({"role": "notice", "content": outcome.notice})
        elif outcome.error:
            self.messages.append({"role": "error", "content": outcome.error["message"]})
        return True


@dataclass(frozen=True)
class TurnRequest:
    """What a turn needs: the prompt, the profile, where history lives, and per-turn overrides."""

    prompt: str
    profile: Profile
    transcript: Transcript = field(default_factory=MemoryTranscript)
    system: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _provider_messages(request: TurnRequest, history: list[Message]) -> list[Message]:
    system = request.system if request.system is not None else request.profile.system_prompt
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for m in history:
        if m.get("role") in ("user", "assistant", "system", "tool") and (
            m.get("content") or m.get("tool_calls")
        ):
            messages.append({k: v for k, v in m.items() if k in ("role", "content", "tool_calls")})
    return messages


async def drive_turn(run: Run, runtime: Runtime) -> None:
    """Run one turn to the end. Never raises: every ending is an outcome."""
    request = run.request
    profile = request.profile
    completed = False
    error: ProviderError | None = None
    secret = None
    scope = anyio.CancelScope()
    if not run._bind_cancel(scope.cancel):
        scope.cancel()
    try:
        with scope:
            history = await anyio.to_thread.run_sync(request.transcript.begin, run)
            run.set_state(RunState.STREAMING)
            provider = get_provider(profile, runtime.client)
            with profile_env(profile):
                secret = profile.api_key()
                provider_request = ProviderRequest(
                    profile=profile,
                    messages=_provider_messages(request, history),
                    model=profile.model,
                    api_key=secret,
                    extra=request.extra,
                )
                async for event, data in provider.stream(provider_request):
                    run.put(event, data)
            completed = True
            run._stream_completed()
    except ProviderError as exc:
        error = exc
    except HermesError as exc:  # a profile or store problem: the user can fix it, not a bug
        error = _converted(exc, secret)
    except Exception as exc:  # a bug must not leave the run "streaming" forever
        log.exception("Turn %s failed unexpectedly.", run.run_id)
        error = provider_error(
            ErrorKind.INTERNAL, f"Unexpected {type(exc).__name__}: {exc}", secret=secret
        )
    outcome = _outcome(run, completed=completed, error=error)
    await _settle(run, outcome)


def _converted(exc: HermesError, secret: Any = None) -> ProviderError:
    """A non-provider HermesError as the classified error a turn reports, keeping its hint."""
    from ..core.exceptions import ConfigError, StoreError

    kind = (
        ErrorKind.CONFIG
        if isinstance(exc, ConfigError)
        else ErrorKind.STORE
        if isinstance(exc, StoreError)
        else ErrorKind.INTERNAL
    )
    error = provider_error(kind, exc.message, secret=secret)
    error.hint = exc.hint or error.hint
    return error


def _outcome(run: Run, *, completed: bool, error: ProviderError | None) -> TurnOutcome:
    outcome = TurnOutcome(
        state=RunState.DONE,
        text=run.text,
        reasoning=run.reasoning,
        tool_calls=[dict(c) for c in run.tool_calls.values()],
        usage=dict(run.usage),
    )
    if error is not None:
        outcome.state, outcome.error = RunState.ERROR, error.to_payload()
    elif not completed:
        outcome.state = RunState.STOPPED
        outcome.notice = (
            SHUTDOWN_NOTICE
            if run.cancel_reason == "shutdown"
            else cancel_marker(run.profile.bot_name)
        )
    elif not outcome.has_reply:
        # The provider ended cleanly but said nothing new this turn: a failure, never a blank.
        empty = _empty_reply(run.finish_reason)
        outcome.state, outcome.error = RunState.ERROR, empty.to_payload()
    else:
        outcome.finish_reason = run.finish_reason or "stop"
        outcome.notice = truncation_notice(outcome.finish_reason)
    return outcome


async def _settle(run: Run, outcome: TurnOutcome) -> None:
    """Write the outcome back and end the run. Must always reach ``run.finish()``: the view's
    pump and every ``wait()`` (``%hermes --wait``) block until it is called."""
    with anyio.CancelScope(shield=True):
        try:
            try:
                written = await anyio.to_thread.run_sync(
                    run.request.transcript.settle, run, outcome
                )
            except Exception as exc:
                written = False
                if not isinstance(exc, HermesError):
                    log.exception("Writing back %s failed.", run.run_id)
                    exc = HermesError(f"Saving the turn failed ({type(exc).__name__}: {exc}).")
                if outcome.error is None:
                    outcome.state = RunState.ERROR
                    outcome.error = _converted(exc).to_payload()
            if outcome.state is RunState.DONE:
                done: dict[str, Any] = {
                    "text": outcome.text,
                    "finish_reason": outcome.finish_reason or "stop",
                }
                if outcome.notice:
                    done["notice"] = outcome.notice
                run.put(Event.DONE, done)
            elif outcome.state is RunState.STOPPED:
                if written:
                    run.put(Event.CANCEL, {"message": outcome.notice})
            elif outcome.error is not None:
                run.put(Event.APPERROR, outcome.error)
            run.set_state(outcome.state)
        finally:
            run.finish()
