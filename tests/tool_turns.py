"""What the tool-history tests share: an echo profile, a tool, a turn through the tool loop, a
provider that records what each request sends, and the check that a history is valid for an
OpenAI-compatible API. A plain module (not conftest) so each test file says what it uses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store.sessions import Session

__all__ = ["ECHO", "WAIT", "_assert_valid", "_recording", "_rows", "_tool_turn", "double"]

ECHO = Profile(name="echo-fast", provider="echo", options={"delay": 0})
WAIT = 15.0


@hermes_nb.tool
def double(x: int) -> str:
    """Double a whole number."""
    return f"doubled to {2 * x}"


def _rows(session: Session) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in session.messages]


def _assert_valid(messages: list[dict[str, Any]]) -> None:
    """What OpenAI-compatible APIs require: every ``tool_calls`` entry of an assistant message
    is answered by the ``tool`` messages right after it (same ids), and no other message has
    the role ``tool``."""
    i = 0
    while i < len(messages):
        m = messages[i]
        assert m["role"] != "tool", f"a tool message without its call at {i}: {m}"
        ids = [c["id"] for c in m.get("tool_calls") or ()]
        assert all(ids), m
        following = messages[i + 1 : i + 1 + len(ids)]
        assert [x["role"] for x in following] == ["tool"] * len(ids), (i, messages)
        assert sorted(x["tool_call_id"] for x in following) == sorted(ids)
        i += 1 + len(ids)


class _Recorder:
    """Records the messages each request sends and answers "ok"."""

    name = "tool-recorder"

    def __init__(self, seen: list[list[dict[str, Any]]]) -> None:
        self.seen = seen

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        self.seen.append([dict(m) for m in request.messages])
        yield "token", {"text": "ok"}


def _recording() -> tuple[Profile, list[list[dict[str, Any]]]]:
    seen: list[list[dict[str, Any]]] = []
    register_provider("tool-recorder", lambda profile, client: _Recorder(seen))
    return Profile(name="r", provider="tool-recorder"), seen


def _tool_turn(session: Session, prompt: str = "x", **options: Any) -> Run:
    options.setdefault("tool_calls", [{"name": "double", "arguments": {"x": 2}}])
    run = session.chat(prompt, tools=[double], profile=ECHO, **options).wait(WAIT)
    assert run.status is RunState.DONE, run.error
    return run
