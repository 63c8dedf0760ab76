"""A child process's log (an ACP agent's, an MCP server's stderr): started the same way for
both, and its tail read back for a one-sentence error when the child fails.

Each start appends a header line naming the command, so the log reads as a history of starts;
a log past :data:`LOG_ROTATE` is moved aside (``.log.1``) first, so it never grows without
bound. :func:`start_log` returns the offset after that header: what the child writes from
there on is this start's, which is all :func:`log_tail` reads.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LOG_ROTATE", "log_tail", "start_log"]

#: A log bigger than this is moved aside (``.log.1``) when its process starts again.
LOG_ROTATE = 8 << 20


def start_log(log: Path, argv: Sequence[str], cwd: Path | None = None) -> int:
    """Append a header for a start of ``argv`` (in ``cwd``, when given) to ``log``, rotating
    it first if it is too big; returns the offset the child's own lines start at."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        if log.stat().st_size > LOG_ROTATE:
            log.replace(log.with_name(log.name + ".1"))
    where = f" in {cwd}" if cwd is not None else ""
    when = time.strftime("%Y-%m-%d %H:%M:%S")
    with log.open("ab") as handle:
        handle.write(f"\n--- hermes_nb started {shlex.join(argv)}{where} at {when}\n".encode())
        return handle.tell()


def log_tail(log: Path, offset: int, lines: int = 6, limit: int = 600) -> str:
    """The last ``lines`` non-blank lines written to ``log`` since ``offset`` (at most its last
    16 KB), as one line of at most ``limit`` characters: what a process said before it failed."""
    try:
        with log.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - 16_384))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    joined = " | ".join(kept)
    return joined if len(joined) <= limit else "…" + joined[-(limit - 1) :]
