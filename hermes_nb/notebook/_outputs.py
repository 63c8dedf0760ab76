"""What each cell *showed*: the display outputs IPython published while it ran, kept per
execution count, so ``{Out[n]}`` and ``get_cell(n)`` can give the model a cell's Matplotlib
figure or its DataFrame's table, not only the value ``Out[n]`` holds.

IPython keeps a cell's result (``Out``) but not its displays (only IPython ≥ 9 with a setting
that is off by default does). So :func:`watch_outputs` wraps the shell's display publisher and
listens to ``pre_run_cell`` / ``post_run_cell``: what is published between them belongs to that
cell, whose number ``post_run_cell`` reports — IPython 8 and 9 count differently *during* a
cell, and Matplotlib's inline backend shows its figures in ``post_execute``, after the cell's
code but before ``post_run_cell``. Displays outside a cell (a view's updates from a thread, the
agent's own ``run_python``, which captures its displays) are not a cell's and are not kept.

The record is bounded: text is cut per output, a cell keeps its last :data:`MAX_OUTPUTS`
outputs (and says how many came before), at most :data:`MAX_CELLS` cells are kept, and
images (kept as bytes, for the model) share :data:`IMAGE_BUDGET` bytes — the oldest images are
dropped first, leaving a line that says one was there.
"""

from __future__ import annotations

import base64
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from ..core.images import ImageInfo, decode_base64, image_info
from ..engine.tools import ToolImage

__all__ = [
    "IMAGE_BUDGET",
    "IMAGE_LIMIT",
    "MAX_CELLS",
    "MAX_OUTPUTS",
    "PIXEL_LIMIT",
    "Described",
    "Shown",
    "cell_outputs",
    "describe_outputs",
    "html_text",
    "watch_outputs",
]

#: How many cells' outputs are kept (the oldest go first).
MAX_CELLS = 200
#: How many outputs of one cell are kept: its last ones (a loop that displays a row at a time).
MAX_OUTPUTS = 50
#: The bytes all kept images may take together; beyond it the oldest images are dropped.
IMAGE_BUDGET = 32 << 20
#: How much text one output keeps.
_TEXT_LIMIT = 4000
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
_WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass
class Shown:
    """One display output of a cell: its text form, and its image (bytes) if it was one.

    ``image`` is None for text, and for an image dropped to keep memory bounded (``info``
    still says what it was)."""

    text: str = ""
    info: ImageInfo | None = None
    image: bytes | None = field(default=None, repr=False)
    display_id: str | None = None

    @property
    def dropped(self) -> bool:
        """An image whose bytes were let go (memory cap); only its description is left."""
        return self.info is not None and self.image is None


class _Record:
    """The kept outputs of one shell: cell number → outputs, oldest cell first."""

    def __init__(self) -> None:
        self.cells: OrderedDict[int, list[Shown]] = OrderedDict()
        # the running cell's last outputs, until post_run_cell, and how many came before them
        self.current: deque[Shown] | None = None
        self.earlier = 0
        self.lock = threading.Lock()

    def add(self, shown: Shown, update: bool) -> None:
        with self.lock:
            if update:
                self._replace(shown)
            elif self.current is not None:
                if len(self.current) == self.current.maxlen:
                    self.earlier += 1
                self.current.append(shown)

    def _replace(self, shown: Shown) -> None:
        """``update_display``: the output with that display id now shows ``shown``."""
        if shown.display_id is None:
            return
        for outputs in [*self.cells.values(), self.current or deque()]:
            for i, old in enumerate(outputs):
                if old.display_id == shown.display_id:
                    outputs[i] = shown
        if shown.image is not None:
            self._trim()

    def settle(self, number: int | None) -> None:
        with self.lock:
            kept, self.current = self.current, None
            earlier, self.earlier = self.earlier, 0
            if number is None:
                return
            if not kept:  # a number used again (a new history session) shows nothing old
                self.cells.pop(number, None)
                return
            outputs = list(kept)
            if earlier:
                outputs.insert(
                    0, Shown(text=f"[… {earlier:,} earlier outputs of this cell not kept]")
                )
            self.cells[number] = outputs
            self.cells.move_to_end(number)
            while len(self.cells) > MAX_CELLS:
                self.cells.popitem(last=False)
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest images' bytes until the rest fit :data:`IMAGE_BUDGET`."""
        kept = [s for outputs in self.cells.values() for s in outputs if s.image is not None]
        total = sum(len(s.image or b"") for s in kept)
        for shown in kept:
            if total <= IMAGE_BUDGET:
                break
            total -= len(shown.image or b"")
            shown.image = None


# By the shell itself, weakly: an id() of a shell that is gone can be a new shell's, which would
# then read the old one's cells (and the records of shells that are gone would stay, images and
# all).
_records: weakref.WeakKeyDictionary[Any, _Record] = weakref.WeakKeyDictionary()
_records_lock = threading.Lock()


def cell_outputs(shell: Any, n: int) -> list[Shown]:
    """The display outputs cell ``n`` showed (empty when it showed none, or they were not
    kept: the cell ran before hermes_nb was imported, or too long ago)."""
    with _records_lock:
        record = _records.get(shell)
    if record is None:
        return []
    with record.lock:
        return list(record.cells.get(n, ()))


def watch_outputs(shell: Any) -> None:
    """Start keeping what each cell of ``shell`` displays. Idempotent; a shell without a
    display publisher or events (not IPython) is left alone."""
    events = getattr(shell, "events", None)
    if events is None or getattr(shell, "display_pub", None) is None:
        return
    with _records_lock:
        if shell in _records:
            return
        record = _records[shell] = _Record()

    def begin(*_: Any) -> None:
        _wrap(shell, record)  # again: a publisher swapped in since is wrapped too
        with record.lock:
            record.current, record.earlier = deque(maxlen=MAX_OUTPUTS), 0

    def end(result: Any = None) -> None:
        number = getattr(result, "execution_count", None)
        record.settle(number if isinstance(number, int) else None)

    events.register("pre_run_cell", begin)
    events.register("post_run_cell", end)
    _wrap(shell, record)


def _wrap(shell: Any, record: _Record) -> None:
    """Wrap ``shell.display_pub.publish`` (once per publisher) to keep what it publishes."""
    publisher = shell.display_pub
    original: Callable[..., Any] = publisher.publish
    if getattr(original, "_hermes_nb_outputs", False):
        return

    def publish(*args: Any, **kwargs: Any) -> Any:
        try:
            data = args[0] if args else kwargs.get("data")
            metadata = args[1] if len(args) > 1 else kwargs.get("metadata")
            shown = _shown(data, metadata, kwargs.get("transient"))
            if shown is not None:
                record.add(shown, bool(kwargs.get("update")))
        except Exception:  # keeping a copy must never break the display itself
            pass
        return original(*args, **kwargs)

    publish._hermes_nb_outputs = True  # type: ignore[attr-defined]
    publisher.publish = publish


def _shown(data: Any, metadata: Any, transient: Any) -> Shown | None:
    """A published bundle as a :class:`Shown`; None for hermes_nb's own chat view."""
    if not isinstance(data, Mapping):
        return None
    if isinstance(metadata, Mapping) and "hermes_nb" in metadata:
        return None  # the chat view, live or settled: the conversation, not the cell's output
    display_id = transient.get("display_id") if isinstance(transient, Mapping) else None
    shown = Shown(display_id=str(display_id) if display_id is not None else None)
    for mime in _IMAGE_TYPES:
        raw = data.get(mime)
        if raw is None:
            continue
        blob = raw if isinstance(raw, bytes) else decode_base64(str(raw))
        info = image_info(blob) if blob else None
        if blob and info is not None:
            shown.image, shown.info = blob, info
            shown.text = _plain(data, placeholder_ok=False)
            return shown
    if _WIDGET in data and "text/plain" not in data:
        return None
    shown.text = _text(data)
    return shown if shown.text else None


def _text(data: Mapping[str, Any]) -> str:
    """A bundle's text: ``text/plain`` (a DataFrame's table), else Markdown, else the HTML's
    text (tables as rows of cells), else a line naming what it was."""
    plain = _plain(data, placeholder_ok=False)
    if plain:
        return plain
    for mime in ("text/markdown", "text/latex"):
        if isinstance(data.get(mime), str) and data[mime].strip():
            return _cut(data[mime])
    html = data.get("text/html")
    if isinstance(html, str) and html.strip():
        return _cut(html_text(html))
    if "image/svg+xml" in data:
        return "[an SVG image, not sent: only PNG, JPEG, GIF and WebP images are]"
    kinds = ", ".join(str(m) for m in data) or "nothing"
    return f"[a display of {kinds}, with no text form]"


def _plain(data: Mapping[str, Any], *, placeholder_ok: bool) -> str:
    """``text/plain``, unless it is only a default ``<Figure size … with 1 Axes>`` or
    ``<… object>`` repr (and ``placeholder_ok`` is false)."""
    plain = data.get("text/plain")
    if not isinstance(plain, str) or not plain.strip():
        return ""
    stripped = plain.strip()
    if not placeholder_ok and stripped.startswith("<") and stripped.endswith(">"):
        return ""
    return _cut(plain)


def _cut(text: str, limit: int = _TEXT_LIMIT) -> str:
    text = text.strip("\n")
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


class _TextOfHtml(HTMLParser):
    """HTML → text: table cells joined by `` | ``, rows and blocks on lines of their own,
    scripts and styles left out."""

    _BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[list[str]] = [[]]
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        elif tag in self._BLOCKS:
            self.lines.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("td", "th"):
            self.lines[-1].append(" | ")

    def handle_data(self, data: str) -> None:
        if not self.skip and data.strip():
            self.lines[-1].append(" ".join(data.split()))


def html_text(html: str) -> str:
    """The text of an HTML display (a styled table, a report) in a compact form."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = ("".join(parts).strip().rstrip("|").strip() for parts in parser.lines)
    return "\n".join(line for line in lines if line)


#: The largest image sent to a model, in bytes and in pixels on a side (as MCP images: a request
#: carries it base64-encoded, and providers refuse larger ones). A larger image is left out with
#: a line saying why: scaling it would need an imaging library hermes_nb does not depend on.
IMAGE_LIMIT = 5 << 20
PIXEL_LIMIT = 8000


@dataclass
class Described:
    """A cell's outputs as the model reads them: text parts, and the images to send."""

    parts: list[str] = field(default_factory=list)
    images: list[ToolImage] = field(default_factory=list)


def describe_outputs(n: int, outputs: list[Shown], numbered_from: int = 1) -> Described:
    """Cell ``n``'s display outputs: text as it is (tables as plain text), each image as a
    line naming it (``[image 1: 640×480 PNG, shown by cell 3]``) and its bytes to send; an
    image too large or no longer kept, as a line saying so. Images are numbered from
    ``numbered_from`` (a prompt may name several cells)."""
    described = Described()
    for shown in outputs:
        if shown.info is None:
            described.parts.append(shown.text)
            continue
        what = shown.info.describe()
        if shown.image is None:
            described.parts.append(
                f"[an image ({what}) that cell {n} showed is no longer kept: hermes_nb keeps "
                f"the newest {IMAGE_BUDGET >> 20} MB of figures; run the cell again]"
            )
            continue
        too_big = shown.info.size > IMAGE_LIMIT or max(shown.info.width, shown.info.height) > (
            PIXEL_LIMIT
        )
        if too_big:
            described.parts.append(
                f"[an image ({what}, {shown.info.size / (1 << 20):.1f} MB) that cell {n} showed "
                f"was left out: larger than {IMAGE_LIMIT >> 20} MB or {PIXEL_LIMIT} pixels on a "
                "side; show it smaller (a lower dpi or figsize) and ask again]"
            )
            continue
        number = numbered_from + len(described.images)
        described.images.append(
            ToolImage(shown.info.mime, base64.b64encode(shown.image).decode("ascii"))
        )
        label = f"[image {number}: {what}, shown by cell {n}]"
        described.parts.append(f"{label}\n{shown.text}" if shown.text else label)
    return described
