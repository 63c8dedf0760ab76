"""The two classes a session is: :class:`Session`, the handle users hold, and
:class:`SessionTranscript`, how a turn reads and writes the session (see :mod:`.sessions` for
the rules each follows).

They live together, and apart from the module-level API in :mod:`.sessions`, because each makes
the other: ``Session.chat`` hands a turn a ``SessionTranscript``, and the transcript opens a
``Session`` for the title and compression jobs after a reply. The messages an outcome adds are
in :mod:`._outcome_messages`, the jobs in :mod:`._background_jobs`, the Markdown export in
:mod:`._markdown_export`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..core.config import resolve_profile
from ..core.events import Event
from ..core.exceptions import HermesError, SessionNotFound, StoreError, StoreReadOnlyError
from ..core.profiles import Profile
from ..engine import turn_rules
from ..engine.runtime import get_runtime
from ..engine.tools import ToolImage
from ..engine.turn import TurnOutcome, TurnRequest, turn_tools
from ..providers.base import Message
from ._background_jobs import _auto_compress, _start_job
from ._markdown_export import _markdown
from ._outcome_messages import _not_saved, _outcome_messages, _unsaved_turn
from ._spend import Spend, session_spend
from .compression import DEFAULT_KEEP_LAST, needs_compression
from .database import SessionRecord, Store, StoredMessage, get_store
from .titles import generate_title

if TYPE_CHECKING:
    from ..engine.runtime import Run

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
        *,
        images: Iterable[ToolImage] = (),
        rules: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Run:
        """Start a turn in this session and return its :class:`~hermes_nb.engine.Run` at once.

        ``profile`` defaults to the one the session last used; ``tools``, ``images``, ``rules``
        and ``overrides`` are as for :func:`hermes_nb.chat`. The run's session is
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
            images=tuple(images),
            rules=turn_rules(resolved, rules),
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
        #: what the session has spent, read once its turn is written (the status line's)
        self.spend: Spend | None = None

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
        self._keep_agent_sessions(run)
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
        if written:
            self.spend = self._spent(run.profile)
        if written and state == "done":
            self._after_reply(run.profile)
        return written

    def _spent(self, profile: Profile) -> Spend | None:
        """The session's tokens and cost with this turn's, priced by the configured profiles
        and the turn's own (which may be made in code); None if the store cannot say."""
        from ..core.config import load_config

        try:
            profiles = {**load_config().profiles, profile.name: profile}
        except HermesError:
            profiles = {profile.name: profile}
        try:
            return session_spend(self.store, self.session_id, profiles)
        except HermesError as exc:
            log.warning("Could not read what session %s spent: %s", self.session_id[:8], exc)
            return None

    def agent_sessions(self, profile: str) -> dict[str, str]:
        """The agent session kept for ``profile`` (``{command: id}``), for the turn's request:
        an ACP agent loads it again instead of starting over (see
        :class:`hermes_nb.engine.turn.AgentSessions`)."""
        return self.store.agent_sessions(self.session_id, profile)

    def _keep_agent_sessions(self, run: Run) -> None:
        """Keep the agent session the run reported (an ``agent_session`` event), whatever the
        turn's ending: the agent holds the conversation from the moment it made the session. A
        store that refuses is logged, never the turn's failure (the worst case is a new agent
        session, told the recent conversation)."""
        kept: dict[str, dict[str, Any]] = {}
        for _seq, event, data in run.events():
            if event == Event.AGENT_SESSION:
                kept[str(data["profile"])] = data
        for profile, data in kept.items():
            try:
                self.store.keep_agent_session(
                    self.session_id, profile, str(data["command"]), str(data["id"])
                )
            except HermesError as exc:
                log.warning("Could not keep the agent session of %s: %s", self.session_id[:8], exc)

    def _after_reply(self, profile: Profile) -> None:
        session = Session(self.session_id, self.store)
        try:
            untitled = session.title is None
            compress = (
                self.auto_compress and profile.auto_compress and needs_compression(session, profile)
            )
        except HermesError as exc:
            log.warning("Could not check session %s after its reply: %s", self.session_id, exc)
            return
        if self.auto_title and untitled:
            _start_job(f"title:{self.session_id}", generate_title, session, profile)
        if compress:
            _start_job(f"compress:{self.session_id}", _auto_compress, session, profile)
