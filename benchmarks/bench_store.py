"""Session store benchmarks: appends stay O(1), loading costs about what parsing JSON costs.

Run it as ``.venv/bin/python benchmarks/bench_store.py`` (a few seconds). Both figures are ratios
against a baseline measured in the same run. Times are this process's CPU time
(``time.process_time``): both sides are single-threaded and CPU-bound, and on a shared machine
wall-clock time mostly measures the scheduler.

a. load: ``Store.messages()`` of a 10,000-message session (every column, JSON decoded) versus
   ``json.loads`` of the same messages as one JSON document. Best of several rounds.
   Target ≤ 2×.
b. append: one turn's writes — ``begin_turn`` (the prompt, the run row, the claim) plus
   ``settle_turn`` (the reply, usage, the run's end), two transactions — on a session holding
   10,000 messages versus one holding 10. Reading the history to send is not part of it (that is
   inherently proportional to the history). Turns alternate between the two sessions; median of
   each. Target ≤ 1.5×.

Exit status 0 when every target is met.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

from _common import Report, median, use_tests_dir  # benchmarks/ is sys.path[0]

use_tests_dir()

from hermes_nb.store import NewMessage, Store  # noqa: E402

BIG = 10_000
SMALL = 10
TURNS = 300
LOAD_ROUNDS = 11
_WORDS = [
    "the",
    "merge",
    "is",
    "slow",
    "because",
    "rebase",
    "conflicts",
    "stash",
    "index",
    "tree",
    "blob",
    "commit",
    "pack",
]


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _conversation(rng: random.Random, count: int) -> list[NewMessage]:
    """Alternating prompts and replies; replies carry usage metadata, some reasoning."""
    out = []
    for i in range(count):
        if i % 2 == 0:
            out.append(NewMessage("user", _text(rng, rng.randint(8, 40))))
        else:
            out.append(
                NewMessage(
                    "assistant",
                    _text(rng, rng.randint(40, 160)),
                    reasoning=_text(rng, 30) if i % 10 == 1 else None,
                    metadata={"model": "m", "usage": {"prompt_tokens": i, "completion_tokens": 90}},
                )
            )
    return out


def _fill(store: Store, session_id: str, messages: list[NewMessage]) -> None:
    for start in range(0, len(messages), 1000):
        store.append_messages(session_id, messages[start : start + 1000])


def _turn(store: Store, session_id: str, n: int, rng: random.Random) -> float:
    t0 = time.process_time()
    store.begin_turn(
        session_id,
        run_id=f"{session_id}-{n}",
        stream_id=f"s-{session_id}-{n}",
        prompt=_text(rng, 20),
        profile="bench",
        model="m",
    )
    store.settle_turn(
        session_id,
        run_id=f"{session_id}-{n}",
        stream_id=f"s-{session_id}-{n}",
        state="done",
        messages=[NewMessage("assistant", _text(rng, 100), metadata={"model": "m"})],
        usage={"prompt_tokens": 10, "completion_tokens": 100},
    )
    return time.process_time() - t0


def main() -> int:
    report = Report()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "sessions.db")
        small = store.create_session(name="small").id
        big = store.create_session(name="big").id
        _fill(store, small, _conversation(rng, SMALL))
        _fill(store, big, _conversation(rng, BIG))
        messages = store.messages(big)
        document = json.dumps([m.to_dict() for m in messages])
        load_times, parse_times = [], []
        for _ in range(LOAD_ROUNDS):
            t0 = time.process_time()
            loaded = store.messages(big)
            load_times.append(time.process_time() - t0)
            t0 = time.process_time()
            parsed = json.loads(document)
            parse_times.append(time.process_time() - t0)
        assert len(loaded) == len(parsed) == len(messages)
        report.ratio(
            f"load {len(messages):,} messages vs json.loads", min(load_times), min(parse_times), 2.0
        )
        for n in range(20):  # warm up caches on both sides
            _turn(store, small, -n - 1, rng)
            _turn(store, big, -n - 1, rng)
        small_times, big_times = [], []
        for n in range(TURNS):
            small_times.append(_turn(store, small, n, rng))
            big_times.append(_turn(store, big, n, rng))
        report.ratio(
            f"append a turn at {BIG:,} vs {SMALL} messages",
            median(big_times),
            median(small_times),
            1.5,
        )
        store.close()
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
