"""A separate process for the store's multi-process tests (run by tests/test_store.py).

``turns NAME COUNT GO_FILE``
    wait until GO_FILE exists (so every worker starts together), then run COUNT echo turns in
    the session NAME, and print one JSON line: the session id and how the runs ended.
``crash NAME``
    start one slow echo turn in session NAME, print one JSON line once text is streaming, and
    sleep — the test kills the process with SIGKILL there.

The store is ``$HERMES_NB_HOME/sessions.db``, inherited from the test.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

from hermes_nb.store.sessions import Session, join_background

_NO_AUTO_COMPRESSION = 10**9  # context_window: these sessions must keep every message


def turns(name: str, count: int, go_file: Path) -> None:
    deadline = time.monotonic() + 30
    while not go_file.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    session = Session.open_or_create(name, profile="echo")
    states: Counter[str] = Counter()
    errors: list[str] = []
    for i in range(count):
        run = session.chat(
            f"{name} prompt {i}",
            delay=0,
            reply=f"{name} reply {i}",
            context_window=_NO_AUTO_COMPRESSION,
        ).wait(60)
        states[str(run.status)] += 1
        if run.error:
            errors.append(run.error["message"])
    join_background(30)
    print(json.dumps({"session": session.id, "states": states, "errors": errors}), flush=True)


def crash(name: str) -> None:
    session = Session.open_or_create(name, profile="echo")
    run = session.chat("a prompt that must survive a crash", delay=0.05, reply="slow " * 400)
    while not run.text:
        run.wait_for_event(run.last_event_id, timeout=10)
    print(json.dumps({"session": session.id, "run": run.run_id}), flush=True)
    time.sleep(120)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "turns":
        turns(rest[0], int(rest[1]), Path(rest[2]))
    elif mode == "crash":
        crash(rest[0])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
