"""Tools a model may call: Python functions described by their own signature.

:func:`tool` turns a function (sync or async) into a :class:`Tool`. Its JSON Schema comes from
the signature and type hints through pydantic (a model built from the parameters), its
description from the docstring (the first paragraph, plus a Google-style ``Args:`` section for
the parameters); the same pydantic model validates the model's arguments before the function is
called, so a function never sees arguments that contradict its own hints.

Names resolve through one registry: every decorated function registers under its tool name,
and a *toolset* (``"ask_user"`` built in; ``"notebook"`` registered by ``%load_ext hermes_nb``)
expands to several tools. :func:`resolve_tools` turns what a caller passes — tools, plain
functions, names — into the list a turn offers.

``"mcp:NAME"`` (one configured MCP server) and ``"mcp"`` (every one) expand to the tools the
servers list (:mod:`hermes_nb.engine.mcp`), started on first use.

Running calls is the tool loop's job (:mod:`hermes_nb.engine._tool_loop`); this module only
knows what a tool is and how one call is validated and described. A tool may return a
:class:`ToolResult` to say that it failed or to hand back images as well as text.
"""

from __future__ import annotations

import inspect
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from ..core.exceptions import HermesError

if TYPE_CHECKING:  # imported where a tool is made or called: ``import hermes_nb`` stays light
    import pydantic

    from ..core.profiles import Profile

__all__ = [
    "ASK_USER",
    "Tool",
    "ToolArgumentsError",
    "ToolImage",
    "ToolResult",
    "UnknownToolError",
    "register_tool",
    "register_toolset",
    "register_toolset_family",
    "resolve_tools",
    "tool",
]

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # what OpenAI-compatible APIs accept


class UnknownToolError(HermesError):
    """A name that is no tool and no toolset (other failures to resolve a name — an MCP server
    that cannot start — are other :class:`HermesError` errors, each its own sentence)."""


class ToolArgumentsError(ValueError):
    """The model's arguments for a call are not JSON, or do not fit the tool's parameters.
    Its message is one sentence the model can act on."""


@dataclass(frozen=True)
class ToolImage:
    """An image a tool returned: its MIME type and its bytes as base64."""

    mime: str
    data: str = field(repr=False)

    @property
    def size(self) -> int:
        """The image's size in bytes (from the base64 length)."""
        return len(self.data) * 3 // 4 - self.data[-2:].count("=")

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{self.data}"


@dataclass(frozen=True)
class ToolResult:
    """What a tool returns when text alone does not say it: ``error`` (the model reads the text
    as an error result) and ``images`` (shown in the tool block; sent to a model that reads
    images, the profile's ``vision``)."""

    text: str
    error: bool = False
    images: tuple[ToolImage, ...] = ()


@dataclass(frozen=True)
class Tool:
    """One callable the model may use: name, description, JSON Schema, and the function.

    ``ask``: the person approves each call (an approval prompt showing the call and its
    arguments) before the function runs. ``builtin``: handled by the tool loop itself
    (``ask_user`` asks the person a question), not by calling ``function``.
    """

    name: str
    description: str = field(repr=False)
    parameters: dict[str, Any] = field(repr=False)
    function: Callable[..., Any] | None = field(repr=False, compare=False)
    ask: bool = False
    builtin: bool = False
    _model: type[pydantic.BaseModel] | None = field(default=None, repr=False, compare=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """A decorated function stays callable from the notebook, as the function."""
        if self.function is None:
            raise TypeError(f"The built-in tool {self.name} is not callable.")
        return self.function(*args, **kwargs)

    @property
    def is_async(self) -> bool:
        return self.function is not None and inspect.iscoroutinefunction(self.function)

    def spec(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry for this tool."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def arguments(self, raw: str) -> dict[str, Any]:
        """The model's JSON arguments, parsed and validated into keyword arguments.

        Raises :class:`ToolArgumentsError` with one sentence naming what is wrong.
        """
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise ToolArgumentsError(
                f"The arguments for {self.name} are not valid JSON ({exc})."
            ) from None
        if not isinstance(data, dict):
            raise ToolArgumentsError(
                f"The arguments for {self.name} must be a JSON object, not {type(data).__name__}."
            )
        if self._model is None:
            return data
        import pydantic

        try:
            validated = self._model.model_validate(data)
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ToolArgumentsError(
                f"Invalid arguments for {self.name} (ValidationError: {problems})."
            ) from None
        return {name: getattr(validated, name) for name in type(validated).model_fields}

    def describe_call(self, arguments: Mapping[str, Any]) -> str:
        """The call as a person approves it: ``name(key=value, ...)`` with exact values."""
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        return f"{self.name}({shown})"


# -- building tools from functions ---------------------------------------------------------------


def _doc_parts(doc: str) -> tuple[str, dict[str, str]]:
    """The docstring's summary (up to the first section) and its ``Args:`` descriptions."""
    lines = inspect.cleandoc(doc).splitlines() if doc else []
    summary: list[str] = []
    args: dict[str, str] = {}
    section = None
    current = None
    for line in lines:
        stripped = line.strip()
        if re.fullmatch(r"(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?):", stripped):
            section = stripped[:-1]
            continue
        if section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters"):
            match = re.match(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if match and not line.startswith(" " * 8):
                current = match.group(1).lstrip("*")
                args[current] = match.group(2).strip()
            elif current and stripped:
                args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(" ".join(summary).split()), args


def _model_for(func: Callable[..., Any], name: str, arg_docs: Mapping[str, str]) -> Any:
    """A pydantic model of ``func``'s parameters (its JSON Schema and its validator)."""
    import pydantic

    signature = inspect.signature(func)
    try:
        hints = inspect.get_annotations(func, eval_str=True)
    except Exception:  # an annotation that cannot be evaluated: fall back to the raw strings
        hints = dict(getattr(func, "__annotations__", {}))
    fields: dict[str, Any] = {}
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise HermesError(
                f"The tool {name} takes *{param.name}; a tool's parameters must be named.",
                hint="Give the function named parameters (with type hints) instead.",
            )
        annotation = hints.get(param.name, Any)
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (
            annotation,
            pydantic.Field(default, description=arg_docs.get(param.name)),
        )
    return pydantic.create_model(
        f"{name}_arguments",
        __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=True),
        **fields,
    )


def _schema(model: type[pydantic.BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema without pydantic's generated titles (noise for a model)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def _make(func: Callable[..., Any], name: str | None, description: str | None, ask: bool) -> Tool:
    if not callable(func):
        raise HermesError(f"{func!r} is not a function, so it cannot be a tool.")
    tool_name: str = name or str(getattr(func, "__name__", ""))
    if not _NAME.match(tool_name):
        raise HermesError(
            f"{tool_name!r} cannot be a tool name.",
            hint="Use letters, digits, _ and - only (at most 64): @hermes_nb.tool(name=...).",
        )
    summary, arg_docs = _doc_parts(inspect.getdoc(func) or "")
    model = _model_for(func, tool_name, arg_docs)
    return Tool(
        name=tool_name,
        description=description or summary or f"The Python function {tool_name}.",
        parameters=_schema(model),
        function=func,
        ask=ask,
        _model=model,
    )


@overload
def tool(func: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, ask: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    ask: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a function (sync or async) a tool the model may call.

    ``@hermes_nb.tool`` or ``@hermes_nb.tool(name=..., description=..., ask=True)``. The schema
    comes from the signature, type hints and docstring; arguments are validated before each
    call. ``ask=True``: the person approves every call first. The tool is registered under its
    name, so ``%%hermes --tools NAME`` and a profile's ``tools = ["NAME"]`` find it; the
    returned :class:`Tool` is also still callable as the function.
    """

    def decorate(f: Callable[..., Any]) -> Tool:
        made = _make(f, name, description, ask)
        register_tool(made)
        return made

    return decorate(func) if func is not None else decorate


# -- the built-in question tool ------------------------------------------------------------------

ASK_USER = Tool(
    name="ask_user",
    description=(
        "Ask the person at the notebook a question and wait for the answer. Use it when you "
        "need a decision or a fact only they have; offer choices when there are a few clear "
        "options (they may still answer in their own words)."
    ),
    parameters={
        "type": "object",
        "properties": {
            "question": {"type": "string", "description": "The question, in one sentence."},
            "choices": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Up to a few short answers to pick from (optional).",
            },
        },
        "required": ["question"],
        "additionalProperties": False,
    },
    function=None,
    builtin=True,
)


# -- the registry --------------------------------------------------------------------------------

_lock = threading.Lock()
_tools: dict[str, Tool] = {}
_toolsets: dict[str, Callable[[], Sequence[Tool]]] = {"ask_user": lambda: [ASK_USER]}


# Toolset families: ``"PREFIX"`` and ``"PREFIX:NAME"`` expand through a function of the name and
# the turn's profile, found by its dotted path when first used (so that this module, which every
# tool imports, imports none of them: ``"mcp"`` is :func:`hermes_nb.engine.mcp.mcp_tools`).
_families: dict[str, str | Callable[[str, Profile | None], Sequence[Tool]]] = {
    "mcp": "hermes_nb.engine.mcp:mcp_tools",
}


def register_toolset_family(
    prefix: str, expand: str | Callable[[str, Profile | None], Sequence[Tool]]
) -> None:
    """Make ``prefix`` and ``prefix:NAME`` expand to ``expand(item, profile)`` (a function, or
    ``"module:function"`` imported when first used)."""
    with _lock:
        _families[prefix] = expand


def _family(prefix: str) -> Callable[[str, Profile | None], Sequence[Tool]]:
    with _lock:
        expand = _families[prefix]
    if isinstance(expand, str):
        import importlib

        module, _, name = expand.partition(":")
        expand = getattr(importlib.import_module(module), name)
        with _lock:
            _families[prefix] = expand
    return expand


def register_tool(made: Tool) -> None:
    """Make ``made`` findable by its name (the last registration of a name wins)."""
    with _lock:
        _tools[made.name] = made


def register_toolset(name: str, factory: Callable[[], Sequence[Tool]]) -> None:
    """Make ``name`` expand to the tools ``factory`` returns when a turn starts."""
    with _lock:
        _toolsets[name] = factory


def resolve_tools(
    items: Iterable[Tool | Callable[..., Any] | str], *, profile: Profile | None = None
) -> list[Tool]:
    """The tools a turn offers for ``items`` (tools, functions, tool or toolset names), in order,
    without duplicates; ``ask_user`` is added whenever there is any tool at all.

    ``"mcp:NAME"`` and ``"mcp"`` name the MCP servers of ``profile`` (None: as configured for
    the default profile); their servers start now if they are not running. An unknown name
    raises :class:`HermesError` naming it and what is known.
    """
    chosen: dict[str, Tool] = {}
    for item in items:
        if isinstance(item, Tool):
            found: Sequence[Tool] = [item]
        elif isinstance(item, str) and item.partition(":")[0] in _families:
            found = _family(item.partition(":")[0])(item, profile)
        elif isinstance(item, str):
            with _lock:
                factory = _toolsets.get(item)
                single = _tools.get(item)
            if factory is not None:
                found = factory()
            elif single is not None:
                found = [single]
            else:
                with _lock:
                    known = sorted(set(_toolsets) | set(_tools))
                raise UnknownToolError(
                    f"There is no tool or toolset named {item!r}.",
                    hint=f"Known: {', '.join(known)}. Decorate a function with @hermes_nb.tool "
                    "to add one.",
                )
        elif callable(item):
            found = [_make(item, None, None, False)]
        else:
            raise HermesError(f"{item!r} is not a tool, a function or a tool name.")
        for t in found:
            chosen.setdefault(t.name, t)
    if chosen and ASK_USER.name not in chosen:
        chosen[ASK_USER.name] = ASK_USER
    return list(chosen.values())
