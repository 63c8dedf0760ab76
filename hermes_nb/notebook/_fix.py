"""The last failure in this kernel, read back for the model: ``%hermes fix`` / ``%hermes explain``
and the notebook toolset's ``last_error``.

IPython records every traceback it shows in ``sys.last_type`` / ``sys.last_value`` /
``sys.last_traceback`` (``InteractiveShell._get_exc_info``, the same in IPython 8.20 to 9 and in
every ipykernel), and its compiler maps each cell's code name (``<ipython-input-3-…>`` in
IPython, ``/tmp/ipykernel_…/….py`` in ipykernel) to the cell's number in
``shell.compile._filename_map``. Walking the traceback to the first frame whose file is a cell
gives the cell that raised, even when later cells ran fine (a SyntaxError has no cell frame; its
``filename`` names the cell). The source is the cell as typed (``_i<n>``), not the transformed
code in ``In``. The traceback is formatted by :mod:`traceback`, not taken from IPython's coloured
text: no ANSI, no ``%xmode Verbose`` locals (which may hold secrets), cell files shown as
``Cell In[n]``, and IPython's own frames above the cell left out.

A mistyped magic line is shown as an error too (IPython's ``UsageError``) and replaces
``sys.last_value``; it is not what ``%hermes fix`` is for. :func:`watch_failures` (registered
when the notebook tools are imported in a running shell, and by every call here) remembers each
failing cell's exception from IPython's ``post_run_cell``, so a usage error never hides the cell
that failed before it. Code the agent runs (``run_python``) never goes through
``showtraceback``, so its errors never become "the last error".
"""

from __future__ import annotations

import ast
import inspect
import re
import sys
import traceback
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..core.exceptions import HermesError
from ._interpolate import as_code, cell_source, summarise

__all__ = [
    "REDACTED",
    "Failure",
    "describe_failure",
    "describe_value",
    "failure_prompt",
    "last_failure",
    "looks_secret",
    "redact_text",
    "strip_ansi",
    "trim_middle",
    "user_variables",
    "variables_named",
    "watch_failures",
]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")

# A name "looks like a secret" when one of its words is one of these (``OPENAI_API_KEY``,
# ``githubToken``, ``db_password``), or when it contains one of the unambiguous ones anywhere
# (``mysecret``, ``apikey``). Plural "tokens" and "keys" are left out on purpose: a list of NLP
# tokens or of dict keys is common, and ``max_tokens`` / ``tokenizer`` are not secrets.
_SECRET_WORDS = frozenset(
    {"key", "token", "secret", "secrets", "password", "passwords", "passwd", "pwd", "apikey"}
    | {"credential", "credentials", "auth", "bearer", "cookie", "cookies"}
)
_SECRET_PARTS = ("secret", "password", "passwd", "apikey", "api_key", "credential")
# Values that are keys whatever their name: OpenAI/Anthropic (sk-), GitHub, Slack, AWS, Hugging
# Face, Google, Stripe, JWTs.
_SECRET_VALUE = re.compile(
    r"\b(?:sk-[A-Za-z0-9_\-]{16,}|(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{20,}|github_pat_\w{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|hf_[A-Za-z0-9]{20,}|AIza[0-9A-Za-z_\-]{30,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,})"
)
REDACTED = "<redacted: the name looks like a secret>"


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour and cursor codes."""
    return _ANSI.sub("", text)


def looks_secret(name: str) -> bool:
    """Whether a variable name looks like it holds a key, token, secret or password."""
    lowered = name.lower()
    if any(part in lowered for part in _SECRET_PARTS):
        return True
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower().split("_")
    return any(word in _SECRET_WORDS for word in words)


def redact_text(text: str) -> str:
    """``text`` with anything shaped like a well-known API key or token replaced."""
    return _SECRET_VALUE.sub("<redacted key>", text)


def trim_middle(text: str, max_lines: int = 60, max_chars: int = 6000, what: str = "lines") -> str:
    """``text`` cut in the middle, with a note saying how much was left out, when it has more
    than ``max_lines`` lines or ``max_chars`` characters (the start and the end of a traceback
    are what matter: where it came from, and what raised)."""
    lines = text.splitlines()
    if len(lines) > max_lines:
        head = max(1, max_lines // 3)
        tail = max(1, max_lines - head - 1)
        left = len(lines) - head - tail
        lines = [*lines[:head], f"[… {left} {what} left out …]", *lines[-tail:]]
        text = "\n".join(lines)
    if len(text) > max_chars:
        head_chars = max_chars // 3
        tail_chars = max_chars - head_chars
        left = len(text) - head_chars - tail_chars
        text = f"{text[:head_chars]}\n[… {left:,} characters left out …]\n{text[-tail_chars:]}"
    return text


def user_variables(shell: Any) -> dict[str, Any]:
    """The person's variables: the namespace without IPython's own names (``In``, ``Out``,
    ``_``, ``_i3``, ``exit`` …: ``shell.user_ns_hidden``, as ``%who`` filters), without names
    starting with ``_`` and without modules."""
    namespace: Mapping[str, Any] = getattr(shell, "user_ns", {}) or {}
    hidden: Mapping[str, Any] = getattr(shell, "user_ns_hidden", {}) or {}
    missing = object()
    found: dict[str, Any] = {}
    for name, value in list(namespace.items()):
        if name.startswith("_") or value is hidden.get(name, missing):
            continue  # IPython's own (In, Out, exit, get_ipython, _i3 …), unless reassigned
        if isinstance(value, types.ModuleType):
            continue
        found[name] = value
    return found


# -- the last failure ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """The last error IPython showed: what it was, where, and the traceback as plain text."""

    type_name: str
    message: str
    traceback: str
    cell: int | None
    source: str | None
    #: Other cells whose code is in the traceback (a function defined earlier): ``{n: source}``.
    other_cells: dict[int, str]
    #: The execution count now (how many cells have run since, when ``cell`` is known).
    execution_count: int

    @property
    def headline(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def _cell_names(shell: Any) -> Mapping[str, int]:
    compiler = getattr(shell, "compile", None)
    names = getattr(compiler, "_filename_map", None)
    return names if isinstance(names, Mapping) else {}


# The last failure of a cell that was not a UsageError, per shell: a mistyped magic line
# (``%hermes fix -p nope``) is shown as an error too and replaces ``sys.last_value``, but it is
# not what ``%hermes fix`` is for, and it must not hide the cell that failed before it.
_failures: dict[int, tuple[BaseException, str | None]] = {}
_watched: set[int] = set()


def _is_usage_error(exc: BaseException) -> bool:
    from IPython.core.error import UsageError

    return isinstance(exc, UsageError)


def watch_failures(shell: Any) -> None:
    """Remember each failing cell's exception in ``shell`` (IPython's ``post_run_cell``), so
    that a later magic usage error does not hide it. Idempotent."""
    events = getattr(shell, "events", None)
    if events is None or id(shell) in _watched:
        return

    def remember(result: Any) -> None:
        exc = getattr(result, "error_in_exec", None) or getattr(result, "error_before_exec", None)
        if isinstance(exc, BaseException) and not _is_usage_error(exc):
            # The cell as typed, too: a front end that runs cells without storing history
            # (nbval, ``store_history=False``) leaves no ``_i<n>`` to read it back from.
            raw = getattr(getattr(result, "info", None), "raw_cell", None)
            _failures[id(shell)] = (exc, raw if isinstance(raw, str) else None)

    events.register("post_run_cell", remember)
    _watched.add(id(shell))


def last_failure(shell: Any) -> Failure | None:
    """The last error IPython showed in this shell (magic usage errors aside), or ``None`` if
    nothing has failed yet."""
    watch_failures(shell)
    value = getattr(sys, "last_value", None)
    tb = getattr(sys, "last_traceback", None)
    remembered, raw_cell = _failures.get(id(shell), (None, None))
    if not isinstance(value, BaseException) or _is_usage_error(value):
        value = remembered
        tb = value.__traceback__ if value is not None else None
    if value is None:
        return None
    etype = type(value)
    if tb is None:
        tb = value.__traceback__
    cells = _cell_names(shell)
    namespace: Mapping[str, Any] = getattr(shell, "user_ns", {}) or {}

    # Frames from the first cell frame on (IPython's run_code frame above it is noise).
    walk = tb
    start = None
    seen: list[int] = []
    while walk is not None:
        filename = walk.tb_frame.f_code.co_filename
        if filename in cells:
            if start is None:
                start = walk
            if cells[filename] not in seen:
                seen.append(cells[filename])
        walk = walk.tb_next
    cell: int | None = seen[0] if seen else None
    if cell is None and isinstance(value, SyntaxError) and value.filename in cells:
        cell = cells[str(value.filename)]
    shown_tb = start if start is not None else tb
    if isinstance(value, SyntaxError):
        shown_tb = None  # where it failed to parse is in the exception itself
    lines = traceback.format_exception(etype, value, shown_tb)
    text = strip_ansi("".join(lines)).rstrip("\n")
    for filename, number in cells.items():
        text = text.replace(f'File "{filename}"', f"Cell In[{number}]")
    source = cell_source(namespace, cell) if cell is not None else None
    if value is remembered and raw_cell is not None:
        source = raw_cell  # what the person typed, whatever the history kept
    others = {
        n: src for n in seen[1:] if n != cell and (src := cell_source(namespace, n)) is not None
    }
    message = strip_ansi(str(value)) if not isinstance(value, SyntaxError) else value.msg
    return Failure(
        type_name=etype.__qualname__
        if etype.__module__ in ("builtins", "__main__")
        else f"{etype.__module__}.{etype.__qualname__}",
        message=message,
        traceback=text,
        cell=cell,
        source=source,
        other_cells=others,
        execution_count=int(getattr(shell, "execution_count", 0) or 0),
    )


def describe_failure(failure: Failure, *, max_lines: int = 60) -> str:
    """``last_error``'s text: the exception, the cell that raised and its source, the
    traceback (trimmed in the middle when long)."""
    parts = [f"{failure.headline}"]
    if failure.cell is not None:
        later = failure.execution_count - failure.cell - 1
        ran = f" ({later} cell{'s' if later != 1 else ''} ran after it)" if later > 0 else ""
        parts.append(f"\nIt was raised by cell In[{failure.cell}]{ran}:")
        if failure.source is not None:
            parts.append(as_code(failure.source).strip("\n"))
    else:
        parts.append("\nIt was not raised by a notebook cell's own code.")
    parts.append("\nTraceback:\n```text\n" + trim_middle(failure.traceback, max_lines) + "\n```")
    for n, src in failure.other_cells.items():
        parts.append(f"\nCell In[{n}], also in the traceback:")
        parts.append(as_code(trim_middle(src, 40, 3000)).strip("\n"))
    return redact_text("\n".join(parts))


# -- the variables a cell names -------------------------------------------------------------------


def _names_in(shell: Any, source: str) -> list[str]:
    """The names ``source`` uses, in order of first appearance (magics transformed first)."""
    transform = getattr(shell, "transform_cell", None)
    try:
        code = transform(source) if callable(transform) else source
        tree = ast.parse(code)
    except (SyntaxError, ValueError, TypeError):
        return list(dict.fromkeys(re.findall(r"\b[A-Za-z_]\w*\b", source)))
    names = sorted(
        (node.lineno, node.col_offset, node.id)
        for node in ast.walk(tree)
        if isinstance(node, ast.Name)
    )
    return list(dict.fromkeys(name for _, _, name in names))


def describe_value(name: str, value: Any, limit: int = 1200) -> str:
    """One variable for the model: its type and a prompt-sized summary (the source, for a
    function or class defined in the notebook); redacted if the name looks like a secret."""
    kind = type(value).__name__
    if looks_secret(name):
        return f"`{name}` ({kind}): {REDACTED}"
    if (inspect.isfunction(value) or inspect.isclass(value)) and getattr(
        value, "__module__", ""
    ) == "__main__":
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        if source:
            return f"`{name}` ({kind}, defined in the notebook):\n" + as_code(
                trim_middle(source, 40, limit)
            ).strip("\n")
    text = redact_text(summarise(value, limit))
    if "\n" in text:
        return f"`{name}` ({kind}):\n```text\n{text}\n```"
    return f"`{name}` ({kind}): {text}"


def variables_named(shell: Any, source: str, *, max_vars: int = 15) -> list[str]:
    """Summaries of the person's variables ``source`` names."""
    variables = user_variables(shell)
    chosen = [n for n in _names_in(shell, source) if n in variables]
    out = [describe_value(n, variables[n]) for n in chosen[:max_vars]]
    if len(chosen) > max_vars:
        out.append(f"(and {len(chosen) - max_vars} more: {', '.join(chosen[max_vars:])})")
    return out


# -- %hermes fix / explain -------------------------------------------------------------------------

_ASK = {
    "explain": (
        "Explain this error to me: what went wrong, and why this cell raised it, in plain "
        "words. Then say briefly how to fix it. Do not rewrite the whole cell."
    ),
    "fix": (
        "Fix this cell. Say in one or two sentences what caused the error, then give the "
        "corrected cell as ONE fenced ```python code block holding the whole cell, ready to run "
        "in its place. Keep everything that was not part of the problem as it was."
    ),
}


def failure_prompt(shell: Any, mode: Literal["fix", "explain"]) -> str:
    """The prompt for ``%hermes fix`` / ``%hermes explain``: the failing cell's source, the
    traceback (no ANSI; trimmed in the middle when long), a summary of the variables the cell
    names, and the request. :class:`HermesError` if nothing has failed yet in this kernel."""
    if mode not in _ASK:
        raise ValueError(f"mode must be 'fix' or 'explain', not {mode!r}")
    failure = last_failure(shell)
    if failure is None:
        raise HermesError(
            "Nothing has failed yet in this kernel.",
            hint="Run a cell that raises, then %hermes fix.",
        )
    where = f"cell In[{failure.cell}]" if failure.cell is not None else "my code"
    parts = [f"Running {where} raised {failure.headline}"]
    if failure.source is not None:
        parts.append("\nThe cell:\n" + _fence(trim_middle(failure.source, 200, 12_000)))
    parts.append("\nThe traceback:\n```text\n" + trim_middle(failure.traceback, 60, 6000) + "\n```")
    for n, src in failure.other_cells.items():
        parts.append(f"\nCell In[{n}], also in the traceback:\n" + _fence(trim_middle(src, 60)))
    if failure.source is not None:
        named = variables_named(shell, failure.source)
        if named:
            parts.append("\nThe variables the cell uses, as they are now:\n" + "\n".join(named))
    parts.append("\n" + _ASK[mode])
    return redact_text("\n".join(parts))


def _fence(source: str) -> str:
    fence = "```"
    while fence in source:
        fence += "`"
    return f"{fence}python\n{source.strip(chr(10))}\n{fence}"
