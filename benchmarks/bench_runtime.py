"""Runtime benchmarks: streaming overhead, Stop latency, first-event latency, idle CPU, memory.

Run it as ``.venv/bin/python benchmarks/bench_runtime.py`` (about a minute). Each figure is
printed against its target; ratios use a baseline measured in the same run:

a. overhead: a 20,000-chunk reply from the loopback server through ``hermes_nb.chat()`` versus
   a bare ``httpx.AsyncClient`` loop that reads the same stream line by line and json-decodes
   every ``data:`` line (its own event loop thread, like the runtime's). Median of several
   alternating rounds. Target ≤ 1.3×.
b. Stop: ``run.cancel()`` → the server sees the connection close; median and worst of 50.
c. first event: ``chat()`` → the first ``token`` reaches a subscriber, minus the server's
   first-byte delay; median of 30.
d. idle CPU: process CPU time over 2 s with the runtime started and idle (no server running).
e. memory: 500 settled 4,000-token echo runs (one token event per 4 characters: the worst case
   for the journal), as the growth of the process's RSS, against 2× their text size + 10 MB.
   RSS, because it is what a user sees and it counts every allocator; tracemalloc slows each of
   the two million allocations ~7× (minutes). The runs go one after another so the figure is
   what settled runs keep, not the allocator's high-water mark from many runs' live per-token
   objects at once. A 5-run tracemalloc sample gives the exact bytes kept per run alongside.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import tracemalloc

from _common import Report, median, percentile, use_tests_dir  # benchmarks/ is sys.path[0]

use_tests_dir()

import httpx  # noqa: E402
from anyio.from_thread import start_blocking_portal  # noqa: E402
from sse_server import Reply, SSEServer, content  # noqa: E402

import hermes_nb  # noqa: E402
from hermes_nb.engine.runtime import get_runtime  # noqa: E402

CHUNKS = 20_000
ROUNDS = 9
STOPS = 50
FIRST_EVENTS = 30
FIRST_BYTE_DELAY = 0.02
IDLE_SECONDS = 2.0
MEMORY_RUNS = 500
MEMORY_TOKENS = 4_000
MEMORY_SAMPLE = 5


def _profile(server: SSEServer) -> hermes_nb.Profile:
    return hermes_nb.Profile(name="bench", provider="openai", base_url=server.url, model="m")


def _chat_once(profile: hermes_nb.Profile) -> float:
    start = time.perf_counter()
    run = hermes_nb.chat("go", profile=profile).wait(60)
    elapsed = time.perf_counter() - start
    if run.status != "done" or len(run.text) != CHUNKS * 4:
        raise SystemExit(f"the benchmark run failed: {run.status} {run.error}")
    return elapsed


async def _bare_httpx(client: httpx.AsyncClient, url: str) -> int:
    """The baseline: what any client must do at least — read the lines, decode the JSON."""
    body = {"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": True}
    decoded = 0
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                json.loads(line[6:])
                decoded += 1
    return decoded


def bench_overhead(report: Report, server: SSEServer) -> None:
    server.default = Reply.huge(CHUNKS)
    profile = _profile(server)
    with start_blocking_portal() as portal:
        client = portal.call(_make_client)

        def bare_once() -> float:
            start = time.perf_counter()
            decoded = portal.call(_bare_httpx, client, server.url)
            elapsed = time.perf_counter() - start
            if decoded < CHUNKS:
                raise SystemExit(f"the baseline decoded only {decoded} chunks")
            return elapsed

        for _ in range(2):  # warm up both paths (connections, imports, caches)
            bare_once()
            _chat_once(profile)
        bare, ours = [], []
        for _ in range(ROUNDS):
            bare.append(bare_once())
            ours.append(_chat_once(profile))
        portal.call(client.aclose)
    report.ratio(f"a. overhead, {CHUNKS:,} chunks via chat()", median(ours), median(bare), 1.3)


async def _make_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=60)


def _first_token(run: hermes_nb.Run, timeout: float = 10.0) -> float:
    """Block until ``run`` has a ``token`` event; the perf_counter time it was seen."""
    q = run.subscribe(after_seq=0)
    deadline = time.perf_counter() + timeout
    while True:
        event, _ = q.get(timeout=max(0.001, deadline - time.perf_counter()))
        if event == "token":
            return time.perf_counter()
        if event == "stream_end":
            raise SystemExit(f"the run ended before its first token: {run.error}")


def bench_stop(report: Report, server: SSEServer) -> None:
    server.reset()
    server.default = Reply(chunks=[content("word ")] * 2000, chunk_delay=0.005)
    profile = _profile(server)
    latencies = []
    for n in range(STOPS):
        run = hermes_nb.chat("go", profile=profile)
        _first_token(run)
        start = time.perf_counter()
        run.cancel()
        seen = server.wait_for_disconnect(timeout=5, count=n + 1)
        if len(seen) <= n:
            raise SystemExit(f"the server saw no disconnect for stop {n + 1}")
        latencies.append((seen[n].at - start) * 1000)
        run.wait(5)
        if run.status != "stopped":
            raise SystemExit(f"a cancelled run ended as {run.status}")
    report.figure(f"b. Stop → server disconnect, median of {STOPS}", median(latencies), "ms", 20)
    report.figure(f"b. Stop → server disconnect, worst of {STOPS}", max(latencies), "ms", 100)


def bench_first_event(report: Report, server: SSEServer) -> None:
    server.default = Reply.text("first", " second", first_byte_delay=FIRST_BYTE_DELAY)
    profile = _profile(server)
    latencies = []
    for _ in range(FIRST_EVENTS + 3):
        start = time.perf_counter()
        run = hermes_nb.chat("go", profile=profile)
        seen = _first_token(run)
        latencies.append((seen - start - FIRST_BYTE_DELAY) * 1000)
        run.wait(5)
    latencies = latencies[3:]  # the first ones warm the connection pool
    report.figure(
        f"c. chat() → first token − first-byte delay, median of {FIRST_EVENTS}",
        median(latencies),
        "ms",
        10,
        f"p90 {percentile(latencies, 90):.2f} ms",
    )


def bench_idle_cpu(report: Report) -> None:
    hermes_nb.chat("wake the runtime", profile="echo", delay=0).wait(10)
    assert get_runtime().running
    gc.collect()
    threads = threading.active_count()
    before = time.process_time()
    time.sleep(IDLE_SECONDS)
    used = (time.process_time() - before) * 1000
    report.figure(
        f"d. idle runtime CPU over {IDLE_SECONDS:g} s", used, "ms", 20, f"{threads} threads alive"
    )


def _rss() -> int:
    """Resident set size in bytes (Linux ``/proc``; ``ru_maxrss`` elsewhere is only a peak)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory_runs(count: int, reply: str) -> list[hermes_nb.Run]:
    """``count`` echo runs of ``reply``, one after another, all settled."""
    runs = []
    for _ in range(count):
        run = hermes_nb.chat("go", profile="echo", delay=0, reply=reply, chunk_size=4)
        runs.append(run.wait(60))
    if any(run.status != "done" or run.text != reply for run in runs):
        raise SystemExit("the memory runs did not all finish with the full reply")
    return runs


def bench_memory(report: Report) -> None:
    reply = "abcd" * MEMORY_TOKENS  # chunk_size 4: one token event per 4 characters
    _memory_runs(3, reply)  # warm up: first-use allocations are not the runs' cost
    # A small exact sample first: what one settled run keeps, by tracemalloc.
    gc.collect()
    tracemalloc.start()
    sample = _memory_runs(MEMORY_SAMPLE, reply)
    time.sleep(0.1)  # the last run compacts its journal just after it settles
    gc.collect()
    per_run = tracemalloc.get_traced_memory()[0] / MEMORY_SAMPLE
    tracemalloc.stop()
    del sample
    gc.collect()
    # Then the figure: RSS growth over all the runs, which covers every allocator and leak.
    before = _rss()
    runs = _memory_runs(MEMORY_RUNS, reply)
    time.sleep(0.1)
    gc.collect()
    grown = (_rss() - before) / 1e6
    text_bytes = sum(len(run.text) for run in runs)
    limit = (2 * text_bytes + 10e6) / 1e6
    report.figure(
        f"e. RSS growth, {MEMORY_RUNS} settled {MEMORY_TOKENS:,}-token runs",
        grown,
        "MB",
        limit,
        f"text {text_bytes / 1e6:.1f} MB; tracemalloc: {per_run / 1e3:.0f} KB kept per run "
        f"for {len(reply) / 1e3:.0f} KB of text",
    )


def main() -> int:
    report = Report()
    started = time.perf_counter()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # Latencies cross three threads; on a busy machine each hop waits for a free CPU.
    print(f"load average {load:.1f} on {os.cpu_count()} CPUs", flush=True)
    with SSEServer() as server:
        bench_overhead(report, server)
        bench_stop(report, server)
        bench_first_event(report, server)
    bench_idle_cpu(report)
    bench_memory(report)
    print(f"({time.perf_counter() - started:.0f} s)")
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
