"""The offline, deterministic model: no network, no key, same answer every time.

It answers by echoing the prompt (so Markdown in the prompt comes back rendered) under a short
header, streamed in many small chunks at a steady pace — enough to see streaming, press Stop and
reload a page mid-reply. Its options (a profile's ``[profiles.X.options]`` table, or keyword
arguments to :func:`hermes_nb.chat`) script everything the tests and examples need:

``chunk_size``  characters per ``token`` event (default 4)
``delay``       seconds between chunks (default 0.01; 0 for as fast as possible)
``reply``       the exact reply text instead of the echo
``repeat``      echo the prompt this many times (long replies)
``reasoning``   text streamed as ``reasoning`` before the reply
``tool_calls``  a list of ``{"name", "arguments"}`` calls. One with a ``"result"`` is only
                reported (as an agent that ran it itself would). Without one, when the turn
                offers tools, the reply ends with ``finish_reason`` ``"tool_calls"`` so the
                engine's tool loop runs them; the next reply (the last message is a ``tool``
                result) then says what the tools returned (or ``reply``)
``tool_steps``  a list of such lists: the calls of step 1, 2, … (a longer tool loop). Offered
                tools but scripted to call none, the echo ends with :data:`UNSCRIPTED_TOOLS`,
                so nobody waits for a call that will not come
``fail``        an :class:`~hermes_nb.core.exceptions.ErrorKind` to fail with …
``fail_after``  … after this many reply chunks (default 0: before any text)
``usage``       report token usage at the end (default true)
``max_tokens``  stop after this many reply chunks and report ``finish_reason`` ``"length"``,
                as a real model cut off at its output limit (default: the profile's
                ``max_tokens``; none: the whole reply)
``finish_reason`` the finish reason to report for a reply that was not cut short, as a
                ``finish`` event (default ``"stop"``, reported by ending plainly, with no
                event; ``"content_filter"`` simulates a provider's filter)

Images in the prompt (a figure ``{Out[n]}`` names, sent to a profile with ``vision = true``) are
described after the echo, one line each, from their bytes: ``[image: 640×480 PNG]`` — so a
notebook or a test shows what a real model would have been sent.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..core.exceptions import ErrorKind
from ..core.images import decode_base64, image_info
from ..core.profiles import Profile
from .base import ProviderEvent, ProviderRequest, provider_error

__all__ = ["OPTIONS", "UNSCRIPTED_TOOLS", "EchoProvider", "echo_reply"]

#: Every option, in short (the module docstring says more): ``%hermes help`` lists them.
OPTIONS: dict[str, str] = {
    "chunk_size": "characters per streamed chunk (4)",
    "delay": "seconds between chunks (0.01)",
    "reply": "the exact reply instead of the echo",
    "repeat": "echo the prompt this many times (a long reply)",
    "reasoning": "text streamed as reasoning first",
    "tool_calls": 'calls to make: [{"name": ..., "arguments": {...}}]',
    "tool_steps": "a list of such lists, one per step of the tool loop",
    "fail": "fail with this kind (auth, rate_limit, not_found, network, …)",
    "fail_after": "… after this many chunks",
    "max_tokens": "stop after this many chunks, as at an output limit",
    "finish_reason": "the finish reason to report (content_filter, …)",
    "usage": "report token usage (true)",
}

#: What the echo says when a turn offers it tools and nothing scripts a call.
UNSCRIPTED_TOOLS = (
    "*The offline model calls tools only when scripted to, for example "
    """`-o 'tool_calls=[{"name": "list_variables"}]'`; a real model picks its calls itself.*"""
)

_STATUS = {
    ErrorKind.AUTH: 401,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.SERVER: 500,
}


def echo_reply(prompt: str, repeat: int = 1) -> str:
    """The echo model's deterministic reply to ``prompt``."""
    body = "\n\n".join([prompt.strip()] * max(1, repeat))
    words = len(prompt.split())
    return (
        f"**Echo** (offline model) — you wrote {words} word{'s' if words != 1 else ''}:\n\n{body}\n"
    )


def _step(messages: list[dict[str, Any]]) -> int:
    """How many tool-loop replies this turn has had: assistant messages with ``tool_calls``
    after the last user message."""
    count = 0
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        if message.get("role") == "assistant" and message.get("tool_calls"):
            count += 1
    return count


def _scripted_calls(opts: Mapping[str, Any], step: int) -> list[dict[str, Any]]:
    """The calls scripted for this step: ``tool_steps[step]``, or ``tool_calls`` at step 0."""
    steps = opts.get("tool_steps")
    if steps is not None:
        return list(steps[step]) if step < len(steps) else []
    return list(opts.get("tool_calls") or ()) if step == 0 else []


def _tool_results(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The tool results since the last assistant message: ``(tool_call_id, content)``."""
    found: list[tuple[str, str]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        found.append((str(message.get("tool_call_id", "")), str(message.get("content", ""))))
    return found[::-1]


def _results_reply(results: list[tuple[str, str]]) -> str:
    """What the echo model says after its tool calls ran: each result, as it came back."""
    lines = "\n".join(f"- `{call_id}`: {content}" for call_id, content in results)
    return f"**Echo** (offline model) — the tools returned:\n\n{lines}\n"


def _received(messages: list[dict[str, Any]]) -> list[str]:
    """The images of the last user message, each as ``[image: 640×480 PNG]`` (read from the
    ``data:`` URL's bytes), or a line saying what could not be read."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if not isinstance(content, list):
            return []
        seen = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            url = str((part.get("image_url") or {}).get("url", ""))
            head, _, data = url.partition(",")
            raw = decode_base64(data) if head.endswith(";base64") else None
            info = image_info(raw) if raw else None
            seen.append(f"[image: {info.describe()}]" if info else "[image: not readable]")
        return seen
    return []


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass(frozen=True)
class EchoProvider:
    """Streams :func:`echo_reply` (or a scripted reply) in chunks."""

    options: Mapping[str, Any] = field(default_factory=dict)
    name: str = "echo"

    @classmethod
    def from_profile(cls, profile: Profile) -> EchoProvider:
        return cls(dict(profile.options))

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        opts = {**self.options, **request.extra}
        size = max(1, int(opts.get("chunk_size", 4)))
        delay = float(opts.get("delay", 0.01))
        reply = opts.get("reply")
        step = _step(request.messages)
        scripted = _scripted_calls(opts, step)
        loop_calls = [c for c in scripted if "result" not in c] if request.tools else []
        results = _tool_results(request.messages) if step > 0 else []
        text = (
            ""
            if loop_calls
            else str(reply)
            if reply is not None
            else _results_reply(results)
            if results
            else echo_reply(request.prompt, int(opts.get("repeat", 1)))
        )
        seen = _received(request.messages) if step == 0 and reply is None else []
        if seen and text:
            text += "\nThe images I received:\n\n" + "\n".join(f"- {s}" for s in seen) + "\n"
        if request.tools and not scripted and step == 0 and reply is None:
            text += f"\n{UNSCRIPTED_TOOLS}\n"
        fail = opts.get("fail")
        fail_after = int(opts.get("fail_after", 0))
        limit = opts.get("max_tokens", request.profile.max_tokens)
        finish_reason = str(opts.get("finish_reason") or "stop")

        async def pause() -> None:
            if delay > 0:
                await anyio.sleep(delay)
            else:
                await anyio.lowlevel.checkpoint()

        reasoning = opts.get("reasoning")
        if reasoning:
            for piece in _chunks(str(reasoning), size):
                yield "reasoning", {"text": piece}
                await pause()
        for n, call in enumerate(scripted):
            call_id = f"call_{step}_{n}" if step else f"call_{n}"
            arguments = call.get("arguments", {})
            args = arguments if isinstance(arguments, str) else json.dumps(arguments)
            yield (
                "tool_start",
                {"id": call_id, "name": str(call.get("name", "tool")), "arguments": ""},
            )
            for piece in _chunks(args, size):
                yield "tool_delta", {"id": call_id, "text": piece}
                await pause()
            if "result" in call:
                yield (
                    "tool_end",
                    {
                        "id": call_id,
                        "name": str(call.get("name", "tool")),
                        "result": str(call["result"]),
                        "error": bool(call.get("error", False)),
                        "duration_ms": float(call.get("duration_ms", 1.0)),
                    },
                )
        sent = 0
        for piece in _chunks(text, size) if text else []:
            if fail and sent >= fail_after:
                break
            if limit is not None and sent >= int(limit):
                finish_reason = "length"
                break
            yield "token", {"text": piece}
            sent += 1
            await pause()
        if fail:
            kind = ErrorKind(fail)
            raise provider_error(
                kind, f"The echo model was scripted to fail with {kind}.", status=_STATUS.get(kind)
            )
        if loop_calls:
            finish_reason = "tool_calls"
        if finish_reason != "stop":  # a plain end is "stop"; the turn reports it as such
            yield "finish", {"finish_reason": finish_reason}
        if opts.get("usage", True):
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in request.messages)
            yield (
                "usage",
                {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": sent,
                    "total_tokens": prompt_tokens + sent,
                },
            )
