"""The person-in-the-loop prompt broker: real threads, a real asyncio loop, no mocks of the broker.

The broker is one per run: a run asks (``ask`` on the loop, ``ask_blocking`` on a worker thread)
and a person answers from another thread. These tests pin the lifecycle (open, answer, deadline,
Stop, shutdown), the refusals a person sees, and the concurrency promises: the first answer wins
exactly once, ``"prompt"`` is journaled before its ``"prompt_answered"``, ``emit`` may re-enter.
Shared helpers: ``prompt_support.py``.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import threading
import time
from typing import Any

import pytest
from prompt_support import (
    Asker,
    FakeClock,
    Journal,
    assert_one_sentence,
    open_blocking,
    until,
    wait_until,
)

from hermes_nb.engine.prompts import (
    APPROVAL_VALUES,
    NO_ANSWER,
    Answer,
    Option,
    Prompt,
    PromptBroker,
)

# -- asking and answering ------------------------------------------------------------------------


def test_async_ask_is_answered_from_another_thread() -> None:
    journal = Journal()
    broker = PromptBroker(journal)

    async def main() -> tuple[Prompt, Answer]:
        task = asyncio.create_task(broker.ask("approval", "Run a shell command", "rm -rf /tmp/x"))
        await until(lambda: broker.waiting)
        prompt = broker.pending[0]
        person = threading.Thread(target=broker.answer, args=(prompt.id, "once", "view"))
        person.start()
        answer = await asyncio.wait_for(task, 2)
        person.join()
        return prompt, answer

    prompt, answer = asyncio.run(main())
    assert answer == Answer(prompt.id, "once", "view")
    assert (prompt.kind, prompt.detail, prompt.choices) == (
        "approval",
        "rm -rf /tmp/x",
        APPROVAL_VALUES,
    )
    assert journal.snapshot() == [
        ("prompt", prompt.to_event()),
        ("prompt_answered", {"id": prompt.id, "value": "once", "by": "view"}),
    ]
    assert not broker.waiting
    assert broker.get(prompt.id) == prompt


def test_blocking_ask_is_answered_from_another_thread() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    asker, prompt = open_blocking(
        broker, journal, "question", "Which dataset?", choices=["train", "test"]
    )
    assert broker.waiting
    assert asker.is_alive()

    assert broker.answer(prompt.id, "test", by="magic") is True
    assert asker.outcome() == Answer(prompt.id, "test", "magic")
    assert [name for name, _ in journal.snapshot()] == ["prompt", "prompt_answered"]
    assert journal.answered() == [{"id": prompt.id, "value": "test", "by": "magic"}]


def test_prompt_event_payload_id_and_deadline() -> None:
    clock = FakeClock()
    journal = Journal()
    broker = PromptBroker(journal, timeout=30, clock=clock)
    asker, prompt = open_blocking(broker, journal, "question", "Name?", cancelled=threading.Event())

    assert re.fullmatch(r"p1-[0-9a-f]{6}", prompt.id)
    assert prompt.deadline == clock.now + 30
    assert prompt.to_event() == {
        "id": prompt.id,
        "kind": "question",
        "text": "Name?",
        "detail": "",
        "choices": [],
        "deadline": clock.now + 30,
    }
    assert journal.snapshot() == [("prompt", prompt.to_event())]
    broker.close("stop")
    asker.outcome()

    for no_deadline in (None, 0):
        other = PromptBroker(Journal(), timeout=no_deadline)
        asker, prompt = open_blocking(other, None, "question", "Name?")
        assert prompt.deadline is None
        other.close("stop")
        asker.outcome()


def test_pending_is_oldest_first_and_empty_after() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    opened = [open_blocking(broker, journal, "question", f"Question {i}?") for i in range(3)]
    prompts = [prompt for _, prompt in opened]

    assert broker.pending == prompts
    assert len({p.id for p in prompts}) == 3
    # Answer out of order: what stays pending keeps its order.
    assert broker.answer(prompts[1].id, "b")
    assert broker.pending == [prompts[0], prompts[2]]
    assert broker.answer(prompts[2].id, "c")
    assert broker.answer(prompts[0].id, "a")
    assert [asker.outcome().value for asker, _ in opened] == ["a", "b", "c"]
    assert broker.pending == []
    assert not broker.waiting
    assert broker.get(prompts[0].id) == prompts[0]  # answered prompts stay known


def race_answers(broker: PromptBroker, prompt_id: str, values: list[str]) -> list[bool]:
    """Answer from one thread per value, all released at the same moment by a barrier."""
    barrier = threading.Barrier(len(values))
    results: list[bool] = []
    lock = threading.Lock()

    def person(value: str) -> None:
        barrier.wait()
        ok = broker.answer(prompt_id, value, by="view")
        with lock:
            results.append(ok)

    threads = [threading.Thread(target=person, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2)
    return results


@pytest.mark.parametrize("kind", ["approval", "question"])
def test_first_answer_wins_under_ten_racing_threads(kind: str) -> None:
    for _ in range(10):
        journal = Journal()
        broker = PromptBroker(journal)
        asker, prompt = open_blocking(broker, journal, kind, "Proceed?", "tool(x=1)")
        values = [APPROVAL_VALUES[i % 4] if kind == "approval" else f"reply {i}" for i in range(10)]

        results = race_answers(broker, prompt.id, values)

        assert len(results) == 10
        assert results.count(True) == 1
        answered = journal.answered()
        assert len(answered) == 1
        assert answered[0]["value"] in values
        assert answered[0] == {"id": prompt.id, "value": answered[0]["value"], "by": "view"}
        assert asker.outcome() == Answer(prompt.id, answered[0]["value"], "view")


# -- refusals ------------------------------------------------------------------------------------

REFUSALS = [
    # case, kind, value, words the sentence must contain
    ("second answer", "approval", "deny", ["already answered", "'once'", "chat view"]),
    ("unknown id", "approval", "once", ["p999-000000"]),
    ("past deadline", "approval", "once", ["deadline", "'deny'"]),
    ("empty", "approval", "", ["empty", *APPROVAL_VALUES]),
    ("blank", "question", "   \t", ["empty", "red", "green"]),
    ("wrong approval value", "approval", "yes", ["'yes'", *APPROVAL_VALUES]),
    ("not a string", "approval", 1, ["text", "int"]),
    ("None", "question", None, ["text", "NoneType"]),
]


@pytest.mark.parametrize(("case", "kind", "value", "words"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_answers_change_and_emit_nothing(
    case: str, kind: str, value: Any, words: list[str]
) -> None:
    clock = FakeClock()
    journal = Journal()
    broker = PromptBroker(journal, timeout=60, clock=clock)
    asker, prompt = open_blocking(
        broker,
        journal,
        kind,
        "Go on?",
        "tool(x=1)",
        choices=("red", "green") if kind == "question" else (),
    )
    prompt_id = prompt.id
    if case == "second answer":
        assert broker.answer(prompt_id, "once", by="view")
        wait_until(lambda: len(journal.answered()) == 1)  # the asker thread may deliver it
    elif case == "unknown id":
        prompt_id = "p999-000000"
    elif case == "past deadline":
        clock.skew[threading.get_ident()] = 61
    before = journal.snapshot()
    still_open = broker.pending

    reason = assert_one_sentence(broker.refusal(prompt_id, value))
    for word in words:
        assert word in reason
    assert broker.answer(prompt_id, value, by="view") is False
    assert journal.snapshot() == before
    assert broker.pending == still_open

    broker.close("stop")
    answer = asker.outcome()
    assert answer.by == ("view" if case == "second answer" else "stop")


def test_refusal_is_none_for_acceptable_answers() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    asker, approval = open_blocking(broker, journal, "approval", "Delete?", "rm x")
    asker2, question = open_blocking(
        broker, journal, "question", "Colour?", choices=("red", "green")
    )
    for value in APPROVAL_VALUES:
        assert broker.refusal(approval.id, value) is None
    for value in ("red", "  a colour of my own "):
        assert broker.refusal(question.id, value) is None
    broker.close("stop")
    asker.outcome(), asker2.outcome()


def test_an_approval_may_offer_the_askers_own_options_as_its_answers() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    own = (Option("ok", "Allow", True), Option("nope", "Reject", False))
    asker, prompt = open_blocking(broker, journal, "approval", "Run it?", "make", options=own)
    assert prompt.options == own and prompt.choices == APPROVAL_VALUES
    event = journal.snapshot()[0][1]
    assert event["options"] == [
        {"value": "ok", "label": "Allow", "allows": True},
        {"value": "nope", "label": "Reject", "allows": False},
    ]
    for value in ("ok", "nope", *APPROVAL_VALUES):
        assert broker.refusal(prompt.id, value) is None
    refused = broker.refusal(prompt.id, "maybe")
    assert refused is not None and "ok, nope" in refused
    assert broker.answer(prompt.id, "ok", by="view")
    assert asker.outcome() == Answer(prompt.id, "ok", "view")
    with pytest.raises(ValueError, match="only an approval takes options"):
        broker._register("question", "Colour?", "", (), own)
    with pytest.raises(ValueError, match="distinct values"):
        broker._register("approval", "Run?", "make", (), (own[0], own[0]))


def test_question_accepts_a_choice_and_free_text() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    asker, prompt = open_blocking(broker, journal, "question", "Colour?", choices=("red", "green"))
    assert prompt.choices == ("red", "green")
    assert broker.answer(prompt.id, "green")
    assert asker.outcome().value == "green"

    asker, prompt = open_blocking(broker, journal, "question", "Colour?", choices=("red", "green"))
    assert broker.answer(prompt.id, "  something blue \n", by="view")
    assert asker.outcome() == Answer(prompt.id, "something blue", "view")
    assert journal.answered()[-1] == {"id": prompt.id, "value": "something blue", "by": "view"}


# -- the broker answering for the person ---------------------------------------------------------


def test_timeout_denies_an_async_approval() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=0.05)

    answer = asyncio.run(asyncio.wait_for(broker.ask("approval", "Delete?", "rm -rf /tmp/x"), 2))

    assert (answer.value, answer.by) == ("deny", "timeout")
    assert journal.answered() == [{"id": answer.prompt_id, "value": "deny", "by": "timeout"}]
    assert not broker.waiting
    late = assert_one_sentence(broker.refusal(answer.prompt_id, "once"))
    assert "already answered" in late and "deadline" in late
    assert broker.answer(answer.prompt_id, "once") is False


def test_timeout_gives_a_blocking_question_no_answer() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=0.05)
    asker = Asker(broker, "question", "Which file?")
    asker.start()
    answer = asker.outcome()
    assert (answer.value, answer.by) == (NO_ANSWER, "timeout")
    assert journal.answered() == [{"id": answer.prompt_id, "value": NO_ANSWER, "by": "timeout"}]


def test_cancelling_the_async_asker_closes_the_prompt_with_stop() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=None)

    async def main() -> Prompt:
        task = asyncio.create_task(broker.ask("approval", "Delete?", "rm -rf /tmp/x"))
        await until(lambda: broker.waiting)
        prompt = broker.pending[0]
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return prompt

    prompt = asyncio.run(main())
    assert journal.answered() == [{"id": prompt.id, "value": "deny", "by": "stop"}]
    assert broker.pending == []
    assert "Stop" in assert_one_sentence(broker.refusal(prompt.id, "once"))
    assert broker.answer(prompt.id, "once") is False


def test_cancelled_event_closes_a_blocking_prompt_with_stop() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=None)
    cancelled = threading.Event()
    asker, prompt = open_blocking(broker, journal, "question", "Which?", cancelled=cancelled)
    cancelled.set()
    assert asker.outcome() == Answer(prompt.id, NO_ANSWER, "stop")
    assert journal.answered() == [{"id": prompt.id, "value": NO_ANSWER, "by": "stop"}]


def test_close_shutdown_answers_a_blocked_thread() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=None)
    asker_q, question = open_blocking(broker, journal, "question", "Which?")
    asker_a, approval = open_blocking(broker, journal, "approval", "Delete?", "rm x")

    closed = broker.close("shutdown")

    assert closed == [
        Answer(question.id, NO_ANSWER, "shutdown"),
        Answer(approval.id, "deny", "shutdown"),
    ]
    assert asker_q.outcome() == closed[0]
    assert asker_a.outcome() == closed[1]
    assert journal.answered() == [
        {"id": question.id, "value": NO_ANSWER, "by": "shutdown"},
        {"id": approval.id, "value": "deny", "by": "shutdown"},
    ]
    assert not broker.waiting
    assert "shutting down" in assert_one_sentence(broker.refusal(approval.id, "once"))
    assert broker.answer(approval.id, "once") is False
    assert broker.close("shutdown") == []


def test_ask_after_close_is_answered_at_once() -> None:
    journal = Journal()
    broker = PromptBroker(journal, timeout=None)
    assert broker.close("stop") == []

    started = time.monotonic()
    blocking = broker.ask_blocking("question", "Still there?")
    async_answer = asyncio.run(asyncio.wait_for(broker.ask("approval", "Delete?", "rm x"), 2))
    assert time.monotonic() - started < 0.5

    assert (blocking.value, blocking.by) == (NO_ANSWER, "stop")
    assert (async_answer.value, async_answer.by) == ("deny", "stop")
    # The journal still shows what was asked, and that Stop answered it.
    assert [name for name, _ in journal.snapshot()] == ["prompt", "prompt_answered"] * 2
    assert not broker.waiting


def test_on_change_reports_waiting_after_every_open_and_answer() -> None:
    journal = Journal()
    broker = PromptBroker(journal)
    calls: list[bool] = []
    broker.on_change = calls.append

    asker1, first = open_blocking(broker, journal, "question", "One?")
    wait_until(lambda: calls == [True])
    asker2, second = open_blocking(broker, journal, "question", "Two?")
    wait_until(lambda: calls == [True, True])
    assert broker.answer(first.id, "1")
    asker1.outcome()
    assert calls == [True, True, True]
    assert broker.answer(second.id, "2")
    asker2.outcome()
    assert calls == [True, True, True, False]


def test_answer_wakes_the_async_waiter_quickly() -> None:
    broker = PromptBroker(Journal())
    latencies: list[float] = []

    async def main() -> None:
        for i in range(50):
            task = asyncio.create_task(broker.ask("question", f"Question {i}?"))
            await until(lambda: broker.waiting)
            prompt_id = broker.pending[0].id
            sent: list[float] = []

            def person(prompt_id: str = prompt_id, sent: list[float] = sent) -> None:
                sent.append(time.perf_counter())
                assert broker.answer(prompt_id, "ok", by="view")

            thread = threading.Thread(target=person)
            thread.start()
            answer = await asyncio.wait_for(task, 2)
            latencies.append(time.perf_counter() - sent[0])
            thread.join()
            assert answer.value == "ok"

    asyncio.run(main())
    assert len(latencies) == 50
    # Typically well under a millisecond; the bound is loose so a busy CI box cannot flake it.
    assert max(latencies) < 0.5, f"median {statistics.median(latencies) * 1000:.2f} ms"


# -- concurrency contracts -----------------------------------------------------------------------


def test_ask_blocking_refuses_a_thread_with_a_running_loop() -> None:
    journal = Journal()
    broker = PromptBroker(journal)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="ask"):
            broker.ask_blocking("question", "Which?")

    asyncio.run(main())
    assert journal.snapshot() == []
    assert broker.pending == []


def test_emit_may_re_enter_the_broker() -> None:
    """``emit`` reads the broker, and even answers from inside the "prompt" event (think of a
    journal hook): no deadlock, and the answer's event still comes after the prompt's."""
    seen: list[tuple[str, list[str], bool, str]] = []
    broker: PromptBroker

    def emit(name: str, payload: dict[str, Any]) -> None:
        seen.append((name, [p.id for p in broker.pending], broker.waiting, payload["id"]))
        if name == "prompt":
            assert broker.refusal(payload["id"], "that one") is None
            assert broker.answer(payload["id"], "that one", by="api") is True

    broker = PromptBroker(emit)
    asker = Asker(broker, "question", "Which?")
    asker.start()
    answer = asker.outcome()
    assert answer.value == "that one"
    assert seen == [
        ("prompt", [answer.prompt_id], True, answer.prompt_id),
        ("prompt_answered", [], False, answer.prompt_id),
    ]


def test_prompt_is_journaled_before_an_answer_that_races_its_opening() -> None:
    """A person (or Stop) answering while the "prompt" event is still being journaled must not
    get its "prompt_answered" into the journal first."""
    journal = Journal()
    in_emit, release = threading.Event(), threading.Event()

    def slow_emit(name: str, payload: dict[str, Any]) -> None:
        if name == "prompt":
            in_emit.set()
            assert release.wait(2)
        journal(name, payload)  # the journal write happens at the end of emit

    broker = PromptBroker(slow_emit)
    asker = Asker(broker, "approval", "Delete?", "rm x")
    asker.start()
    assert in_emit.wait(2)
    prompt = broker.pending[0]
    assert broker.answer(prompt.id, "session", by="view") is True
    assert broker.answer(prompt.id, "deny", by="view") is False
    release.set()

    assert asker.outcome() == Answer(prompt.id, "session", "view")
    assert journal.snapshot() == [
        ("prompt", prompt.to_event()),
        ("prompt_answered", {"id": prompt.id, "value": "session", "by": "view"}),
    ]


def test_a_failing_emit_leaves_no_prompt_open() -> None:
    class JournalDown(Exception):
        pass

    answered: list[dict[str, Any]] = []

    def emit(name: str, payload: dict[str, Any]) -> None:
        if name == "prompt":
            raise JournalDown
        answered.append(payload)

    broker = PromptBroker(emit)
    with pytest.raises(JournalDown):
        broker.ask_blocking("question", "Which?")
    assert broker.pending == []
    assert not broker.waiting
    assert [(a["value"], a["by"]) for a in answered] == [(NO_ANSWER, "stop")]


def test_invalid_calls_are_programming_errors() -> None:
    broker = PromptBroker(Journal())
    with pytest.raises(ValueError, match="kind"):
        broker.ask_blocking("poll", "Which?")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="detail"):
        broker.ask_blocking("approval", "Delete?")
    with pytest.raises(ValueError, match="text"):
        broker.ask_blocking("question", "  ")
    with pytest.raises(ValueError, match="choices"):
        broker.ask_blocking("approval", "Delete?", "rm x", choices=("yes", "no"))
    with pytest.raises(ValueError, match="by"):
        broker.answer("p1-000000", "once", by="timeout")
    with pytest.raises(ValueError, match="stop"):
        broker.close("view")
    with pytest.raises(ValueError, match="timeout"):
        PromptBroker(Journal(), timeout=-1)
    assert broker.pending == []
