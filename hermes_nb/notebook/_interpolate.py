"""``{name}`` in a prompt → the value of ``name`` from the user's namespace.

Only a bare identifier in single braces is replaced, and only when it names a variable; every
other brace — code, JSON, format strings — stays exactly as written. ``{{`` and ``}}`` give
literal braces. Values are summarised so a DataFrame or a big array does not flood the prompt.

``{In[3]}`` and ``{Out[3]}`` read as they do in IPython: the source of cell 3 as it was typed
(IPython keeps it as ``_i3``; ``In`` holds the transformed code) and the value that cell
returned. A negative index counts back from the current cell, as ``In[-2]`` does (``In[-1]`` is
the cell being run); ``Out`` is a dict, so only cell numbers that produced a value are there.
The source goes in as code (inline for one line, a ``python`` fence for several); a cell number
with no source or no value is left as written and reported as undefined, like a missing name.

``{Out[n]}`` is everything cell ``n`` showed, not only its value: given the cell's display
outputs (``outputs``, kept by :mod:`._outputs`), a DataFrame's table or a printed report goes in
as text and a Matplotlib figure as a line naming it (``[image 1: 640×480 PNG, shown by cell
3]``) whose bytes travel with the prompt (:attr:`Interpolated.images`): a model with ``vision``
sees the figure, one without reads a line saying it was left out (the turn adds it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..engine.tools import ToolImage
    from ._outputs import Shown

__all__ = ["Interpolated", "as_code", "cell_source", "interpolate", "summarise"]

_PATTERN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|\{(In|Out)\[\s*(-?\d+)\s*\]\}")
_LIMIT = 2000


@dataclass(frozen=True)
class Interpolated:
    """The prompt after substitution, which names were used and which were not defined."""

    text: str
    used: tuple[str, ...]
    undefined: tuple[str, ...]
    #: the images the ``{Out[n]}`` it names showed, numbered as the text names them
    images: tuple[ToolImage, ...] = ()


def _cut(text: str, limit: int = _LIMIT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def summarise(value: Any, limit: int = _LIMIT) -> str:
    """A prompt-sized text for ``value``: strings as they are, tables and arrays summarised."""
    if isinstance(value, str):
        return _cut(value, limit)
    kind = type(value).__name__
    module = type(value).__module__.split(".")[0]
    if module == "pandas" and kind == "DataFrame":
        cols = ", ".join(map(str, list(value.columns)[:30]))
        head = value.head(5).to_string()
        return _cut(
            f"DataFrame with {value.shape[0]} rows × {value.shape[1]} columns ({cols}):\n{head}",
            limit,
        )
    if module == "pandas" and kind == "Series":
        return _cut(
            f"Series {value.name!r} of length {len(value)}:\n{value.head(10).to_string()}", limit
        )
    if module == "numpy" and kind == "ndarray":
        import numpy as np

        body = np.array2string(value, threshold=50, edgeitems=3)
        return _cut(f"array of shape {value.shape}, dtype {value.dtype}:\n{body}", limit)
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the prompt
        text = f"<{kind}: repr failed with {type(exc).__name__}>"
    return _cut(text, limit)


def cell_source(namespace: Mapping[str, Any], n: int) -> str | None:
    """The source of cell ``n`` as it was typed (``_i<n>``), else as ``In[n]`` holds it; a
    negative ``n`` counts back from the end of ``In``. ``None`` if there is no such cell."""
    history = namespace.get("In")
    count = len(history) if isinstance(history, Sequence) else 0
    number = count + n if n < 0 else n
    if number < 1:  # In[0] is IPython's empty placeholder
        return None
    raw = namespace.get(f"_i{number}")
    if isinstance(raw, str):
        return raw
    if number < count and isinstance(history, Sequence):
        entry = history[number]
        return entry if isinstance(entry, str) else None
    return None


def as_code(source: str) -> str:
    """Cell source as Markdown code: inline for one short line, else a ``python`` fence."""
    text = source.strip("\n")
    if "\n" not in text and "`" not in text and len(text) <= 120:
        return f"`{text}`"
    fence = "```"
    while fence in text:
        fence += "`"
    return f"\n{fence}python\n{text}\n{fence}\n"


#: A cell number → the display outputs it showed (:func:`._outputs.cell_outputs` for a shell).
Outputs = Callable[[int], "list[Shown]"]


def _cell_text(
    namespace: Mapping[str, Any],
    which: str,
    n: int,
    outputs: Outputs | None = None,
    images: list[ToolImage] | None = None,
) -> str | None:
    """``{In[n]}`` as code, ``{Out[n]}`` as what the cell displayed and its summarised value
    (its images added to ``images``); ``None`` if there is none."""
    if which == "In":
        source = cell_source(namespace, n)
        return None if source is None or not source.strip() else as_code(source)
    from ._outputs import describe_outputs

    values = namespace.get("Out")
    shown = outputs(n) if outputs is not None and n >= 1 else []
    found = images if images is not None else []
    described = describe_outputs(n, shown, numbered_from=len(found) + 1)
    found.extend(described.images)
    parts = [_fenced(p) for p in described.parts]
    if isinstance(values, Mapping) and n in values:
        parts.append(_as_prompt_text(values[n]))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "\n" + "\n\n".join(p.strip("\n") for p in parts) + "\n"


def _fenced(text: str) -> str:
    """A display's text: a table or report of several lines in a fence, a line as it is."""
    if "\n" not in text:
        return text
    fence = "```"
    while fence in text:
        fence += "`"
    # ``text``: data, not code, so the chat view offers no Copy / Insert below on it.
    return f"\n{fence}text\n{text}\n{fence}\n"


def _as_prompt_text(value: Any) -> str:
    text = summarise(value)
    if "\n" in text and not isinstance(value, str):
        # a table or array keeps its lines (and reads as data, not prose) in a ``text`` fence:
        # the chat view offers no Copy / Insert below on it
        return f"\n```text\n{text}\n```\n"
    return text


def interpolate(
    prompt: str, namespace: Mapping[str, Any], outputs: Outputs | None = None
) -> Interpolated:
    """Replace ``{name}`` by the summarised value of ``namespace[name]``, ``{In[n]}`` by the
    source of cell ``n`` and ``{Out[n]}`` by what it displayed (``outputs``) and its value."""
    used: list[str] = []
    undefined: list[str] = []
    images: list[ToolImage] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        if match.group(2):
            label = f"{match.group(2)}[{int(match.group(3))}]"
            text = _cell_text(namespace, match.group(2), int(match.group(3)), outputs, images)
            if text is None:
                if label not in undefined:
                    undefined.append(label)
                return token
            used.append(label)
            return text
        name = match.group(1)
        if name in namespace:
            used.append(name)
            return _as_prompt_text(namespace[name])
        if name not in undefined:
            undefined.append(name)
        return token

    text = _PATTERN.sub(replace, prompt)
    return Interpolated(text, tuple(dict.fromkeys(used)), tuple(undefined), tuple(images))
