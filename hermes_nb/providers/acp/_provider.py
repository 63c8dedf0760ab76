"""``provider = "acp"``: a turn as one ``session/prompt`` to a warm agent process.

The turn's stream gets the profile's agent from :data:`~._agent.MANAGER` (started on first use),
the ACP session of its hermes_nb session, and sends the last user message as the prompt. The
ACP session is the one this agent process made for the hermes_nb session; else the one an
earlier process made, which the store kept (``request.resume``, by command line), loaded again;
else a new one, told the recent transcript in its first prompt (bounded). A session made or
loaded is reported with an ``agent_session`` event, which the stored session's transcript
keeps; when a kept session could not be loaded, the event's ``notice`` tells the person that
the agent started over and how much of the conversation it was told. While the prompt runs, the
agent's updates arrive through :class:`~._client.AgentClient` into the turn's
:class:`~._updates.TurnSink`, and the stream yields them as they come. When the agent answers
the prompt, the SDK has handled every update it sent before (its prompt call waits for them),
so the last events are taken after the answer: nothing the agent sent is lost or reordered.

Stop cancels the task iterating the stream. The prompt request is not part of that task: it
runs in a task of its own, so the ``finally`` below only marks the turn over (later updates are
dropped), sends ``session/cancel`` from a task the agent owns, and returns at once; the agent's
answer, whenever it comes, is ignored. If it never comes, the next turn restarts the agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import acp

from ...core.events import Event
from ...core.exceptions import ErrorKind, ProviderError
from ...core.profiles import Profile
from ..base import Message, ProviderEvent, ProviderRequest
from ._agent import MANAGER, Agent
from ._client import TurnState
from ._updates import TurnSink

__all__ = ["ACPProvider"]

#: How much of the earlier conversation a new ACP session's first prompt carries.
_HISTORY_CHARS = 20_000

#: ACP stop reasons → the run's finish reasons.
_FINISH = {
    "end_turn": "stop",
    "max_tokens": "length",
    "max_turn_requests": "max_steps",
    "refusal": "content_filter",
    "cancelled": "stop",
}


class ACPProvider:
    """Streams a reply from an ACP agent (``profile.command``) kept warm for the kernel."""

    name = "acp"

    def __init__(self, profile: Profile) -> None:
        self._profile = profile

    def __repr__(self) -> str:
        return f"<ACPProvider {self._profile.name}>"

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        """Prompt the agent and yield its updates; a classified :class:`ProviderError` on
        failure."""
        agent = await MANAGER.agent(request.profile)
        stored = request.resume.get(agent.command) if request.session_id is not None else None
        opened = await agent.session(request.session_id, stored)
        acp_session = opened.id
        if acp_session in agent.client.turns:
            raise ProviderError(
                ErrorKind.BAD_REQUEST,
                "The agent is still answering the previous turn of this session.",
                hint="Wait for that turn to finish, or stop it, then send this one again.",
            )
        text, told = _prompt_text(request.messages, request.prompt, with_history=opened.fresh)
        if opened.made and request.session_id is not None:
            reported: dict[str, Any] = {
                "profile": request.profile.name,
                "command": agent.command,
                "id": acp_session,
                "loaded": opened.loaded,
            }
            if opened.not_loaded:
                reported["notice"] = _started_over(opened.not_loaded, told)
            yield Event.AGENT_SESSION.value, reported
        sink = TurnSink()
        agent.client.turns[acp_session] = TurnState(sink, request.asker)
        prompt = agent.loop.create_task(
            agent.conn.prompt(session_id=acp_session, prompt=[acp.text_block(text)])
        )
        prompt.add_done_callback(lambda _: sink.wake.set())
        try:
            while not prompt.done():
                await sink.wake.wait()
                sink.wake.clear()
                for item in sink.take():
                    yield item
            for item in sink.take():
                yield item
            response = await _answer(agent, prompt)
        finally:
            sink.closed = True
            if agent.client.turns.get(acp_session) is not None:
                del agent.client.turns[acp_session]
            if not prompt.done():  # Stop, or the consumer went away: cancel, do not wait
                agent.abandoned.add(prompt)
                prompt.add_done_callback(_consume)
                if not agent.closed:
                    agent.spawn_task(_cancel(agent, acp_session))
        usage = _usage(getattr(response, "usage", None))
        if usage:
            yield Event.USAGE.value, usage
        reason = str(getattr(response, "stop_reason", "") or "end_turn")
        yield Event.FINISH.value, {"finish_reason": _FINISH.get(reason, reason)}


async def _answer(agent: Agent, prompt: asyncio.Task[Any]) -> Any:
    """The prompt's response, or the error that explains why there is none."""
    try:
        return prompt.result()
    except ConnectionError:
        raise await agent.crash_error() from None
    except acp.RequestError as exc:
        if exc.code == -32000:
            raise agent._auth_error() from None
        status = await agent._exit_status(0.2)
        if status is not None:
            raise await agent.crash_error() from None
        message = " ".join(str(exc).split()).rstrip(".")
        data = exc.data.get("details") if isinstance(exc.data, dict) else exc.data
        if data:
            message = f"{message}: {' '.join(str(data).split())[:300]}"
        raise agent.error(
            ErrorKind.SERVER,
            f"The agent {agent.command!r} answered the prompt with an error ({message}).",
            f"Its log is {agent.log}.",
        ) from None
    except ValueError as exc:  # a response of the wrong shape (pydantic)
        raise agent.error(
            ErrorKind.MALFORMED_STREAM,
            f"The agent {agent.command!r} answered the prompt with something that is not a "
            f"prompt response ({type(exc).__name__}).",
            f"Its log is {agent.log}.",
        ) from None


async def _cancel(agent: Agent, session_id: str) -> None:
    """``session/cancel`` for a stopped turn (a broken pipe is the crash the next turn sees)."""
    try:
        await agent.conn.cancel(session_id=session_id)
    except (ConnectionError, OSError, RuntimeError):
        pass


def _consume(task: asyncio.Task[Any]) -> None:
    """Read an abandoned prompt's outcome so asyncio does not report it as never retrieved."""
    if not task.cancelled():
        task.exception()


def _usage(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    pairs = (
        ("prompt_tokens", usage.input_tokens),
        ("completion_tokens", usage.output_tokens),
        ("total_tokens", usage.total_tokens),
        ("reasoning_tokens", usage.thought_tokens),
    )
    return {key: value for key, value in pairs if isinstance(value, int)}


def _started_over(why: str, told: int) -> str:
    """The notice for a turn whose agent could not load the session it had: it started over."""
    if told:
        sent = (
            f"the last {told} message{'s' if told != 1 else ''} of this session were sent with "
            "your prompt"
        )
    else:
        sent = "nothing earlier in this session could be sent with your prompt"
    return (
        f"The agent started a new session: it could not load the one it had for this "
        f"conversation ({why}), so {sent}."
    )


def _prompt_text(messages: list[Message], prompt: str, *, with_history: bool) -> tuple[str, int]:
    """The prompt and how many earlier messages it carries: for a new ACP session, preceded by
    the notebook's instructions (a system prompt: ACP has no place for one) and the recent
    earlier conversation, bounded."""
    if not with_history:
        return prompt, 0
    system: list[str] = []
    lines: list[str] = []
    earlier = messages[:-1] if messages and messages[-1].get("role") == "user" else messages
    for message in earlier:
        role = message.get("role")
        content = message.get("content")
        if not isinstance(content, str) or not content.strip():
            continue
        if role == "system" and not lines:
            system.append(content.strip())
        elif role in ("user", "assistant"):
            lines.append(f"{'User' if role == 'user' else 'Assistant'}: {content.strip()}")
    parts: list[str] = []
    if system:
        parts.append(
            "Instructions for this conversation (from the notebook):\n\n" + "\n\n".join(system)
        )
    told = 0
    if lines:
        history = "\n\n".join(lines)
        told = len(lines)
        if len(history) > _HISTORY_CHARS:
            history = "…" + history[-(_HISTORY_CHARS - 1) :]
            told, size = 0, -2  # the messages whose text is at least partly in the tail
            for line in reversed(lines):
                if size >= _HISTORY_CHARS - 1:
                    break
                told, size = told + 1, size + len(line) + 2
        parts.append(
            "Earlier in this conversation (for context; it happened before you joined):\n\n"
            + history
        )
    if not parts:
        return prompt, 0
    return "\n\n".join([*parts, f"Now the user says:\n\n{prompt}"]), told
