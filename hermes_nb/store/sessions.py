"""Sessions: conversations kept in the store, so they outlive the kernel.

:class:`Session` is the handle users hold (``Session.open("notes").chat("…")``);
:class:`SessionTranscript` is how a turn reads and writes a session (it implements
:class:`hermes_nb.engine.turn.Transcript`):

* ``begin`` makes the prompt durable *before* the request is sent — it is stored as the user
  message, and as the session's pending message until the turn settles — claims the session's
  ``active_stream_id`` and records the run with its owning process, all in one transaction
  (DESIGN.md §3, invariant 18).
* ``settle`` writes back only while the run's stream still owns the session (compare-and-clear in
  one transaction, invariant 10): the tool loop's completed steps — each assistant message with
  its ``tool_calls``, then a ``tool`` message per call, so the next turn's history is valid for
  the API — then the reply; or what was streamed before Stop as a ``partial`` message and the
  cancel marker (invariants 7–9); or the partial text and the classified error (invariant 14).
  The prompts the run asked and their answers go in the reply's metadata. What is written is
  decided from this turn's outcome alone.

On a store that cannot be written (:class:`~hermes_nb.core.exceptions.StoreReadOnlyError`: a
read-only or full filesystem) a turn still runs and its reply is shown, but it is not saved:
``begin`` falls back to the stored history, ``settle`` stores nothing and raises the error with
one sentence saying so, which the turn shows after the reply. The handle keeps those unsaved turns
in memory so the conversation goes on; a session that cannot even be created is such a handle
alone (:attr:`Session.unsaved`). If the prompt was stored but the reply cannot be (the disk
filled up meanwhile), the sentence says that the prompt is kept.

After a session's first reply a background job titles it; after any reply that brings the context
over ``context_window * compress_at`` a background job compresses it. Both are best-effort: a
failure is logged and the next reply tries again. A :class:`Session` handle follows compression:
once its session has been archived, the next ``chat`` continues in the continuation.
"""

from __future__ import annotations

import atexit
import builtins
import dataclasses
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..core.config import resolve_profile
from ..core.events import RunState
from ..core.exceptions import (
    ErrorKind,
    HermesError,
    SessionNotFound,
    StoreError,
    StoreReadOnlyError,
)
from ..core.profiles import Profile
from ..core.prompts import ANSWERED_BY, APPROVAL_DECISIONS
from ..engine.runtime import get_runtime
from ..engine.turn import TurnOutcome, TurnRequest, cancel_marker, turn_tools
from ..providers.base import HINTS, Message
from .compression import DEFAULT_KEEP_LAST, needs_compression
from .database import (
    NewMessage,
    SearchHit,
    SessionRecord,
    Store,
    StoredMessage,
    close_stores,
    get_store,
)
from .titles import generate_title

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = [
    "SearchHit",
    "Session",
    "SessionTranscript",
    "StoredMessage",
    "join_background",
    "list",
    "search",
]

log = logging.getLogger(__name__)


class Session:
    """A stored conversation: open it by name or id, chat in it, branch, compress, export.

    Attributes other than ``id`` are read from the store when used, so they are never stale
    (a background job may set the title; another kernel may rename the session).
    """

    def __init__(self, session_id: str, store: Store) -> None:
        self.id = session_id
        self._store = store
        # A session the store could not create (read-only or full): its record lives in this
        # handle, with the store's refusal.
        self._draft: SessionRecord | None = None
        self._refused: StoreReadOnlyError | None = None
        # Turns shown but not saved (a read-only store), sent as history by the next turns.
        self._unsaved: builtins.list[Message] = []

    @classmethod
    def _unsaved_session(
        cls, store: Store, name: str | None, profile: Profile, refused: StoreReadOnlyError
    ) -> Session:
        now = time.time()
        record = SessionRecord(
            uuid.uuid4().hex,
            name,
            None,
            profile.name,
            profile.model,
            None,
            "new",
            False,
            now,
            now,
            None,
            None,
            None,
        )
        session = cls(record.id, store)
        session._draft, session._refused = record, refused
        return session

    # -- finding sessions ----------------------------------------------------------------------

    @classmethod
    def open(cls, name_or_id: str, *, store: Store | None = None) -> Session:
        """The session with that name, id or unique id prefix; :class:`SessionNotFound` if none."""
        store = store or get_store()
        return cls(store.find_session(str(name_or_id)).id, store)

    @classmethod
    def new(
        cls,
        name: str | None = None,
        profile: str | Profile | None = None,
        *,
        store: Store | None = None,
    ) -> Session:
        """A new, empty session (``name`` must not be used by another live session)."""
        store = store or get_store()
        resolved = _profile(profile)
        try:
            record = store.create_session(
                name=_name(name), profile=resolved.name, model=resolved.model
            )
        except StoreReadOnlyError as exc:  # its turns are shown, each saying it was not saved
            return cls._unsaved_session(store, _name(name), resolved, exc)
        return cls(record.id, store)

    @classmethod
    def open_or_create(
        cls, name: str, profile: str | Profile | None = None, *, store: Store | None = None
    ) -> Session:
        """The live session called ``name`` (a notebook's default session), created if needed."""
        store = store or get_store()
        resolved = _profile(profile)
        try:
            record = store.open_or_create(
                _name(name) or "", profile=resolved.name, model=resolved.model
            )
        except StoreReadOnlyError as exc:  # no such session, and none can be created: unsaved
            return cls._unsaved_session(store, _name(name) or "", resolved, exc)
        return cls(record.id, store)

    # -- reading -------------------------------------------------------------------------------

    def _record(self) -> SessionRecord:
        if self._draft is not None:
            return self._draft
        return self._store.get_session(self.id)

    @property
    def unsaved(self) -> bool:
        """True for a session that exists only in this handle: the store could not be written
        when it was made (a read-only or full filesystem). It has no stored messages; its turns
        are shown, each saying it was not saved — until a turn finds that the store takes it
        (space was freed), when it is stored and saves as any other."""
        return self._draft is not None

    def _sibling(self, session_id: str) -> Session:
        return type(self)(session_id, self._store)

    @property
    def name(self) -> str | None:
        return self._record().name

    @property
    def title(self) -> str | None:
        return self._record().title

    @property
    def profile(self) -> str | None:
        """The name of the profile the session last used."""
        return self._record().profile

    @property
    def model(self) -> str | None:
        return self._record().model

    @property
    def parent_session_id(self) -> str | None:
        return self._record().parent_session_id

    @property
    def source(self) -> str:
        """``new``, ``fork`` (a branch) or ``compression`` (a continuation)."""
        return self._record().source

    @property
    def archived(self) -> bool:
        return self._record().archived

    @property
    def created_at(self) -> float:
        return self._record().created_at

    @property
    def updated_at(self) -> float:
        return self._record().updated_at

    @property
    def messages(self) -> builtins.list[StoredMessage]:
        """Every message, in order (notices and errors included)."""
        return self._store.messages(self.id)

    def lineage(self) -> builtins.list[Session]:
        """This session, its parent, the parent's parent, … up to the root."""
        if self._draft is not None:
            return [self]
        chain: builtins.list[Session] = []
        seen: set[str] = set()
        current: str | None = self.id
        while current and current not in seen:
            seen.add(current)
            try:
                record = self._store.get_session(current)
            except SessionNotFound:
                break
            chain.append(self._sibling(record.id))
            current = record.parent_session_id
        return chain

    # -- turns ---------------------------------------------------------------------------------

    def chat(
        self,
        prompt: str,
        profile: str | Profile | None = None,
        system: str | None = None,
        tools: Iterable[Any] | None = None,
        **overrides: Any,
    ) -> Run:
        """Start a turn in this session and return its :class:`~hermes_nb.engine.Run` at once.

        ``profile`` defaults to the one the session last used; ``tools`` and ``overrides`` are
        as for :func:`hermes_nb.chat`. The run's session is
        ``run.request.transcript.session_id``.
        """
        if not isinstance(prompt, str) or not prompt.strip():
            raise HermesError(
                "The prompt is empty.", hint="Pass the question as a non-empty string."
            )
        record = self._follow()
        resolved, extra = resolve_profile(
            profile if profile is not None else record.profile, **overrides
        )
        request = TurnRequest(
            prompt=prompt,
            profile=resolved,
            transcript=SessionTranscript(self.id, store=self._store, handle=self),
            system=system,
            extra=extra,
            tools=turn_tools(resolved, tools),
        )
        return get_runtime().start(request)

    def _follow(self) -> SessionRecord:
        """The live session this handle continues in, following compression continuations.

        Only a first look (for the profile): compression may still archive the session before
        the turn begins, and the turn's own transaction follows again (``Store.begin_turn``).
        """
        if self._draft is not None:  # stored now, if the store takes it (space was freed)
            draft = self._draft
            try:
                if draft.name:
                    record = self._store.open_or_create(
                        draft.name, profile=draft.profile, model=draft.model
                    )
                else:
                    record = self._store.create_session(profile=draft.profile, model=draft.model)
            except StoreReadOnlyError as exc:
                self._refused = exc
                return draft
            self.id, self._draft, self._refused = record.id, None, None
            return record
        record = self._store.live_session(self.id)
        self.id = record.id
        return record

    # -- changing ------------------------------------------------------------------------------

    def branch(self, k: int) -> Session:
        """A new session (source ``fork``, parent this one) holding the first ``k`` messages.

        ``tool`` messages are copied like every other. A ``k`` that would keep a tool call
        without all of its results (the message after the k-th is a ``tool`` message) is
        refused, naming the two nearest places to cut instead: before the call, or after its
        last result. (Such a cut would be harmless — the history sent leaves an unanswered call
        out — but the branch would not hold what the conversation said.)
        """
        count = self._store.last_position(self.id)
        if not isinstance(k, int) or not 0 <= k <= count:
            raise HermesError(
                f"Cannot branch session {self.id[:8]} after message {k!r}.",
                hint=f"Pass k between 0 and {count} (the number of messages to keep).",
            )
        messages = self.messages if k < count else []
        if messages and messages[k].role == "tool":
            before = after = k
            while before > 0 and messages[before].role == "tool":
                before -= 1
            while after < len(messages) and messages[after].role == "tool":
                after += 1
            raise HermesError(
                f"Cannot branch session {self.id[:8]} after message {k}: that would keep a tool "
                "call without its results.",
                hint=f"Pass k={before} (before the call) or k={after} (after its results).",
            )
        title = self.title
        record = self._store.fork(self.id, k, title=f"{title} (branch)" if title else None)
        return self._sibling(record.id)

    def compress(
        self,
        keep_last: int = DEFAULT_KEEP_LAST,
        *,
        reason: str = "requested",
        profile: str | Profile | None = None,
    ) -> Session:
        """Summarise older messages into a continuation (this session becomes its archive).

        Returns the continuation; see :func:`hermes_nb.compression.compress`.
        """
        from .compression import compress

        return compress(self, keep_last=keep_last, reason=reason, profile=profile)

    def rename(self, name: str | None) -> None:
        """Set (or with None, clear) the session's name — in its continuation if compression
        archived it, as ``chat`` would continue there."""
        self.id = self._store.rename_session(self.id, _name(name)).id

    def delete(self) -> None:
        """Delete the session and its messages. Its branches and continuations are kept and
        re-parented to this session's parent, so their lineage still reaches the root."""
        self._store.delete_session(self.id)

    # -- output --------------------------------------------------------------------------------

    def export(self, fmt: str = "md") -> str:
        """The whole session as Markdown (``"md"``) or JSON (``"json"``)."""
        record = self._record()
        messages = self.messages
        if fmt == "json":
            return json.dumps(
                {
                    "format": "hermes_nb.session/1",
                    "session": dataclasses.asdict(record),
                    "lineage": [s.id for s in self.lineage()],
                    "messages": [m.to_dict() for m in messages],
                },
                ensure_ascii=False,
                indent=2,
            )
        if fmt == "md":
            return _markdown(record, messages)
        raise HermesError(f"Unknown export format {fmt!r}.", hint='Use "md" or "json".')

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Session):
            return NotImplemented
        return self.id == other.id and self._store.path == other._store.path

    def __hash__(self) -> int:
        # Not the id: a handle's id moves when it follows its session into a continuation.
        return hash(self._store.path)

    def __repr__(self) -> str:
        try:
            record = self._record()
        except StoreError:
            return f"<Session {self.id[:8]} (gone)>"
        label = " ".join(repr(v) for v in (record.name, record.title) if v)
        flags = " archived" if record.archived else " unsaved" if self.unsaved else ""
        return f"<Session {self.id[:8]}{' ' + label if label else ''}{flags}>"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self))


def _profile(profile: str | Profile | None) -> Profile:
    return resolve_profile(profile)[0]


def _name(name: str | None) -> str | None:
    if name is None:
        return None
    if not isinstance(name, str) or not name.strip():
        raise HermesError("A session name must be a non-empty string.", hint="Or pass None.")
    return name.strip()


# -- the transcript ----------------------------------------------------------------------------


class SessionTranscript:
    """:class:`hermes_nb.engine.turn.Transcript` against the store, for one session.

    If compression archives the session between the turn's start and ``begin`` (the background
    job of the previous reply, another kernel), the turn lands in the continuation:
    ``session_id`` — and ``handle``'s id, if given — move there, and the write-back follows.
    """

    def __init__(
        self,
        session_id: str,
        *,
        store: Store | None = None,
        auto_title: bool = True,
        auto_compress: bool = True,
        handle: Session | None = None,
    ) -> None:
        self.session_id = session_id
        self.store = store or get_store()
        self.auto_title = auto_title
        self.auto_compress = auto_compress
        self.handle = handle
        #: set when the store refused the prompt: the turn runs, and is not saved
        self.unsaved: StoreReadOnlyError | None = None

    def begin(self, run: Run) -> builtins.list[Message]:
        """Store the prompt and claim the session (one transaction), then read the history.

        On a store that cannot be written: the stored history, the handle's unsaved turns and
        the prompt — the turn runs, and :meth:`settle` says it was not saved.
        """
        # A session the store could not create is refused as it was then.
        self.unsaved = self.handle._refused if self.handle is not None else None
        if self.unsaved is None:
            try:
                record = self.store.begin_turn(
                    self.session_id,
                    run_id=run.run_id,
                    stream_id=run.stream_id,
                    prompt=run.request.prompt,
                    profile=run.profile.name,
                    model=run.profile.model,
                )
            except StoreReadOnlyError as exc:
                self.unsaved = exc
        if self.unsaved is not None:
            earlier = self.handle._unsaved if self.handle is not None else []
            prompt: Message = {"role": "user", "content": run.request.prompt}
            return [*self.store.history(self.session_id), *earlier, prompt]
        if record.id != self.session_id:
            log.info(
                "Session %s was compressed; the turn continues in %s.",
                self.session_id[:8],
                record.id[:8],
            )
            self.session_id = record.id
            if self.handle is not None:
                self.handle.id = record.id
        # Claimed by this stream, the session cannot be archived before the history is read.
        return self.store.history(self.session_id)

    def settle(self, run: Run, outcome: TurnOutcome) -> bool:
        """Write the outcome iff ``run.stream_id`` still owns the session; True if written.

        :class:`StoreReadOnlyError` if the store cannot be written: its message is the one
        sentence the turn shows — not saved, why, and what is kept.
        """
        if self.unsaved is not None:
            if self.handle is not None:
                self.handle._unsaved.extend(_unsaved_turn(run.request.prompt, outcome))
            raise _not_saved(
                "This turn",
                self.store,
                self.unsaved,
                ", so it is shown here only and the stored history is unchanged",
            )
        state, messages = _outcome_messages(outcome, run.profile)
        try:
            written = self.store.settle_turn(
                self.session_id,
                run_id=run.run_id,
                stream_id=run.stream_id,
                state=state,
                messages=messages,
                usage=outcome.usage or None,
                error=outcome.error,
            )
        except StoreReadOnlyError as exc:
            raise _not_saved(
                "This reply",
                self.store,
                exc,
                "; your prompt is stored, and the reply is shown here only",
            ) from exc
        if written and state == "done":
            self._after_reply(run.profile)
        return written

    def _after_reply(self, profile: Profile) -> None:
        session = Session(self.session_id, self.store)
        try:
            untitled = session.title is None
            compress = self.auto_compress and needs_compression(session, profile)
        except HermesError as exc:
            log.warning("Could not check session %s after its reply: %s", self.session_id, exc)
            return
        if self.auto_title and untitled:
            _start_job(f"title:{self.session_id}", generate_title, session, profile)
        if compress:
            _start_job(f"compress:{self.session_id}", _auto_compress, session, profile)


def _not_saved(what: str, store: Store, exc: StoreReadOnlyError, kept: str) -> StoreReadOnlyError:
    """The one sentence a turn shows when the store refused it: not saved, why, what is kept."""
    return StoreReadOnlyError(
        f"{what} was not saved: the session store {store.path} {exc.reason}{kept}.",
        reason=exc.reason,
    )


def _unsaved_turn(prompt: str, outcome: TurnOutcome) -> builtins.list[Message]:
    """A turn the store refused, as history for the next turns of the same handle."""
    turn: builtins.list[Message] = [{"role": "user", "content": prompt}]
    turn.extend(dict(m) for m in outcome.steps)
    if outcome.text.strip():
        turn.append({"role": "assistant", "content": outcome.text})
    return turn


def _outcome_messages(
    outcome: TurnOutcome, profile: Profile
) -> tuple[str, builtins.list[NewMessage]]:
    """The run's terminal state and the messages a turn's outcome adds to its session, in order:
    the tool loop's completed steps (each assistant message with its ``tool_calls``, then one
    ``tool`` message per call), the reply (partial unless the turn is done), then the cancel or
    truncation notice or the error.

    Decided from this turn's outcome only — never from earlier history (invariant 14): a turn
    whose only output is steps is not an empty reply. The prompts the run asked, with their
    answers, go in the ``metadata["prompts"]`` of the reply, else of the notice or error row,
    else of the last step; the model and usage go on the reply, else on the last step.
    """
    messages = _step_messages(outcome.steps)
    steps = [i for i, m in enumerate(messages) if m.role == "assistant"]
    last_step = steps[-1] if steps else None
    reply: int | None = None
    state = str(outcome.state)
    if outcome.text.strip() or outcome.reasoning.strip() or outcome.tool_calls:
        reply = len(messages)
        messages.append(
            NewMessage(
                "assistant",
                outcome.text,
                reasoning=outcome.reasoning or None,
                tool_calls=outcome.tool_calls or None,
                partial=outcome.state is not RunState.DONE,
            )
        )
    ending = len(messages)  # the notice or the error row, if one follows
    if outcome.state is RunState.STOPPED:
        messages.append(
            NewMessage(
                "notice",
                outcome.notice or cancel_marker(profile.bot_name),
                metadata={"kind": "cancel"},
            )
        )
    elif outcome.truncated:  # the provider cut the reply short: say so after it
        messages.append(
            NewMessage(
                "notice",
                outcome.notice,
                metadata={"kind": "truncated", "finish_reason": outcome.finish_reason},
            )
        )
    elif outcome.state is RunState.ERROR or not outcome.has_reply:
        error = outcome.error or {
            "kind": str(ErrorKind.EMPTY_REPLY),
            "message": "The model returned an empty reply.",
            "hint": HINTS[ErrorKind.EMPTY_REPLY],
            "status": None,
        }
        messages.append(NewMessage("error", str(error.get("message", "")), error=dict(error)))
        state = "error"
    said = reply if reply is not None else last_step
    if said is not None and outcome.usage:
        _annotate(messages, said, model=profile.model, usage=outcome.usage)
    if outcome.prompts:
        ended = ending if ending < len(messages) else None
        asked = reply if reply is not None else ended if ended is not None else last_step
        if asked is not None:
            _annotate(messages, asked, prompts=outcome.prompts)
    return state, messages


def _step_messages(steps: Iterable[Message]) -> builtins.list[NewMessage]:
    """The tool loop's completed steps as stored messages: assistant (text, reasoning, the
    calls' display records) and ``tool`` (the result; call id and tool name in metadata)."""
    out: builtins.list[NewMessage] = []
    for step in steps:
        role = step.get("role")
        if role == "assistant":
            out.append(
                NewMessage(
                    "assistant",
                    str(step.get("content") or ""),
                    reasoning=step.get("reasoning") or None,
                    tool_calls=[dict(c) for c in step.get("tool_calls") or ()] or None,
                )
            )
        elif role == "tool":
            out.append(
                NewMessage(
                    "tool",
                    str(step.get("content") or ""),
                    metadata={"tool_call_id": step["tool_call_id"], "name": step.get("name", "")},
                )
            )
    return out


def _annotate(messages: builtins.list[NewMessage], index: int, **metadata: Any) -> None:
    """Add keys to ``messages[index]``'s metadata (the records are frozen: replace it)."""
    message = messages[index]
    messages[index] = dataclasses.replace(
        message, metadata={**(message.metadata or {}), **metadata}
    )


def _auto_compress(session: Session, profile: Profile) -> None:
    from .compression import NothingToCompress, compress

    try:
        continuation = compress(session, reason="auto", profile=profile)
    except NothingToCompress as exc:  # nothing anyone could act on: a log record at most
        log.debug("Automatic compression of session %s not needed: %s", session.id[:8], exc)
    except HermesError as exc:
        log.warning("Automatic compression of session %s skipped: %s", session.id[:8], exc)
    else:
        log.info("Session %s compressed into %s.", session.id[:8], continuation.id[:8])


# -- background jobs ---------------------------------------------------------------------------

_jobs: dict[str, threading.Thread] = {}
_jobs_lock = threading.Lock()


def _start_job(key: str, func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in a daemon thread unless the same job is already running."""
    with _jobs_lock:
        running = _jobs.get(key)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(
            target=_run_job, args=(key, func, *args), name=f"hermes-nb-{key}", daemon=True
        )
        _jobs[key] = thread
        thread.start()


def _run_job(key: str, func: Callable[..., Any], *args: Any) -> None:
    try:
        func(*args)
    except Exception:  # a background job must never surface as a crash
        log.exception("Background job %s failed.", key)
    finally:
        with _jobs_lock:
            if _jobs.get(key) is threading.current_thread():
                del _jobs[key]


def join_background(timeout: float | None = 30.0) -> bool:
    """Wait for running title and compression jobs; True if none is left (kernel shutdown)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _jobs_lock:
            threads = [t for t in _jobs.values() if t.is_alive()]
        if not threads:
            return True
        for thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        if deadline is not None and time.monotonic() >= deadline:
            with _jobs_lock:
                return not any(t.is_alive() for t in _jobs.values())


def _at_exit() -> None:
    """Kernel exit: let title and compression jobs finish briefly, then close the stores.

    Registered at import, so it runs after the runtime's own shutdown (atexit is LIFO and the
    runtime starts later), when live turns have already written their outcome.
    """
    join_background(5.0)
    close_stores()


atexit.register(_at_exit)


# -- export ------------------------------------------------------------------------------------


#: How much of a tool's arguments or result the Markdown export shows (the JSON export has all).
_MD_CUT = 2000


def _markdown(record: SessionRecord, messages: builtins.list[StoredMessage]) -> str:
    when = datetime.fromtimestamp(record.created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"# {record.title or record.name or 'Untitled session'}", ""]
    lines.append(f"- session: `{record.id}`" + (f" (name `{record.name}`)" if record.name else ""))
    lines.append(f"- profile: {record.profile or 'default'}, model {record.model or 'unknown'}")
    if record.parent_session_id:
        lines.append(f"- {record.source} of session `{record.parent_session_id}`")
    lines.append(f"- created: {when}" + (" · archived" if record.archived else ""))
    for i, m in enumerate(messages):
        # The ids the tool messages right after this one answer: those calls' results come
        # from them; any other call's (an agent's own, one Stop cut off) from its record.
        answered = set()
        for later in messages[i + 1 :] if m.tool_calls else ():
            if later.role != "tool":
                break
            answered.add((later.metadata or {}).get("tool_call_id"))
        for prompt in (m.metadata or {}).get("prompts") or ():
            lines.append("")
            lines.extend(_markdown_prompt(prompt))
        lines.append("")
        lines.extend(_markdown_message(m, answered))
    return "\n".join(lines).rstrip() + "\n"


def _markdown_message(m: StoredMessage, answered: set[Any]) -> builtins.list[str]:
    if m.role == "notice":
        return [f"> *{m.content}*"]
    if m.role == "error":
        error = m.error or {}
        kind = f" ({error['kind']})" if error.get("kind") else ""
        hint = f"\n> {error['hint']}" if error.get("hint") else ""
        return [f"> **Error**{kind}: {m.content}{hint}"]
    if m.role == "user":
        return ["## You", "", m.content]
    if m.role == "system":
        summary = (m.metadata or {}).get("kind") == "summary"
        return ["## Summary" if summary else "## System", "", m.content]
    if m.role == "tool":
        metadata = m.metadata or {}
        name, call_id = metadata.get("name") or "tool", metadata.get("tool_call_id", "")
        return [f"**Result** of `{name}` (`{call_id}`):", "", *_fenced(m.content, "text")]
    out = ["## Assistant" + (" (partial)" if m.partial else ""), ""]
    if m.reasoning:
        out += ["<details><summary>Reasoning</summary>", "", m.reasoning, "", "</details>", ""]
    calls: builtins.list[str] = []
    for call in m.tool_calls or []:
        calls += _markdown_call(call, with_result=call.get("id") not in answered)
    text = [m.content, ""] if m.content else []
    # A step of the tool loop says its text, then calls (the results follow as tool messages);
    # an agent reports the tools it ran itself before its answer.
    out += [*text, *calls] if answered else [*calls, *text]
    return out[:-1] if out[-1] == "" else out


def _markdown_call(call: dict[str, Any], *, with_result: bool) -> builtins.list[str]:
    """A tool call: its name and arguments (pretty JSON), and its result when no ``tool``
    message carries it."""
    facts = [f"`{call.get('id')}`"] if call.get("id") else []
    if isinstance(call.get("duration_ms"), int | float):
        facts.append(f"{call['duration_ms']:,.0f} ms")
    if call.get("error"):
        facts.append("failed")
    raw = call.get("arguments") or ""
    try:
        arguments = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (TypeError, ValueError):
        arguments = str(raw)
    about = f" ({', '.join(facts)})" if facts else ""
    out = [f"**Tool call** `{call.get('name') or 'tool'}`{about}:", ""]
    out += [*_fenced(arguments, "json"), ""]
    if with_result and "result" in call:
        out += ["Result:", "", *_fenced(str(call["result"]), "text"), ""]
    return out


def _markdown_prompt(prompt: dict[str, Any]) -> builtins.list[str]:
    """A prompt the run asked the person, and the answer, as a quote."""
    approval = prompt.get("kind") == "approval"
    lines = [f"**{'Approval' if approval else 'Question'}:** {prompt.get('text', '')}"]
    if prompt.get("detail"):
        lines += ["", *_fenced(str(prompt["detail"]), "text")]
    if not approval and prompt.get("choices"):
        lines += ["", "Choices: " + ", ".join(str(c) for c in prompt["choices"])]
    value, by = prompt.get("value"), prompt.get("by")
    if value is None:
        answer = "*No answer.*"
    else:
        said = APPROVAL_DECISIONS.get(str(value), str(value)) if approval else str(value)
        who = ANSWERED_BY.get(str(by), f"by {by}") if by else ""
        answer = f"**Answer:** {said}" + (f" — {who}" if who else "")
    lines += ["", answer]
    return [f"> {line}" if line else ">" for line in lines]


def _fenced(text: str, language: str) -> builtins.list[str]:
    """``text`` as a fenced code block that nothing in it can close, cut if long."""
    if len(text) > _MD_CUT:
        text = text[:_MD_CUT] + f"\n[… cut: {len(text) - _MD_CUT:,} more characters]"
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return [fence + language, *text.splitlines(), fence]


# -- module functions --------------------------------------------------------------------------


def list(limit: int = 50, include_archived: bool = False) -> builtins.list[Session]:
    """Sessions, most recently used first (archives only with ``include_archived``)."""
    store = get_store()
    records = store.list_sessions(limit=limit, include_archived=include_archived)
    return [Session(r.id, store) for r in records]


def search(text: str, limit: int = 20) -> builtins.list[SearchHit]:
    """Full-text search over every stored message (archives included), best match first."""
    return get_store().search(text, limit=limit)
