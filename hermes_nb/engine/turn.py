"""One user turn, from the pending prompt to a settled transcript.

:func:`drive_turn` runs on the runtime's loop: it asks the :class:`Transcript` to record the
prompt (before anything is sent), streams the provider's events into the :class:`Run`, and when
the stream ends — normally, by Stop, or by a failure — builds a :class:`TurnOutcome` and asks the
transcript to write it back. Only the owner of the session's ``active_stream_id`` writes; a late
finaliser writes nothing and emits no cancel event (DESIGN.md §3, invariant 10).

The transcript is an interface so that a plain in-memory history (``chat(history=...)``) and the
persistent session store plug in the same way.

**The tool loop.** When the turn offers tools and a reply ends with ``finish_reason ==
"tool_calls"``, the calls run (concurrently; async tools on the loop, sync ones in worker
threads; ``ask=True`` ones after the person's approval; ``ask_user`` as a question prompt), the
assistant message with its ``tool_calls`` and one ``tool`` message per call are appended, and
the model is asked again — up to the profile's ``max_steps`` replies (:mod:`._tool_loop`). A
failing tool or invalid arguments become an error *result* the model reads; the run goes on.
Stop cancels whatever is in flight: the HTTP stream, an async tool, the wait for an answer; a
sync tool's thread is abandoned and its late result dropped (and logged). The completed steps'
messages go to the transcript with the reply, so the next turn's history is valid for
OpenAI-compatible APIs.

A reply the provider cut short — ``finish_reason`` ``"length"`` (the output-token limit) or
``"content_filter"`` — settles as *done*, but its outcome carries the provider's
``finish_reason`` and a one-sentence :func:`truncation_notice`, which the ``done`` event, the
transcript (a ``notice`` message after the reply) and the view show, so a cut-off reply never
looks complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import anyio

from ..core.events import TRUNCATING_REASONS, Event, RunState
from ..core.exceptions import ErrorKind, HermesError, ProviderError, StoreReadOnlyError
from ..core.profiles import Profile, profile_env
from ..providers import get_provider
from ..providers.base import Message, provider_error
from ._rules import Rules, rules_prompt
from ._tool_loop import _api_call, _loop
from .tools import Tool, ToolImage, resolve_tools

if TYPE_CHECKING:
    from .runtime import Run, Runtime

log = logging.getLogger(__name__)

__all__ = [
    "SHUTDOWN_NOTICE",
    "AgentSessions",
    "MemoryTranscript",
    "Transcript",
    "TurnOutcome",
    "TurnRequest",
    "cancel_marker",
    "drive_turn",
    "truncation_notice",
    "turn_tools",
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


#: Per truncating finish reason (:data:`~hermes_nb.core.events.TRUNCATING_REASONS`): what happened
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
    "max_steps": (
        "when the tool loop reached its limit of model replies",
        "raise max_steps in the profile (for one turn: max_steps=N in chat())",
    ),
}


def truncation_notice(finish_reason: str | None) -> str:
    """The sentence that follows a reply the provider cut short (``finish_reason`` in
    :data:`~hermes_nb.core.events.TRUNCATING_REASONS`); ``""`` for any other reason."""
    cut = _TRUNCATED.get(finish_reason or "")
    if cut is None:
        return ""
    what, fix = cut
    extra = " or ask it to continue" if finish_reason in ("length", "max_steps") else ""
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
    #: the tool loop's completed steps, in order, before the reply: each an assistant message
    #: (its text and ``tool_calls``, each call with its ``result``) followed by one ``tool``
    #: message per call (``tool_call_id``, ``name``, ``content``)
    steps: list[Message] = field(default_factory=list)
    #: the prompts the run asked and their answers (``id``, ``kind``, ``text``, ``detail``,
    #: ``choices``, ``value``, ``by``), oldest first
    prompts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_reply(self) -> bool:
        """True if the turn produced any assistant content at all."""
        return bool(self.text.strip() or self.reasoning.strip() or self.tool_calls or self.steps)

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
        """Write the outcome back if ``run.stream_id`` still owns the session; True if written.

        Raises :class:`StoreReadOnlyError` when the store cannot take it (a read-only or full
        filesystem): the turn keeps its ending and shows the error's one sentence after it.
        """
        ...


@runtime_checkable
class AgentSessions(Protocol):
    """A transcript that also keeps the sessions an agent process made for it (optional).

    :meth:`agent_sessions` is read when the turn begins, into the request's ``resume``; the
    provider reports a session it made or loaded with an ``agent_session`` event, which the
    transcript keeps when it settles (:class:`hermes_nb.store.SessionTranscript` does both).
    """

    def agent_sessions(self, profile: str) -> Mapping[str, str]:
        """The agent sessions kept for ``profile``: the agent's command line → its session id."""
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
        self.messages.extend(dict(m) for m in outcome.steps)
        if outcome.text.strip() or outcome.reasoning.strip() or outcome.tool_calls:
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
    #: the tools the model may call this turn (see :func:`turn_tools`); empty: none
    tools: tuple[Tool, ...] = ()
    #: images the prompt names (a figure ``{Out[n]}`` showed): sent with it to a model with
    #: ``vision``; to one without, a line says what was left out. Never stored: the stored
    #: prompt keeps the line naming each one.
    images: tuple[ToolImage, ...] = ()
    #: the project's rules (an ``AGENTS.md``, see :func:`~._rules.turn_rules`), added to the
    #: system prompt; None: none
    rules: Rules | None = None


def turn_tools(profile: Profile, tools: Iterable[Any] | None = None) -> tuple[Tool, ...]:
    """The tools a turn offers: the profile's ``tools`` names, then ``tools`` (tools, functions
    or names); ``ask_user`` joins whenever there is any. An unknown name raises
    :class:`HermesError` before anything is stored or sent."""
    return tuple(resolve_tools([*profile.tools, *(tools or ())], profile=profile))


def _provider_messages(request: TurnRequest, history: list[Message]) -> list[Message]:
    """The history as the API takes it: the system prompt first; user, assistant and system
    messages; an assistant's ``tool_calls`` only for calls a ``tool`` message answers (a call
    an agent ran itself, or one a Stop cut off, has none: sent alone it would be refused), and
    those ``tool`` messages. Notices and errors are for the person, never sent."""
    system = request.system if request.system is not None else request.profile.system_prompt
    rules = rules_prompt(request.rules)
    system = f"{system}\n\n{rules}" if system and rules else system or rules
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    called = {
        c.get("id")
        for m in history
        if m.get("role") == "assistant"
        for c in m.get("tool_calls") or ()
    }
    answered = {
        m.get("tool_call_id")
        for m in history
        if m.get("role") == "tool" and m.get("tool_call_id") in called
    }
    answered.discard(None)
    for m in history:
        role = m.get("role")
        if role == "tool":
            if m.get("tool_call_id") in answered:
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": m["tool_call_id"],
                        "content": str(m.get("content") or ""),
                    }
                )
            continue
        if role not in ("user", "assistant", "system"):
            continue
        calls = [_api_call(c) for c in m.get("tool_calls") or () if c.get("id") in answered]
        if not (m.get("content") or calls):
            continue
        message: Message = {"role": role, "content": m.get("content") or ""}
        if calls:
            message["tool_calls"] = calls
        messages.append(message)
    if request.images and messages and messages[-1]["role"] == "user":
        messages[-1] = _with_images(messages[-1], request.images, request.profile.vision)
    return messages


def _with_images(message: Message, images: tuple[ToolImage, ...], vision: bool) -> Message:
    """The prompt with the images it names: as image parts after its text for a model that
    reads images (Chat Completions' ``image_url`` with a ``data:`` URL, as the tool loop sends
    a tool's images), else its text and a line saying what was left out."""
    text = str(message.get("content") or "")
    if not vision:
        count = f"{len(images)} image{'s' if len(images) != 1 else ''}"
        return {
            **message,
            "content": f"{text}\n\n[{count} left out: this model does not read images "
            "(the profile's vision is false)]",
        }
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": i.data_url}} for i in images]
    return {**message, "content": parts}


async def drive_turn(run: Run, runtime: Runtime) -> None:
    """Run one turn to the end. Every ending is an outcome, settled and written back; the only
    exception that leaves is the runtime's own cancellation (its shutdown), after settling."""
    request = run.request
    profile = request.profile
    completed = False
    error: ProviderError | None = None
    secret = None
    outside: BaseException | None = None
    scope = anyio.CancelScope()
    if not run._bind_cancel(scope.cancel):
        scope.cancel()
    try:
        with scope:
            history, resume = await anyio.to_thread.run_sync(_begin, run)
            run.set_state(RunState.STREAMING)
            provider = get_provider(profile, runtime.client)
            with profile_env(profile):
                secret = profile.api_key()
                messages = _provider_messages(request, history)
                await _loop(run, provider, messages, secret, resume=resume)
            completed = True
            run._stream_completed()
    except ProviderError as exc:
        error = exc
    except HermesError as exc:  # a profile or store problem: the user can fix it, not a bug
        error = _converted(exc, secret)
    except anyio.get_cancelled_exc_class() as exc:
        # Not this run's Stop (its scope swallowed that) but the runtime's task group, stopping
        # at kernel exit: it can win the race when the run's own cancel was queued behind a
        # wake-up (a prompt answered for the person). Settle first, as a stopped run, then go.
        outside = exc
    except Exception as exc:  # a bug must not leave the run "streaming" forever
        log.exception("Turn %s failed unexpectedly.", run.run_id)
        error = provider_error(
            ErrorKind.INTERNAL, f"Unexpected {type(exc).__name__}: {exc}", secret=secret
        )
    outcome = _outcome(run, completed=completed, error=error)
    await _settle(run, outcome)
    if outside is not None:
        raise outside


def _begin(run: Run) -> tuple[list[Message], Mapping[str, str]]:
    """In a worker thread: the transcript's history (the prompt recorded), and the agent
    sessions it kept for the turn's profile (:class:`AgentSessions`; reading them never fails
    a turn: a new agent session is the worst case)."""
    transcript = run.request.transcript
    history = transcript.begin(run)
    resume: Mapping[str, str] = {}
    if isinstance(transcript, AgentSessions):
        try:
            resume = dict(transcript.agent_sessions(run.profile.name))
        except HermesError as exc:
            log.warning("Could not read the agent sessions of %s: %s", run.session_id, exc)
    return history, resume


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
    in_steps = {c["id"] for m in run._steps for c in m.get("tool_calls") or ()}
    said = [m for m in run._steps if m["role"] == "assistant"]
    steps_text = sum(len(m.get("content") or "") for m in said)
    steps_reasoning = sum(len(m.get("reasoning") or "") for m in said)
    outcome = TurnOutcome(
        state=RunState.DONE,
        # The reply is the last step's text; earlier steps' text is in their own messages.
        text=run.text[steps_text:],
        reasoning=run.reasoning[steps_reasoning:],
        tool_calls=[dict(c) for i, c in run.tool_calls.items() if i not in in_steps],
        usage=dict(run.usage),
        steps=[dict(m) for m in run._steps],
        prompts=run.prompt_record(),
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


def _not_saved(outcome: TurnOutcome, sentence: str) -> None:
    """Add the sentence saying the turn was not stored: after the reply or the cancel marker
    (the notice), or after an error's hint."""
    if outcome.error is not None:
        hint = str(outcome.error.get("hint") or "")
        outcome.error = {**outcome.error, "hint": f"{hint} {sentence}".strip()}
    else:
        outcome.notice = f"{outcome.notice} {sentence}".strip()


async def _settle(run: Run, outcome: TurnOutcome) -> None:
    """Write the outcome back and end the run. Must always reach ``run.finish()``: the view's
    pump and every ``wait()`` (``%hermes --wait``) block until it is called."""
    with anyio.CancelScope(shield=True):
        try:
            try:
                written = await anyio.to_thread.run_sync(
                    run.request.transcript.settle, run, outcome
                )
            except StoreReadOnlyError as exc:  # shown, not stored: the ending stands, and says so
                written = True
                _not_saved(outcome, exc.message)
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
