"""The plain-text stream (terminal IPython, ``--plain``, headless cells): what it writes."""

from __future__ import annotations

import io
import time

import hermes_nb
from hermes_nb import view
from hermes_nb.view.display import PLAIN_FLUSH


class _Writes(io.StringIO):
    """A stdout that records each write, as IPython 9 does for a cell's output history."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_tokens_are_written_in_batches_not_one_write_each() -> None:
    """IPython 9 keeps every write of a cell's stdout for the kernel's life, so a write per
    token would keep a string header per token; batches of ``PLAIN_FLUSH`` seconds keep it to
    a few writes while the reply still appears as it streams."""
    reply = "word " * 600  # 3,000 characters, one token event each
    out = _Writes()
    t0 = time.monotonic()
    run = hermes_nb.chat("x", profile="echo", reply=reply, chunk_size=1, delay=0.0005)
    view.stream_plain(run, out)
    took = time.monotonic() - t0
    tokens = sum(1 for e in run.events() if e.event == "token")
    assert tokens == len(reply)
    assert out.getvalue() == reply + "\n"
    assert 2 <= len(out.writes) <= took / PLAIN_FLUSH + 5, (len(out.writes), took)


def test_a_line_after_the_text_comes_after_it() -> None:
    """The batch is written before any other line, so the order on screen is the stream's."""
    out = _Writes()
    run = hermes_nb.chat(
        "x", profile="echo", reply="Partly there.", chunk_size=1, fail="server", fail_after=8
    )
    view.stream_plain(run, out)
    text = out.getvalue()
    assert text.startswith("Partly t\n") and "Error:" in text
