"""Tool-loop and prompt benchmarks: the cost of a tool call, and how fast an answer lands.

Run it as ``.venv/bin/python benchmarks/bench_tools.py`` (under a minute). Each figure is
printed against its target; the overhead uses a baseline measured in the same run:

a. tool-call overhead: one run in which the offline model calls a no-op tool ten times (ten
   loop steps, then a reply) against the same run without tools (one reply of the same text).
   The model's own time — inside its ``stream()`` — is measured in both and taken out, so what
   remains is what the engine adds: per call, ``((wall - model) with tools - (wall - model)
   without) / 10``. Median of 15 alternating rounds. Target ≤ 5 ms a call.
b. answer → unblocked: an ``ask=True`` tool waits for its approval; ``run.answer()`` from
   another thread (as a comm handler or the magic would) until the tool's body starts; median
   and worst of 50. Targets ≤ 20 ms median, ≤ 100 ms worst. The same through a real kernel's
   comm while another cell blocks is in ``bench_prompts_kernel.py``.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from _common import Report, median, percentile, use_tests_dir  # benchmarks/ is sys.path[0]

use_tests_dir()

import hermes_nb  # noqa: E402
from hermes_nb.providers import register_provider  # noqa: E402
from hermes_nb.providers.base import ProviderEvent, ProviderRequest  # noqa: E402
from hermes_nb.providers.echo import EchoProvider  # noqa: E402

CALLS = 10
ROUNDS = 15
ANSWERS = 50


class _Timed:
    """The echo model, with the time spent inside its stream added up (the model's own time)."""

    name = "timed-echo"
    spent = 0.0

    def __init__(self, inner: EchoProvider) -> None:
        self._inner = inner

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        iterator = self._inner.stream(request).__aiter__()
        while True:
            t0 = time.perf_counter()
            try:
                item = await iterator.__anext__()
            except StopAsyncIteration:
                _Timed.spent += time.perf_counter() - t0
                return
            _Timed.spent += time.perf_counter() - t0
            yield item


register_provider("timed-echo", lambda profile, client: _Timed(EchoProvider(profile.options)))


@hermes_nb.tool
def noop() -> str:
    """Do nothing."""
    return "ok"


def _one(tools: bool) -> float:
    """Wall time minus the model's own time for one run (seconds)."""
    profile = hermes_nb.Profile(
        name="bench", provider="timed-echo", options={"delay": 0}, max_steps=CALLS + 1
    )
    extra: dict[str, Any] = {"reply": "Done."}
    if tools:
        extra["tool_steps"] = [[{"name": "noop", "arguments": {}}] for _ in range(CALLS)]
    _Timed.spent = 0.0
    t0 = time.perf_counter()
    run = hermes_nb.chat("go", profile=profile, tools=[noop] if tools else None, **extra)
    run.wait(60)
    wall = time.perf_counter() - t0
    assert run.status == "done", run.error
    if tools:
        ends = [e for e in run.events() if e.event == "tool_end"]
        assert len(ends) == CALLS and all(e.data["result"] == "ok" for e in ends)
    return wall - _Timed.spent


def bench_overhead(report: Report) -> None:
    for _ in range(3):  # warm up: imports, the runtime's thread, pydantic's validators
        _one(True), _one(False)
    per_call = []
    for _ in range(ROUNDS):
        with_tools = _one(True)
        without = _one(False)
        per_call.append((with_tools - without) / CALLS)
    report.figure(
        "a. engine overhead per tool call",
        median(per_call) * 1000,
        "ms",
        5,
        f"p90 {percentile(per_call, 90) * 1000:.2f} ms over {ROUNDS} rounds of {CALLS} calls",
    )


def bench_answer(report: Report) -> None:
    started = threading.Event()
    unblocked_at: list[float] = []

    @hermes_nb.tool(ask=True)
    def guarded() -> str:
        """A tool that needs approval."""
        unblocked_at.append(time.perf_counter())
        started.set()
        return "ran"

    latencies = []
    for _ in range(ANSWERS):
        started.clear()
        run = hermes_nb.chat(
            "go",
            profile=hermes_nb.Profile(name="bench", options={"delay": 0}),
            tools=[guarded],
            tool_calls=[{"name": "guarded", "arguments": {}}],
        )
        while not run.pending:
            time.sleep(0.0005)
        prompt = run.pending[0]
        answered_at = [0.0]

        def answer(
            prompt_id: str = prompt.id, target: list[float] = answered_at, run: Any = run
        ) -> None:
            target[0] = time.perf_counter()
            run.answer(prompt_id, "once")

        thread = threading.Thread(target=answer)  # as a comm handler on a subshell thread would
        thread.start()
        assert started.wait(10)
        thread.join()
        latencies.append(unblocked_at[-1] - answered_at[0])
        run.wait(10)
    report.figure("b. answer -> waiting tool unblocked, median", median(latencies) * 1000, "ms", 20)
    report.figure("b. answer -> waiting tool unblocked, worst", max(latencies) * 1000, "ms", 100)


def main() -> int:
    report = Report()
    bench_overhead(report)
    bench_answer(report)
    return report.summary()


if __name__ == "__main__":
    raise SystemExit(main())
