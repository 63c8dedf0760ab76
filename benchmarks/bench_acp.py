"""ACP agents as providers: streaming cost, Stop latency, first text cold and warm.

Run it as ``.venv/bin/python benchmarks/bench_acp.py`` (about half a minute; add ``--hermes`` for
the real ``hermes acp`` against the in-process Hermes agent, which needs the virtualenv the tests
build: ``.venv/bin/python -m pytest tests/test_providers_acp_hermes.py`` makes it once).

a. cost per chunk: the scripted agent (``tests/acp_agent.py``) streams 20,000 chunks; a whole
   ``hermes_nb.chat()`` turn on its warm process (the SDK's connection, the turn's sink, merged
   events, the journal, the settle) against the SDK's own client reading the same agent
   (``acp.spawn_agent_process`` with a client that only appends each chunk's text, on a loop
   thread of its own, like the runtime's). Alternating rounds, medians. Target ≤ 1.3×.
b. Stop: ``run.cancel()`` on a turn the agent is working on → ``session/cancel`` handed to the
   agent's stdin (the manager's ``on_send`` hook). Median and worst of 30. Target: median ≤ 5 ms.
c. first text: ``chat()`` → the first ``token`` event, with a cold agent (the process started by
   the turn: spawn, handshake, session) and a warm one; medians of 5. Reported.
   With ``--hermes``: the same for ``hermes acp`` and for the in-process ``hermes-agent``
   provider (its cold figure is the first turn in this process, imports included), both against
   the loopback OpenAI-style server. Reported.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Report, median, use_tests_dir  # benchmarks/ is sys.path[0]

ROOT = use_tests_dir()

import acp  # noqa: E402
from agent_envs import hermes_acp_profile  # noqa: E402
from anyio.from_thread import start_blocking_portal  # noqa: E402
from sse_server import Reply, SSEServer  # noqa: E402

import hermes_nb  # noqa: E402
from hermes_nb.core.profiles import Profile  # noqa: E402
from hermes_nb.engine.runtime import Run, get_runtime  # noqa: E402
from hermes_nb.providers.acp import restart_agents  # noqa: E402
from hermes_nb.providers.acp._agent import MANAGER  # noqa: E402

AGENT = str(ROOT / "tests" / "acp_agent.py")
CHUNKS = 20_000
ROUNDS = 7
STOPS = 30
FIRSTS = 5


def scripted(folder: Path) -> Profile:
    return Profile(
        name="bench-scripted",
        provider="acp",
        model="agent",
        command=(sys.executable, AGENT),
        cwd=str(folder),
        titles=False,
    )


def first_token(run: Run, started: float, timeout: float = 120.0) -> float:
    """Seconds from ``started`` to the run's first token event (as a subscriber gets it)."""
    events = run.subscribe(after_seq=0)
    try:
        while True:
            event, _data = events.get(timeout=timeout)
            if event == "token":
                return time.perf_counter() - started
            if event == "stream_end":
                raise RuntimeError(f"the run ended without text: {run.error}")
    finally:
        run.unsubscribe(events)


def restart() -> None:
    get_runtime().submit(restart_agents).result(30)


# -- a. cost per chunk ------------------------------------------------------------------------


class _Collector:
    """The SDK's client at its simplest: append each chunk's text."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        content = getattr(update, "content", None)
        if content is not None and getattr(content, "type", "") == "text":
            self.parts.append(content.text)

    async def request_permission(self, *args: Any, **kwargs: Any) -> Any:
        raise acp.RequestError.method_not_found("session/request_permission")


def sdk_rounds(folder: Path, rounds: int) -> list[float]:
    """Seconds per 20,000-chunk prompt, read by the SDK's own client (a warm process)."""
    times: list[float] = []
    expected = "".join(f"{i}," for i in range(CHUNKS))

    async def main() -> None:
        client = _Collector()
        async with acp.spawn_agent_process(client, sys.executable, AGENT, cwd=folder) as (
            conn,
            _process,
        ):
            await conn.initialize(protocol_version=acp.PROTOCOL_VERSION)
            session = await conn.new_session(cwd=str(folder), mcp_servers=[])
            for _ in range(rounds):
                client.parts.clear()
                started = time.perf_counter()
                await conn.prompt(
                    session_id=session.session_id, prompt=[acp.text_block(f"chunks {CHUNKS}")]
                )
                times.append(time.perf_counter() - started)
                assert "".join(client.parts) == expected

    with start_blocking_portal(backend="asyncio") as portal:
        portal.call(main)
    return times


def chat_round(profile: Profile) -> float:
    started = time.perf_counter()
    run = hermes_nb.chat(f"chunks {CHUNKS}", profile=profile).wait(120)
    took = time.perf_counter() - started
    assert run.text == "".join(f"{i}," for i in range(CHUNKS)), run.error
    return took


def bench_chunks(report: Report, folder: Path) -> None:
    profile = scripted(folder)
    chat_round(profile)  # warm the agent and the runtime
    ours: list[float] = []
    sdk: list[float] = []
    for _ in range(ROUNDS):
        ours.append(chat_round(profile))
        sdk.extend(sdk_rounds(folder, 1))
    report.ratio("a. 20,000 chunks: chat() / the SDK's client", median(ours), median(sdk), 1.3)
    print(
        f"   per chunk: {median(ours) / CHUNKS * 1e6:.1f} µs vs {median(sdk) / CHUNKS * 1e6:.1f} µs"
    )


# -- b. Stop → session/cancel -------------------------------------------------------------------


def bench_stop(report: Report, folder: Path) -> None:
    profile = scripted(folder)
    written = threading.Event()
    at: list[float] = []

    def on_send(message: dict[str, Any]) -> None:
        if message.get("method") == "session/cancel":
            at.append(time.perf_counter())
            written.set()

    MANAGER.on_send = on_send
    delays: list[float] = []
    try:
        for _ in range(STOPS):
            written.clear()
            at.clear()
            run = hermes_nb.chat("hang", profile=profile)
            deadline = time.monotonic() + 30
            while run.text != "waiting":
                assert time.monotonic() < deadline, run.error
                run.wait_for_event(run.last_event_id, timeout=0.5)
            started = time.perf_counter()
            run.cancel()
            assert written.wait(5), "session/cancel was never written"
            delays.append(at[0] - started)
            run.wait(10)
    finally:
        MANAGER.on_send = None
    report.figure("b. Stop -> session/cancel written (median)", median(delays) * 1000, "ms", 5)
    print(f"   worst of {STOPS}: {max(delays) * 1000:.2f} ms")


# -- c. first text ------------------------------------------------------------------------------


def firsts(profile: Profile, prompt: str, *, cold: bool) -> float:
    values = []
    for _ in range(FIRSTS):
        if cold:
            restart()
        started = time.perf_counter()
        run = hermes_nb.chat(prompt, profile=profile)
        values.append(first_token(run, started))
        run.wait(120)
    return median(values)


def bench_first(folder: Path) -> None:
    profile = scripted(folder)
    cold = firsts(profile, "echo first words", cold=True)
    warm = firsts(profile, "echo first words", cold=False)
    print(f"c. first text, scripted agent: cold {cold * 1000:.1f} ms, warm {warm * 1000:.1f} ms")


def bench_hermes(folder: Path, root: Path) -> None:
    program = ROOT / ".venv-agents" / "hermes-acp" / "bin" / "hermes"
    if not program.is_file():
        print(f"c. hermes acp: skipped ({program} is missing; run the hermes tests once)")
        return
    with SSEServer() as server:
        server.default = Reply.text("Hello ", "from ", "the loopback.")
        out = hermes_acp_profile(
            program, root / "hermes-home", server.url, folder, "bench-hermes-acp"
        )
        cold = firsts(out, "Say hello", cold=True)
        warm = firsts(out, "Say hello", cold=False)
        print(f"c. first text, hermes acp: cold {cold * 1000:.0f} ms, warm {warm * 1000:.0f} ms")
        os.environ["HNB_BENCH_KEY"] = "sk-loopback-not-a-key"
        inside = Profile(
            name="bench-hermes-in-process",
            provider="hermes-agent",
            model="loopback-model",
            base_url=server.url,
            api_key_env="HNB_BENCH_KEY",
            hermes_home=out.env["HERMES_HOME"],  # the same home as the ACP agent
            options={"toolsets": ["todo"], "memory": False},
            titles=False,
        )
        started = time.perf_counter()
        run = hermes_nb.chat("Say hello", profile=inside)
        first = first_token(run, started)
        run.wait(120)
        warm_inside = firsts(inside, "Say hello", cold=False)
        print(
            f"c. first text, hermes-agent in process: first turn {first * 1000:.0f} ms, "
            f"warm {warm_inside * 1000:.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hermes", action="store_true", help="also time the real hermes acp")
    options = parser.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HERMES_NB_HOME"] = str(root / "home")
        folder = root / "folder"
        folder.mkdir()
        try:
            bench_chunks(report, folder)
            bench_stop(report, folder)
            bench_first(folder)
            if options.hermes:
                bench_hermes(folder, root)
        finally:
            restart()
    print("all targets met" if not report.missed else f"missed: {', '.join(report.missed)}")
    return 0 if not report.missed else 1


if __name__ == "__main__":
    sys.exit(main())
