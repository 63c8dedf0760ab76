"""``provider = "acp"`` against the scripted agent in ``tests/acp_agent.py`` (raw JSON-RPC over
stdio, no SDK), run with this interpreter: a reply streams (tokens, thoughts, tool calls, plans,
usage, big messages, stored sessions), permissions are approval cards, files are read and written
inside the profile's folder only, and Stop settles at once. Every test drives whole turns through
:func:`hermes_nb.chat` or a stored session (the runtime, the turn, the prompt broker), as a
notebook does. Failures, configuration and leftover processes: ``test_providers_acp_failures.py``;
the real ``hermes acp``: ``test_providers_acp_hermes.py``; shared helpers: ``acp_support.py``."""

from __future__ import annotations

import json
import re
import sys
import time

import pytest
from acp_support import (
    AGENT,
    WAIT,
    alive,
    chat,
    events,
    fixture_folder,  # noqa: F401  (folder: a work folder)
    fixture_profile,  # noqa: F401  (profile: a profile factory)
    pid_of,
    wait_until,
)

import hermes_nb
from hermes_nb.providers.acp import agents
from hermes_nb.store.sessions import join_background
from hermes_nb.view._blocks import ask_html, decision

pytestmark = pytest.mark.usefixtures("agents_closed")


# -- streaming --------------------------------------------------------------------------------


def test_a_reply_streams_as_tokens_and_the_process_stays_warm(profile) -> None:
    p = profile()
    run = chat("echo hello from the agent", p)
    assert run.status == "done", run.error
    assert run.text == "hello from the agent"
    assert run.finish_reason == "stop"
    first = pid_of()
    again = chat("echo second turn", p)
    assert again.text == "second turn"
    assert pid_of() == first  # one warm process per profile, reused across turns
    assert agents()[0].command == f"{sys.executable} {AGENT}"


def test_ten_thousand_chunks_arrive_exactly_and_in_order(profile) -> None:
    run = chat("chunks 10000", profile())
    expected = "".join(f"{i}," for i in range(10_000))
    assert run.text == expected
    tokens = "".join(d["text"] for e, d in events(run, "token"))  # type: ignore[misc]
    assert tokens == expected
    assert len(events(run, "token")) < 10_000  # merged as they arrive, never reordered


def test_thoughts_are_reasoning_before_the_reply(profile) -> None:
    run = chat("think", profile())
    assert run.reasoning == "Let me think."
    assert run.text == "Thought about it."
    kinds = [e for e, _ in events(run, "token", "reasoning")]
    assert kinds[-1] == "token"
    assert set(kinds[:-1]) == {"reasoning"}  # one event, or two if a read split them


def test_a_tool_call_with_a_diff_is_a_tool_block_with_a_unified_diff(profile, folder) -> None:
    path = folder / "notes.txt"
    run = chat(f"tool-diff {path}", profile())
    call = run.tool_calls["edit-1"]
    assert call["name"] == "Edit notes.txt"
    assert json.loads(call["arguments"]) == {"path": str(path)}
    rel = str(path).lstrip("/")
    assert call["result"] == f"--- a/{rel}\n+++ b/{rel}\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
    assert call["error"] is False
    assert run.text == "Edited."


def test_a_plan_is_a_tool_block_redrawn_with_each_update(profile) -> None:
    run = chat("plan", profile())
    assert run.tool_calls["acp-plan"]["name"] == "Plan"
    assert run.tool_calls["acp-plan"]["result"] == "- [x] look\n- [x] fix"
    ends = [d["result"] for e, d in events(run, "tool_end")]
    assert ends == ["- [x] look\n- [ ] fix", "- [x] look\n- [x] fix"]


def test_usage_from_the_prompt_response(profile) -> None:
    run = chat("usage", profile())
    assert run.usage == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
        "context_tokens": 10,
    }


def test_a_ten_megabyte_message_arrives_whole(profile) -> None:
    run = chat("big 10000000", profile())
    assert run.status == "done"
    assert len(run.text) == 10_000_000
    assert set(run.text) == {"x"}


def test_a_line_that_is_not_json_is_logged_and_skipped(profile, hermes_home) -> None:
    run = chat("malformed", profile())
    assert run.status == "done"
    assert run.text == "ab"
    log = (hermes_home / "agents" / "scripted.log").read_text()
    assert "ignored a stdout line that is not JSON-RPC: 'this is not json'" in log
    assert "ignored a stdout line that is not JSON-RPC: '[1, 2]'" in log


def test_a_stored_session_keeps_its_acp_session(profile) -> None:
    p = profile()
    session = hermes_nb.Session.new("acp-memory", profile=p)
    session.chat("echo first", profile=p).wait(WAIT)
    run = session.chat("remember", profile=p).wait(WAIT)
    assert run.text == "echo first"  # the agent's own session saw the first prompt
    other = hermes_nb.Session.new("acp-other", profile=p)
    assert other.chat("remember", profile=p).wait(WAIT).text == "(nothing)"


def test_a_long_session_is_not_compressed_away_from_the_agents_memory(write_config, folder) -> None:
    # Past the profile's window (10 tokens) from the first reply: a model's session would be
    # compressed into a continuation once it has more than 6 messages, and the agent would see
    # the continuation as a new conversation. An acp profile's is not (auto_compress is false
    # unless set): the agent keeps its own context, and compacts it itself.
    command = json.dumps([sys.executable, AGENT])
    write_config(
        f"[profiles.agent]\ncommand = {command}\ncwd = {json.dumps(str(folder))}\n"
        "context_window = 10\n"
    )
    session = hermes_nb.Session.new("acp-long", profile="agent")
    prompts = [f"echo {i} " + " ".join(["long"] * 20) for i in range(5)]
    for prompt in prompts:
        session.chat(prompt).wait(WAIT)
        assert join_background(WAIT)
    assert not session.archived and hermes_nb.Session.open("acp-long") == session
    run = session.chat("remember").wait(WAIT)
    assert run.text == "\n".join(prompts)  # the agent's own session saw every prompt


def test_two_sessions_stream_at_once_through_one_agent(profile) -> None:
    p = profile()
    one = hermes_nb.Session.new("acp-one", profile=p)
    two = hermes_nb.Session.new("acp-two", profile=p)
    runs = [one.chat("chunks 3000", profile=p), two.chat("chunks 2000", profile=p)]
    for run in runs:
        run.wait(WAIT)
    assert runs[0].text == "".join(f"{i}," for i in range(3000))
    assert runs[1].text == "".join(f"{i}," for i in range(2000))
    assert [a.sessions for a in agents()] == [2]  # one process, an ACP session each


def test_a_new_acp_session_is_told_the_instructions_and_the_history(profile) -> None:
    p = profile()
    history = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
    ]
    run = chat("And times 3?", p, history=history, system="Answer in one word.")
    assert run.text == (
        "Instructions for this conversation (from the notebook):\n\nAnswer in one word.\n\n"
        "Earlier in this conversation (for context; it happened before you joined):\n\n"
        "User: What is 2 + 2?\n\nAssistant: 4.\n\nNow the user says:\n\nAnd times 3?"
    )
    assert chat("echo plain", p).text == "plain"  # nothing to tell: the prompt alone


# -- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("once", "option yes: ran"),
        ("session", "option yes-session: ran"),
        ("always", "option yes-always: ran"),  # not the session-scoped allow_always before it
        ("deny", "option no: not run"),
    ],
)
def test_a_permission_is_an_approval_card(profile, value: str, said: str) -> None:
    run = hermes_nb.chat("permit rm -rf build", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    assert prompt.kind == "approval"
    assert prompt.text == "Run a shell command"
    assert prompt.detail == "rm -rf build"
    assert run.answer(prompt.id, value)
    run.wait(WAIT)
    assert run.text == said
    assert run.tool_calls["run-1"]["error"] is (value == "deny")


def test_a_permission_answered_with_one_of_the_agents_own_options(profile) -> None:
    run = hermes_nb.chat("permit make install", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    # The card's buttons are the agent's own options, by their names; the four are answers too.
    assert [(o.value, o.label, o.allows) for o in prompt.options] == [
        ("yes", "Allow", True),
        ("yes-session", "For this session", True),
        ("yes-always", "Always allow", True),
        ("no", "Reject", False),
    ]
    html = ask_html(prompt.to_event())
    assert re.findall(r'data-answer="([^"]+)">([^<]+)</button>', html) == [
        ("yes", "Allow"),
        ("yes-session", "For this session"),
        ("yes-always", "Always allow"),
        ("no", "Reject"),
    ]
    assert run.refusal(prompt.id, "maybe") == (
        "'maybe' is not an approval answer; answer with exactly one of: once, session, always, "
        "deny, or one of the agent's own options: yes, yes-session, yes-always, no."
    )
    assert not run.answer(prompt.id, "maybe")
    assert run.answer(prompt.id, "no")
    assert run.wait(WAIT).text == "option no: not run"
    (asked,) = run.prompt_record()
    assert decision("approval", asked["value"], asked["by"], asked["options"]) == (
        "Reject",
        "by you",
    )
    assert 'data-verdict="denied"' in ask_html(asked)


def test_a_permission_past_its_deadline_is_rejected(profile) -> None:
    run = chat("permit make clean", profile(prompt_timeout=0.2))
    assert run.text == "option no: not run"
    assert [d["by"] for _, d in events(run, "prompt_answered")] == ["timeout"]


def test_stop_during_a_permission_answers_cancelled(profile, folder) -> None:
    record = folder.parent / "record.txt"
    p = profile("--record", str(record))
    run = hermes_nb.chat("permit rm -rf /", profile=p)
    wait_until(lambda: bool(run.pending))
    run.cancel()
    run.wait(WAIT)
    assert run.status == "stopped"
    assert run.text == ""
    wait_until(lambda: "session/cancel" in record.read_text())
    # The permission was answered (cancelled) and the agent never ran the command.
    assert chat("echo after", p).text == "after"


# -- files ------------------------------------------------------------------------------------


def test_reading_inside_the_folder_and_refusing_outside(profile, folder, tmp_path) -> None:
    (folder / "data.txt").write_text("inside\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    p = profile()
    assert chat(f"read {folder / 'data.txt'}", p).text == "inside\n"
    refused = chat(f"read {tmp_path / 'secret.txt'}", p).text
    assert refused == (
        f"error: hermes_nb refused to read {tmp_path / 'secret.txt'}: it is outside "
        f"{folder}, the folder this agent may use (the profile's cwd)."
    )
    sneaky = chat(f"read {folder}/../secret.txt", p).text
    assert sneaky.startswith("error: hermes_nb refused to read")
    (folder / "lines.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    assert chat(f"read-lines {folder / 'lines.txt'} 3 2", p).text == "line 3\nline 4\n"
    missing = chat(f"read {folder / 'nope.txt'}", p).text
    assert missing == f"error: hermes_nb cannot read {folder / 'nope.txt'}: there is no such file."


@pytest.mark.parametrize("value", ["once", "deny"])
def test_writing_a_file_goes_through_an_approval_with_the_diff(profile, folder, value) -> None:
    target = folder / "out.txt"
    target.write_text("old line\n")
    run = hermes_nb.chat(f"write {target} new line", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    assert prompt.text == f"Write {target}"
    assert "-old line\n" in prompt.detail
    assert "+new line" in prompt.detail
    run.answer(prompt.id, value)
    run.wait(WAIT)
    if value == "once":
        assert run.text == "written"
        assert target.read_text() == "new line"
    else:
        assert run.text == f"error: The person at the notebook did not allow writing {target}."
        assert target.read_text() == "old line\n"


# -- Stop -------------------------------------------------------------------------------------


def test_stop_sends_cancel_and_settles_at_once(profile, folder) -> None:
    record = folder.parent / "record.txt"
    run = hermes_nb.chat("hang", profile=profile("--record", str(record)))
    wait_until(lambda: run.text == "waiting")
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    assert run.text == "waiting"
    wait_until(lambda: "session/cancel" in record.read_text(), timeout=2)


def test_an_agent_that_ignores_cancel_is_left_behind_then_restarted(profile) -> None:
    p = profile()
    run = hermes_nb.chat("ignore-cancel", profile=p)
    wait_until(lambda: run.text == "ignoring")
    first = pid_of()
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    time.sleep(0.3)  # the agent keeps sending for that turn: none of it reaches the run
    assert run.text == "ignoring"
    after = chat("echo fresh", p)
    assert after.text == "fresh"
    assert pid_of() != first  # it never answered the stopped prompt: restarted
    wait_until(lambda: not alive(first), timeout=5)
