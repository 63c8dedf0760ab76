"""The OpenAI-compatible provider's failures, end to end against the loopback SSE server: HTTP
errors classified with the server's reason, bad addresses, timeouts and stalls, malformed or cut
streams (earlier text kept), and the key never in an error, an event or a repr. Helpers:
``openai_support.py``."""

from __future__ import annotations

import email.utils
import json
import socket
import time

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
    error_event,
    together,
)

import hermes_nb
from hermes_nb import Profile
from hermes_nb.core.exceptions import ErrorKind
from hermes_nb.providers.base import HINTS


@pytest.mark.parametrize(
    ("status", "kind", "phrase", "server_message"),
    [
        (401, ErrorKind.AUTH, "Unauthorized", "Invalid API key."),
        (403, ErrorKind.AUTH, "Forbidden", "Your key cannot use this model"),
        (404, ErrorKind.NOT_FOUND, "Not Found", "The model `m` does not exist."),
        (400, ErrorKind.BAD_REQUEST, "Bad Request", "max_tokens is too large."),
        (500, ErrorKind.SERVER, "Internal Server Error", "The server had an error."),
        (503, ErrorKind.SERVER, "Service Unavailable", "Overloaded."),
    ],
)
def test_http_errors_are_classified_with_the_server_reason(
    sse_server: SSEServer, status: int, kind: ErrorKind, phrase: str, server_message: str
) -> None:
    sse_server.enqueue(Reply.error(status, server_message))
    run = openai_chat(sse_server)
    assert run.status == "error"
    reason = server_message.rstrip(".")
    assert run.error == {
        "kind": str(kind),
        "message": f"The endpoint at {sse_server.url} answered {status} {phrase}: {reason}.",
        "hint": HINTS[kind],
        "status": status,
        "retry_after": None,
    }
    assert events_of(run, "apperror") == [run.error]


def test_an_error_body_that_is_not_json_still_gives_one_sentence(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(status=502, body="<html>Bad gateway</html>"))
    run = openai_chat(sse_server)
    assert run.error is not None
    assert run.error["kind"] == "server"
    assert run.error["message"] == f"The endpoint at {sse_server.url} answered 502 Bad Gateway."


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "Retry-After": "1"}, 0.25),
        ({"Retry-After": "<date in 30 s>"}, 30.0),
        ({}, None),
    ],
)
def test_rate_limit_carries_retry_after(
    sse_server: SSEServer, headers: dict[str, str], expected: float | None
) -> None:
    if headers.get("Retry-After") == "<date in 30 s>":
        headers = {"Retry-After": email.utils.formatdate(time.time() + 30, usegmt=True)}
    sse_server.enqueue(Reply.error(429, "Rate limit reached for requests.", headers=headers))
    run = openai_chat(sse_server)
    assert run.error is not None
    assert run.error["kind"] == "rate_limit"
    assert run.error["status"] == 429
    assert "Rate limit reached for requests" in run.error["message"]
    if expected is None:
        assert run.error["retry_after"] is None
    else:
        assert run.error["retry_after"] == pytest.approx(expected, abs=2.0 if expected > 10 else 0)


def test_a_dead_port_is_a_network_error() -> None:
    with socket.socket() as sock:  # a port that was just free and now has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    profile = Profile(name="t", provider="openai", base_url=url, model="m", connect_timeout=2)
    run = hermes_nb.chat("hi", profile=profile).wait(WAIT)
    assert run.status == "error"
    assert run.error is not None
    assert run.error["kind"] == "network"
    assert run.error["message"].startswith(f"Could not connect to {url} (")
    assert run.error["hint"] == HINTS[ErrorKind.NETWORK]


def test_a_base_url_without_scheme_is_a_clear_network_error() -> None:
    profile = Profile(name="t", provider="openai", base_url="localhost:9/v1", model="m")
    run = hermes_nb.chat("hi", profile=profile).wait(WAIT)
    assert run.error is not None
    assert run.error["kind"] == "network"
    assert "is not a usable http(s) URL" in run.error["message"]


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://[::1/v1", "Invalid port"),  # httpx.InvalidURL, which is not an httpx.HTTPError
        ("http://127.0.0.1:99999/v1", "port 99999 is not 1-65535"),  # an OverflowError below
    ],
)
def test_a_malformed_base_url_is_a_clear_network_error_not_a_bug(
    base_url: str, reason: str
) -> None:
    # Found by mypy: these reached the user as "a bug in hermes_nb" with a traceback.
    profile = Profile(name="t", provider="openai", base_url=base_url, model="m")
    run = hermes_nb.chat("hi", profile=profile).wait(WAIT)
    assert run.error is not None
    assert run.error["kind"] == "network"
    assert f"The base_url {base_url!r} is not a usable http(s) URL" in run.error["message"]
    assert reason in run.error["message"]


def test_a_server_that_never_answers_times_out(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(hang=True))
    start = time.perf_counter()
    run = openai_chat(sse_server, profile=openai_profile(sse_server, read_timeout=0.3))
    assert time.perf_counter() - start < 3
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.error["message"] == (
        f"The endpoint at {sse_server.url} sent nothing for 0.3 s (the profile's read_timeout)."
    )
    assert sse_server.wait_for_disconnect(2), "the client did not close the timed-out request"


def test_a_stall_mid_stream_times_out_and_keeps_the_text(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Partial "), content("answer"), Pause(5)]))
    run = openai_chat(sse_server, profile=openai_profile(sse_server, read_timeout=0.3))
    assert run.status == "error"
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.text == "Partial answer"


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("data: {not json\n\n", "a data line that is not JSON"),
        ("<html><body>Gateway error</body></html>\n", "a line that is not server-sent events"),
        ("data: [1, 2]\n\n", "a data line that is not a JSON object"),
        ('data: {"choices": {"delta": 1}}\n\n', "an event of an unexpected shape"),
    ],
)
def test_garbage_in_the_stream_is_malformed_and_keeps_earlier_text(
    sse_server: SSEServer, bad: str, what: str
) -> None:
    # One write: the good events and the bad line reach the parser in the same read.
    sse_server.enqueue(Reply(chunks=[together(content("Before "), content("garbage"), bad)]))
    run = openai_chat(sse_server)
    assert run.status == "error"
    assert run.error is not None
    assert run.error["kind"] == "malformed_stream"
    assert run.error["message"].startswith(
        f"The stream from {sse_server.url} was malformed: {what}"
    )
    assert run.error["hint"] == HINTS[ErrorKind.MALFORMED_STREAM]
    assert run.text == "Before garbage"


def test_a_stream_cut_without_done_is_malformed_and_keeps_the_text(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Half an "), content("answer")], done=False))
    run = openai_chat(sse_server)
    assert run.status == "error"
    assert run.error is not None
    assert run.error["kind"] == "malformed_stream"
    assert "ended without data: [DONE]" in run.error["message"]
    assert run.text == "Half an answer"


def test_a_connection_dropped_mid_body_is_a_network_error(sse_server: SSEServer) -> None:
    sse_server.enqueue(Reply(chunks=[content("Cut "), content("off")], abort=True))
    run = openai_chat(sse_server)
    assert run.error is not None
    assert run.error["kind"] == "network"
    assert run.error["message"].startswith(f"The connection to {sse_server.url} broke")
    assert run.text == "Cut off"


@pytest.mark.parametrize(
    ("error", "kind", "status"),
    [
        (error_event("Rate limit reached.", code=429), ErrorKind.RATE_LIMIT, 429),
        (error_event("Bad input.", type="invalid_request_error"), ErrorKind.BAD_REQUEST, None),
        (error_event("Upstream died.", code="502"), ErrorKind.SERVER, 502),
        (error_event("Something broke."), ErrorKind.SERVER, None),
    ],
)
def test_an_error_object_mid_stream_is_classified(
    sse_server: SSEServer, error: dict, kind: ErrorKind, status: int | None
) -> None:
    sse_server.enqueue(Reply(chunks=[content("So far"), error]))
    run = openai_chat(sse_server)
    assert run.error is not None
    assert run.error["kind"] == str(kind)
    assert run.error["status"] == status
    detail = error["error"]["message"].rstrip(".")
    assert run.error["message"] == (
        f"The endpoint at {sse_server.url} reported an error during the reply: {detail}."
    )
    assert run.text == "So far"


def _echo_key_in_error(request: RecordedRequest) -> Reply:
    return Reply.error(401, f"Rejected credentials {request.headers['authorization']}")


def _echo_key_in_garbage(request: RecordedRequest) -> Reply:
    return Reply(chunks=[content("x"), f"oops {request.headers['authorization']}\n"])


@pytest.mark.parametrize("script", [_echo_key_in_error, _echo_key_in_garbage])
def test_the_key_never_appears_in_errors_events_or_reprs(
    sse_server: SSEServer, key: str, script
) -> None:
    sse_server.enqueue(script)
    run = openai_chat(sse_server)
    assert sse_server.chat_requests[0].headers["authorization"] == f"Bearer {key}"
    assert run.error is not None
    assert "***" in run.error["message"]
    everything = json.dumps([list(entry) for entry in run.events()])
    for text in (everything, repr(run), str(run.error), repr(run.request)):
        assert key not in text
