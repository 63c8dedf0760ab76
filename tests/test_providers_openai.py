"""The OpenAI-compatible provider, end to end: ``hermes_nb.chat()`` against a real SSE server.

Every test goes through the public path (profile → runtime → turn → provider → httpx → the
loopback server in ``sse_server.py``) and checks what a user sees: the run's text, reasoning,
tool calls, usage, state and error payload, and what the server received. Failures:
``test_providers_openai_failures.py``; shared helpers: ``openai_support.py``.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from openai_support import (
    WAIT,
    events_of,
    fixture_key,  # noqa: F401  (key: the test key, in $TEST_KEY)
    openai_chat,
    openai_profile,
)
from sse_server import (  # the ``sse_server`` fixture comes from conftest.py
    Pause,
    RecordedRequest,
    Reply,
    SSEServer,
    content,
    finish,
    reasoning,
    tool_call,
    usage,
)

import hermes_nb
from hermes_nb import Run
from hermes_nb.core.exceptions import ErrorKind
from hermes_nb.engine.turn import MemoryTranscript

# -- streaming ----------------------------------------------------------------------------------


def test_content_deltas_stream_as_tokens(sse_server: SSEServer) -> None:
    sse_server.enqueue(
        Reply(
            chunks=[
                content("Hel"),
                Pause(0.05),
                content("lo "),
                Pause(0.05),
                content("world"),
                finish(),
                usage(3, 3),
            ]
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done"
    assert run.text == "Hello world"
    # Pauses put each delta in its own network read, so each is its own event, in order.
    assert [d["text"] for d in events_of(run, "token")] == ["Hel", "lo ", "world"]
    assert events_of(run, "done") == [{"text": "Hello world", "finish_reason": "stop"}]
    assert run.error is None


def test_deltas_in_one_read_are_merged_into_few_events(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply.huge(3000, "ab "))
    run = openai_chat(sse_server)
    assert run.status == "done"
    assert run.text == "ab " * 3000
    tokens = events_of(run, "token")
    assert 1 <= len(tokens) <= 300, len(tokens)  # 3,000 deltas arrive in a handful of reads
    assert "".join(d["text"] for d in tokens) == run.text


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_deltas_in_either_field(sse_server: SSEServer, field: str) -> None:
    sse_server.enqueue(
        Reply(
            chunks=[
                reasoning("Let me ", field),
                reasoning("think.", field),
                Pause(0.03),
                content("Answer."),
                finish(),
            ]
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done"
    assert run.reasoning == "Let me think."
    assert run.text == "Answer."
    names = [e.event for e in run.events() if e.event in ("reasoning", "token")]
    assert names[0] == "reasoning"
    assert names[-1] == "token"


def test_tool_calls_are_assembled_by_index(sse_server: SSEServer) -> None:
    sse_server.enqueue(
        Reply(
            chunks=[
                tool_call(0, id="call_a", name="get_weather", arguments='{"city":'),
                tool_call(1, id="call_b", name="get_time"),
                tool_call(1, arguments='{"tz": "UTC"}'),
                tool_call(0, arguments=' "Oslo"}'),
                tool_call(2, name="no_id", arguments="{}"),
                finish("tool_calls"),
            ]
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done"  # a tool call is a reply, not an empty answer
    assert run.tool_calls == {
        "call_a": {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        "call_b": {"id": "call_b", "name": "get_time", "arguments": '{"tz": "UTC"}'},
        "call_2": {"id": "call_2", "name": "no_id", "arguments": "{}"},
    }
    assert events_of(run, "tool_start") == [
        {"id": "call_a", "name": "get_weather", "arguments": ""},
        {"id": "call_b", "name": "get_time", "arguments": ""},
        {"id": "call_2", "name": "no_id", "arguments": ""},
    ]
    assert [d["id"] for d in events_of(run, "tool_delta")] == [
        "call_a",
        "call_b",
        "call_a",
        "call_2",
    ]
    assert run.finish_reason == "tool_calls" and not run.truncated and run.notice is None


def test_usage_is_reported_with_reasoning_tokens(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("ok"), finish(), usage(12, 7, reasoning=3)]))
    run = openai_chat(sse_server)
    expected = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    assert run.usage == {**expected, "reasoning_tokens": 3, "context_tokens": 19}
    assert events_of(run, "usage") == [{**expected, "reasoning_tokens": 3}]


def test_sse_comments_event_and_id_lines_and_crlf_are_accepted(sse_server: SSEServer) -> None:
    crlf = "data: " + json.dumps(content(" there")) + "\r\n\r\n"
    multi_line = 'data: {"choices": [{"delta":\ndata: {"content": "!"}}]}\n\n'
    sse_server.enqueue(
        Reply(
            chunks=[
                ": keep-alive\n\n",
                "event: message\nid: 1\nretry: 100\n",
                content("Hi"),
                crlf,
                multi_line,
                finish(),
            ]
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done", run.error
    assert run.text == "Hi there!"


def test_a_non_streamed_json_completion_is_accepted(sse_server: SSEServer) -> None:
    sse_server.enqueue(
        Reply(
            body={
                "choices": [{"message": {"role": "assistant", "content": "Whole answer."}}],
                "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
            }
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done"
    assert run.text == "Whole answer."
    assert run.usage["total_tokens"] == 5


def test_a_last_line_without_newline_still_counts(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Fine."), "data: [DONE]"], done=False))
    run = openai_chat(sse_server)
    assert run.status == "done", run.error
    assert run.text == "Fine."


def test_finish_reason_without_done_marker_completes(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Complete."), finish()], done=False))
    run = openai_chat(sse_server)
    assert run.status == "done"
    assert run.text == "Complete."


def test_the_connection_is_reused_by_the_next_turn(sse_server: SSEServer) -> None:
    # The body is read to its end after [DONE], so the connection goes back to the pool.
    first, second = openai_chat(sse_server), openai_chat(sse_server)
    assert first.status == second.status == "done"
    ports = [r.client_port for r in sse_server.chat_requests]
    assert ports[0] == ports[1]


# -- a reply cut short -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "words"),
    [("length", "output limit"), ("content_filter", "content filter")],
)
def test_a_reply_cut_short_reports_its_finish_reason_and_keeps_a_notice(
    sse_server: SSEServer, reason: str, words: str
) -> None:
    sse_server.enqueue(
        Reply(chunks=[content("The answer is"), Pause(0.02), content(" forty"), finish(reason)])
    )
    transcript = MemoryTranscript()
    run = openai_chat(sse_server, history=transcript)
    assert run.status == "done"  # what arrived is a reply, kept whole: not an error
    assert run.text == "The answer is forty"
    assert run.finish_reason == reason and run.truncated
    assert events_of(run, "finish") == [{"finish_reason": reason}]
    notice = run.notice
    assert notice is not None and words in notice and f'finish_reason "{reason}"' in notice
    assert events_of(run, "done") == [
        {"text": "The answer is forty", "finish_reason": reason, "notice": notice}
    ]
    # The transcript keeps the reply (not partial) and, after it, the notice.
    assert transcript.messages[-2:] == [
        {"role": "assistant", "content": "The answer is forty"},
        {"role": "notice", "content": notice},
    ]


def test_the_length_notice_says_what_to_raise(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Part"), finish("length"), usage(5, 1)]))
    run = openai_chat(sse_server, max_tokens=1)
    assert sse_server.chat_requests[0].body["max_tokens"] == 1
    assert run.notice == (
        'The reply was cut off at the model\'s output limit (finish_reason "length"); raise '
        "max_tokens in the profile (for one turn: -o max_tokens=N, or max_tokens=N in chat()) "
        "or ask it to continue."
    )


def test_a_normal_finish_reason_is_reported_without_a_notice(sse_server: SSEServer) -> None:
    transcript = MemoryTranscript()
    run = openai_chat(sse_server, history=transcript)  # the default reply ends with "stop"
    assert run.finish_reason == "stop" and not run.truncated and run.notice is None
    assert events_of(run, "finish") == [{"finish_reason": "stop"}]
    assert [m["role"] for m in transcript.messages] == ["user", "assistant"]


def test_a_non_streamed_completion_cut_at_the_limit_says_so(sse_server: SSEServer) -> None:
    sse_server.enqueue(
        Reply(
            body={
                "choices": [
                    {
                        "message": {"role": "assistant", "content": "Trunc"},
                        "finish_reason": "length",
                    }
                ]
            }
        )
    )
    run = openai_chat(sse_server)
    assert run.status == "done" and run.text == "Trunc"
    assert run.truncated and "output limit" in (run.notice or "")


def test_an_empty_reply_cut_at_the_limit_is_an_error_that_names_it(sse_server: SSEServer) -> None:
    # A reasoning model can spend all of max_tokens before writing a word.
    sse_server.enqueue(Reply(chunks=[finish("length"), usage(5, 64)]))
    run = openai_chat(sse_server)
    assert run.status == "error"
    assert run.error is not None and run.error["kind"] == ErrorKind.EMPTY_REPLY
    assert 'finish_reason "length"' in run.error["message"]
    assert "max_tokens" in run.error["hint"]


# -- the request as sent ---------------------------------------------------------------------


def test_request_body_and_headers_with_a_key(sse_server: SSEServer, key: str) -> None:
    profile = openai_profile(sse_server, headers={"X-Title": "hermes_nb tests"})
    run = openai_chat(
        sse_server, "What is 2+2?", profile=profile, temperature=0.25, max_tokens=64, top_p=0.5
    )
    assert run.status == "done"
    (request,) = sse_server.chat_requests
    assert request.method == "POST"
    assert request.headers["authorization"] == f"Bearer {key}"
    assert request.headers["x-title"] == "hermes_nb tests"
    assert request.headers["accept"] == "text/event-stream"
    assert request.body == {
        "model": "m",
        "messages": [{"role": "user", "content": "What is 2+2?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.25,
        "max_tokens": 64,
        "top_p": 0.5,
    }


def test_no_authorization_header_without_a_key(sse_server: SSEServer) -> None:
    run = openai_chat(sse_server)  # $TEST_KEY is not set
    assert run.status == "done"
    (request,) = sse_server.chat_requests
    assert "authorization" not in request.headers
    assert "temperature" not in request.body
    assert "max_tokens" not in request.body


def test_profile_options_and_extra_fields_reach_the_body(sse_server: SSEServer) -> None:
    profile = openai_profile(sse_server, options={"seed": 1, "top_k": 40})
    openai_chat(sse_server, profile=profile, seed=7, response_format={"type": "text"})
    body = sse_server.chat_requests[0].body
    assert body["seed"] == 7  # the per-call value wins over the profile's
    assert body["top_k"] == 40
    assert body["response_format"] == {"type": "text"}


# -- cancellation and concurrency --------------------------------------------------------------


def _wait_for_text(run: Run, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    seq = 0
    while not run.text:
        assert time.monotonic() < deadline, "no token arrived"
        seq = run.wait_for_event(seq, timeout=0.5)


def test_invariant_6_cancel_closes_connection(sse_server: SSEServer) -> None:
    """Stop closes the HTTP connection at once: the server sees it within 100 ms."""
    sse_server.enqueue(Reply(chunks=[content(f"w{i} ") for i in range(200)], chunk_delay=0.02))
    run = hermes_nb.chat("long answer please", profile=openai_profile(sse_server))
    _wait_for_text(run)
    cancelled_at = time.perf_counter()
    assert run.cancel()
    disconnects = sse_server.wait_for_disconnect(timeout=2)
    assert disconnects, "the server never saw the connection close"
    assert disconnects[0].at - cancelled_at < 0.1
    run.wait(WAIT)
    assert run.status == "stopped"
    assert run.text.startswith("w0 ")
    assert disconnects[0].sent_chunks < 200  # generation really stopped
    time.sleep(0.1)
    assert len(sse_server.chat_requests) == 1  # and nothing retried it


def test_fifty_concurrent_runs_all_complete(sse_server: SSEServer) -> None:
    def answer(request: RecordedRequest) -> Reply:
        question = request.body["messages"][-1]["content"]
        return Reply.text("Answer ", "to ", question, chunk_delay=0.01)

    sse_server.default = answer
    runs = [hermes_nb.chat(f"q{n}", profile=openai_profile(sse_server)) for n in range(50)]
    for run in runs:
        run.wait(30)
    assert [run.status for run in runs] == ["done"] * 50
    assert [run.text for run in runs] == [f"Answer to q{n}" for n in range(50)]
    assert len(sse_server.chat_requests) == 50


def test_the_server_lists_models(sse_server: SSEServer) -> None:
    response = httpx.get(f"{sse_server.url}/models")
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["m", "test-model"]
    assert sse_server.requests[0].path == "/v1/models"
