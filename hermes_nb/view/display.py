"""Showing a run: the live chat view, its frames and replay, and the static bundle it leaves.

:func:`show` displays a :class:`~hermes_nb.view.widget.ChatWidget` for a run. Each live run gets one
controller (and one widget model, so a second ``show(run)`` is another view of the same model):

* a **pump** (on a kept, reused thread) sleeps on ``run.wait_for_event(cursor)``, wakes at
  most 10 times a second (:data:`MAX_FPS`; once a second, :data:`HIDDEN_INTERVAL`, while every
  view says it is off screen), reads ``run.events(after_seq=cursor)``, updates
  the renderers and sends ONE frame holding the blocks that changed — whole, or as the new tail
  of a growing block — tagged with the seq it reflects (DESIGN.md §3, invariants 1, 4 and 5);
* a **cache** of rendered blocks, each with the seq at which it last changed, answers replay
  requests (``after=k`` → every block changed after ``k``) without re-rendering the run;
* **Stop** (``{"type": "cancel"}``) calls ``run.cancel()`` and an **answer** to one of the
  run's prompts (``{"type": "answer", "prompt_id", "value"}``, a card's button or text field)
  calls ``run.answer(prompt_id, value, by="view")``; both may arrive on a kernel subshell
  thread while a cell blocks the main shell, so everything they touch is thread-safe.

Every live display of the view carries its display id in its metadata too
(``metadata["hermes_nb"]["display_id"]``): a page reloaded from the saved notebook has lost
JupyterLab's in-memory display ids, and the front-end extension (``labextension/``) finds the
output by that id instead.

When the run settles the pump does the final render, sends a last frame with the settled status
and replaces every display of the run with :func:`static_bundle`: sanitised ``text/html`` (the
same classes as the live view, with the stylesheet inline so a saved notebook looks the same),
``text/markdown``, a stable ``text/plain`` and ``metadata["hermes_nb"]``.

Then the live view lets go of the kernel's memory, but only once nothing shows it any more:

* a view that leaves its page once the run has settled (its output replaced, cleared or
  deleted; not a page unloading) says so (``{"type": "removed"}``). After that, and a grace of
  :data:`SETTLED_GRACE` seconds for a page reloading meanwhile, the widget is closed (its comm and
  its layout's: ipywidgets forgets both) and the block cache dropped. A run no view rendered
  before it settled (never displayed, no front end, a reply faster than its view) needs no word;
* a view rendered after the settle (a page reloaded as the run settled, or opened later from a
  file saved mid-reply) asks for its replay: a page shows it again, whatever an earlier view
  said. It gets the settled frame, and every display of the run gets the update again (the
  extension finds the restored output by its display id), which removes that view in turn;
* a run settled while no page showed it (the tab closed mid-reply) keeps its widget, *dormant*:
  after the grace its cache is dropped, but a page opened later still renders the view, whose
  replay (rendered again from the run) brings the static bundle — where a closed model would
  show "Error displaying widget: model not found".

So a long-lived kernel keeps no more of a settled turn than its run and the store do (a dormant
widget, about 15 KB, only for a run no page saw settle).

Where widgets cannot render (terminal IPython, a script) :func:`stream_plain` prints the reply,
and each prompt of the run with how to answer it (``%hermes approve``, ``%hermes deny``,
``%hermes answer VALUE``) and its decision.

The blocks come from :class:`hermes_nb.view._blocks.Transcript` (the same renderer for the live view
and the static bundle); the bundle itself is built in :mod:`hermes_nb._static`.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import sys
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from ..core.events import Event, RunState
from . import render
from ._blocks import Transcript, decision
from ._protocol import BlockMsg, FrameMeta, FrameMsg, ViewMsg, frame
from ._static import bundle, static_bundle

if TYPE_CHECKING:
    from ..engine.runtime import Run
    from .widget import ChatWidget

__all__ = [
    "HIDDEN_INTERVAL",
    "MAX_FPS",
    "SETTLED_GRACE",
    "show",
    "static_bundle",
    "stream_plain",
    "widgets_available",
]

log = logging.getLogger(__name__)

#: The most frames a second one run sends to its views. At most 30 (jupyter_server drops iopub
#: above its rate limit; DESIGN.md §9); 10, because a view draws at most one update per 150 ms
#: (``static/chat.js``) and every message costs the page 1-2 ms to receive and decode, whether
#: it is drawn alone or with the next (``benchmarks/bench_browser.py``).
MAX_FPS = 10.0
_FRAME_INTERVAL = 1.0 / MAX_FPS + 0.0005  # a hair over: no one-second window holds one more
#: Seconds between two frames while every view that has said where it is is off screen
#: (``{"type": "sight"}``: scrolled away, outputs collapsed, a hidden tab). Nobody sees them
#: grow; each frame still costs the page a message to decode and the kernel a render. A view
#: coming into sight, or the run settling, ends the wait at once.
HIDDEN_INTERVAL = 1.0
_MAX_VIEWS = 64  # views whose sight a run remembers (a page reloaded many times: the newest)
_MIN_PATCH = 64  # a shorter common prefix is sent as a whole block

#: Seconds a settled run keeps its block cache and widget after its settle (and after a page said
#: its view was removed), so a view rendered meanwhile — a page reloading as the run settled — is
#: answered from the cache and its output replaced before the widget closes.
SETTLED_GRACE = 30.0
#: At most this many settled runs wait out their grace at once; beyond that the oldest one's
#: grace ends at once (a notebook running many short turns in a row keeps a bounded few).
MAX_SETTLED = 16
#: Seconds the plain-text stream (terminal IPython, ``--plain``, headless) gathers tokens before
#: one write: fast enough to read as streaming, few enough writes for IPython to keep cheaply.
PLAIN_FLUSH = 0.05


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
        self._display_ids: list[str] = []
        self._answered: dict[str, tuple[int, int, float]] = {}  # view -> (after, seq, when)
        self._finalized = False
        self._complete = False  # the cache holds the final render (the static bundle's blocks)
        self._shown = False  # displayed live
        self._viewed = False  # a view rendered it (asked for a replay) before the settle
        self._removed = False  # a page said a view of the settled run left it
        self._dormant = False  # settled, still shown somewhere (maybe), the cache dropped
        self._released = False
        self._started = False
        self._pumped = threading.Event()  # the pump has finished
        self._sight: dict[str, bool] = {}  # view id -> its end is on screen (what it said last)
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
            highlight_css=render.highlight_css(),
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
            if finalized:
                self._shown_again()
            self.widget.send_frame(self.replay(msg["after"], msg["rid"]))
            if self._finalized:
                # A view rendered after the settle: its page missed the update (a reload), so
                # every display of the run is replaced again (the extension finds the output
                # by the display id in its metadata).
                self._update_displays()
        elif msg["type"] == "removed":
            self._on_removed()
        elif msg["type"] == "sight":
            with self._lock:
                self._sight.pop(msg["view"], None)
                self._sight[msg["view"]] = msg["seen"]
                while len(self._sight) > _MAX_VIEWS:
                    del self._sight[next(iter(self._sight))]
            if msg["seen"]:
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
        return {
            "bot_name": self.bot_name,
            "model": self.model,
            "elapsed": round(time.time() - self.run.created_at, 3),
            "tokens": tokens,
            "live": not RunState(status).settled,
            "clock": round(time.time(), 3),
        }

    # -- the pump -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pump (once), on one of the kept pump threads (:class:`_Pumps`). It runs in
        a copy of the caller's context, so its output (frames, the final display update) is
        parented to the cell that showed the run."""
        with self._lock:
            if self._started:
                return
            self._started = True
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
        cursor, last = 0, 0.0
        while not transcript.ended:
            run.wait_for_event(cursor)
            self._coalesce(last)
            entries = run.events(after_seq=cursor)
            if not entries:
                continue
            seq = entries[-1].seq
            msg = self._commit(transcript, transcript.consume(entries), cursor, seq)
            self.widget.send_frame(msg)
            last = time.monotonic()
            if msg["status"] != self.widget.status:
                self.widget.status = msg["status"]
            cursor = seq

    def _interval(self) -> float:
        """The least time between two frames: :data:`HIDDEN_INTERVAL` while every view that
        has said where it is is off screen, else one frame per :data:`MAX_FPS`. A view that
        said nothing yet (an older page, a front end without IntersectionObserver) counts as
        seeing, and so does one that left without a word: at worst the pace is the usual one."""
        with self._lock:
            hidden = bool(self._sight) and not any(self._sight.values())
        return HIDDEN_INTERVAL if hidden else _FRAME_INTERVAL

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
    ) -> FrameMsg:
        """Store the changed blocks at ``seq`` and build the live frame for ``(prev, seq]``."""
        blocks: list[BlockMsg] = []
        with self._lock:
            for key, (kind, html) in changed.items():
                cached = self._blocks.get(key)
                if cached is not None and cached.html == html:
                    continue
                self._blocks[key] = _Cached(kind, html, seq)
                blocks.append(_upsert(key, kind, html, cached.html if cached else ""))
            self._seq = seq
            self._status = status = transcript.state
            self._tokens = tokens = transcript.token_count
        return frame(
            seq=seq, prev=prev, status=status, blocks=blocks, meta=self._meta(status, tokens)
        )

    def _finalize(self, *, complete: bool) -> None:
        """Replace every display of the run with the static bundle — built from the cache when
        it holds the final render (``complete``), so settling costs no second full render — and
        let go of the widget once its grace is over."""
        with self._lock:
            self._finalized = True
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
        """Let go of a settled run's live view: close the widget (and its layout), so no page can
        render it any more and ipywidgets forgets it, and drop the block cache. Every display
        of the run already shows the static bundle."""
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


class _Pumps:
    """The threads pumps run on: kept and reused, a new one only when none is idle.

    A thread per run would do, but a kernel pays for every thread that ever sent a message:
    ipykernel opens an iopub pipe (a zmq socket) per sending thread, and new threads'
    allocations spread over malloc arenas that keep fragments of every run they served: 50 to
    100 KB of resident memory per settled turn in ``benchmarks/bench_memory.py``, a few KB with
    kept threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = 0
        self._tasks: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads = 0

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on an idle pump thread, or on a new one: never queued behind another
        pump (each runs until its run settles)."""
        with self._lock:
            spawn = self._idle == 0
            if spawn:
                self._threads += 1
                name = f"hermes-nb-pump-{self._threads}"
            else:
                self._idle -= 1
        self._tasks.put(task)
        if spawn:
            threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                task()
            except BaseException:  # pragma: no cover - _pump catches what it can
                log.exception("A chat view pump failed.")
            finally:
                del task  # nothing of the last run stays on this thread while it waits
                with self._lock:
                    self._idle += 1


_pumps = _Pumps()
_controllers: dict[str, _Controller] = {}
_controllers_lock = threading.Lock()


def _controller_for(run: Run) -> _Controller | None:
    """The run's controller (created and started on first use); None once it has settled."""
    with _controllers_lock:
        controller = _controllers.get(run.run_id)
        if controller is None:
            if run.settled:
                return None
            controller = _controllers[run.run_id] = _Controller(run)
    controller.start()
    return controller


def _forget(controller: _Controller) -> None:
    with _controllers_lock:
        if _controllers.get(controller.run.run_id) is controller:
            del _controllers[controller.run.run_id]


class _Reaper:
    """Ends settled runs' graces (:meth:`_Controller.grace_over`): one daemon thread, started on
    first use, asleep while nothing waits. At most :data:`MAX_SETTLED` wait at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: OrderedDict[int, tuple[float, _Controller]] = OrderedDict()
        self._thread: threading.Thread | None = None

    def hold(self, controller: _Controller) -> None:
        """End ``controller``'s grace after :data:`SETTLED_GRACE` seconds (or sooner, to keep
        at most :data:`MAX_SETTLED` waiting)."""
        excess: list[_Controller] = []
        with self._cond:
            self._due.pop(id(controller), None)  # held again (woken, removed): a fresh grace
            self._due[id(controller)] = (time.monotonic() + SETTLED_GRACE, controller)
            while len(self._due) > MAX_SETTLED:
                excess.append(self._due.popitem(last=False)[1][1])
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="hermes-nb-grace", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()
        for old in excess:
            _end_grace(old)

    def end_all(self) -> None:
        """End every waiting grace now (tests)."""
        with self._cond:
            waiting = [c for _, c in self._due.values()]
            self._due.clear()
        for controller in waiting:
            _end_grace(controller)

    def waiting(self) -> int:
        with self._cond:
            return len(self._due)

    def _run(self) -> None:
        while True:
            _end_grace(self._next())  # no local keeps the controller while the thread sleeps

    def _next(self) -> _Controller:
        """Wait for the first controller whose grace is over; take it."""
        with self._cond:
            while True:
                now = time.monotonic()
                key, due = min(
                    ((k, d) for k, (d, _) in self._due.items()),
                    key=lambda item: item[1],
                    default=(None, 0.0),
                )
                if key is not None and due <= now:
                    return self._due.pop(key)[1]
                self._cond.wait(None if key is None else due - now)


def _end_grace(controller: _Controller) -> None:
    try:
        controller.grace_over()
    except Exception:  # a closed kernel, a comm gone: nothing left to show it anyway
        log.exception("Could not release the chat view of %s.", controller.run.run_id)


_reaper = _Reaper()


# -- the public functions ---------------------------------------------------------------------


def show(run: Run, *, include_plain: bool = True) -> None:
    """Display ``run``: the live chat view in a kernel that can show widgets, the static bundle
    if it has already settled, plain streamed text anywhere else (terminal IPython, scripts).

    Every call shows another view of the same widget model; all views stay identical.
    ``include_plain=False`` is for a caller that displays the static bundle itself once the run
    settles (``%hermes --wait``): the live display leaves out ``text/plain``, and a run that has
    already settled displays nothing here (it would otherwise appear twice).
    """
    if not widgets_available():
        stream_plain(run)
        return
    controller = None if run.settled else _controller_for(run)
    if controller is None:
        if not include_plain:
            return
        from IPython.display import display

        data, metadata = static_bundle(run)
        display(data, metadata=metadata, raw=True)
        return
    controller.display(include_plain=include_plain)


def widgets_available() -> bool:
    """True inside a Jupyter kernel (where a comm can reach a front end)."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def stream_plain(
    run: Run, out: TextIO | None = None, *, after_seq: int = 0, until_prompt: bool = False
) -> int:
    """Print the run as plain text while it streams (terminal IPython, ``--plain``) and return
    when it settles. Ctrl-C stops the run; what streamed so far stays.

    Each prompt of the run is printed when it opens, with how to answer it (``%hermes
    approve``, ``%hermes deny``, ``%hermes answer VALUE``), and its decision when it has one.
    ``until_prompt=True`` returns as soon as a prompt has been printed and is still open, so a
    notebook cell can end and the person answer from the next one; call again with
    ``after_seq`` set to the returned seq to go on printing where it stopped. Returns the seq of
    the last event printed.
    """
    out = out if out is not None else sys.stdout
    q = run.subscribe(after_seq=after_seq)
    seq = after_seq
    wrote = False
    at_line_start = True

    def write(text: str) -> None:
        nonlocal wrote, at_line_start
        if text:
            out.write(text)
            out.flush()
            wrote = True
            at_line_start = text.endswith("\n")

    def line(text: str) -> None:
        write(("" if at_line_start else "\n") + text + "\n")

    # Tokens are written in batches, at most every PLAIN_FLUSH seconds: IPython 9 keeps every
    # write of a cell's stdout (``history_manager.outputs``), so a write per 4-character token
    # would keep ~50 bytes of string header per token for the kernel's lifetime.
    pending: list[str] = []
    due = 0.0

    def flush() -> None:
        if pending:
            write("".join(pending))
            pending.clear()

    kinds: dict[str, str] = {}
    try:
        while True:
            try:
                if pending:
                    try:
                        event, data = q.get(timeout=max(0.0, due - time.monotonic()))
                    except queue.Empty:
                        flush()
                        continue
                else:
                    event, data = q.get()
            except KeyboardInterrupt:
                run.cancel()
                continue
            seq += 1
            if event == Event.TOKEN:
                if not pending:
                    due = time.monotonic() + PLAIN_FLUSH
                pending.append(data["text"])
                continue
            flush()
            if event == Event.TOOL_START:
                line(f"[tool {data.get('name') or 'tool'}]")
            elif event == Event.TOOL_END:
                flag = "failed" if data.get("error") else "done"
                line(f"[tool {data.get('name') or 'tool'} {flag}]")
            elif event == Event.PROMPT:
                kinds[data["id"]] = str(data.get("kind", ""))
                line(_plain_prompt(data, getattr(run.profile, "prompt_timeout", None)))
                if until_prompt and any(p.id == data["id"] for p in run.pending):
                    break
            elif event == Event.PROMPT_ANSWERED:
                if data["id"] not in kinds:  # opened before ``after_seq``
                    kinds.update((p["id"], str(p["kind"])) for p in run.prompt_record())
                what, who = decision(kinds.get(data["id"], ""), data["value"], data["by"])
                line(f"→ {what}, {who}.")
            elif event == Event.APPERROR:
                line(f"Error: {data.get('message', '')}")
                if data.get("hint"):
                    line(f"Hint: {data['hint']}")
            elif event == Event.CANCEL:
                line(str(data["message"]))
            elif event == Event.DONE and data.get("notice"):  # the reply was cut short
                line(str(data["notice"]))
            elif event == Event.STREAM_END:
                break
    finally:
        flush()
        run.unsubscribe(q)
    if wrote and not at_line_start:
        write("\n")
    return seq


def _plain_prompt(data: dict[str, Any], timeout: object) -> str:
    """A prompt as plain text, with how to answer it (and no clock time: nbval compares it)."""
    detail = str(data.get("detail") or "")
    approval = data.get("kind") == "approval"
    lines = [f"{'Approval needed' if approval else 'Question'}: {data.get('text', '')}"]
    lines += [f"    {row}" for row in detail.splitlines()]
    if approval:
        lines.append(
            "To answer: %hermes approve (allow once), %hermes approve session, "
            "%hermes approve always, or %hermes deny."
        )
    else:
        choices = [str(c) for c in data.get("choices") or ()]
        if choices:
            lines.append("Choices: " + ", ".join(choices))
        lines.append("To answer: %hermes answer VALUE.")
    if isinstance(timeout, int | float) and timeout > 0 and data.get("deadline") is not None:
        default = "it is denied" if approval else "the model goes on without one"
        lines.append(f"After {timeout:g} s without an answer {default}.")
    return "\n".join(lines)
