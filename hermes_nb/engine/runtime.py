"""The kernel-side runtime: one event-loop thread that runs every turn.

Cells never wait for a model. :meth:`Runtime.start` hands a turn to a daemon thread running an
anyio (asyncio) event loop and returns a :class:`Run` at once; the loop owns all network I/O
through one shared ``httpx.AsyncClient``. A run's events are journaled with a gap-free ``seq``
and fanned out to subscriber queues; ``cancel()`` may come from any thread (a widget's Stop
arrives on a kernel subshell thread) and cancels the task reading the provider's stream, which
closes the HTTP connection at once.

``Run.put(event, data)`` does three things in this order, under the run's lock:
1. appends to the journal (which assigns ``seq``),
2. sets the side channel ``last_event_id`` to that seq,
3. puts the ``(event, data)`` 2-tuple on every subscriber queue.
The queue items stay 2-tuples so consumers that unpack ``event, data = q.get()`` keep working;
the seq travels on the side channel (DESIGN.md §3, invariant 3).
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal

from ..core.events import TRUNCATING_REASONS, Event, RunState
from ..core.exceptions import RunError
from ..core.journal import JournalEntry, RunJournal
from ..core.prompts import Prompt
from ..core.usage import UsageSum
from .prompts import PromptBroker
from .turn import TurnRequest, drive_turn

if TYPE_CHECKING:
    import httpx


__all__ = ["KEEP_SETTLED", "Run", "Runtime", "get_runtime"]

T = TypeVar("T")
_run_numbers = itertools.count(1)


class Run:
    """A handle on one turn: its events, its state, and the way to stop it.

    Created by :meth:`Runtime.start`; safe to use from any thread.
    """

    def __init__(self, request: TurnRequest, runtime: Runtime) -> None:
        self.request = request
        self.run_id = f"run-{next(_run_numbers)}-{uuid.uuid4().hex[:8]}"
        self.stream_id = uuid.uuid4().hex
        self.journal = RunJournal()
        self.created_at = time.time()
        self.finished_at: float | None = None
        #: Token counts over the whole run: every request of a tool loop added up (what the run
        #: cost), and ``context_tokens`` the last request's prompt + completion (how full the
        #: context is). See :mod:`hermes_nb.core.usage`.
        self.usage: dict[str, int] = {}
        self._usage = UsageSum()
        self.error: dict[str, Any] | None = None
        #: The notice after the reply: the cancel marker once a stop was written back, or the
        #: truncation notice of a reply the provider cut short (see :attr:`truncated`).
        self.notice: str | None = None
        #: Why the provider stopped generating, as it reported it (``"stop"``, ``"length"``,
        #: ``"tool_calls"``, ``"content_filter"``, …); None until it did. A done run always
        #: has one (``"stop"`` when the provider does not say).
        self.finish_reason: str | None = None
        self.tool_calls: dict[str, dict[str, Any]] = {}
        self._runtime = runtime
        self._state = RunState.QUEUED
        self._text: list[str] = []
        self._reasoning: list[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._subscribers: list[queue.Queue[tuple[str, dict[str, Any]]]] = []
        self._last_event_id = 0
        self._settled = threading.Event()
        self._cancel_requested = False
        self.cancel_reason = "user"
        self._completed = False
        self._cancel: Callable[[], None] | None = None
        self._first_token_at: float | None = None
        #: The run's prompts (approvals and questions for the person): the broker journals them
        #: through :meth:`put`; :attr:`pending` and :meth:`answer` are its public face.
        self.prompts = PromptBroker(self.put, timeout=request.profile.prompt_timeout or None)
        self.prompts.on_change = self._prompts_changed
        #: The tool loop's completed steps (assistant messages with their calls, tool results).
        self._steps: list[dict[str, Any]] = []

    # -- reading -----------------------------------------------------------------------------

    @property
    def status(self) -> RunState:
        """The lifecycle state: queued → streaming ⇄ waiting → done | stopped | error."""
        return self._state

    @property
    def pending(self) -> list[Prompt]:
        """The prompts of this run still waiting for the person, oldest first."""
        return [] if self.settled else self.prompts.pending

    def prompt_record(self) -> list[dict[str, Any]]:
        """Every prompt this run asked, with its answer once it has one (``value``, ``by``),
        oldest first: what the settled transcript and the session store keep."""
        asked: dict[str, dict[str, Any]] = {}
        for entry in self.journal.since(0):
            if entry.event == Event.PROMPT:
                asked[entry.data["id"]] = dict(entry.data)
            elif entry.event == Event.PROMPT_ANSWERED and entry.data["id"] in asked:
                asked[entry.data["id"]].update(value=entry.data["value"], by=entry.data["by"])
        return list(asked.values())

    def refusal(self, prompt_id: str, value: object) -> str | None:
        """Why :meth:`answer` would refuse ``value`` for ``prompt_id``, in one sentence that
        says what to do instead; None if it would take it."""
        if self.settled:
            return f"{self.run_id} has already finished; no prompt of it is waiting."
        return self.prompts.refusal(prompt_id, value)

    def answer(self, prompt_id: str, value: str, by: str = "api") -> bool:
        """Answer one of :attr:`pending`, from any thread. The first answer wins; a second one,
        an unknown id, an answer after the deadline, an empty answer or an approval that is
        not ``once``, ``session``, ``always`` or ``deny`` returns False and changes nothing
        (:meth:`refusal` says why). ``by`` names the channel: ``api``, ``magic`` or ``view``."""
        if self.settled:
            return False
        return self.prompts.answer(prompt_id, value, by=by)

    @property
    def text(self) -> str:
        """The reply text streamed so far."""
        return self._joined(self._text)

    @property
    def reasoning(self) -> str:
        """The reasoning text streamed so far."""
        return self._joined(self._reasoning)

    def _joined(self, pieces: list[str]) -> str:
        """``pieces`` joined, and kept as their only item: a settled run then holds its text as
        one string (the very object the done event and the transcript get) instead of one small
        string per token, 53 bytes each: 13x the text itself for 4-character tokens."""
        with self._lock:
            if len(pieces) > 1:
                pieces[:] = ["".join(pieces)]
            return pieces[0] if pieces else ""

    @property
    def truncated(self) -> bool:
        """True if the run finished but the provider cut the reply short: it hit the output
        limit (``finish_reason == "length"``) or a content filter. :attr:`notice` says which
        and what to do."""
        return self._state is RunState.DONE and self.finish_reason in TRUNCATING_REASONS

    @property
    def last_event_id(self) -> int:
        """The seq of the newest event (the side channel; 0 before the first)."""
        return self._last_event_id

    @property
    def settled(self) -> bool:
        return self._settled.is_set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel_requested

    @property
    def profile(self) -> Any:
        return self.request.profile

    @property
    def session_id(self) -> str | None:
        """The stored session this turn belongs to (None for a plain in-memory history)."""
        return getattr(self.request.transcript, "session_id", None)

    def events(self, after_seq: int = 0) -> list[JournalEntry]:
        """Journaled events with ``seq > after_seq`` (each unpacks as ``seq, event, data``)."""
        return self.journal.since(after_seq)

    def subscribe(self, after_seq: int | None = None) -> queue.Queue[tuple[str, dict[str, Any]]]:
        """A queue receiving every later ``(event, data)``; ``stream_end`` comes last.

        With ``after_seq``, events already journaled after it are queued first, with no gap
        and no duplicate between them and the live ones.
        """
        q: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        with self._lock:
            if after_seq is not None:
                for entry in self.journal.since(after_seq):
                    q.put_nowait((entry.event, entry.data))
            if not self._settled.is_set():
                self._subscribers.append(q)
        return q

    def unsubscribe(self, q: queue.Queue[Any]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    def wait_for_event(self, after_seq: int, timeout: float | None = None) -> int:
        """Block until an event with seq > ``after_seq`` exists (or the timeout); return the
        newest seq. Lets a pump sleep while nothing happens instead of polling."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._last_event_id > after_seq or self._settled.is_set(), timeout
            )
            return self._last_event_id

    def wait(self, timeout: float | None = None) -> Run:
        """Block until the run settles and return it; :class:`RunError` on timeout."""
        if threading.get_ident() == self._runtime.thread_id:
            raise RunError("Run.wait() cannot be called from the runtime's own thread.")
        if not self._settled.wait(timeout):
            raise RunError(
                f"{self.run_id} did not finish within {timeout:g} s.",
                hint="Call run.cancel() to stop it, or wait longer.",
            )
        return self

    # -- writing (the turn driver) ------------------------------------------------------------

    def put(self, event: str, data: dict[str, Any]) -> int:
        """Journal ``(event, data)``, update the side channel, then fan out. Returns the seq."""
        event = str(event)
        with self._lock:
            self._accumulate(event, data)
            seq = self.journal.append(event, data)
            self._last_event_id = seq
            for q in self._subscribers:
                q.put_nowait((event, data))
            self._changed.notify_all()
        return seq

    def _accumulate(self, event: str, data: dict[str, Any]) -> None:
        if event == Event.TOKEN:
            if self._first_token_at is None:
                self._first_token_at = time.perf_counter()
            self._text.append(data["text"])
        elif event == Event.REASONING:
            self._reasoning.append(data["text"])
        elif event == Event.TOOL_START:
            self.tool_calls[data["id"]] = {
                "id": data["id"],
                "name": data["name"],
                "arguments": data.get("arguments", ""),
            }
        elif event == Event.TOOL_DELTA:
            call = self.tool_calls.setdefault(
                data["id"], {"id": data["id"], "name": "", "arguments": ""}
            )
            call["arguments"] += data["text"]
        elif event == Event.TOOL_END:
            call = self.tool_calls.setdefault(data["id"], {"id": data["id"], "arguments": ""})
            call.update(
                name=data.get("name") or call.get("name", ""),
                result=data.get("result", ""),
                error=bool(data.get("error")),
                duration_ms=data.get("duration_ms"),
            )
        elif event == Event.USAGE:
            self.usage = self._usage.report(data)
        elif event == Event.STEP:
            self._usage.next_request()
        elif event == Event.APPERROR:
            self.error = dict(data)
        elif event == Event.CANCEL:
            self.notice = data["message"]
        elif event == Event.FINISH:
            self.finish_reason = data["finish_reason"]
        elif event == Event.DONE:
            self.finish_reason = data.get("finish_reason") or self.finish_reason
            if data.get("notice"):
                self.notice = data["notice"]

    def _prompts_changed(self, waiting: bool) -> None:
        """The broker opened its first prompt or answered its last: waiting ⇄ streaming.
        Only those two states move; a run that is settling keeps its way."""
        old, new = (
            (RunState.STREAMING, RunState.WAITING)
            if waiting
            else (RunState.WAITING, RunState.STREAMING)
        )
        with self._lock:
            if self._state is not old:
                return
            self._state = new
        self.put(Event.STATUS, {"state": str(new)})

    def set_state(self, state: RunState, detail: str = "") -> None:
        """Move to ``state`` (a legal transition) and journal a ``status`` event."""
        with self._lock:
            if not self._state.can_become(state):
                raise RunError(f"{self.run_id} cannot go from {self._state} to {state}.")
            self._state = state
        data: dict[str, Any] = {"state": str(state)}
        if detail:
            data["detail"] = detail
        self.put(Event.STATUS, data)

    def finish(self) -> None:
        """Journal ``stream_end``, release subscribers and waiters, compact the journal (which
        then shares the reply's string with :attr:`text` rather than keeping a copy)."""
        self.put(Event.STREAM_END, {"state": str(self._state)})
        with self._lock:
            self.finished_at = time.time()
            self._subscribers.clear()
            self._settled.set()
            self._changed.notify_all()
        self.journal.compact(reuse=(self.text, self.reasoning))

    def _bind_cancel(self, cancel: Callable[[], None]) -> bool:
        """Called by the driver when it can be cancelled; False if Stop came first."""
        with self._lock:
            self._cancel = cancel
            return not self._cancel_requested

    # -- control ------------------------------------------------------------------------------

    def _stream_completed(self) -> None:
        """Called by the driver when the provider finished: a Stop from now on is too late."""
        with self._lock:
            self._cancel = None
            self._completed = True

    def cancel(self, reason: str = "user") -> bool:
        """Stop the run now, from any thread. Idempotent; False if it already finished or is
        stopping. ``reason`` is ``"user"`` or ``"shutdown"`` (the kernel is exiting)."""
        with self._lock:
            if self._settled.is_set() or self._cancel_requested or self._completed:
                return False
            self._cancel_requested = True
            self.cancel_reason = reason
            cancel = self._cancel
        # Open prompts are answered for the person first (deny / no answer, by "stop" or
        # "shutdown"), so a worker thread parked on one is released as the stream closes.
        self.prompts.close("shutdown" if reason == "shutdown" else "stop")
        if cancel is not None:
            self._runtime.call_soon(cancel)
        return True

    def __repr__(self) -> str:
        return f"<Run {self.run_id} {self._state} {len(self.text)} chars>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


#: How many settled runs the runtime keeps (``%hermes runs``, ``Runtime.get``) besides the live
#: ones. An older settled run is let go: its turn is in the session store, its view has been
#: replaced by the static answer, and a long-lived kernel should not grow by a reply per turn
#: (``benchmarks/bench_memory.py``). A run the caller holds (``r = hermes_nb.chat(...)``) lives on.
KEEP_SETTLED = 100


class Runtime:
    """Owns the event-loop thread, the shared HTTP client and the registry of runs.

    Started lazily by the first :meth:`start`; one per process (:func:`get_runtime`).
    """

    def __init__(self, *, keep_settled: int = KEEP_SETTLED) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._portal: BlockingPortal | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: httpx.AsyncClient | None = None
        self._runs: OrderedDict[str, Run] = OrderedDict()
        self._keep_settled = keep_settled
        self.thread_id: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._portal is not None

    def _ensure_started(self) -> BlockingPortal:
        with self._lock:
            if self._portal is not None:
                return self._portal
            ready: queue.Queue[BlockingPortal | BaseException] = queue.Queue()
            thread = threading.Thread(
                target=self._main, args=(ready,), name="hermes-nb-runtime", daemon=True
            )
            thread.start()
            got = ready.get()
            if isinstance(got, BaseException):
                raise RunError("The hermes_nb runtime could not start.") from got
            self._thread, self._portal = thread, got
            return got

    def _main(self, ready: queue.Queue[Any]) -> None:
        async def main() -> None:
            import httpx

            self._loop = asyncio.get_running_loop()
            self.thread_id = threading.get_ident()
            async with (
                httpx.AsyncClient(
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                    follow_redirects=True,
                ) as client,
                BlockingPortal() as portal,
            ):
                self._client = client
                ready.put(portal)
                await portal.sleep_until_stopped()

        try:
            anyio.run(main, backend="asyncio")
        except BaseException as exc:  # pragma: no cover - reported to the starter
            ready.put(exc)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every live run, stop the loop and join its thread (kernel exit)."""
        with self._lock:
            portal, thread = self._portal, self._thread
            self._portal = self._thread = None
        if portal is None or thread is None:
            return
        for run in list(self._runs.values()):
            run.cancel(reason="shutdown")

        def stop() -> None:
            try:
                portal.call(portal.stop, True)
            except RuntimeError:  # the loop is already gone
                pass

        # Bounded: a turn settling into a locked store must not hold the kernel's exit forever.
        stopper = threading.Thread(target=stop, name="hermes-nb-shutdown", daemon=True)
        stopper.start()
        stopper.join(timeout)
        thread.join(max(0.0, timeout / 2))
        self._client = self._loop = None
        self.thread_id = None

    # -- running turns ------------------------------------------------------------------------

    @property
    def client(self) -> httpx.AsyncClient:
        """The shared HTTP client (only to be used on the runtime thread)."""
        self._ensure_started()
        assert self._client is not None
        return self._client

    def call_soon(self, func: Callable[[], Any]) -> None:
        """Run a plain callable on the loop thread, without waiting for it."""
        if threading.get_ident() == self.thread_id:
            func()
            return
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(func)

    def submit(self, func: Callable[[], Awaitable[T]]) -> Future[T]:
        """Run an async function on the loop and return a ``concurrent.futures.Future``."""
        if threading.get_ident() == self.thread_id:
            raise RunError("The runtime cannot wait on itself; call this from another thread.")
        return self._ensure_started().start_task_soon(func)

    def start(self, request: TurnRequest) -> Run:
        """Start a turn on the loop thread and return its :class:`Run` at once."""
        portal = self._ensure_started()
        run = Run(request, self)
        self._register(run)
        portal.start_task_soon(drive_turn, run, self)
        return run

    def _register(self, run: Run) -> None:
        with self._lock:
            self._runs[run.run_id] = run
            settled = [r for r in self._runs.values() if r.settled]
            for old in settled[: max(0, len(settled) - self._keep_settled)]:
                del self._runs[old.run_id]

    def runs(self) -> list[Run]:
        """Known runs, oldest first (live ones and the most recent settled ones)."""
        with self._lock:
            return list(self._runs.values())

    def get(self, run_id: str) -> Run:
        """The run with that id (or unique id prefix); :class:`RunError` if none."""
        with self._lock:
            if run_id in self._runs:
                return self._runs[run_id]
            found = [r for k, r in self._runs.items() if k.startswith(run_id)]
        if len(found) == 1:
            return found[0]
        raise RunError(
            f"No run {run_id!r}." if not found else f"{run_id!r} matches {len(found)} runs.",
            hint="%hermes runs lists them.",
        )

    def last_event_id(self, stream_id: str) -> int:
        """The side channel by stream id: the seq of that stream's newest event."""
        with self._lock:
            for run in self._runs.values():
                if run.stream_id == stream_id:
                    return run.last_event_id
        return 0


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime (created on first use, shut down at interpreter exit)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
            atexit.register(_runtime.shutdown)
        return _runtime
