"""What the OpenAI-compatible provider's tests share (``test_providers_openai.py``,
``test_providers_openai_failures.py``): a profile pointed at the loopback server, a chat that
waits for its run, a run's events by name, and the ``key`` fixture (imported by name)."""

from __future__ import annotations

import pytest
from sse_server import SSEServer

import hermes_nb
from hermes_nb import Profile, Run

KEY = "sk-test-7f3a9c1e5b2d"
WAIT = 10.0


def openai_profile(server: SSEServer, **changes: object) -> Profile:
    fields: dict[str, object] = {
        "name": "t",
        "provider": "openai",
        "base_url": server.url,
        "model": "m",
        "api_key_env": "TEST_KEY",
    }
    fields.update(changes)
    return Profile(**fields)  # type: ignore[arg-type]


def openai_chat(
    server: SSEServer, prompt: str = "hi", *, profile: Profile | None = None, **kw
) -> Run:
    run = hermes_nb.chat(prompt, profile=profile or openai_profile(server), **kw)
    return run.wait(WAIT)


def events_of(run: Run, name: str) -> list[dict]:
    return [entry.data for entry in run.events() if entry.event == name]


@pytest.fixture(name="key")
def fixture_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The key is in ``$TEST_KEY``, the variable the test profile names."""
    monkeypatch.setenv("TEST_KEY", KEY)
    return KEY
