"""Showing a run: the live chat view, its frames and replay, and the static bundle it leaves.

:func:`show` displays a :class:`~hermes_nb.view.widget.ChatWidget` for a run. Each live run gets one
controller (and one widget model, so a second ``show(run)`` is another view of the same model):

* a **pump** (on a kept, reused thread) sleeps on ``run.wait_for_event(cursor)``, wakes at
  most 3 times a second (:data:`MAX_FPS`; once a second, :data:`HIDDEN_INTERVAL`, while every
  view says it is off screen), reads ``run.events(after_seq=cursor)``, updates
  the renderers and sends ONE frame holding the blocks that changed — whole, or as the new tail
  of a growing block — tagged with the seq it reflects (DESIGN.md §3, invariants 1, 4 and 5).
  Frames go out once a view has asked for its replay (every view asks as it renders), or
  :data:`LISTEN_WAIT` seconds after the run was shown (a view whose request waits behind a busy
  shell): a short reply that settles before its view renders sends no frame at all;
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
  said. It gets the settled frame, and, asking :data:`SETTLE_RACE` seconds or more after the
  settle, every display of the run gets the update again (the extension finds the restored
  output by its display id), which removes that view in turn. A view asking sooner was rendered
  from the same messages as the update, which has replaced it already;
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

This module holds :func:`show` and :func:`widgets_available`; the controller (cache, pump,
replay, the settle) is in :mod:`._controller`, the registry of live runs, the pump threads and
the graces in :mod:`._live_runs`, the plain-text stream in :mod:`._plain`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ._controller import HIDDEN_INTERVAL as HIDDEN_INTERVAL
from ._controller import LISTEN_WAIT as LISTEN_WAIT
from ._controller import MAX_FPS as MAX_FPS
from ._controller import SETTLE_RACE as SETTLE_RACE
from ._controller import _Controller as _Controller
from ._live_runs import MAX_SETTLED as MAX_SETTLED
from ._live_runs import SETTLED_GRACE as SETTLED_GRACE
from ._live_runs import _controllers as _controllers
from ._live_runs import _controllers_lock
from ._live_runs import _reaper as _reaper
from ._plain import PLAIN_FLUSH as PLAIN_FLUSH
from ._plain import stream_plain as stream_plain
from ._static import static_bundle as static_bundle

if TYPE_CHECKING:
    from ..engine.runtime import Run

__all__ = [
    "HIDDEN_INTERVAL",
    "LISTEN_WAIT",
    "MAX_FPS",
    "SETTLED_GRACE",
    "SETTLE_RACE",
    "show",
    "static_bundle",
    "stream_plain",
    "widgets_available",
]


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
