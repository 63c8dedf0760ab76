"""Prompts (approvals and questions) in the view, and the tool loop as one conversation.

A card is one block upserted from open to decided, replayed once to a reloaded view, answered by
checked messages only, decided by a deadline or Stop, and shown as text, never HTML; a tool loop's
segments read in order, live and saved; prompts in the static bundle and the plain stream.
"""

from __future__ import annotations

import io
import re
import threading
import time
from typing import Any

from kernel_harness import ViewState
from widget_support import (
    LISTEN_WAIT,
    QUESTION,
    RecordingComm,
    final_blocks,
    fixture_asked_first,  # noqa: F401  (asked_first: comms, with the kernel's wait for a view)
    fixture_comms,  # noqa: F401  (comms: every ChatWidget's comm recorded)
    live,
    live_frames,
    reassembled,
    settle,
    the_comm,
)

import hermes_nb
from hermes_nb.view import display as view
from hermes_nb.view._blocks import Transcript
from hermes_nb.view._protocol import parse_view_msg, segment_of


def deleted() -> tuple[Any, list[str]]:
    """An ``ask=True`` tool and the paths it was really called with."""
    calls: list[str] = []

    @hermes_nb.tool(ask=True)
    def delete(path: str) -> str:
        """Delete a file."""
        calls.append(path)
        return f"deleted {path}"

    return delete, calls


def wait_pending(run: hermes_nb.Run, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while not run.pending:
        assert time.monotonic() < deadline, "the run never asked"
        time.sleep(0.005)
    return run.pending[0]


def wait_frame_with(controller: view._Controller, predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for _, f in live_frames(controller):
            if predicate(f):
                return f
        assert time.monotonic() < deadline, "no such frame"
        time.sleep(0.005)


def asks(blocks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {k: v["html"] for k, v in blocks.items() if v["kind"] == "ask"}


def test_a_held_card_goes_out_at_the_wait_though_no_event_follows_it(
    asked_first: list[RecordingComm],
) -> None:
    # The card waits for its answer, so no event follows it; a view that could not ask (its
    # request behind a busy shell) still gets the card, whole, once LISTEN_WAIT is over.
    started = time.monotonic()
    controller = live("pick", tools=["ask_user"], tool_calls=[QUESTION], delay=0.001)
    frame = wait_frame_with(controller, lambda f: f["status"] == "waiting", timeout=5)
    assert time.monotonic() - started >= LISTEN_WAIT * 0.9
    assert frame["prev"] == 0 and len(asks(reassembled([frame]).visible())) == 1
    assert len(live_frames(controller)) == 1, "held, then one whole frame"
    controller.run.cancel()
    settle(controller)


def test_a_question_is_one_card_upserted_from_open_to_decided(
    comms: list[RecordingComm],
) -> None:
    controller = live("pick", tools=["ask_user"], tool_calls=[QUESTION], delay=0.001)
    run = controller.run
    prompt = wait_pending(run)
    key = f"ask:{prompt.id}"
    opened = wait_frame_with(controller, lambda f: any(b["id"] == key for b in f["blocks"]))
    card = next(b for b in opened["blocks"] if b["id"] == key)
    assert card["kind"] == "ask"
    html = card["html"]
    assert 'data-state="open"' in html and 'role="group"' in html
    assert f'aria-labelledby="hnb-ask-{prompt.id}"' in html and f'id="hnb-ask-{prompt.id}"' in html
    assert "Which colour?" in html
    for choice in ("red", "blue"):
        assert f'data-prompt="{prompt.id}" data-answer="{choice}">{choice}</button>' in html
    assert 'aria-label="Your answer"' in html and ">Send</button>" in html
    assert 'class="hnb-countdown" role="timer" data-deadline="' in html
    # The status line says the run waits for the person, on the same frames.
    waiting = wait_frame_with(controller, lambda f: f["status"] == "waiting")
    assert (
        "Waiting for you"
        in reassembled(
            [f for _, f in live_frames(controller) if f["seq"] <= waiting["seq"]]
        ).blocks["status"]["html"]
    )

    the_comm(controller).deliver({"type": "answer", "prompt_id": prompt.id, "value": "blue"})
    settle(controller)
    assert run.prompt_record()[0]["value"] == "blue"
    assert run.prompt_record()[0]["by"] == "view"
    frames = [f for _, f in live_frames(controller)]
    sent = [f for f in frames if any(b["id"] == key for b in f["blocks"])]
    assert len(sent) == 2, "sent when it opened and when it was answered, never per tick"
    versions = [reassembled([f for f in frames if f["seq"] <= s["seq"]]).blocks[key] for s in sent]
    assert [v["kind"] for v in versions] == ["ask", "ask"]
    versions = [v["html"] for v in versions]
    assert 'data-state="open"' in versions[0] and 'data-state="decided"' in versions[1]
    decided = versions[1]
    assert "Answered “blue” — by you" in decided and 'aria-live="polite"' in decided
    assert "<button" not in decided and "<input" not in decided
    state = reassembled(frames)
    assert list(asks(state.visible())) == [key]
    assert state.visible() == final_blocks(run)
    assert "blue" in run.text  # the model got the answer as the tool's result


def test_replay_while_waiting_shows_the_card_once_and_then_its_decision(
    comms: list[RecordingComm],
) -> None:
    delete, calls = deleted()
    controller = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/tmp/x"}}]
    )
    run = controller.run
    prompt = wait_pending(run)
    wait_frame_with(controller, lambda f: f["status"] == "waiting")
    # A reload while waiting: a fresh view asks after=0 and gets the open card exactly once.
    fresh = ViewState()
    assert fresh.apply(controller.replay(0, "reload")) == "applied"
    cards = asks(fresh.visible())
    assert list(cards) == [f"ask:{prompt.id}"]
    card = cards[f"ask:{prompt.id}"]
    assert 'data-state="open"' in card
    assert '<pre class="hnb-ask-detail"><code>delete(path=&#x27;/tmp/x&#x27;)</code></pre>' in card
    labels = re.findall(r'data-answer="(\w+)">([^<]+)</button>', card)
    assert labels == [
        ("once", "Allow once"),
        ("session", "Allow for this session"),
        ("always", "Always allow"),
        ("deny", "Deny"),
    ]
    assert fresh.status == "waiting" and "Waiting for you" in fresh.blocks["status"]["html"]
    # The same replay again (a retry) changes nothing; answering replaces the card in place.
    before = fresh.visible()
    for b in controller.replay(0, "again")["blocks"]:
        fresh.blocks[b["id"]] = {"kind": b["kind"], "html": b["html"]}
    assert fresh.visible() == before
    the_comm(controller).deliver({"type": "answer", "prompt_id": prompt.id, "value": "once"})
    settle(controller)
    assert calls == ["/tmp/x"]
    assert fresh.apply(controller.replay(fresh.cursor, "later")) == "applied"
    cards = asks(fresh.visible())
    assert list(cards) == [f"ask:{prompt.id}"]
    assert "Allowed once — by you" in cards[f"ask:{prompt.id}"]
    assert fresh.visible() == final_blocks(run)
    assert run.prompt_record()[0]["by"] == "view"


def test_sight_messages_are_checked() -> None:
    for bad in (
        {"type": "sight"},
        {"type": "sight", "view": "a"},
        {"type": "sight", "view": "a", "seen": 1},
        {"type": "sight", "view": "", "seen": True},
        {"type": "sight", "view": "v" * 201, "seen": False},
        {"type": "sight", "view": ["a"], "seen": False},
    ):
        assert parse_view_msg(bad) is None, bad
    ok = {"type": "sight", "view": "a" * 200, "seen": False, "extra": 1}
    assert parse_view_msg(ok) == {"type": "sight", "view": "a" * 200, "seen": False}


def test_malformed_answer_messages_are_ignored(comms: list[RecordingComm]) -> None:
    for bad in (
        {"type": "answer"},
        {"type": "answer", "prompt_id": "p1", "value": None},
        {"type": "answer", "prompt_id": "", "value": "once"},
        {"type": "answer", "prompt_id": 3, "value": "once"},
        {"type": "answer", "prompt_id": "p" * 101, "value": "once"},
        {"type": "answer", "prompt_id": "p1", "value": "x" * 10_001},
        {"type": "answer", "prompt_id": "p1", "value": ["once"]},
    ):
        assert parse_view_msg(bad) is None, bad
    ok = {"type": "answer", "prompt_id": "p1-abc", "value": "x" * 10_000, "id": "ignored"}
    assert parse_view_msg(ok) == {"type": "answer", "prompt_id": "p1-abc", "value": "x" * 10_000}
    # Through the widget: malformed, unknown and wrong answers change nothing; the right one does.
    delete, calls = deleted()
    controller = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/a"}}]
    )
    run = controller.run
    prompt = wait_pending(run)
    c = the_comm(controller)
    for bad in (
        {"type": "answer", "prompt_id": prompt.id},
        {"type": "answer", "prompt_id": prompt.id, "value": "x" * 10_001},
        {"type": "answer", "prompt_id": "p9-000000", "value": "once"},
        {"type": "answer", "prompt_id": prompt.id, "value": "yes please"},
        {"type": "answer", "prompt_id": prompt.id, "value": ""},
    ):
        c.deliver(bad)
    assert [p.id for p in run.pending] == [prompt.id]
    c.deliver({"type": "answer", "prompt_id": prompt.id, "value": "deny"})
    c.deliver({"type": "answer", "prompt_id": prompt.id, "value": "once"})  # second: refused
    settle(controller)
    assert calls == []
    assert [(p["value"], p["by"]) for p in run.prompt_record()] == [("deny", "view")]
    assert "Denied — by you" in next(iter(asks(final_blocks(run)).values()))


def test_a_deadline_and_stop_decide_for_the_person_and_say_so(
    comms: list[RecordingComm],
) -> None:
    delete, calls = deleted()
    timed = live(
        "tidy",
        tools=[delete],
        tool_calls=[{"name": "delete", "arguments": {"path": "/a"}}],
        prompt_timeout=0.3,
    )
    settle(timed)
    [card] = asks(final_blocks(timed.run)).values()
    assert "Denied — time ran out" in card and 'data-verdict="denied"' in card
    question = live("pick", tools=["ask_user"], tool_calls=[QUESTION], prompt_timeout=0.3)
    settle(question)
    [card] = asks(final_blocks(question.run)).values()
    assert "No answer — time ran out" in card
    stopped = live(
        "tidy", tools=[delete], tool_calls=[{"name": "delete", "arguments": {"path": "/b"}}]
    )
    wait_pending(stopped.run)
    the_comm(stopped).deliver({"type": "cancel"})
    settle(stopped)
    assert stopped.run.status == "stopped" and calls == []
    state = reassembled([f for _, f in live_frames(stopped)])
    [card] = asks(state.visible()).values()
    assert "Denied — the run was stopped" in card
    assert state.status == "stopped" and "Task cancelled." in state.blocks["notice"]["html"]
    assert state.visible() == final_blocks(stopped.run)


def test_prompt_text_and_detail_are_shown_as_text_never_html(comms: list[RecordingComm]) -> None:
    delete, _ = deleted()
    hostile = '<img src=x onerror="alert(1)">'
    run = hermes_nb.chat(
        "x",
        profile="echo",
        tools=[delete, "ask_user"],
        tool_calls=[
            {"name": "delete", "arguments": {"path": hostile}},
            {"name": "ask_user", "arguments": {"question": hostile, "choices": [hostile]}},
        ],
        prompt_timeout=0.2,
    )
    wait_pending(run)
    live_cards = [h for kind, h in Transcript(run).consume(run.events()).values() if kind == "ask"]
    assert live_cards and all('data-state="open"' in h for h in live_cards)
    run.wait(30)
    blocks = Transcript(run).consume(run.events())
    cards = [html for kind, html in blocks.values() if kind == "ask"]
    assert len(cards) == 2
    for html in cards + live_cards:
        assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_tool_loop_steps_read_as_one_conversation(
    comms: list[RecordingComm], sse_server: Any
) -> None:
    from sse_server import Reply, content, finish, tool_call

    def lookup(city: str) -> str:
        """Look up the weather."""
        return f"Sunny in {city}"

    sse_server.enqueue(
        Reply(
            chunks=[
                content("Let me **check** the weather."),
                tool_call(0, id="call_w", name="lookup", arguments='{"city": "Oslo"}'),
                finish("tool_calls"),
            ],
            chunk_delay=0.01,
        ),
        Reply.text("It is sunny ", "in Oslo.", chunk_delay=0.01),
    )
    profile = hermes_nb.Profile(name="t", provider="openai", base_url=sse_server.url, model="m")
    run = hermes_nb.chat("Weather in Oslo?", profile=profile, tools=[lookup])
    controller = view._Controller(run)
    controller.start()
    settle(controller)
    assert run.status == "done", run.error
    state = reassembled([f for _, f in live_frames(controller)])
    blocks = state.visible()
    assert blocks == final_blocks(run)
    # Laid out by segment (the id says which), then reply, tools, cards within one.
    order = {"reply": 0, "tool": 1, "ask": 2}
    flow = sorted(
        (k for k, v in blocks.items() if v["kind"] in order),
        key=lambda k: (segment_of(k), order[blocks[k]["kind"]]),
    )
    assert flow == ["reply:0", "tool:call_w", "1/reply:0"]
    assert "Let me <strong>check</strong> the weather." in blocks["reply:0"]["html"]
    assert "Oslo" not in blocks["reply:0"]["html"]
    assert "It is sunny in Oslo." in blocks["1/reply:0"]["html"]
    tool = blocks["tool:call_w"]["html"]
    assert "lookup" in tool and "Sunny in Oslo" in tool and 'data-state="done"' in tool
    assert "Arguments" in tool and "Result" in tool and re.search(r"done · \d+ ms", tool)
    assert '<span class="nt">"city"</span>' in tool  # pretty, highlighted JSON arguments
    # The saved output lays the segments out in the same order: text, tool, text.
    data, _ = view.static_bundle(run)
    html = data["text/html"]
    first, call, second = (html.index(s) for s in ("Let me", "Sunny in Oslo", "It is sunny"))
    assert first < call < second
    assert html.count('class="hnb-seg"') == 2
    md = data["text/markdown"]
    assert md.index("Let me") < md.index("*Tool* `lookup`") < md.index("It is sunny")
    plain = data["text/plain"].splitlines()
    assert plain[2:] == [
        "Hermes: Let me **check** the weather.",
        "[tool lookup]",
        "Hermes: It is sunny in Oslo.",
    ]


def test_the_tool_step_limit_has_its_own_label(comms: list[RecordingComm]) -> None:
    run = hermes_nb.chat(
        "loop",
        profile="echo",
        tools=["ask_user"],
        tool_steps=[[QUESTION], [QUESTION], [QUESTION]],
        max_steps=1,
        prompt_timeout=0.05,
    ).wait(30)
    assert run.truncated and run.finish_reason == "max_steps"
    blocks = final_blocks(run)
    assert "Done — stopped at the tool-step limit" in blocks["status"]["html"]
    assert "tool loop reached its limit" in blocks["notice"]["html"]
    data, meta = view.static_bundle(run)
    assert data["text/plain"].startswith("Hermes (echo) · Done — stopped at the tool-step limit")
    assert meta["hermes_nb"]["finish_reason"] == "max_steps"


def _delete_then_ask(**options: Any) -> hermes_nb.Run:
    """A run of the offline model that asks to run ``delete`` (an approval), then a question."""
    delete, _ = deleted()
    return hermes_nb.chat(
        "tidy",
        profile="echo",
        tools=[delete],
        delay=0,
        tool_steps=[[{"name": "delete", "arguments": {"path": "/tmp/x"}}], [QUESTION]],
        **options,
    )


def test_static_bundle_records_each_prompt_and_its_answer() -> None:
    run = _delete_then_ask()
    run.answer(wait_pending(run).id, "once", by="magic")
    deadline = time.monotonic() + 10
    while not (run.pending and run.pending[0].kind == "question"):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    run.answer(run.pending[0].id, "blue")
    run.wait(30)
    data, _ = view.static_bundle(run)
    html, md, plain = data["text/html"], data["text/markdown"], data["text/plain"]
    assert html.count('class="hnb-ask"') == 2
    assert "<button" not in html and "<input" not in html  # decided: no live controls
    assert "Allowed once — by you" in html and "Answered “blue” — by you" in html
    assert (
        "> **Approval:** Allow the tool delete to run? `delete(path='/tmp/x')`"
        " — Allowed once, by you"
    ) in md
    assert "> **Question:** Which colour? — Answered “blue”, by you" in md
    lines = plain.splitlines()
    assert (
        "Approval: Allow the tool delete to run? delete(path='/tmp/x') — Allowed once, by you"
        in lines
    )
    assert "Question: Which colour? — Answered “blue”, by you" in lines
    assert lines.index("[tool delete]") > lines.index(
        "Approval: Allow the tool delete to run? delete(path='/tmp/x') — Allowed once, by you"
    )
    assert "p1-" not in plain and "p2-" not in plain  # stable: no prompt ids


def test_stream_plain_prints_each_prompt_with_how_to_answer_and_its_decision() -> None:
    run = _delete_then_ask(prompt_timeout=60)
    out = io.StringIO()
    seq = view.stream_plain(run, out, until_prompt=True)  # returns while the approval is open
    text = out.getvalue()
    assert text.endswith(
        "Approval needed: Allow the tool delete to run?\n"
        "    delete(path='/tmp/x')\n"
        "To answer: %hermes approve (allow once), %hermes approve session, "
        "%hermes approve always, or %hermes deny.\n"
        "After 60 s without an answer it is denied.\n"
    )
    assert run.pending and seq == max(e.seq for e in run.events() if e.event == "prompt")
    run.answer(run.pending[0].id, "session")
    question = io.StringIO()

    def answer_question() -> None:
        deadline = time.monotonic() + 10
        while not (run.pending and run.pending[0].kind == "question"):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        run.answer(run.pending[0].id, "blue")

    helper = threading.Thread(target=answer_question)
    helper.start()
    view.stream_plain(run, question, after_seq=seq)
    helper.join()
    rest = question.getvalue()
    assert rest.startswith("→ Allowed for this session, by you.\n[tool delete done]\n")
    assert (
        "Question: Which colour?\nChoices: red, blue\nTo answer: %hermes answer VALUE.\n"
        "After 60 s without an answer the model goes on without one.\n"
        "→ Answered “blue”, by you.\n"
    ) in rest
    assert "Approval needed" not in rest  # nothing printed twice
