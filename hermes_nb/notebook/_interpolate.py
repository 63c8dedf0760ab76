"""``{name}`` in a prompt → the value of ``name`` from the user's namespace.

Only a bare identifier in single braces is replaced, and only when it names a variable; every
other brace — code, JSON, format strings — stays exactly as written. ``{{`` and ``}}`` give
literal braces. Values are summarised so a DataFrame or a big array does not flood the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Interpolated", "interpolate", "summarise"]

_PATTERN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LIMIT = 2000


@dataclass(frozen=True)
class Interpolated:
    """The prompt after substitution, which names were used and which were not defined."""

    text: str
    used: tuple[str, ...]
    undefined: tuple[str, ...]


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


def interpolate(prompt: str, namespace: Mapping[str, Any]) -> Interpolated:
    """Replace ``{name}`` by the summarised value of ``namespace[name]``."""
    used: list[str] = []
    undefined: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name in namespace:
            used.append(name)
            value = namespace[name]
            text = summarise(value)
            if "\n" in text and not isinstance(value, str):
                # a table or array keeps its lines (and reads as data, not prose) in a fence
                return f"\n```\n{text}\n```\n"
            return text
        if name not in undefined:
            undefined.append(name)
        return token

    text = _PATTERN.sub(replace, prompt)
    return Interpolated(text, tuple(dict.fromkeys(used)), tuple(undefined))
