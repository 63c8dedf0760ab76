"""The engine's tool loop against the loopback OpenAI-style server: the model calls tools, the
engine runs them (with approvals and questions through the run's prompt broker), and the model
is asked again with the results — the next request's body is what the tests read back."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from sse_server import (  # the ``sse_server`` fixture comes from conftest.py
    RecordedRequest,
    Reply,
    SSEServer,
    content,
    finish,
    tool_call,
    usage,
)

import hermes_nb
from hermes_nb import Profile, Run
from hermes_nb.core.exceptions import HermesError
from hermes_nb.core.prompts import NO_ANSWER
from hermes_nb.engine import MemoryTranscript
from hermes_nb.view._static import static_bundle

WAIT = 15.0


def _profile(server: SSEServer, **changes: Any) -> Profile:
    return Profile(name="t", provider="openai", base_url=server.url, model="m").with_overrides(
        **changes
    )


def _calls(*calls: tuple[str, str, dict[str, Any] | str], text: str = "") -> Reply:
    """One reply that calls ``(id, name, arguments)`` tools, then ends with ``tool_calls``."""
    chunks: list[Any] = [content(text)] if text else []
    for index, (call_id, name, arguments) in enumerate(calls):
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        chunks.append(tool_call(index, id=call_id, name=name, arguments=raw))
    chunks.append(finish("tool_calls"))
    return Reply(chunks=chunks)


def _echo_results(request: RecordedRequest) -> Reply:
    """The model's answer after its tools ran: what each tool returned, in order."""
    results = [m["content"] for m in request.body["messages"] if m["role"] == "tool"]
    return Reply.text("Results: " + " | ".join(results))


def _tool_messages(request: RecordedRequest) -> list[dict[str, Any]]:
    return [m for m in request.body["messages"] if m["role"] == "tool"]


def _wait_for(condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)
    return value


def _assert_valid_history(messages: list[dict[str, Any]]) -> None:
    """Every assistant ``tool_calls`` entry is answered by the ``tool`` messages right after it,
    and no ``tool`` message stands without its call (what OpenAI-compatible APIs require)."""
    i = 0
    while i < len(messages):
        m = messages[i]
        assert m["role"] != "tool", f"tool message without its call at {i}: {m}"
        ids = [c["id"] for c in m.get("tool_calls") or ()]
        for call in m.get("tool_calls") or ():
            assert call["type"] == "function" and set(call["function"]) == {"name", "arguments"}
        following = [x["tool_call_id"] for x in messages[i + 1 : i + 1 + len(ids)]]
        assert following == ids
        i += 1 + len(ids)


# -- function tools -------------------------------------------------------------------------------


def test_a_sync_tool_runs_and_the_model_reads_its_result(sse_server: SSEServer) -> None:
    seen: list[tuple[int, int]] = []

    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        seen.append((a, b))
        return a + b

    sse_server.enqueue(_calls(("call_1", "add", {"a": 2, "b": 3})), _echo_results)
    run = hermes_nb.chat("2+3?", profile=_profile(sse_server), tools=[add]).wait(WAIT)
    assert run.status == "done", run.error
    assert seen == [(2, 3)]
    first, second = sse_server.chat_requests
    names = [t["function"]["name"] for t in first.body["tools"]]
    assert names == ["add", "ask_user"]  # ask_user is offered whenever a run has tools
    add_schema = first.body["tools"][0]["function"]
    assert add_schema["description"] == "Add two whole numbers."
    assert add_schema["parameters"]["required"] == ["a", "b"]
    assert add_schema["parameters"]["properties"]["a"]["type"] == "integer"
    assert second.body["messages"][-2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 2, "b": 3}',
    }
    assert _tool_messages(second) == [{"role": "tool", "tool_call_id": "call_1", "content": "5"}]
    assert run.text.endswith("Results: 5")
    end = next(e.data for e in run.events() if e.event == "tool_end")
    assert end["result"] == "5" and end["error"] is False and end["duration_ms"] >= 0


def test_an_async_tool_runs_on_the_loop(sse_server: SSEServer) -> None:
    @hermes_nb.tool
    async def fetch(url: str) -> dict[str, Any]:
        """Fetch a page (pretend)."""
        await anyio.sleep(0.01)
        return {"url": url, "status": 200}

    sse_server.enqueue(_calls(("c", "fetch", {"url": "https://example.org"})), _echo_results)
    run = hermes_nb.chat("go", profile=_profile(sse_server), tools=[fetch]).wait(WAIT)
    assert run.status == "done"
    assert json.loads(_tool_messages(sse_server.chat_requests[1])[0]["content"]) == {
        "url": "https://example.org",
        "status": 200,
    }
    assert anyio.run(fetch, "x")["status"] == 200  # a decorated function stays callable


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"a": "two", "b": 3}, "Error: Invalid arguments for add (ValidationError: a:"),
        ({"a": 2}, "Error: Invalid arguments for add (ValidationError: b: Field required"),
        ('{"a": 2,', "Error: The arguments for add are not valid JSON"),
        ([1, 2], "Error: The arguments for add must be a JSON object, not list."),
    ],
)
def test_invalid_arguments_are_an_error_result_and_the_run_goes_on(
    sse_server: SSEServer, arguments: Any, expected: str
) -> None:
    called: list[Any] = []

    def add(a: int, b: int) -> int:
        called.append((a, b))
        return a + b

    sse_server.enqueue(_calls(("c", "add", arguments)), _echo_results)
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=[add]).wait(WAIT)
    assert run.status == "done"
    assert called == []
    result = _tool_messages(sse_server.chat_requests[1])[0]["content"]
    assert result.startswith(expected), result
    assert next(e.data for e in run.events() if e.event == "tool_end")["error"] is True


def test_a_raising_tool_returns_one_sentence_and_the_run_goes_on(sse_server: SSEServer) -> None:
    def boom(n: int) -> int:
        raise ValueError(f"no {n} today")

    sse_server.enqueue(_calls(("c", "boom", {"n": 7})), _echo_results)
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=[boom]).wait(WAIT)
    assert run.status == "done"
    assert (
        _tool_messages(sse_server.chat_requests[1])[0]["content"] == "Error: ValueError: no 7 today"
    )


def test_an_unknown_tool_name_from_the_model_is_an_error_result(sse_server: SSEServer) -> None:
    sse_server.enqueue(_calls(("c", "nosuch", {})), _echo_results)
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=["ask_user"]).wait(WAIT)
    assert run.status == "done"
    assert "no tool named 'nosuch'" in _tool_messages(sse_server.chat_requests[1])[0]["content"]


def test_two_calls_in_one_reply_run_concurrently(sse_server: SSEServer) -> None:
    both = threading.Barrier(2, timeout=5)  # each call waits for the other: serial would fail

    def meet(name: str) -> str:
        both.wait()
        return f"met {name}"

    sse_server.enqueue(
        _calls(("c1", "meet", {"name": "a"}), ("c2", "meet", {"name": "b"})), _echo_results
    )
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=[meet]).wait(WAIT)
    assert run.status == "done"
    tool_messages = _tool_messages(sse_server.chat_requests[1])
    assert [m["tool_call_id"] for m in tool_messages] == ["c1", "c2"]
    assert [m["content"] for m in tool_messages] == ["met a", "met b"]


def test_max_steps_ends_the_run_with_a_clear_notice(sse_server: SSEServer) -> None:
    def ping() -> str:
        return "pong"

    sse_server.default = _calls(("c", "ping", {}), text="Again. ")
    try:
        run = hermes_nb.chat("x", profile=_profile(sse_server, max_steps=3), tools=[ping])
        run.wait(WAIT)
    finally:
        sse_server.default = Reply.text("Hello")
    assert run.status == "done"
    assert len(sse_server.chat_requests) == 3
    assert run.finish_reason == "max_steps" and run.truncated
    assert run.notice is not None and "max_steps" in run.notice
    assert [e.data["n"] for e in run.events() if e.event == "step"] == [2, 3]


def test_a_long_result_is_cut_with_a_note(sse_server: SSEServer) -> None:
    def big() -> str:
        return "x" * 5000

    sse_server.enqueue(_calls(("c", "big", {})), _echo_results)
    hermes_nb.chat("x", profile=_profile(sse_server, tool_result_limit=1000), tools=[big]).wait(
        WAIT
    )
    result = _tool_messages(sse_server.chat_requests[1])[0]["content"]
    assert result.startswith("x" * 1000 + "\n[… cut: 4,000 more characters")
    assert "tool_result_limit is 1,000" in result


# -- Stop -----------------------------------------------------------------------------------------


def test_stop_during_a_slow_async_tool_cancels_it(sse_server: SSEServer) -> None:
    started, cancelled = threading.Event(), threading.Event()

    async def slow() -> str:
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        return "late"

    sse_server.enqueue(_calls(("c", "slow", {})))
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=[slow])
    assert started.wait(WAIT)
    t0 = time.perf_counter()
    assert run.cancel()
    run.wait(WAIT)
    assert time.perf_counter() - t0 < 2
    assert run.status == "stopped" and cancelled.is_set()
    assert len(sse_server.chat_requests) == 1  # the model was not asked again
    end = next(e.data for e in run.events() if e.event == "tool_end")
    assert end["error"] and "Stopped" in end["result"]


def test_stop_during_a_slow_sync_tool_abandons_its_thread_and_drops_the_late_result(
    sse_server: SSEServer, caplog: pytest.LogCaptureFixture
) -> None:
    started, release = threading.Event(), threading.Event()
    finished = threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        finished.set()
        return "late"

    sse_server.enqueue(_calls(("c", "slow", {})))
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=[slow])
    assert started.wait(WAIT)
    t0 = time.perf_counter()
    run.cancel()
    run.wait(WAIT)
    assert time.perf_counter() - t0 < 2  # not held by the thread
    assert run.status == "stopped"
    with caplog.at_level(logging.WARNING, logger="hermes_nb.engine._tool_loop"):
        release.set()
        assert finished.wait(5)
        _wait_for(lambda: "its result was dropped" in caplog.text, 5)
    assert "late" not in run.text
    assert len(sse_server.chat_requests) == 1


# -- approvals and questions ----------------------------------------------------------------------


def _deletion(sse_server: SSEServer) -> tuple[Run, list[str]]:
    deleted: list[str] = []

    @hermes_nb.tool(ask=True)
    def delete(path: str) -> str:
        """Delete a file."""
        deleted.append(path)
        return f"deleted {path}"

    sse_server.enqueue(_calls(("c", "delete", {"path": "/tmp/x"})), _echo_results)
    run = hermes_nb.chat("clean up", profile=_profile(sse_server), tools=[delete])
    return run, deleted


def test_an_ask_tool_denied_is_not_called(sse_server: SSEServer) -> None:
    run, deleted = _deletion(sse_server)
    prompt = _wait_for(lambda: run.pending)[0]
    assert run.status == "waiting"
    assert prompt.kind == "approval"
    assert prompt.detail == "delete(path='/tmp/x')"
    assert prompt.choices == ("once", "session", "always", "deny")
    assert run.answer(prompt.id, "deny")
    run.wait(WAIT)
    assert deleted == []
    assert _tool_messages(sse_server.chat_requests[1])[0]["content"].startswith(
        "Not run: the person denied it."
    )
    record = run.prompt_record()
    assert record[0]["value"] == "deny" and record[0]["by"] == "api"


def test_an_ask_tool_approved_runs_once(sse_server: SSEServer) -> None:
    run, deleted = _deletion(sse_server)
    prompt = _wait_for(lambda: run.pending)[0]
    assert run.answer(prompt.id, "once")
    assert not run.answer(prompt.id, "deny")  # the first answer won
    run.wait(WAIT)
    assert deleted == ["/tmp/x"]
    assert _tool_messages(sse_server.chat_requests[1])[0]["content"] == "deleted /tmp/x"
    states = [e.data["state"] for e in run.events() if e.event == "status"]
    assert states == ["streaming", "waiting", "streaming", "done"]


def _tool_meta(run: Run) -> str:
    """The tool block's head as the view shows it now (its state and meta)."""
    from hermes_nb.view._blocks import Transcript

    blocks = Transcript(run).consume(run.events())
    (html,) = [html for kind, html in blocks.values() if kind == "tool"]
    return html.split('<span class="hnb-tool-meta">', 1)[1].split("</span>", 1)[0]


def test_a_call_waiting_for_approval_says_so_and_its_duration_leaves_the_wait_out(
    sse_server: SSEServer,
) -> None:
    run, deleted = _deletion(sse_server)
    prompt = _wait_for(lambda: run.pending)[0]
    assert _tool_meta(run) == "waits for your approval"  # not "running…": it has not started
    time.sleep(0.5)  # the person reads the card
    assert run.answer(prompt.id, "once")
    run.wait(WAIT)
    assert deleted == ["/tmp/x"]
    (end,) = [e.data for e in run.events() if e.event == "tool_end"]
    assert end["ran"] is True and end["duration_ms"] < 250, end  # the tool's time alone
    waits = [e.data["waiting"] for e in run.events() if e.event == "tool_wait"]
    assert waits == [True, False]
    assert _tool_meta(run).startswith("done · ")


def test_a_denied_call_is_shown_as_not_run(sse_server: SSEServer) -> None:
    run, deleted = _deletion(sse_server)
    prompt = _wait_for(lambda: run.pending)[0]
    assert run.answer(prompt.id, "deny")
    run.wait(WAIT)
    assert deleted == []
    (end,) = [e.data for e in run.events() if e.event == "tool_end"]
    assert end["ran"] is False and end["duration_ms"] is None
    assert _tool_meta(run) == "not run"


def test_ask_user_becomes_a_question_and_the_answer_is_the_result(sse_server: SSEServer) -> None:
    sse_server.enqueue(
        _calls(("q", "ask_user", {"question": "Which colour?", "choices": ["red", "blue"]})),
        _echo_results,
    )
    run = hermes_nb.chat("x", profile=_profile(sse_server), tools=["ask_user"])
    prompt = _wait_for(lambda: run.pending)[0]
    assert (prompt.kind, prompt.text, prompt.choices) == (
        "question",
        "Which colour?",
        ("red", "blue"),
    )
    assert run.refusal(prompt.id, "  ") is not None
    assert run.answer(prompt.id, "green, actually")  # the person's own words are fine
    run.wait(WAIT)
    assert _tool_messages(sse_server.chat_requests[1])[0]["content"] == "green, actually"


def test_a_question_nobody_answers_gets_no_answer_at_the_deadline(sse_server: SSEServer) -> None:
    sse_server.enqueue(_calls(("q", "ask_user", {"question": "Colour?"})), _echo_results)
    run = hermes_nb.chat(
        "x", profile=_profile(sse_server, prompt_timeout=0.3), tools=["ask_user"]
    ).wait(WAIT)
    assert run.status == "done"
    assert _tool_messages(sse_server.chat_requests[1])[0]["content"] == NO_ANSWER
    assert run.prompt_record()[0]["by"] == "timeout"


def test_stop_while_waiting_answers_the_prompt_and_stops(sse_server: SSEServer) -> None:
    run, deleted = _deletion(sse_server)
    prompt = _wait_for(lambda: run.pending)[0]
    run.cancel()
    run.wait(WAIT)
    assert run.status == "stopped" and deleted == []
    answered = [e.data for e in run.events() if e.event == "prompt_answered"]
    assert answered == [{"id": prompt.id, "value": "deny", "by": "stop"}]
    assert not run.answer(prompt.id, "once")
    assert run.refusal(prompt.id, "once") is not None


# -- history --------------------------------------------------------------------------------------


def test_the_next_turn_sends_a_valid_history_with_the_tool_messages(sse_server: SSEServer) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    transcript = MemoryTranscript()
    sse_server.enqueue(
        _calls(("c1", "add", {"a": 1, "b": 2}), ("c2", "add", {"a": 3, "b": 4}), text="Adding."),
        _echo_results,
        Reply.text("Second answer."),
    )
    profile = _profile(sse_server)
    hermes_nb.chat("first", profile=profile, history=transcript, tools=[add]).wait(WAIT)
    hermes_nb.chat("second", profile=profile, history=transcript).wait(WAIT)
    third = sse_server.chat_requests[2].body
    assert "tools" not in third  # no tools this turn, but the history keeps its tool messages
    roles = [m["role"] for m in third["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "user"]
    assert third["messages"][1]["content"] == "Adding."
    _assert_valid_history(third["messages"])


def test_calls_an_agent_ran_itself_are_not_sent_back_as_calls(sse_server: SSEServer) -> None:
    # A display-only tool call (no tool message answers it) must not reach the API alone.
    transcript = MemoryTranscript(
        [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "done",
                "tool_calls": [{"id": "x", "name": "terminal", "arguments": "{}", "result": "ok"}],
            },
        ]
    )
    hermes_nb.chat("next", profile=_profile(sse_server), history=transcript).wait(WAIT)
    messages = sse_server.chat_requests[0].body["messages"]
    assert messages[1] == {"role": "assistant", "content": "done"}
    _assert_valid_history(messages)


# -- declaring tools ------------------------------------------------------------------------------


def test_the_schema_comes_from_the_signature_hints_and_docstring() -> None:
    @hermes_nb.tool(name="weather", ask=True)
    def forecast(city: str, days: int = 3, metric: bool = True) -> str:
        """Forecast the weather.

        Args:
            city: The city, e.g. "Paris".
            days: How many days ahead.
        """
        return city

    assert forecast.name == "weather" and forecast.ask
    params = forecast.parameters
    assert params["required"] == ["city"]
    assert params["properties"]["city"] == {
        "type": "string",
        "description": 'The city, e.g. "Paris".',
    }
    assert params["properties"]["days"]["default"] == 3
    assert params["properties"]["metric"]["type"] == "boolean"
    assert forecast.description == "Forecast the weather."
    assert forecast.arguments('{"city": "Oslo", "days": "2"}') == {
        "city": "Oslo",
        "days": 2,
        "metric": True,
    }


def test_bad_tools_are_refused_in_one_sentence_before_anything_is_sent(
    sse_server: SSEServer,
) -> None:
    def spread(*values: int) -> int:
        return sum(values)

    with pytest.raises(HermesError, match="a tool's parameters must be named"):
        hermes_nb.tool(spread)
    with pytest.raises(HermesError, match="There is no tool or toolset named 'nosuch'"):
        hermes_nb.chat("x", profile=_profile(sse_server), tools=["nosuch"])
    assert sse_server.chat_requests == []


def test_a_tool_loop_s_usage_adds_up_its_requests_and_its_context_is_the_last_one(
    sse_server: SSEServer,
) -> None:
    """Each request of a tool loop pays for its prompt again: the run's (and the stored
    session's) counts are the sum, its ``context_tokens`` the last request's alone."""

    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    first = _calls(("call_1", "add", {"a": 2, "b": 3}))
    first.chunks.append(usage(100, 10))
    second = Reply(chunks=[content("5."), finish(), usage(130, 4)])
    sse_server.enqueue(first, second)
    session = hermes_nb.Session.new()
    run = session.chat("2+3?", profile=_profile(sse_server), tools=[add]).wait(WAIT)
    assert run.status == "done", run.error
    assert run.usage["prompt_tokens"] == 230 and run.usage["completion_tokens"] == 14
    assert run.usage["total_tokens"] == 244
    assert run.usage["context_tokens"] == 134
    # the view's status line counts the reply tokens of both requests
    assert "· 14 tokens" in static_bundle(run)[0]["text/html"]
    record = session._record()
    assert record.usage["prompt_tokens"] == 230 and record.usage["context_tokens"] == 134
