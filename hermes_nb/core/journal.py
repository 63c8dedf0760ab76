"""``RunJournal``: the append-only record of one run's events.

Every event gets the next ``seq`` (1, 2, 3, … with no gaps), so any reader can say "give me what
came after the last thing I applied" and get exactly that — never twice, never skipping. This is
what lets a re-rendered view (page reload, a second view) catch up exactly (DESIGN.md §3, 1–2).

A kernel may run hundreds of turns, so a settled run can be :meth:`compacted <RunJournal.compact>`:
consecutive text events (``token``, ``reasoning``) are folded into one string plus an array of
offsets. ``since()`` still returns every original event with its original ``seq``, but memory
drops from a dict per token to four bytes per token.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["JournalEntry", "RunJournal"]

_FOLDABLE = frozenset({"token", "reasoning"})


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journaled event: its ``seq``, name and payload."""

    seq: int
    event: str
    data: dict[str, Any]

    def __iter__(self) -> Iterator[Any]:  # lets callers unpack ``seq, event, data = entry``
        return iter((self.seq, self.event, self.data))


@dataclass(slots=True)
class _Folded:
    """A run of consecutive same-name text events, stored as one string and their offsets."""

    first_seq: int
    event: str
    text: str
    lengths: array[int]  # lengths[i] is the length of event first_seq + i's text

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.lengths) - 1

    def entries(self, after: int) -> Iterator[JournalEntry]:
        start = max(0, after - self.first_seq + 1)
        prev = sum(self.lengths[:start])
        for i in range(start, len(self.lengths)):
            end = prev + self.lengths[i]
            yield JournalEntry(self.first_seq + i, self.event, {"text": self.text[prev:end]})
            prev = end


class RunJournal:
    """Thread-safe, append-only, gap-free event log for one run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[JournalEntry | _Folded] = []
        self._last_seq = 0
        self._compacted_upto = 0  # index into _entries below which everything is immutable

    @property
    def last_seq(self) -> int:
        """The seq of the newest event (0 when empty)."""
        return self._last_seq

    def __len__(self) -> int:
        return self._last_seq

    def append(self, event: str, data: dict[str, Any]) -> int:
        """Record ``(event, data)`` and return its seq."""
        with self._lock:
            self._last_seq += 1
            self._entries.append(JournalEntry(self._last_seq, str(event), data))
            return self._last_seq

    def since(self, after_seq: int = 0) -> list[JournalEntry]:
        """Every event with ``seq > after_seq``, in order."""
        with self._lock:
            if after_seq >= self._last_seq:
                return []
            idx = self._find(after_seq)
            out: list[JournalEntry] = []
            for item in self._entries[idx:]:
                if isinstance(item, _Folded):
                    out.extend(item.entries(after_seq))
                elif item.seq > after_seq:
                    out.append(item)
            return out

    def _find(self, after_seq: int) -> int:
        """Index of the first stored item that may hold a seq above ``after_seq``."""
        lo, hi = 0, len(self._entries)
        while lo < hi:
            mid = (lo + hi) // 2
            item = self._entries[mid]
            last = item.last_seq if isinstance(item, _Folded) else item.seq
            if last <= after_seq:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def compact(self, reuse: Iterable[str] = ()) -> None:
        """Fold consecutive text events into compact runs; ``since`` output is unchanged.

        Call it once a run has settled: it walks the whole journal once. ``reuse`` are strings
        the caller keeps anyway (the run's reply and reasoning): a folded text equal to one of
        them is stored as that very object, so a settled run holds its reply once, not twice.
        """
        keep = {len(s): s for s in reuse if s}
        with self._lock:
            out: list[JournalEntry | _Folded] = []
            pieces: list[str] = []
            lengths: list[int] = []
            group: _Folded | None = None

            def close() -> None:
                nonlocal group
                if group is not None:
                    text = "".join(pieces)
                    same = keep.get(len(text))
                    group.text = same if same is not None and same == text else text
                    group.lengths = _packed(lengths)
                    pieces.clear()
                    lengths.clear()
                    group = None

            for item in self._entries:
                foldable = (
                    isinstance(item, JournalEntry)
                    and item.event in _FOLDABLE
                    and set(item.data) == {"text"}
                )
                if not foldable:
                    close()
                    out.append(item)
                    continue
                assert isinstance(item, JournalEntry)
                if group is None or group.event != item.event:
                    close()
                    group = _Folded(item.seq, item.event, "", array("B"))
                    out.append(group)
                pieces.append(item.data["text"])
                lengths.append(len(item.data["text"]))
            close()
            self._entries = out

    def text(self, event: str = "token") -> str:
        """All ``text`` of the given event name joined — the reply so far for ``token``."""
        return "".join(e.data.get("text", "") for e in self.since(0) if e.event == event)


def _packed(lengths: list[int]) -> array[int]:
    """``lengths`` in the smallest array that holds them: one byte per token for the usual short
    tokens, a quarter of what 4-byte end offsets cost."""
    top = max(lengths, default=0)
    return array("B" if top < 1 << 8 else "H" if top < 1 << 16 else "I", lengths)
