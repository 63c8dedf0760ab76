"""RunJournal: gap-free seq, exact ``since``, compaction that changes nothing observable."""

from __future__ import annotations

import random
import threading

from hermes_nb.core.journal import RunJournal


def test_invariant_1_seq_is_gap_free_from_one() -> None:
    journal = RunJournal()
    seqs = [journal.append("token", {"text": str(i)}) for i in range(100)]
    assert seqs == list(range(1, 101))
    assert [e.seq for e in journal.since(0)] == seqs
    assert journal.last_seq == 100


def test_invariant_1_seq_gap_free_under_concurrent_producers() -> None:
    journal = RunJournal()
    per_thread, threads = 2000, 8
    barrier = threading.Barrier(threads)

    def produce(tid: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            journal.append("token", {"text": f"{tid}:{i};"})

    workers = [threading.Thread(target=produce, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    entries = journal.since(0)
    assert [e.seq for e in entries] == list(range(1, per_thread * threads + 1))
    # every produced item is there exactly once, and each producer's order is kept
    seen: dict[int, list[int]] = {}
    for e in entries:
        tid, i = e.data["text"].rstrip(";").split(":")
        seen.setdefault(int(tid), []).append(int(i))
    assert all(v == list(range(per_thread)) for v in seen.values())


def test_since_returns_exactly_what_follows() -> None:
    journal = RunJournal()
    for i in range(50):
        journal.append(
            "token" if i % 3 else "status", {"text": f"t{i}"} if i % 3 else {"state": "x"}
        )
    everything = journal.since(0)
    for after in range(52):
        got = journal.since(after)
        assert got == everything[after:], after
    assert journal.since(50) == []
    assert journal.since(10_000) == []


def _fill(journal: RunJournal, rng: random.Random) -> None:
    names = ["token"] * 6 + ["reasoning"] * 3 + ["tool_start", "usage", "status"]
    for _ in range(3000):
        name = rng.choice(names)
        if name in ("token", "reasoning"):
            journal.append(
                name, {"text": "".join(rng.choice("ab é\n") for _ in range(rng.randint(0, 5)))}
            )
        else:
            journal.append(name, {"id": str(rng.random())})


def test_compaction_keeps_every_event_and_seq() -> None:
    rng = random.Random(7)
    journal = RunJournal()
    _fill(journal, rng)
    before = journal.since(0)
    journal.compact()
    assert journal.since(0) == before
    for after in rng.sample(range(3001), 200):
        assert journal.since(after) == before[after:]
    journal.compact()  # idempotent
    assert journal.since(0) == before
    assert journal.text("token") == "".join(e.data["text"] for e in before if e.event == "token")


def test_compaction_stores_text_compactly() -> None:
    journal = RunJournal()
    for _ in range(4000):
        journal.append("token", {"text": "abcd"})
    journal.compact()
    # one folded run holding the text once, plus 4 bytes of offset per event
    assert len(journal._entries) == 1
    folded = journal._entries[0]
    assert folded.text == "abcd" * 4000
    assert folded.lengths.itemsize * len(folded.lengths) <= 4 * 4000 + 64


def test_entries_unpack_as_triples() -> None:
    journal = RunJournal()
    journal.append("token", {"text": "x"})
    ((seq, event, data),) = journal.since(0)
    assert (seq, event, data) == (1, "token", {"text": "x"})
