"""The small Python API: :func:`chat`, usable from a script, a test or a cell."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from .core.config import resolve_profile
from .core.exceptions import HermesError
from .core.profiles import Profile
from .engine import turn_rules
from .engine.runtime import Run, get_runtime
from .engine.tools import Tool, ToolImage
from .engine.turn import MemoryTranscript, Transcript, TurnRequest, turn_tools
from .store.sessions import Session

__all__ = ["chat"]


def chat(
    prompt: str,
    profile: str | Profile | None = None,
    history: list[dict[str, Any]] | Transcript | None = None,
    *,
    session: Any = None,
    system: str | None = None,
    tools: Iterable[Tool | Callable[..., Any] | str] | None = None,
    images: Iterable[ToolImage] = (),
    rules: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Run:
    """Start a turn and return its :class:`~hermes_nb.engine.runtime.Run` at once.

    ``profile`` is a profile name (see ``config.toml``), a :class:`Profile`, or the default.
    ``history`` is a list of earlier ``{"role", "content"}`` messages, or a transcript to continue;
    ``session`` a :class:`~hermes_nb.Session` (or its name or id) to continue and store into.
    ``overrides`` replace profile fields (``model``, ``temperature``, ``max_tokens``, …); any other
    keyword is passed to the provider (echo options, extra request-body fields).
    ``tools`` are what the model may call: functions (made tools on the fly), tools made with
    :func:`hermes_nb.tool`, or tool and toolset names (``"notebook"``, ``"ask_user"``); they add
    to the profile's ``tools``. See docs/tools.md.
    ``images`` (:class:`~hermes_nb.engine.tools.ToolImage`) go with the prompt to a model whose
    profile has ``vision``; to any other, a line says what was left out.
    ``rules`` is a folder: the nearest ``AGENTS.md`` / ``HERMES.md`` in it or a parent (up to the
    repository root or home) joins the system prompt, unless the profile's ``rules`` is false;
    None (the default): no rules. See docs/configuration.md.

    >>> run = chat("Hello")          # doctest: +SKIP
    >>> run.wait().text              # doctest: +SKIP
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise HermesError("The prompt is empty.", hint="Pass the question as a non-empty string.")
    if session is not None:
        sess = session if isinstance(session, Session) else Session.open(session)
        return sess.chat(
            prompt,
            profile=profile,
            system=system,
            tools=tools,
            images=images,
            rules=rules,
            **overrides,
        )
    resolved, extra = resolve_profile(profile, **overrides)
    if history is None or isinstance(history, list | tuple):
        transcript: Transcript = MemoryTranscript(list(history or ()))
    else:
        transcript = history
    request = TurnRequest(
        prompt=prompt,
        profile=resolved,
        transcript=transcript,
        system=system,
        extra=extra,
        tools=turn_tools(resolved, tools),
        images=tuple(images),
        rules=turn_rules(resolved, rules),
    )
    return get_runtime().start(request)
