"""Person-in-the-loop prompts: a run asks the person at the notebook and waits for the answer.

A run (one LLM turn) sometimes must not go on by itself: a tool call needs approval ("may I run
``rm -rf /tmp/x``?") or the model has a question for the person. :class:`PromptBroker`, one per
run, owns the whole lifecycle of such a prompt, so that every path through it is journaled and
none can hang the run:

* **open** -- :meth:`PromptBroker.ask` (on the run's asyncio loop) or
  :meth:`PromptBroker.ask_blocking` (on an in-process agent's worker thread) creates the prompt,
  journals a ``"prompt"`` event through the ``emit`` callback the run hands in, and waits;
* **answer** -- :meth:`PromptBroker.answer` may come from any thread (the chat view, the
  ``%hermes`` magic, the API). The first acceptable answer wins, exactly once; any other is
  refused with one sentence that tells the person what to do instead (:meth:`refusal`);
* **closed for the person** -- a deadline, Stop and kernel shutdown answer in the person's stead
  with the safe default (approval: ``"deny"``, question: :data:`NO_ANSWER`) and say so in
  ``by``, so neither the journal nor the model ever mistakes it for a person's decision.

Only a person answers. The model's output never reaches :meth:`PromptBroker.answer`: the engine
routes model text to the journal, never here, so a model cannot approve its own tool call.
That is also why ``answer(by=...)`` accepts only the person's channels (``"view"``, ``"magic"``,
``"api"``) and the broker-side sources (``"timeout"``, ``"stop"``, ``"shutdown"``) cannot be
forged through it.

Concurrency: one :class:`threading.Lock` guards the state, and nothing foreign (``emit``,
``on_change``, waking a waiter) ever runs under it. Each state change instead appends its side
effects to an outbox while the lock is held, and one thread at a time drains the outbox in
order. That keeps ``"prompt"`` before its ``"prompt_answered"`` and ``on_change`` values in
state order even when an answer or Stop races the opening of a prompt, and it lets ``emit``
re-enter the broker (read :attr:`~PromptBroker.pending`, even answer) without deadlocking.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..core.prompts import (
    APPROVAL_VALUES,
    NO_ANSWER,
    Answer,
    AnsweredBy,
    ApprovalValue,
    Option,
    Prompt,
    PromptKind,
)

__all__ = [
    "APPROVAL_VALUES",
    "NO_ANSWER",
    "Answer",
    "AnsweredBy",
    "ApprovalValue",
    "Prompt",
    "PromptBroker",
    "PromptKind",
]

_PERSON_SOURCES = frozenset({"view", "magic", "api"})

_CLOSE_SOURCES = frozenset({"stop", "shutdown"})

# How ``by`` reads in a refusal ("already answered 'deny' by Stop").
_BY_WORDS: dict[str, str] = {
    "view": "the chat view",
    "magic": "the %hermes magic",
    "api": "the API",
    "timeout": "its deadline passing",
    "stop": "Stop",
    "shutdown": "the kernel shutting down",
}

# A waiter re-reads the clock at least this often, so a wall-clock jump (``time.time`` is epoch
# time, shown to the person as the deadline) or an injected test clock cannot make it overshoot.
_SLICE = 0.25

# How often ``ask_blocking`` looks at its ``cancelled`` event: Stop should land within ~50 ms.
_CANCEL_POLL = 0.05


def _default_value(kind: str) -> str:
    """What the broker answers for the person: the safe choice, never a guess."""
    return "deny" if kind == "approval" else NO_ANSWER


def _short(value: str, limit: int = 40) -> str:
    """``repr`` of a value for a one-line refusal, cut so a pasted essay stays one line."""
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(text)


class PromptBroker:
    """Opens prompts for one run, collects the first acceptable answer, and closes them.

    ``emit(event_name, payload)`` journals an event; it is called, from whichever thread is
    delivering, with ``"prompt"`` (payload :meth:`Prompt.to_event`) and ``"prompt_answered"``
    (payload ``{"id", "value", "by"}``), exactly one of the latter per prompt and always after
    its ``"prompt"``. ``timeout`` is the number of seconds a prompt stays open before the broker
    answers for the person; ``None`` or ``0`` means no deadline. ``clock`` gives epoch seconds
    (injectable for tests).

    ``on_change``, if set, is called with :attr:`waiting` after every open and every answer, in
    state order, so the run can show "waiting for you" and switch back.
    """

    on_change: Callable[[bool], None] | None

    def __init__(
        self,
        emit: Callable[[str, dict[str, Any]], object],
        *,
        timeout: float | None = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be positive, 0 or None, not {timeout!r}")
        self._emit = emit
        self._timeout = timeout or None
        self._clock = clock
        self.on_change = None

        self._lock = threading.Lock()
        self._numbers = itertools.count(1)
        self._prompts: dict[str, Prompt] = {}  # every prompt ever opened, oldest first
        # Open prompts, oldest first (dicts keep insertion order), with the future their asker
        # waits on. A concurrent Future rather than an asyncio one: it can be set from any
        # thread, a worker thread can block on it, and asyncio.wrap_future hands it to a loop
        # through call_soon_threadsafe.
        self._open: dict[str, concurrent.futures.Future[Answer]] = {}
        self._answers: dict[str, Answer] = {}
        self._closed_by: str | None = None
        # Side effects of state changes, in state order, run outside the lock by _drain().
        self._outbox: deque[Callable[[], object]] = deque()
        self._draining = False

    # -- reading ---------------------------------------------------------------------------------

    @property
    def pending(self) -> list[Prompt]:
        """The unanswered prompts, oldest first."""
        with self._lock:
            return [self._prompts[pid] for pid in self._open]

    @property
    def waiting(self) -> bool:
        """Whether any prompt is open, i.e. the run is waiting for the person."""
        with self._lock:
            return bool(self._open)

    def get(self, prompt_id: str) -> Prompt | None:
        """The prompt with this id, open or answered, or ``None`` if this run never asked it."""
        with self._lock:
            return self._prompts.get(prompt_id)

    # -- asking ----------------------------------------------------------------------------------

    async def ask(
        self,
        kind: PromptKind,
        text: str,
        detail: str = "",
        choices: Sequence[str] = (),
        *,
        options: Sequence[Option] = (),
    ) -> Answer:
        """Ask the person on the running asyncio loop and wait for the answer.

        At the deadline the broker answers itself (``by="timeout"``). If the awaiting task is
        cancelled (Stop) or anything else interrupts the wait, the prompt is closed with
        ``by="stop"`` before the exception propagates, so no prompt stays open without an asker.
        After :meth:`close` the answer comes at once, from the closing source. An approval's
        ``options`` are the asker's own answers, shown as its buttons (:class:`Option`).
        """
        prompt, future = self._register(kind, text, detail, choices, options)
        waiter = asyncio.wrap_future(future)
        try:
            self._drain()
            while not waiter.done():
                remaining = self._remaining(prompt)
                if remaining is not None and remaining <= 0:
                    self._answer_for_person(prompt.id, "timeout")
                    break
                wait = None if remaining is None else min(remaining, _SLICE)
                await asyncio.wait((waiter,), timeout=wait)
            # Even if the deadline fired, a person's answer may have won just before it: the
            # future carries whichever answer won.
            return await waiter
        except BaseException:
            self._answer_for_person(prompt.id, "stop")
            raise

    def ask_blocking(
        self,
        kind: PromptKind,
        text: str,
        detail: str = "",
        choices: Sequence[str] = (),
        *,
        cancelled: threading.Event | None = None,
        options: Sequence[Option] = (),
    ) -> Answer:
        """Like :meth:`ask`, for a worker thread (an in-process agent's approval callback).

        Setting ``cancelled`` (Stop) closes the prompt with ``by="stop"`` and returns that answer
        (deny / :data:`NO_ANSWER`) within about 50 ms, because the agent's callback needs a value
        to hand back. Refuses to run on a thread with a running asyncio loop: blocking there
        would freeze the very loop that delivers the run's events.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "ask_blocking() would block the asyncio loop running on this thread; "
                "use 'await broker.ask(...)' there instead"
            )
        prompt, future = self._register(kind, text, detail, choices, options)
        try:
            self._drain()
            while not future.done():
                if cancelled is not None and cancelled.is_set():
                    self._answer_for_person(prompt.id, "stop")
                    break
                remaining = self._remaining(prompt)
                if remaining is not None and remaining <= 0:
                    self._answer_for_person(prompt.id, "timeout")
                    break
                poll = _CANCEL_POLL if cancelled is not None else None
                if remaining is not None:
                    poll = min(remaining, poll if poll is not None else _SLICE)
                try:
                    return future.result(timeout=poll)
                except TimeoutError:
                    pass
            return future.result()
        except BaseException:
            self._answer_for_person(prompt.id, "stop")
            raise

    # -- answering -------------------------------------------------------------------------------

    def refusal(self, prompt_id: str, value: object) -> str | None:
        """Why ``answer(prompt_id, value)`` would be refused, or ``None`` if it would be taken.

        The reason is one sentence that says what to do instead, ready to show the person.
        """
        with self._lock:
            return self._refusal_locked(prompt_id, value)

    def answer(self, prompt_id: str, value: str, by: str = "api") -> bool:
        """Answer a prompt from any thread; the first acceptable answer wins.

        Returns ``False``, changing and emitting nothing, when :meth:`refusal` gives a reason.
        A question's answer is stripped of surrounding whitespace. On success the
        ``"prompt_answered"`` event is emitted, then the waiter is woken. ``by`` names the
        person's channel (``"view"``, ``"magic"`` or ``"api"``); the broker's own sources are not
        accepted here (see :meth:`close`).
        """
        if by not in _PERSON_SOURCES:
            raise ValueError(
                f"by must be one of {', '.join(sorted(_PERSON_SOURCES))}, not {by!r}; "
                "deadlines, Stop and shutdown answer through the broker itself"
            )
        with self._lock:
            if self._refusal_locked(prompt_id, value) is not None:
                return False
            prompt = self._prompts[prompt_id]
            if prompt.kind == "question":
                value = value.strip()
            self._settle_locked(prompt_id, value, by)
        self._drain()
        return True

    def close(self, by: str) -> list[Answer]:
        """Answer every open prompt for the person (deny / :data:`NO_ANSWER`) and stay closed.

        ``by`` is ``"stop"`` or ``"shutdown"``. Returns the answers given; later answers to these
        prompts are refused, and later :meth:`ask` calls are answered at once the same way, so a
        run that is being stopped cannot get stuck on a new prompt.
        """
        if by not in _CLOSE_SOURCES:
            raise ValueError(f"close() takes 'stop' or 'shutdown', not {by!r}")
        with self._lock:
            if self._closed_by is None:
                self._closed_by = by
            answers = [
                self._settle_locked(pid, _default_value(self._prompts[pid].kind), by)
                for pid in list(self._open)
            ]
        self._drain()
        return answers

    # -- internals -------------------------------------------------------------------------------

    def _register(
        self,
        kind: PromptKind,
        text: str,
        detail: str,
        choices: Sequence[str],
        options: Sequence[Option] = (),
    ) -> tuple[Prompt, concurrent.futures.Future[Answer]]:
        """Validate and record a new prompt; its events are queued, not yet emitted."""
        if kind not in ("approval", "question"):
            raise ValueError(f"kind must be 'approval' or 'question', not {kind!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a prompt needs text: the question, or what is to be approved")
        if not isinstance(detail, str):
            raise TypeError(f"detail must be a string, not {type(detail).__name__}")
        if isinstance(choices, str):
            raise TypeError("choices must be a sequence of strings, not one string")
        given = tuple(choices)
        own = tuple(options)
        if kind == "approval":
            # The person must see exactly what they approve, and answers with one of the card's
            # buttons: the four, or the asker's own options (an ACP agent's) — the four are
            # taken as answers then too.
            if not detail.strip():
                raise ValueError("an approval needs detail: the exact command or tool call")
            if given and given != APPROVAL_VALUES:
                raise ValueError(f"an approval's choices are always {APPROVAL_VALUES!r}")
            if not all(isinstance(o, Option) and o.value.strip() and o.label.strip() for o in own):
                raise ValueError("an approval's own options must be Options with a value and label")
            if len({o.value for o in own}) != len(own):
                raise ValueError("an approval's own options need distinct values")
            given = APPROVAL_VALUES
        elif own:
            raise ValueError("only an approval takes options; a question's are its choices")
        elif any(not isinstance(c, str) or not c.strip() for c in given):
            raise ValueError("a question's choices must be non-empty strings")

        future: concurrent.futures.Future[Answer] = concurrent.futures.Future()
        # RUNNING: a cancelled asyncio wrapper (Stop) cannot cancel it, so the answer can always
        # be set on it exactly once.
        future.set_running_or_notify_cancel()
        with self._lock:
            prompt_id = f"p{next(self._numbers)}-{uuid.uuid4().hex[:6]}"
            deadline = None if self._timeout is None else self._clock() + self._timeout
            prompt = Prompt(prompt_id, kind, text, detail, given, deadline, own)
            self._prompts[prompt_id] = prompt
            self._later(self._emit, "prompt", prompt.to_event())
            self._open[prompt_id] = future
            if self._closed_by is not None:
                self._settle_locked(prompt_id, _default_value(kind), self._closed_by)
            else:
                self._later(self._notify, True)
        return prompt, future

    def _remaining(self, prompt: Prompt) -> float | None:
        return None if prompt.deadline is None else prompt.deadline - self._clock()

    def _answer_for_person(self, prompt_id: str, by: str) -> None:
        """Deadline or Stop: give the safe default, unless an answer already won."""
        with self._lock:
            if prompt_id not in self._open:
                return
            self._settle_locked(prompt_id, _default_value(self._prompts[prompt_id].kind), by)
        self._drain()

    def _settle_locked(self, prompt_id: str, value: str, by: str) -> Answer:
        """Record the winning answer and queue its effects: journal, state change, wake-up.

        The lock must be held and ``prompt_id`` must be open. ``on_change`` runs before the
        waiter wakes, so the run is shown as running again by the time it resumes.
        """
        future = self._open.pop(prompt_id)
        answer = Answer(prompt_id, value, by)
        self._answers[prompt_id] = answer
        self._later(self._emit, "prompt_answered", {"id": prompt_id, "value": value, "by": by})
        self._later(self._notify, bool(self._open))
        self._later(future.set_result, answer)
        return answer

    def _refusal_locked(self, prompt_id: object, value: object) -> str | None:
        prompt = self._prompts.get(prompt_id) if isinstance(prompt_id, str) else None
        if prompt is None:
            shown = _short(prompt_id) if isinstance(prompt_id, str) else repr(prompt_id)
            if self._open:
                hint = f"answer one of the open prompts ({', '.join(self._open)}) instead"
            else:
                hint = "no prompt is open right now, so there is nothing to answer"
            return f"There is no prompt {shown} in this run; {hint}."
        done = self._answers.get(prompt.id)
        if done is not None:
            return (
                f"Prompt {prompt.id} was already answered {_short(done.value)} by "
                f"{_BY_WORDS.get(done.by, done.by)}; only the first answer counts, so send the "
                "run a new message if you want something else."
            )
        if prompt.deadline is not None and self._clock() >= prompt.deadline:
            return (
                f"Prompt {prompt.id} is past its deadline and is being answered "
                f"{_short(_default_value(prompt.kind))} for you; send the run a new message if "
                "you want something else."
            )
        approvals = ", ".join(APPROVAL_VALUES)
        accepts = [option.value for option in prompt.options]
        if prompt.kind == "approval":
            expected = f"answer with exactly one of: {approvals}"
            if accepts:
                expected += f", or one of the agent's own options: {', '.join(accepts)}"
        elif prompt.choices:
            expected = f"pick one of: {', '.join(prompt.choices)}, or type a reply of your own"
        else:
            expected = "type a reply"
        if not isinstance(value, str):
            return f"An answer must be text, not {type(value).__name__}; {expected}."
        if not value.strip():
            return f"An empty answer cannot be taken; {expected}."
        if prompt.kind == "approval" and value not in APPROVAL_VALUES and value not in accepts:
            return f"{_short(value)} is not an approval answer; {expected}."
        return None

    def _later(self, fn: Callable[..., object], *args: object) -> None:
        """Queue a side effect (lock held); :meth:`_drain` runs it after the lock is released."""
        self._outbox.append(lambda: fn(*args))

    def _notify(self, waiting: bool) -> None:
        callback = self.on_change
        if callback is not None:
            callback(waiting)

    def _drain(self) -> None:
        """Run queued side effects in order, outside the lock, on one thread at a time.

        If another thread is already draining, it will run ours too, in order; a nested call
        from inside ``emit`` returns at once for the same reason. Every queued effect runs even
        if one raises (so no waiter is left asleep); the first error is re-raised afterwards.
        """
        with self._lock:
            if self._draining:
                return
            self._draining = True
        error: BaseException | None = None
        while True:
            with self._lock:
                if not self._outbox:
                    self._draining = False
                    break
                effect = self._outbox.popleft()
            try:
                effect()
            except BaseException as exc:
                if error is None:
                    error = exc
        if error is not None:
            raise error
