"""The view layer: what a person sees of a run. Incremental sanitised Markdown, the blocks a run
renders to, the widget protocol, the anywidget class with its ES module and CSS (``static/``),
the frame pump with replay and Stop, and the static bundle a settled run leaves in the notebook.

The view reads runs (engine) and their events (core); the engine never imports it.
:func:`show` is what ``hermes_nb`` registers with IPython so that a cell ending in a run
displays its chat view.
"""

from __future__ import annotations

from .display import MAX_FPS, show, static_bundle, stream_plain, widgets_available

__all__ = ["MAX_FPS", "show", "static_bundle", "stream_plain", "widgets_available"]
