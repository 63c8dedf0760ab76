"""Profiles (which provider, endpoint, model and environment a turn uses) and the env lock.

A profile's ``env`` overlay is applied to ``os.environ`` while a turn of that profile runs — the
in-process Hermes agent reads its home and much of its configuration from there. The process
environment is shared by every thread, so writes are serialised by :data:`ENV_LOCK`, held only
while variables are written or restored, never while a request or an agent runs (DESIGN.md
§3, invariants 11–12). The lock is a plain, non-re-entrant ``threading.Lock`` on purpose: a
re-entrant lock once hid a deadlock.

Overlapping overlays (two profiles' turns at once) are tracked per variable, so whichever turn
ends last, the environment ends exactly as it was before the first began.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from .mcp_config import McpServer

__all__ = ["ENV_LOCK", "PROVIDERS", "Profile", "Secret", "profile_env"]

#: Held only while ``os.environ`` is written or restored by :func:`profile_env`.
ENV_LOCK = threading.Lock()

#: The provider names a profile may use.
PROVIDERS = ("echo", "openai", "hermes-agent", "acp")


class Secret:
    """An API key that never shows itself: ``repr`` and ``str`` are redacted."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself — only for the request header."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***`` — also as it appears
        inside a ``repr`` (an HTTP library quoting a bad header shows ``\\n``, not a newline)."""
        if len(self._value) < 4:
            return text
        for form in (self._value, repr(self._value)[1:-1], repr(self._value.encode())[2:-1]):
            text = text.replace(form, "***")
        return text


@dataclass(frozen=True)
class Profile:
    """Everything needed to talk to one model. Values, never the key itself."""

    name: str = "echo"
    provider: str = "echo"
    model: str = "echo"
    base_url: str | None = None
    api_key_env: str | None = None
    bot_name: str = "Hermes"
    system_prompt: str | None = None
    context_window: int = 8192
    compress_at: float = 0.8
    #: Compress a long session after a reply (at ``context_window * compress_at``), in the
    #: background. False for an ACP profile unless set: the agent keeps its own context (and
    #: compacts it itself), and a continuation would be a new conversation to it.
    auto_compress: bool = True
    temperature: float | None = None
    max_tokens: int | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    headers: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    hermes_home: str | None = None
    #: Seconds a prompt (approval or question) waits for the person; 0 waits for ever.
    prompt_timeout: float = 300.0
    #: How many model replies one turn's tool loop may ask for before it stops.
    max_steps: int = 10
    #: The tools every turn of this profile offers: toolset names (``"notebook"``,
    #: ``"ask_user"``) or names of functions registered with :func:`hermes_nb.tool`.
    tools: tuple[str, ...] = ()
    #: A tool result longer than this many characters reaches the model cut, with a note.
    tool_result_limit: int = 20_000
    #: After a session's first reply, ask the model for a title (one more, short, request);
    #: False: the first line of the first prompt is the title, and nothing is sent.
    titles: bool = True
    #: The model to ask for titles (a cheaper one); None: the profile's ``model``.
    title_model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    #: ``provider = "acp"``: the agent's command line (``["hermes", "acp"]``), run as a process of
    #: its own with the kernel's environment plus ``env``.
    command: tuple[str, ...] = ()
    #: ``provider = "acp"``: the agent's working folder (the one its file access is confined to);
    #: None: the kernel's working directory, which is the notebook's folder.
    cwd: str | None = None
    #: The model reads images: an image a tool returns (an MCP server's), or a figure a prompt
    #: names (``{Out[3]}``), is sent to it; without vision, a line says what was left out.
    vision: bool = False
    #: Add the project's rules (an ``AGENTS.md`` or ``HERMES.md`` in the notebook's folder or a
    #: parent, up to the repository root or home) to the system prompt of ``%hermes`` turns.
    rules: bool = True
    #: What the provider charges per million prompt (``price_in``) and completion
    #: (``price_out``) tokens, in the currency you think in; None: no cost is shown.
    price_in: float | None = None
    price_out: float | None = None
    #: The MCP servers a turn of this profile may use (``tools = ["mcp:NAME"]``): the top-level
    #: ``[mcp_servers.NAME]`` tables and the profile's own ``[profiles.P.mcp_servers.NAME]``.
    mcp_servers: Mapping[str, McpServer] = field(default_factory=dict)

    def api_key(self) -> Secret | None:
        """Read the key from the variable the profile names, now (never stored on the profile)."""
        if not self.api_key_env:
            return None
        # Stripped: a trailing newline from copy-and-paste is the commonest broken key.
        value = os.environ.get(self.api_key_env, "").strip()
        return Secret(value) if value else None

    def with_overrides(self, **changes: Any) -> Profile:
        """A copy with the given fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def cost(self, usage: Mapping[str, int]) -> float | None:
        """What ``usage`` cost at the profile's prices; None when the profile has none."""
        if self.price_in is None and self.price_out is None:
            return None
        spent_in = usage.get("prompt_tokens", 0) * (self.price_in or 0.0)
        spent_out = usage.get("completion_tokens", 0) * (self.price_out or 0.0)
        return (spent_in + spent_out) / 1_000_000

    def describe(self) -> str:
        """One line naming provider, model and endpoint — safe to show (no key)."""
        if self.provider == "acp":
            return f"{self.name}: acp agent {shlex.join(self.command)!r}"
        where = f" at {self.base_url}" if self.base_url else ""
        return f"{self.name}: {self.provider} model {self.model!r}{where}"


# Per-variable stacks of active overlays: name -> [(token, value), ...], plus what was there
# before the first overlay touched it. Both guarded by ENV_LOCK.
_active: dict[str, list[tuple[object, str]]] = {}
_original: dict[str, str | None] = {}


def _apply(token: object, overlay: Mapping[str, str]) -> None:
    with ENV_LOCK:
        for key, value in overlay.items():
            if key not in _active:
                _original[key] = os.environ.get(key)
                _active[key] = []
            _active[key].append((token, value))
            os.environ[key] = value


def _restore(token: object, overlay: Mapping[str, str]) -> None:
    with ENV_LOCK:
        for key in overlay:
            stack = _active.get(key, [])
            stack[:] = [item for item in stack if item[0] is not token]
            if stack:
                os.environ[key] = stack[-1][1]
                continue
            _active.pop(key, None)
            before = _original.pop(key, None)
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


def _expand(env: Mapping[str, str]) -> dict[str, str]:
    return {str(k): os.path.expanduser(str(v)) for k, v in env.items()}


@contextmanager
def profile_env(profile: Profile | Mapping[str, str]) -> Iterator[None]:
    """Apply the profile's env overlay for the body of the ``with`` block, then restore it.

    ``ENV_LOCK`` is taken to write and again to restore, and is free in between — the body
    (a request, an agent turn, a background title or compression job) runs without it.
    Variables that did not exist before are deleted on restore. An ACP profile's ``env`` is
    left alone: it is the agent process's environment, not the kernel's.
    """
    if isinstance(profile, Profile) and profile.provider == "acp":
        # An ACP profile's env is its agent process's (given to it when it starts), never the
        # kernel's: nothing to apply, and its secrets stay out of this process's environment.
        yield
        return
    overlay = _expand(profile.env if isinstance(profile, Profile) else profile)
    if isinstance(profile, Profile) and profile.hermes_home:
        overlay.setdefault("HERMES_HOME", os.path.expanduser(profile.hermes_home))
    if not overlay:
        yield
        return
    token = object()
    _apply(token, overlay)
    try:
        yield
    finally:
        _restore(token, overlay)
