"""What the prompt broker's tests share (``test_prompts.py``): a journal to hand the broker as
its ``emit``, a worker thread blocked in ``ask_blocking``, waits, and a clock that moves only
when told."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from hermes_nb.engine.prompts import Answer, Prompt, PromptBroker

Event = tuple[str, dict[str, Any]]


class Journal:
    """The ``emit`` callback: records ``(event, payload)`` from any thread, in call order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        with self._lock:
            self.events.append((name, dict(payload)))

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.events)

    def answered(self) -> list[dict[str, Any]]:
        return [payload for name, payload in self.snapshot() if name == "prompt_answered"]


class Asker(threading.Thread):
    """A worker thread blocked in ``ask_blocking``, like an in-process agent's callback."""

    def __init__(self, broker: PromptBroker, *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.broker, self.args, self.kwargs = broker, args, kwargs
        self.result: Answer | None = None
        self.error: BaseException | None = None
        self.returned_at = 0.0

    def run(self) -> None:
        try:
            self.result = self.broker.ask_blocking(*self.args, **self.kwargs)
        except BaseException as exc:
            self.error = exc
        self.returned_at = time.monotonic()

    def outcome(self, timeout: float = 2.0) -> Answer:
        self.join(timeout)
        assert not self.is_alive(), "ask_blocking is still waiting"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def wait_until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


async def until(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def open_blocking(
    broker: PromptBroker, journal: Journal | None, *args: Any, **kwargs: Any
) -> tuple[Asker, Prompt]:
    """Start an ``ask_blocking`` thread and return it with the prompt it opened, once its
    ``"prompt"`` event is in ``journal`` (the asker emits it just after the prompt is pending)."""
    before = len(broker.pending)
    asker = Asker(broker, *args, **kwargs)
    asker.start()
    wait_until(lambda: len(broker.pending) == before + 1)
    prompt = broker.pending[-1]
    if journal is not None:
        wait_until(lambda: ("prompt", prompt.to_event()) in journal.snapshot())
    return asker, prompt


def assert_one_sentence(message: str | None) -> str:
    assert isinstance(message, str)
    assert message.strip() == message and message.endswith("."), message
    assert ". " not in message and "\n" not in message, message
    return message


class FakeClock:
    """Epoch seconds that only move when told; ``skew`` moves them for one thread only, so the
    test thread can be past a deadline while the asker's own deadline check is not."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.skew: dict[int, float] = {}

    def __call__(self) -> float:
        return self.now + self.skew.get(threading.get_ident(), 0.0)
