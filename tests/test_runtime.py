"""The runtime: runs start at once, journal gap-free, fan out 2-tuples, stop from any thread."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import AsyncIterator

import anyio
import pytest

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.exceptions import RunError
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run, Runtime, get_runtime
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest


def test_chat_returns_at_once_and_streams() -> None:
    t0 = time.perf_counter()
    run = hermes_nb.chat("hello there", delay=0.05, chunk_size=2)
    assert time.perf_counter() - t0 < 0.5
    assert run.status in (RunState.QUEUED, RunState.STREAMING)
    run.wait(10)
    assert run.status is RunState.DONE
    assert "hello there" in run.text
    names = [e.event for e in run.events()]
    assert names[0] == "status" and names[-1] == "stream_end"
    assert names.count("token") > 10
    assert names[-3:] == ["done", "status", "stream_end"]


def test_invariant_3_queue_items_are_2_tuples_and_seq_on_side_channel() -> None:
    run = hermes_nb.chat("side channel", delay=0.01)
    q = run.subscribe(after_seq=0)
    seen: list[tuple[str, dict]] = []
    last_ids: list[int] = []
    while True:
        item = q.get(timeout=10)
        assert isinstance(item, tuple) and len(item) == 2
        event, data = item  # consumers that unpack two values keep working
        seen.append((event, data))
        last_ids.append(run.last_event_id)
        if event == "stream_end":
            break
    assert [(e.event, e.data) for e in run.events()] == seen
    # the side channel is never behind what a consumer has received
    assert all(last >= n for n, last in enumerate(last_ids, start=1))
    assert run.last_event_id == len(seen)
    assert get_runtime().last_event_id(run.stream_id) == len(seen)


def test_subscribe_mid_stream_has_no_gap_and_no_duplicate() -> None:
    run = hermes_nb.chat("x " * 200, delay=0.002, chunk_size=1)
    while run.last_event_id < 20:
        time.sleep(0.005)
    cursor = run.last_event_id - 5
    q = run.subscribe(after_seq=cursor)
    got = []
    while True:
        event, data = q.get(timeout=10)
        got.append((event, data))
        if event == "stream_end":
            break
    assert got == [(e.event, e.data) for e in run.events(cursor)]


def test_cancel_from_another_thread_stops_and_is_idempotent() -> None:
    run = hermes_nb.chat("stop me " * 100, delay=0.01)
    while not run.text:
        time.sleep(0.005)
    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(run.cancel())) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1
    run.wait(5)
    assert run.status is RunState.STOPPED
    assert run.cancel() is False
    names = [e.event for e in run.events()]
    assert "cancel" in names and "done" not in names
    assert len(run.text) < len(hermes_nb.providers.echo.echo_reply("stop me " * 100))


def test_cancel_before_start_stops_without_streaming() -> None:
    runtime = Runtime()
    try:
        from hermes_nb.engine.turn import TurnRequest

        runtime._ensure_started()
        # cancel straight after start, before the loop has picked the turn up
        run = runtime.start(TurnRequest(prompt="never", profile=Profile(options={"delay": 0.01})))
        run.cancel()
        run.wait(5)
        assert run.status is RunState.STOPPED
        assert len(run.text) <= 8
    finally:
        runtime.shutdown()


def test_several_runs_at_once() -> None:
    runs = [hermes_nb.chat(f"run number {i}", delay=0.005) for i in range(20)]
    for i, run in enumerate(runs):
        run.wait(20)
        assert run.status is RunState.DONE
        assert f"run number {i}" in run.text
    assert len({r.run_id for r in runs}) == 20
    assert len({r.stream_id for r in runs}) == 20


def test_wait_timeout_is_a_clear_error() -> None:
    run = hermes_nb.chat("slow " * 50, delay=0.05)
    with pytest.raises(RunError, match="did not finish within"):
        run.wait(0.05)
    run.cancel()
    run.wait(5)


def test_errors_settle_the_run_with_a_classification() -> None:
    run = hermes_nb.chat("x", fail="auth").wait(5)
    assert run.status is RunState.ERROR
    assert run.error is not None and run.error["kind"] == "auth"
    assert run.error["hint"]


def test_a_provider_bug_never_leaves_a_run_streaming() -> None:
    class Broken:
        name = "broken"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            yield "token", {"text": "a"}
            raise ZeroDivisionError("boom")

    register_provider("broken", lambda profile, client: Broken())
    run = hermes_nb.chat("x", profile=Profile(name="b", provider="broken")).wait(5)
    assert run.status is RunState.ERROR
    assert run.error["kind"] == "internal" and "ZeroDivisionError" in run.error["message"]
    assert run.text == "a"


def test_shutdown_stops_the_thread_and_cancels_live_runs() -> None:
    from hermes_nb.engine.turn import TurnRequest

    runtime = Runtime()
    run = runtime.start(TurnRequest(prompt="long " * 500, profile=Profile(options={"delay": 0.05})))
    while not run.text:
        time.sleep(0.005)
    thread = runtime._thread
    t0 = time.perf_counter()
    runtime.shutdown(timeout=5)
    assert time.perf_counter() - t0 < 5
    assert thread is not None and not thread.is_alive()
    assert run.status is RunState.STOPPED


def test_wait_for_event_sleeps_until_something_happens() -> None:
    run = hermes_nb.chat("wake " * 20, delay=0.02)
    seq = run.wait_for_event(0, timeout=5)
    assert seq >= 1
    newer = run.wait_for_event(seq, timeout=5)
    assert newer > seq or run.settled
    run.wait(10)
    assert run.wait_for_event(run.last_event_id, timeout=5) == run.last_event_id


def test_memory_transcript_continues_a_conversation() -> None:
    from hermes_nb.engine.turn import MemoryTranscript

    seen: list[list[dict]] = []

    class Recorder:
        name = "recorder"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            seen.append(request.messages)
            await anyio.sleep(0)
            yield "token", {"text": f"reply {len(seen)}"}

    register_provider("recorder", lambda profile, client: Recorder())
    profile = Profile(name="r", provider="recorder", system_prompt="be brief")
    transcript = MemoryTranscript([{"role": "user", "content": "earlier"}])
    hermes_nb.chat("one", profile=profile, history=transcript).wait(5)
    hermes_nb.chat("two", profile=profile, history=transcript).wait(5)
    assert seen[1] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "earlier"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "reply 1"},
        {"role": "user", "content": "two"},
    ]


def test_every_truncating_finish_reason_has_a_notice_and_no_other_does() -> None:
    from hermes_nb.core.events import TRUNCATING_REASONS
    from hermes_nb.engine.turn import truncation_notice

    for reason in TRUNCATING_REASONS:
        notice = truncation_notice(reason)
        assert notice.startswith("The reply was cut off") and f'"{reason}"' in notice
    for reason in ("stop", "tool_calls", "", None):
        assert truncation_notice(reason) == ""


def test_empty_prompt_is_one_clear_sentence() -> None:
    with pytest.raises(hermes_nb.HermesError, match="The prompt is empty"):
        hermes_nb.chat("   ")


def test_queue_is_released_when_the_run_settles() -> None:
    run = hermes_nb.chat("done soon", delay=0).wait(5)
    q = run.subscribe()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    assert run._subscribers == []


def test_a_key_with_a_newline_never_leaks_into_errors(sse_server, monkeypatch) -> None:
    """A pasted key ending in a newline is stripped; the escaped form is redacted anyway."""
    from hermes_nb.core.profiles import Secret

    monkeypatch.setenv("HNB_PASTED", "sk-pasted-secret-99\n")
    profile = Profile(
        name="p", provider="openai", base_url=sse_server.url, api_key_env="HNB_PASTED"
    )
    run = hermes_nb.chat("hi", profile=profile).wait(10)
    assert run.status is RunState.DONE
    assert sse_server.chat_requests[0].headers["authorization"] == "Bearer sk-pasted-secret-99"
    secret = Secret("sk-pasted-secret-99\n")
    leaked = "Illegal header value b'Bearer sk-pasted-secret-99\\n'"
    assert "sk-pasted" not in secret.redact(leaked)


def test_a_failing_write_back_still_settles_the_run() -> None:
    from hermes_nb.engine.turn import MemoryTranscript

    class Broken(MemoryTranscript):
        def settle(self, run, outcome):
            raise ValueError("disk on fire")

    run = hermes_nb.chat("x", history=Broken(), delay=0).wait(5)
    assert run.status is RunState.ERROR
    assert "Saving the turn failed (ValueError: disk on fire)" in run.error["message"]
    assert run.settled


def test_a_config_problem_in_a_turn_is_not_called_a_bug() -> None:
    run = hermes_nb.chat("x", profile=Profile(name="bad", provider="nonsense")).wait(5)
    assert run.error["kind"] == "config"
    assert "Unknown provider 'nonsense'" in run.error["message"]
    assert "bug" not in run.error["hint"]


def test_stop_after_the_stream_completed_is_refused() -> None:
    """A Stop that loses the race to the end of the stream claims nothing and changes nothing."""
    import threading as _threading

    from hermes_nb.engine.turn import MemoryTranscript

    settling = _threading.Event()

    class SlowSettle(MemoryTranscript):
        def settle(self, run, outcome):
            settling.set()
            time.sleep(0.3)
            return super().settle(run, outcome)

    run = hermes_nb.chat("quick", history=SlowSettle(), delay=0)
    assert settling.wait(5)
    assert run.cancel() is False  # the stream already completed; settle is in progress
    assert run.wait(5).status is RunState.DONE


def test_shutdown_stops_with_an_interrupted_notice_not_a_user_cancel() -> None:
    from hermes_nb.engine.turn import SHUTDOWN_NOTICE, MemoryTranscript, TurnRequest

    runtime = Runtime()
    transcript = MemoryTranscript()
    run = runtime.start(
        TurnRequest(
            prompt="long " * 500, profile=Profile(options={"delay": 0.05}), transcript=transcript
        )
    )
    while not run.text:
        time.sleep(0.005)
    runtime.shutdown(timeout=5)
    assert run.status is RunState.STOPPED
    assert transcript.messages[-1] == {"role": "notice", "content": SHUTDOWN_NOTICE}


def test_shutdown_while_a_prompt_waits_settles_the_run_as_interrupted() -> None:
    # The prompt's answer (by "shutdown") wakes the waiting tool before the run's own cancel
    # lands, so the runtime's task group cancellation could win and kill the turn unsettled.
    from hermes_nb.engine.tools import resolve_tools
    from hermes_nb.engine.turn import SHUTDOWN_NOTICE, MemoryTranscript, TurnRequest

    runtime = Runtime()
    transcript = MemoryTranscript()
    run = runtime.start(
        TurnRequest(
            prompt="ask",
            profile=Profile(options={"delay": 0}),
            transcript=transcript,
            tools=tuple(resolve_tools(["ask_user"])),
            extra={"tool_calls": [{"name": "ask_user", "arguments": {"question": "Colour?"}}]},
        )
    )
    while not run.pending:
        time.sleep(0.005)
    runtime.shutdown(timeout=5)
    assert run.settled and run.status is RunState.STOPPED
    assert run.notice == SHUTDOWN_NOTICE
    answered = [e.data for e in run.events() if e.event == "prompt_answered"]
    assert [a["by"] for a in answered] == ["shutdown"]
    assert transcript.messages[-1] == {"role": "notice", "content": SHUTDOWN_NOTICE}


def test_the_runtime_lets_go_of_settled_runs_beyond_its_window() -> None:
    """A long-lived kernel keeps the newest ``keep_settled`` settled runs, not every turn's
    reply; a run the caller still holds lives on, and live runs are never dropped."""
    import gc
    import weakref

    from hermes_nb.engine.turn import TurnRequest

    runtime = Runtime(keep_settled=2)
    quick = Profile(options={"delay": 0})

    def turn(prompt: str) -> Run:
        run = runtime.start(TurnRequest(prompt=prompt, profile=quick))
        run.wait(10)
        return run

    try:
        gone = weakref.ref(turn("first"))
        held = turn("held")
        live = runtime.start(
            TurnRequest(prompt="live " * 400, profile=Profile(options={"delay": 0.05}))
        )
        recent = [turn(f"more {n}") for n in range(3)]
        last = turn("last")
        # Pruned when a run registers: the newest two then, and the one that has settled since.
        assert [r for r in runtime.runs() if r.settled] == [*recent[1:], last]
        assert live in runtime.runs() and not live.settled
        gc.collect()
        assert gone() is None  # nothing else in hermes_nb kept the first run
        assert "held" in held.text and held.settled  # the caller's run is whole
        with pytest.raises(RunError, match="No run"):
            runtime.get(held.run_id)
    finally:
        runtime.shutdown(timeout=5)


def test_a_settled_run_keeps_its_reply_once() -> None:
    """The compacted journal shares the reply's string with ``run.text``: a settled run holds
    its text once (a 16 KB reply is not kept twice for the kernel's life)."""
    import gc
    import sys
    import tracemalloc

    prompt = "Merging — the slow part — is the diff. " * 400  # non-ASCII: 2 bytes a character
    hermes_nb.chat("warm up", delay=0).wait(10)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run = hermes_nb.chat(prompt, delay=0, chunk_size=4)
        run.wait(10)
        run.journal.since(0)  # a replay reads it; what it builds is not kept
        time.sleep(0.2)  # the write-back finishes
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    text = sys.getsizeof(run.text)
    assert [e.data["text"] for e in run.events() if e.event == "token"] != []
    assert "".join(e.data["text"] for e in run.events() if e.event == "token") == run.text
    assert kept < 1.6 * text, f"a settled run keeps {kept} bytes for {text} bytes of text"
