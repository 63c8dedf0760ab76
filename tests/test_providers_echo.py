"""The offline echo model's options, through ``hermes_nb.chat(..., profile="echo", delay=0)``.

Every option is what tests, examples and notebooks script the echo model with, so each is
checked through the public path and the run a user gets back.
"""

from __future__ import annotations

import json
import math
import time

import pytest

import hermes_nb
from hermes_nb import Profile, Run
from hermes_nb.core.exceptions import ErrorKind
from hermes_nb.providers.base import HINTS
from hermes_nb.providers.echo import UNSCRIPTED_TOOLS, echo_reply

WAIT = 10.0


def _chat(prompt: str = "Hello *world*", **options: object) -> Run:
    options.setdefault("delay", 0)
    return hermes_nb.chat(prompt, profile="echo", **options).wait(WAIT)


def _events(run: Run, name: str) -> list[dict]:
    return [entry.data for entry in run.events() if entry.event == name]


def _tokens(run: Run) -> list[str]:
    return [d["text"] for d in _events(run, "token")]


def test_default_reply_echoes_the_prompt_in_chunks_of_four() -> None:
    run = _chat("Hello *world*")
    assert run.status == "done"
    assert run.text == echo_reply("Hello *world*")
    assert "you wrote 2 words" in run.text
    pieces = _tokens(run)
    assert len(pieces) == math.ceil(len(run.text) / 4)
    assert all(len(p) == 4 for p in pieces[:-1])


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_chunk_size_sets_characters_per_token(size: int) -> None:
    run = _chat(chunk_size=size)
    pieces = _tokens(run)
    assert "".join(pieces) == run.text == echo_reply("Hello *world*")
    assert len(pieces) == math.ceil(len(run.text) / size)
    assert all(len(p) == size for p in pieces[:-1])


def test_delay_paces_the_chunks() -> None:
    start = time.perf_counter()
    _chat(reply="abcdefgh", chunk_size=2, delay=0.06)  # four chunks, a pause after each
    paced = time.perf_counter() - start
    start = time.perf_counter()
    _chat(reply="abcdefgh", chunk_size=2, delay=0)
    unpaced = time.perf_counter() - start
    assert paced >= 0.24
    assert unpaced < paced


def test_reply_replaces_the_echo() -> None:
    run = _chat(reply="Exactly this.")
    assert run.text == "Exactly this."


def test_repeat_makes_long_replies() -> None:
    run = _chat("ping pong", repeat=3)
    assert run.text == echo_reply("ping pong", repeat=3)
    assert run.text.count("ping pong") == 3


def test_offered_tools_but_no_scripted_call_says_how_to_script_one() -> None:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    run = _chat("Use a tool.", tools=[add])
    assert run.text == echo_reply("Use a tool.") + f"\n{UNSCRIPTED_TOOLS}\n"
    assert "tool_calls=" in UNSCRIPTED_TOOLS
    scripted = _chat(
        "Use a tool.", tools=[add], tool_calls=[{"name": "add", "arguments": {"a": 2, "b": 3}}]
    )
    assert UNSCRIPTED_TOOLS not in scripted.text
    assert UNSCRIPTED_TOOLS not in _chat("No tools.").text


def test_reasoning_streams_before_the_reply() -> None:
    run = _chat(reply="Answer.", reasoning="Thinking it over.")
    assert run.reasoning == "Thinking it over."
    assert run.text == "Answer."
    names = [e.event for e in run.events() if e.event in ("reasoning", "token")]
    assert names.index("token") > max(i for i, n in enumerate(names) if n == "reasoning")


def test_tool_calls_report_start_arguments_and_result() -> None:
    calls = [
        {"name": "search", "arguments": {"q": "jupyter"}, "result": "3 hits"},
        {"name": "calc", "arguments": "1+1"},  # no result: no tool_end
    ]
    run = _chat(reply="Done.", tool_calls=calls)
    assert run.tool_calls["call_0"] == {
        "id": "call_0",
        "name": "search",
        "arguments": json.dumps({"q": "jupyter"}),
        "result": "3 hits",
        "error": False,
        "duration_ms": 1.0,
    }
    assert run.tool_calls["call_1"] == {"id": "call_1", "name": "calc", "arguments": "1+1"}
    assert [d["id"] for d in _events(run, "tool_end")] == ["call_0"]
    assert _events(run, "tool_start")[0] == {"id": "call_0", "name": "search", "arguments": ""}


_STATUS = {
    ErrorKind.AUTH: 401,
    ErrorKind.RATE_LIMIT: 429,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.SERVER: 500,
}


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_fail_fails_with_each_kind_before_any_text(kind: ErrorKind) -> None:
    run = _chat(fail=str(kind))
    assert run.status == "error"
    assert run.text == ""
    assert run.error == {
        "kind": str(kind),
        "message": f"The echo model was scripted to fail with {kind}.",
        "hint": HINTS[kind],
        "status": _STATUS.get(kind),
        "retry_after": None,
    }


def test_fail_after_keeps_the_chunks_sent_before() -> None:
    run = _chat(reply="abcdefghijklmnop", chunk_size=4, fail="rate_limit", fail_after=3)
    assert run.status == "error"
    assert run.text == "abcdefghijkl"
    assert run.error is not None
    assert run.error["kind"] == "rate_limit"
    assert run.error["status"] == 429


def test_usage_is_reported_by_default_and_can_be_turned_off() -> None:
    run = _chat("one two three", chunk_size=5)
    chunks = math.ceil(len(echo_reply("one two three")) / 5)
    assert run.usage == {
        "prompt_tokens": 3,
        "completion_tokens": chunks,
        "total_tokens": 3 + chunks,
        "context_tokens": 3 + chunks,  # the last request's (the run made one)
    }
    quiet = _chat("one two three", usage=False)
    assert _events(quiet, "usage") == []
    assert quiet.usage == {}


def test_a_finished_reply_ends_plainly_and_the_turn_reports_stop() -> None:
    run = _chat()
    assert _events(run, "finish") == []  # the event stream of a normal reply is unchanged
    assert _events(run, "done")[0]["finish_reason"] == "stop"
    assert run.finish_reason == "stop" and not run.truncated and run.notice is None


def test_max_tokens_cuts_the_reply_like_an_output_limit() -> None:
    run = _chat(reply="abcdefghijklmnop", chunk_size=4, max_tokens=2)
    assert run.status == "done"
    assert run.text == "abcdefgh"
    assert run.usage["completion_tokens"] == 2
    assert _events(run, "finish") == [{"finish_reason": "length"}]
    assert run.truncated and 'finish_reason "length"' in (run.notice or "")
    # The profile's max_tokens is the default, as for a real model.
    profile = Profile(name="short", provider="echo", max_tokens=1, options={"delay": 0})
    assert hermes_nb.chat("x", profile=profile, reply="abcdefgh").wait(WAIT).text == "abcd"
    # A reply that fits is not cut.
    assert not _chat(reply="abcd", chunk_size=4, max_tokens=1).truncated


def test_finish_reason_scripts_a_content_filter_stop() -> None:
    run = _chat(reply="Some text.", finish_reason="content_filter")
    assert run.status == "done" and run.text == "Some text."
    assert run.finish_reason == "content_filter" and run.truncated
    assert "content filter" in (run.notice or "")


def test_profile_options_are_defaults_that_call_options_override() -> None:
    profile = Profile(name="scripted", options={"reply": "From the profile.", "delay": 0})
    assert hermes_nb.chat("x", profile=profile).wait(WAIT).text == "From the profile."
    run = hermes_nb.chat("x", profile=profile, reply="From the call.").wait(WAIT)
    assert run.text == "From the call."
