"""The live view of one run: :class:`_Controller` holds its block cache, runs its frame pump,
answers replays, Stop and prompt answers from its views, and settles it (the static bundle
replacing every display, then the grace until the widget can close).

Apart from :mod:`.display` because it is the one stateful, threaded part of the view; the
threads it runs on and the registry of live runs are in :mod:`._live_runs`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core import remember_newest
from ..core.events import Event, RunState
from ._blocks import Transcript
from ._live_runs import _forget, _pumps, _reaper
from ._protocol import BlockMsg, FrameMeta, FrameMsg, ViewMsg, frame
from ._static import bundle, static_bundle

if TYPE_CHECKING:
    from ..core.journal import JournalEntry
    from ..engine.runtime import Run
    from .widget import ChatWidget

log = logging.getLogger(__name__)

#: The most frames a second one run sends to its views. At most 30 (jupyter_server drops iopub
#: above its rate limit; DESIGN.md §9); 3, because a view draws at most one update per 300 ms
#: (``labextension/src/view/render.ts``: each update costs a JupyterLab page a style, layout,
#: paint and compositing pass of 10-25 ms, and a reply read along at three updates a second
#: reads as well as at ten), and every message costs the page 1-2 ms to receive and decode,
#: whether it is drawn alone or with the next (``benchmarks/bench_browser.py --follow``). A view
#: drawing a torrent twice a second says so (``{"type": "pace"}``): then two (:meth:`_interval`).
MAX_FPS = 3.0
_HAIR = 0.0005  # a pace's interval is a hair over: no one-second window holds one more frame
_FRAME_INTERVAL = 1.0 / MAX_FPS + _HAIR
#: Seconds between two frames while every view that has said where it is is off screen
#: (``{"type": "sight"}``: scrolled away, outputs collapsed, a hidden tab). Nobody sees them
#: grow; each frame still costs the page a message to decode and the kernel a render. A view
#: coming into sight, or the run settling, ends the wait at once.
HIDDEN_INTERVAL = 1.0
#: A frame due with less reply text than this (characters), and nothing else, waits for more
#: (:meth:`_Controller._gather`), up to :data:`SLOW_WAIT` seconds after the previous frame: at
#: 5-30 tokens a second a frame then carries a few words, not a few letters, and its bytes are
#: mostly that text (``benchmarks/bench_notebook.py``); a fast stream is not held back.
SLOW_TEXT = 16
SLOW_WAIT = 0.6
#: The least time between two live frames' token counts while the status stays the same.
META_EVERY = 3.0
_MAX_VIEWS = 64  # views whose sight a run remembers (a page reloaded many times: the newest)
#: A shorter common prefix is sent as a whole block (a patch's ``"at": N`` costs ~10 bytes).
_MIN_PATCH = 16
#: Seconds a run's live frames wait for a view to ask for its replay. Every view asks when it
#: renders (``labextension/src/view/replay.ts``) and takes all it needs from the answer, so a
#: frame sent before any view asked reaches none: a short reply that settles before its view
#: renders costs no frame at all, only the settle's display update (``bench_notebook.py``).
#: After this wait frames go out unasked (the first one whole, from ``prev=0``): a view whose
#: request queues behind a busy shell (ipykernel 6, a ``--wait`` cell, a front end without
#: subshells) still sees the reply grow.
LISTEN_WAIT = 0.5
#: A view asking for its replay sooner than this (seconds) after the settle was rendered from
#: the same iopub stream that carried the settle's display update, which has replaced it already
#: (JupyterLab renders a widget view even when its output was replaced while its model was
#: being made: a short reply's view does, measured): it gets its answer, and the displays are not
#: sent again (3.8 KB for a short answer). A page that missed the update (reloaded, reopened)
#: takes seconds to connect and render its views.
SETTLE_RACE = 1.0


# -- the controller: cache, pump, replay, displays ---------------------------------------------


@dataclass(slots=True)
class _Cached:
    kind: str
    html: str
    seq: int  # the seq at which this block last changed


class _Controller:
    """Everything the live view of one run needs. Thread-safe: the pump writes the cache, view
    messages (replay, Stop) read it from whatever thread the kernel handles comms on."""

    def __init__(self, run: Run) -> None:
        from .widget import ChatWidget

        self.run = run
        self._lock = threading.Lock()
        self._blocks: dict[str, _Cached] = {}
        self._seq = 0
        self._tokens = 0
        self._status = str(run.status)
        self._sent_meta: FrameMeta = {}  # what the live frames' meta said so far (the pump's)
        self._sent_status = ""
        self._tokens_at = 0.0
        self._display_ids: list[str] = []
        self._answered: dict[str, tuple[int, int, float]] = {}  # view -> (after, seq, when)
        self._finalized = False
        self._complete = False  # the cache holds the final render (the static bundle's blocks)
        self._shown = False  # displayed live
        self._viewed = False  # a view rendered it (asked for a replay) before the settle
        self._heard = False  # live frames go out: a view asked, or LISTEN_WAIT passed
        self._held = False  # a frame was committed but not sent (no view had asked yet)
        self._listen_until = 0.0  # when the pump stops waiting for a view to ask
        self._settled_at = 0.0  # when the pump finalized the run (time.monotonic())
        self._removed = False  # a page said a view of the settled run left it
        self._dormant = False  # settled, still shown somewhere (maybe), the cache dropped
        self._released = False
        self._started = False
        self._pumped = threading.Event()  # the pump has finished
        self._sight: dict[str, bool] = {}  # view id -> its end is on screen (what it said last)
        self._pace: dict[str, float] = {}  # view id -> seconds between its DOM updates (said)
        self._wake = threading.Event()  # a view came into sight: the next frame is due sooner
        profile = run.profile
        self.bot_name = str(getattr(profile, "bot_name", "") or "Hermes")
        self.model = str(getattr(profile, "model", "") or "")
        self.widget: ChatWidget = ChatWidget(
            handler=self.handle,
            run_id=run.run_id,
            status=self._status,
            bot_name=self.bot_name,
            model=self.model,
        )

    # -- view messages (any thread) -----------------------------------------------------------

    def handle(self, msg: ViewMsg) -> None:
        """A message from a view, on whatever thread the kernel handles comms."""
        if msg["type"] == "cancel":
            self.run.cancel()
        elif msg["type"] == "answer":
            run, prompt_id, value = self.run, msg["prompt_id"], msg["value"]
            if not run.answer(prompt_id, value, by="view"):
                # Late, repeated, unknown or empty: nothing changes, and every view shows the
                # prompt's decision (or its open card) from the run's own events.
                log.info("Answer to %s not taken: %s", prompt_id, run.refusal(prompt_id, value))
        elif msg["type"] == "replay" and not self._repeated(msg["rid"], msg["after"]):
            with self._lock:
                finalized = self._finalized
                self._viewed = True  # counted at the settle only if it came before
                # Frames from now on follow this answer's seq (the cache's, under this lock):
                # none held before it needs sending.
                self._heard, self._held = True, False
            if finalized:
                self._shown_again()
            self.widget.send_frame(self.replay(msg["after"], msg["rid"]))
            if self._finalized and time.monotonic() - self._settled_at >= SETTLE_RACE:
                # A view rendered well after the settle: its page missed the update (a reload),
                # so every display of the run is replaced again (the extension finds the output
                # by the display id in its metadata).
                self._update_displays()
        elif msg["type"] == "removed":
            self._on_removed()
        elif msg["type"] == "sight":
            with self._lock:
                remember_newest(self._sight, msg["view"], msg["seen"], _MAX_VIEWS)
            if msg["seen"]:
                self._wake.set()
        elif msg["type"] == "pace":
            with self._lock:
                before = remember_newest(self._pace, msg["view"], msg["ms"] / 1000, _MAX_VIEWS)
            if msg["ms"] / 1000 < (_FRAME_INTERVAL if before is None else before):
                self._wake.set()

    def _repeated(self, rid: str, after: int) -> bool:
        """True for a retry that queued behind a busy shell together with the request it
        repeats (same view, same ``after``, nothing new), arriving right after its answer.

        A view retries unanswered replays with backoff (≥ 250 ms apart); when the kernel could
        not read them (a cell blocking the shell), they all arrive at once and each answer would
        be the whole transcript. The first answer carries it; the view's next retry, sent after
        it landed, asks from the advanced cursor and gets (almost) nothing.
        """
        view, sep, _ = rid.rpartition(":")
        if not sep:
            return False
        now = time.monotonic()
        with self._lock:
            last = self._answered.get(view)
            self._answered[view] = (after, self._seq, now)
        return last is not None and last[:2] == (after, self._seq) and now - last[2] < 0.2

    def replay(self, after: int, rid: str | None = None) -> FrameMsg:
        """One frame with every block changed after ``after`` — from the cache, no rendering."""
        with self._lock:
            blocks = [
                {"id": key, "kind": b.kind, "html": b.html}
                for key, b in self._blocks.items()
                if b.seq > after
            ]
            seq, status, tokens = self._seq, self._status, self._tokens
        return frame(
            seq=seq,
            prev=min(after, seq),
            status=status,
            blocks=blocks,  # type: ignore[arg-type]
            meta=self._meta(status, tokens),
            rid=rid,
        )

    def _meta(self, status: str, tokens: int) -> FrameMeta:
        """A replay's meta, whole: the elapsed time the view's clock ticks on from, the token
        count, whether the run is live, and the kernel's clock (for a card's countdown). Not the
        bot's name and model: they are synced traits."""
        return {
            "elapsed": round(time.time() - self.run.created_at, 1),
            "tokens": tokens,
            "live": not RunState(status).settled,
            "clock": round(time.time(), 3),
        }

    def _live_meta(self, status: str, tokens: int, *, first: bool, cards: bool) -> FrameMeta:
        """A live frame's meta: only what changed since the previous live frame (a view keeps
        the rest; every view that applies this frame has applied that one, or a replay after
        it). At a few tokens a second a frame carries a few bytes of text, and a whole meta in
        each was most of its bytes (``benchmarks/bench_notebook.py``): the token count goes at
        most once per :data:`META_EVERY` seconds while the status stays (the view's clock
        ticks once a second anyway), the elapsed time when the status changes, the kernel's
        clock with a card. Called on the pump's thread only."""
        sent, now = self._sent_meta, time.monotonic()
        moved = first or status != self._sent_status
        live = not RunState(status).settled
        meta: FrameMeta = {}
        if moved:
            meta["elapsed"] = round(time.time() - self.run.created_at, 1)
        if sent.get("live") != live:
            meta["live"] = live
        if sent.get("tokens") != tokens and (moved or now - self._tokens_at >= META_EVERY):
            meta["tokens"] = tokens
            self._tokens_at = now
        if first or cards:
            meta["clock"] = round(time.time(), 3)
        sent.update(meta)
        self._sent_status = status
        return meta

    # -- the pump -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump (once), on one of the kept pump threads (:class:`_Pumps`). It runs in
        a copy of the caller's context, so its output (frames, the final display update) is
        parented to the cell that showed the run."""
        with self._lock:
            if self._started:
                return
            self._started = True
            self._listen_until = time.monotonic() + LISTEN_WAIT
            ctx = contextvars.copy_context()
        _pumps.submit(lambda: ctx.run(self._pump))

    def join(self, timeout: float | None = None) -> None:
        """Wait until the pump has finished (the run settled and its displays were updated)."""
        if self._started:
            self._pumped.wait(timeout)

    def _pump(self) -> None:
        complete = False
        try:
            try:
                self._stream()
                complete = True
            except Exception:  # a bug here must not leave the view stuck without its final state
                log.exception("The chat view of %s stopped updating.", self.run.run_id)
                self.run.wait()
            self._finalize(complete=complete)
        finally:
            self._pumped.set()

    def _stream(self) -> None:
        run = self.run
        transcript = Transcript(run)  # this thread's alone
        cursor, sent, last = 0, 0, 0.0  # the last event consumed; the last frame's seq
        while not transcript.ended:
            run.wait_for_event(cursor, timeout=self._hold_left())
            held = self._unheld()
            if held is not None:  # no view asked in time, and no event came since: send it
                self.widget.send_frame(held)
                last = time.monotonic()
                continue
            self._coalesce(last)
            entries = self._gather(cursor, last)
            if not entries:
                continue
            cursor = entries[-1].seq
            msg = self._commit(transcript, transcript.consume(entries), sent, cursor)
            if msg is None:
                continue
            last, sent = time.monotonic(), cursor
            msg = self._outgoing(msg)
            if msg is not None:
                self.widget.send_frame(msg)

    def _outgoing(self, msg: FrameMsg) -> FrameMsg | None:
        """The frame to send for the committed ``msg``: None while no view has asked for a
        replay (for :data:`LISTEN_WAIT`; nothing would show it, and the view's replay brings it
        all); the whole transcript from ``prev=0`` when the wait ends without a view asking,
        so a view that could not ask (its cursor 0) applies it; else ``msg`` itself.

        Not the status trait: the frames carry the status, and a trait update was one more
        message (700 bytes) at every change of status of every run."""
        with self._lock:
            if self._heard:
                return msg
            self._held = True
        return self._unheld()

    def _hold_left(self) -> float | None:
        """Seconds until held frames go out unasked; None while none are held (the pump then
        sleeps until the next event). A frame held with nothing after it (the prompt's, a card
        waiting for its answer) goes out at :data:`LISTEN_WAIT`, not at the next event."""
        with self._lock:
            if not self._held or self._heard:
                return None
            return max(0.0, self._listen_until - time.monotonic())

    def _unheld(self) -> FrameMsg | None:
        """The whole frame that ends the wait for a view, if frames are held and the wait is
        over (the one place the wait ends unasked: :meth:`_outgoing` and the pump's timeout)."""
        with self._lock:
            if not self._held or self._heard or time.monotonic() < self._listen_until:
                return None
            self._heard, self._held = True, False
        return self.replay(0)

    def _gather(self, cursor: int, last: float) -> list[JournalEntry]:
        """The events after ``cursor`` for the next frame; while only a little reply text is
        due, a little later (at most :data:`SLOW_WAIT` after the last frame).

        At a few tokens a second each frame would carry one token (four bytes or so) in a
        message of a hundred; so while what is due is nothing but tokens with less than
        :data:`SLOW_TEXT` characters between them, the frame waits for more. Anything else (a
        tool call, a card, the status) goes at once, as does a run that settles."""
        run = self.run
        while True:
            entries = run.events(after_seq=cursor)
            due = last + SLOW_WAIT - time.monotonic()
            if not entries or due <= 0 or run.settled:
                return entries
            text = 0
            for entry in entries:
                if entry.event != Event.TOKEN:
                    return entries
                text += len(entry.data["text"])
            if text >= SLOW_TEXT:
                return entries
            run.wait_for_event(entries[-1].seq, timeout=due)

    def _interval(self) -> float:
        """The least time between two frames: :data:`HIDDEN_INTERVAL` while every view that
        has said where it is is off screen, else the quickest pace of the views in sight (a
        frame per DOM update: ``{"type": "pace"}``), never more than :data:`MAX_FPS` frames a
        second. A view that said its pace but not where it is is in sight (a view says so only
        when its end leaves the screen). A view that said nothing yet (an older page, a front
        end without IntersectionObserver) counts as seeing at the usual pace, and so does one
        that left without a word: at worst the pace is the usual one."""
        with self._lock:
            seeing = {view for view, seen in self._sight.items() if seen}
            seeing.update(view for view in self._pace if self._sight.get(view, True))
            if self._sight and not seeing:
                return HIDDEN_INTERVAL
            pace = min((self._pace.get(view, 0.0) for view in seeing), default=0.0)
        return min(max(_FRAME_INTERVAL, pace + _HAIR), HIDDEN_INTERVAL)

    def _coalesce(self, last: float) -> None:
        """Wait until the next frame is due (``last`` is when the previous one went): whatever
        arrives meanwhile joins it. A view coming into sight shortens the wait to the usual
        pace; a run that settles ends it, so its last frame and the settle are not held back."""
        while (pause := last + self._interval() - time.monotonic()) > 0:
            if self.run.settled:
                return
            if self._wake.wait(min(pause, _FRAME_INTERVAL)):
                self._wake.clear()

    def _commit(
        self, transcript: Transcript, changed: dict[str, tuple[str, str]], prev: int, seq: int
    ) -> FrameMsg | None:
        """Store the changed blocks at ``seq`` and build the live frame for ``(prev, seq]`` —
        or None when no view would show anything new (a token that changed no block's HTML, as
        a trailing space does, with nothing for the status line): then nothing is sent, and the
        replay's seq stays at the last frame sent, so the next frame still follows it."""
        blocks: list[BlockMsg] = []
        with self._lock:
            for key, (kind, html) in changed.items():
                cached = self._blocks.get(key)
                if cached is not None and cached.html == html:
                    continue
                self._blocks[key] = _Cached(kind, html, seq)
                blocks.append(_upsert(key, kind, html, cached.html if cached else ""))
            status, tokens = transcript.state, transcript.token_count
            cards = any(b["kind"] == "ask" for b in blocks)
            meta = self._live_meta(status, tokens, first=prev == 0, cards=cards)
            self._tokens = tokens
            if not blocks and not meta and status == self._status and prev:
                return None
            self._seq = seq
            self._status = status
        return frame(seq=seq, prev=prev, status=status, blocks=blocks, meta=meta)

    def _finalize(self, *, complete: bool) -> None:
        """Replace every display of the run with the static bundle — built from the cache when
        it holds the final render (``complete``), so settling costs no second full render — and
        let go of the widget once its grace is over."""
        with self._lock:
            self._finalized = True
            self._settled_at = time.monotonic()
            self._complete = complete
            # Never displayed live, or no view ever rendered it (no front end: a headless run;
            # or the settle's update replaced the output before its view rendered): nothing
            # shows it, and no view will say so.
            self._removed = self._removed or not (self._shown and self._viewed)
        _forget(self)
        self._update_displays()
        _reaper.hold(self)

    def _update_displays(self) -> None:
        """Replace every display of the settled run with its static bundle (again, for a view
        rendered after the settle)."""
        with self._lock:
            if not self._display_ids or self._released:
                return
            display_ids = list(self._display_ids)
            blocks = {key: (b.kind, b.html) for key, b in self._blocks.items()}
            state, complete = self._status, self._complete
        from IPython.display import update_display

        data, metadata = bundle(self.run, blocks, state) if complete else static_bundle(self.run)
        for display_id in display_ids:
            update_display(data, metadata=metadata, raw=True, display_id=display_id)

    def _on_removed(self) -> None:
        """A view that had shown the settled run left its page: once its grace is over, nothing
        needs the widget."""
        with self._lock:
            if not self._finalized or self._removed or self._released:
                return  # mid-reply (a re-run cell, cleared output): the settle may still need it
            self._removed = True
            dormant = self._dormant
        if dormant:
            _reaper.hold(self)

    def _shown_again(self) -> None:
        """A view of the settled run rendered (a page reloaded, reopened, a cell moved): a page
        shows it again, whatever an earlier view said. A dormant run renders its blocks from the
        run (once) and holds them for a grace, as at the settle."""
        with self._lock:
            if self._released:
                return
            self._removed = False
        if not self.dormant:
            return
        transcript = Transcript(self.run)
        changed = transcript.consume(self.run.events(after_seq=0))
        with self._lock:
            woken, self._dormant = self._dormant, False
            if woken:
                self._complete = True
                self._blocks = {
                    key: _Cached(kind, html, self._seq) for key, (kind, html) in changed.items()
                }
        if woken:
            _reaper.hold(self)

    @property
    def released(self) -> bool:
        return self._released

    @property
    def dormant(self) -> bool:
        return self._dormant

    def grace_over(self) -> None:
        """The settled run's grace is over: close the widget if no page shows it any more (or
        none ever did), else keep it, dormant, without its cache."""
        with self._lock:
            if self._released or not self._finalized:
                return
            if not self._removed:
                self._dormant = True
                self._blocks = {}
                self._answered = {}
                return
        self.release()

    def release(self) -> None:
        """Let go of a settled run's live view: close the widget (its only comm: a run's widget
        has no Layout widget), so no page can render it any more and ipywidgets forgets it, and
        drop the block cache. Every display of the run already shows the static bundle."""
        with self._lock:
            if self._released or not self._finalized:
                return
            self._released = True
            self._dormant = False
            self._blocks = {}
            self._answered = {}
        self.widget.close()

    # -- displays -----------------------------------------------------------------------------

    @property
    def finalized(self) -> bool:
        return self._finalized

    def display(self, *, include_plain: bool = True) -> None:
        """Display another view of this run's widget with a fresh display id (or the static
        bundle if the run has already been finalised)."""
        from IPython.display import display

        with self._lock:
            # ipywidgets sets ``_repr_mimebundle_`` to None when a widget is closed
            # (``Widget.close_all()``): such a view can no longer be shown live, and the
            # snapshot below stands in for it.
            repr_bundle = self.widget._repr_mimebundle_
            live = None if self._finalized or repr_bundle is None else repr_bundle()
            if live is not None:
                display_id = uuid.uuid4().hex
                data, metadata = live
                if not include_plain:
                    data = {k: v for k, v in data.items() if k != "text/plain"}
                # Saved with the output: a reloaded page has lost JupyterLab's display ids, and
                # the extension applies the settle's update to the output carrying this one.
                metadata = {**(metadata or {}), "hermes_nb": {"display_id": display_id}}
                # Inside the lock: the final update cannot overtake this display.
                display(data, metadata=metadata, raw=True, display_id=display_id)
                self._display_ids.append(display_id)
                self._shown = True
                return
        if include_plain or not self._finalized:  # else the caller shows the settled bundle
            data, metadata = static_bundle(self.run)
            display(data, metadata=metadata, raw=True)


def _upsert(key: str, kind: str, html: str, old: str) -> BlockMsg:
    """The block for a live frame: a patch from the common prefix with what every view that
    applies this frame holds (``old``), or the whole block when that saves little."""
    same = _common_prefix(old, html) if old and html else 0
    if same < _MIN_PATCH:
        return {"id": key, "kind": kind, "html": html}
    prefix = html[:same]  # views index JavaScript strings: UTF-16 code units, not code points
    at = same if prefix.isascii() else len(prefix.encode("utf-16-le")) // 2
    return {"id": key, "kind": kind, "html": html[same:], "at": at}


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix (binary search over C-speed slice compares)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo
