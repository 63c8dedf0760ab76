"""The tool loop: one turn's model replies and the tool calls between them.

:func:`_loop` asks the model, runs the calls it makes and asks again — up to the profile's
``max_steps`` replies; :func:`_run_calls` runs one reply's calls concurrently (async tools on the
loop, sync ones in worker threads, ``ask=True`` ones after the person's approval, remembered in
``_approved`` per session or for the process; ``ask_user`` as a question prompt). It lives apart
from :mod:`.turn` because the turn driver only starts it and settles what it leaves in the
:class:`Run`: how a call is validated, approved, run and cut to size is this module's business.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ..core.events import Event
from ..core.prompts import APPROVAL_VALUES
from ..providers.base import Message, Provider, ProviderRequest
from .calls import ToolCall, calling
from .tools import Tool, ToolArgumentsError, ToolImage, ToolResult

if TYPE_CHECKING:
    from .runtime import Run

log = logging.getLogger(__name__)


def _api_call(call: Mapping[str, Any]) -> dict[str, Any]:
    """A tool call as OpenAI-compatible APIs take it back in the history."""
    if "function" in call:
        return {k: call[k] for k in ("id", "type", "function") if k in call}
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call.get("name", ""), "arguments": call.get("arguments") or "{}"},
    }


@dataclass
class _Step:
    """What one model reply of the loop produced."""

    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    call_ids: list[str] = field(default_factory=list)


async def _loop(
    run: Run,
    provider: Provider,
    messages: list[Message],
    secret: Any,
    resume: Mapping[str, str] | None = None,
) -> None:
    """Ask the model, run the tools it calls, ask again — up to ``max_steps`` replies
    (``resume``: the agent sessions the transcript kept, for the provider's request)."""
    request = run.request
    profile = request.profile
    tools = {t.name: t for t in request.tools}
    specs = [t.spec() for t in request.tools]
    for n in range(1, max(1, profile.max_steps) + 1):
        if n > 1:
            run.put(Event.STEP, {"n": n})
        step = _Step()
        provider_request = ProviderRequest(
            profile=profile,
            messages=messages,
            model=profile.model,
            api_key=secret,
            extra=request.extra,
            tools=specs,
            asker=run.prompts,
            session_id=run.session_id,
            resume=resume or {},
        )
        async for event, data in provider.stream(provider_request):
            run.put(event, data)
            if event == Event.TOKEN:
                step.text.append(data["text"])
            elif event == Event.REASONING:
                step.reasoning.append(data["text"])
            elif event == Event.FINISH:
                step.finish_reason = data["finish_reason"]
            elif event == Event.TOOL_START and data["id"] not in step.call_ids:
                step.call_ids.append(data["id"])
        calls = [run.tool_calls[i] for i in step.call_ids if "result" not in run.tool_calls[i]]
        if not tools or step.finish_reason != "tool_calls" or not calls:
            return
        results, images = await _run_calls(run, calls, tools)
        assistant: Message = {
            "role": "assistant",
            "content": "".join(step.text),
            "tool_calls": [dict(run.tool_calls[c["id"]]) for c in calls],
        }
        if step.reasoning:
            assistant["reasoning"] = "".join(step.reasoning)
        replies = [
            {"role": "tool", "tool_call_id": c["id"], "name": c["name"], "content": result}
            for c, result in zip(calls, results, strict=True)
        ]
        run._steps.extend([assistant, *replies])
        messages = [*messages, _sent(assistant), *(_sent(r) for r in replies)]
        if images and profile.vision:
            messages.append(_image_message(images))
    run.put(Event.FINISH, {"finish_reason": "max_steps"})


def _sent(message: Message) -> Message:
    """A loop message as the API takes it."""
    if message["role"] == "tool":
        return {k: message[k] for k in ("role", "tool_call_id", "content")}
    return {
        "role": "assistant",
        "content": message["content"],
        "tool_calls": [_api_call(c) for c in message["tool_calls"]],
    }


async def _run_calls(
    run: Run, calls: list[dict[str, Any]], tools: dict[str, Tool]
) -> tuple[list[str], list[tuple[str, list[ToolImage]]]]:
    """Run one reply's calls concurrently; their results (as the model reads them) in order,
    and the images they returned (by call name), in order."""
    results: list[str] = [""] * len(calls)
    images: list[list[ToolImage]] = [[] for _ in calls]

    async def one(i: int, call: dict[str, Any]) -> None:
        results[i], images[i] = await _run_call(run, call, tools.get(call["name"]))

    async with anyio.create_task_group() as group:
        for i, call in enumerate(calls):
            group.start_soon(one, i, call)
    return results, [(c["name"], found) for c, found in zip(calls, images, strict=True) if found]


def _image_message(images: list[tuple[str, list[ToolImage]]]) -> Message:
    """The images tools returned, for a model that reads them: Chat Completions carries images
    only in user messages, so they follow the tool results as one, saying whose they are."""
    parts: list[dict[str, Any]] = []
    for name, found in images:
        for n, image in enumerate(found, 1):
            parts.append({"type": "text", "text": f"Image {n} returned by the tool {name}:"})
            parts.append({"type": "image_url", "image_url": {"url": image.data_url}})
    return {"role": "user", "content": parts}


# Approvals given "for this session" (session id, tool) or "always" (None, tool), per process.
_approved: set[tuple[str | None, str]] = set()
_approved_lock = threading.Lock()


async def _run_call(
    run: Run, call: dict[str, Any], found: Tool | None
) -> tuple[str, list[ToolImage]]:
    """One call, to its end: the result the model reads (and the images it returned),
    journaled as ``tool_end``."""
    # When the tool itself started: after the person approved it, if it asked (the wait is
    # theirs, not the tool's); None while it has not run.
    started: list[float] = []
    error = False
    name = call["name"]
    images: list[ToolImage] = []
    try:
        if found is None:
            error = True
            content = f"Error: there is no tool named {name!r}; the tools offered are listed."
        else:
            content, error, images = await _call(
                run, found, call["arguments"] or "", call["id"], started
            )
    except anyio.get_cancelled_exc_class():
        run.put(
            Event.TOOL_END,
            {
                "id": call["id"],
                "name": name,
                "result": "Stopped before the tool finished.",
                "error": True,
                "duration_ms": _elapsed_ms(started),
                "ran": bool(started),
            },
        )
        raise
    limit = max(1, run.profile.tool_result_limit)
    if len(content) > limit:
        content = (
            content[:limit] + f"\n[… cut: {len(content) - limit:,} more characters; the profile's "
            f"tool_result_limit is {limit:,}]"
        )
    if images and not run.profile.vision:
        content += (
            f"\n[{len(images)} image(s) left out: this model does not read images "
            "(the profile's vision is false)]"
        )
    end: dict[str, Any] = {
        "id": call["id"],
        "name": name,
        "result": content,
        "error": error,
        "duration_ms": _elapsed_ms(started),
        "ran": bool(started) or error,
    }
    if images:
        end["images"] = [{"mime": i.mime, "data": i.data} for i in images]
    run.put(Event.TOOL_END, end)
    return content, images


def _elapsed_ms(started: list[float]) -> float | None:
    return round((time.perf_counter() - started[0]) * 1000, 2) if started else None


async def _call(
    run: Run, found: Tool, raw: str, call_id: str, started: list[float]
) -> tuple[str, bool, list[ToolImage]]:
    """Validate, ask if needed, and call; ``(result text, failed, images)``. The moment the tool
    itself starts is appended to ``started`` (a wait for an approval is journaled as
    ``tool_wait`` around it, and not counted)."""
    try:
        arguments = found.arguments(raw)
    except ToolArgumentsError as exc:
        return f"Error: {exc}", True, []
    if found.builtin:  # ask_user: a question for the person (asking is what it does)
        started.append(time.perf_counter())
        choices = [str(c) for c in arguments.get("choices") or ()]
        answer = await run.prompts.ask("question", str(arguments.get("question", "")), "", choices)
        return answer.value, False, []
    if found.ask and not _preapproved(run, found):
        call_text = found.describe_call(arguments)
        run.put(Event.TOOL_WAIT, {"id": call_id, "waiting": True})
        try:
            answer = await run.prompts.ask(
                "approval", f"Allow the tool {found.name} to run?", call_text, APPROVAL_VALUES
            )
        finally:
            run.put(Event.TOOL_WAIT, {"id": call_id, "waiting": False})
        if not answer.approved:
            why = {"timeout": "no answer came in time", "stop": "the run was stopped"}.get(
                answer.by, "the person denied it"
            )
            return f"Not run: {why}. Do not retry this call unless the person asks.", False, []
        if answer.value in ("session", "always"):
            key = None if answer.value == "always" else (run.session_id or run.run_id)
            with _approved_lock:
                _approved.add((key, found.name))
    started.append(time.perf_counter())

    def waiting(on: bool) -> None:  # the tool asks the person itself (ToolCall.approve)
        run.put(Event.TOOL_WAIT, {"id": call_id, "waiting": on})
        if not on:  # the person's wait is not the tool's time
            started[0] = time.perf_counter()

    call = ToolCall(run.run_id, run.session_id, call_id, found.name, run.prompts, waiting)
    try:
        with calling(call):
            if found.is_async:
                assert found.function is not None
                value = await found.function(**arguments)
            else:
                value = await anyio.to_thread.run_sync(
                    functools.partial(_in_thread, run, found, arguments), abandon_on_cancel=True
                )
    except anyio.get_cancelled_exc_class():
        raise
    except Exception as exc:
        return f"Error: {type(exc).__name__}: {exc}", True, []
    if isinstance(value, ToolResult):
        return value.text, value.error, list(value.images)
    return _as_text(value), False, []


def _preapproved(run: Run, found: Tool) -> bool:
    with _approved_lock:
        return (None, found.name) in _approved or (
            run.session_id or run.run_id,
            found.name,
        ) in _approved


def _in_thread(run: Run, found: Tool, arguments: dict[str, Any]) -> Any:
    """A sync tool in a worker thread. After Stop its thread is abandoned: a late result is
    dropped, and the log says so (the run has settled; nothing reads it)."""
    assert found.function is not None
    value = found.function(**arguments)
    if run.cancel_requested:
        log.warning(
            "The tool %s finished after %s was stopped; its result was dropped.",
            found.name,
            run.run_id,
        )
    return value


def _as_text(value: Any) -> str:
    """A tool's return value as the model reads it: text as is, data as JSON, else ``repr``."""
    if isinstance(value, str):
        return value
    if value is None:
        return "Done (no result)."
    try:
        return json.dumps(value, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        return repr(value)
