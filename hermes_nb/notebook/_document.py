"""The notebook as text for the model: its cells in order, from the page, the file or history.

``read_notebook`` gets the cells from one of three places, best first, and says which:

* **the page** (JupyterLab, Notebook 7 with hermes_nb's extension): the document as the person
  sees it, unsaved changes included (:mod:`._document_bridge` asks for it);
* **the saved file** (headless runs, VS Code, a page without the extension): the ``.ipynb`` the
  kernel was started for (:func:`._where.notebook_path`), with a note that unsaved changes are
  not included;
* **the kernel's history** (no file: a console, terminal IPython): the cells run so far,
  ``In[n]`` and ``Out[n]``, without Markdown cells or ids.

Both the page and the file give nbformat cells, so one function (:func:`outline`) turns either
into the text the model reads: each cell's id, type, execution count, source, and outputs as
text — an image as a marker with its size, an error as its name and message, long text cut.
Key-shaped secrets are redacted, as in every notebook tool.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.exceptions import HermesError
from ._fix import redact_text, trim_middle
from ._interpolate import cell_source, summarise

__all__ = [
    "Cell",
    "cells_from_json",
    "history_outline",
    "image_marker",
    "outline",
    "read_saved",
    "source_text",
]

#: How much text one output may give the model, and the whole notebook.
OUTPUT_LIMIT = 2000
NOTEBOOK_LIMIT = 60_000
_IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "image/webp")
_TEXT_MIMES = ("text/plain", "text/markdown", "text/latex", "application/json")


@dataclass(frozen=True)
class Cell:
    """One notebook cell as the model reads it (nbformat's fields, source as one string)."""

    id: str
    cell_type: str
    source: str
    execution_count: int | None
    outputs: tuple[Mapping[str, Any], ...]


def source_text(source: Any) -> str:
    """nbformat's source (one string, or a list of lines) as one string."""
    if isinstance(source, list):
        return "".join(str(part) for part in source)
    return str(source or "")


def cells_from_json(raw: Any) -> list[Cell]:
    """nbformat cells (``notebook["cells"]``, or what the page sends) as :class:`Cell` s."""
    cells: list[Cell] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping):
            continue
        count = item.get("execution_count")
        outputs = item.get("outputs")
        cells.append(
            Cell(
                id=str(item.get("id") or ""),
                cell_type=str(item.get("cell_type") or "code"),
                source=source_text(item.get("source")),
                execution_count=count if isinstance(count, int) else None,
                outputs=tuple(o for o in outputs or () if isinstance(o, Mapping)),
            )
        )
    return cells


def read_saved(path: Path) -> list[Cell]:
    """The cells of the saved notebook at ``path``; one sentence if it cannot be read."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise HermesError(f"The notebook file {path} cannot be read ({exc.strerror}).") from None
    except (ValueError, UnicodeDecodeError):
        raise HermesError(f"The notebook file {path} is not a notebook (not valid JSON).") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("cells"), list):
        raise HermesError(f"The notebook file {path} has no cells list; it is not a notebook.")
    return cells_from_json(data["cells"])


# -- the text the model reads ----------------------------------------------------------------


def outline(cells: Sequence[Cell], origin: str) -> str:
    """The cells as the model reads them, under one line saying where they came from."""
    head = f"{origin} {len(cells)} cell{'s' if len(cells) != 1 else ''}, in order."
    parts = [head]
    for n, cell in enumerate(cells, 1):
        parts.append(_cell_text(n, cell))
    text = "\n\n".join(parts)
    if len(text) > NOTEBOOK_LIMIT:
        text = trim_middle(text, max_lines=100_000, max_chars=NOTEBOOK_LIMIT)
    return redact_text(text)


def _cell_text(n: int, cell: Cell) -> str:
    ident = f"id {cell.id}" if cell.id else "no id (nbformat < 4.5)"
    count = ""
    if cell.cell_type == "code":
        count = f", In[{cell.execution_count}]" if cell.execution_count else ", not run"
    lines = [f"### Cell {n} · {ident} · {cell.cell_type}{count}"]
    fence = "```"
    while fence in cell.source:
        fence += "`"
    language = "python" if cell.cell_type == "code" else cell.cell_type
    if cell.source.strip():
        lines.append(f"{fence}{language}\n{cell.source.rstrip()}\n{fence}")
    else:
        lines.append("(empty)")
    shown = [text for text in map(output_text, cell.outputs) if text]
    if shown:
        lines.append("Outputs:")
        lines.extend(f"- {text}" for text in shown)
    return "\n".join(lines)


def output_text(output: Mapping[str, Any]) -> str:
    """One nbformat output as a line (or a short block) of text for the model."""
    kind = output.get("output_type")
    if kind == "stream":
        text = _cut(source_text(output.get("text")))
        return f"{output.get('name', 'stdout')}:\n{_indent(text)}" if text.strip() else ""
    if kind == "error":
        name, value = output.get("ename", "Error"), output.get("evalue", "")
        return f"error: {name}: {_cut(str(value), 400)}"
    if kind in ("execute_result", "display_data", "update_display_data"):
        data = output.get("data")
        metadata = output.get("metadata")
        if not isinstance(data, Mapping):
            return ""
        cut = output.get("hermes_nb_cut")
        parts = []
        for mime in _IMAGE_MIMES:
            if mime in data:
                full = cut.get(mime) if isinstance(cut, Mapping) else None
                meta = metadata.get(mime) if isinstance(metadata, Mapping) else None
                parts.append(image_marker(mime, data[mime], meta, full_length=full))
                break
        for mime in _TEXT_MIMES:
            if mime in data:
                text = data[mime]
                text = json.dumps(text) if mime == "application/json" else source_text(text)
                if "application/vnd.jupyter.widget-view+json" in data:
                    text = "(an interactive widget)"
                label = "result" if kind == "execute_result" else "display"
                parts.append(f"{label} ({mime}):\n{_indent(_cut(text))}")
                break
        else:
            if "text/html" in data and not parts:
                parts.append(f"display (text/html): {len(source_text(data['text/html'])):,} chars")
        return "\n  ".join(parts)
    return ""


def _cut(text: str, limit: int = OUTPUT_LIMIT) -> str:
    text = text.rstrip()
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… cut: {len(text) - limit:,} more characters]"


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (empty)"


def image_marker(mime: str, data: Any, metadata: Any = None, *, full_length: Any = None) -> str:
    """``[image: 640×480 PNG, 23 KB]``: an image's kind, pixel size where it can be read from
    its header (or the output's metadata) and bytes (``full_length``: the base64 length of an
    image the page sent only the start of)."""
    text = source_text(data)
    kind = mime.split("/")[-1].split("+")[0].upper()
    if mime == "image/svg+xml":
        size = len(text.encode("utf-8"))
        return f"[image: SVG, {_bytes(size)}]"
    if isinstance(full_length, int):
        size = full_length * 3 // 4
    else:
        raw = text.replace("\n", "").strip()
        size = len(raw) * 3 // 4 - raw[-2:].count("=")
    dims = _dimensions(text)
    if dims is None and isinstance(metadata, Mapping):
        width, height = metadata.get("width"), metadata.get("height")
        if isinstance(width, int) and isinstance(height, int):
            dims = (width, height)
    shown = f"{dims[0]}×{dims[1]} " if dims else ""
    return f"[image: {shown}{kind}, {_bytes(size)}]"


def _bytes(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    return f"{max(1, round(size / 1024))} KB" if size >= 1024 else f"{size} bytes"


def _dimensions(data: str) -> tuple[int, int] | None:
    """Width and height from a PNG's or GIF's header (the first bytes of the base64)."""
    head = data.replace("\n", "")[:64]
    try:
        raw = base64.b64decode(head[: len(head) // 4 * 4])
    except (binascii.Error, ValueError):
        return None
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return int(width), int(height)
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return int(width), int(height)
    return None


# -- no file: the kernel's history -----------------------------------------------------------


def history_outline(shell: Any, why: str) -> str:
    """The cells run so far (``In[n]`` and ``Out[n]``), when there is no notebook to read."""
    namespace: Mapping[str, Any] = getattr(shell, "user_ns", {}) or {}
    history = namespace.get("In")
    count = len(history) if isinstance(history, Sequence) else 0
    outputs: Mapping[int, Any] = namespace.get("Out") or {}
    parts = [
        f"{why} This is the kernel's history instead: the {max(0, count - 1)} cells run so "
        "far, in order (no Markdown cells, no cell ids, printed output not kept)."
    ]
    for n in range(1, count):
        source = cell_source(namespace, n)
        if source is None or not source.strip():
            continue
        block = f"### In[{n}]\n```python\n{source.rstrip()}\n```"
        if n in outputs:
            block += f"\nOut[{n}]:\n{_indent(summarise(outputs[n], OUTPUT_LIMIT))}"
        parts.append(block)
    text = "\n\n".join(parts)
    return redact_text(trim_middle(text, max_lines=100_000, max_chars=NOTEBOOK_LIMIT))
