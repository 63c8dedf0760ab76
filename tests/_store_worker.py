"""A separate process for the store's multi-process tests (run by tests/test_store.py).

``turns NAME COUNT GO_FILE``
    wait until GO_FILE exists (so every worker starts together), then run COUNT echo turns in
    the session NAME, and print one JSON line: the session id and how the runs ended.
``crash NAME``
    start one slow echo turn in session NAME, print one JSON line once text is streaming, and
    sleep — the test kills the process with SIGKILL there.
``commit-and-exit NAME``
    store a session NAME with two messages and leave at once, without closing the store: its
    commits stay in the ``-wal`` file, not yet checkpointed into the database file (run by
    tests/test_store_readonly.py).
``as-nobody``
    (started as root) warm up the runtime, drop to the unprivileged user ``nobody``, then read
    the session ``nb`` — history, search, export — and run a turn in it; print one JSON line
    with what happened (run by tests/test_store_readonly.py: root bypasses file permissions).

The store is ``$HERMES_NB_HOME/sessions.db``, inherited from the test.
"""

from __future__ import annotations

import json
import os
import pwd
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


def commit_and_exit(name: str) -> None:
    from hermes_nb.store.database import NewMessage, Store

    store = Store()
    record = store.create_session(name=name)
    store.append_messages(
        record.id, [NewMessage("user", "kept in the wal"), NewMessage("assistant", "me too")]
    )
    os._exit(0)  # no close: no checkpoint, the -wal and -shm files stay


def as_nobody() -> None:
    import hermes_nb
    from hermes_nb.core.exceptions import StoreReadOnlyError
    from hermes_nb.store.database import get_store

    # Everything this process needs is imported (and the runtime started) while it may still
    # read this interpreter's files; the user nobody may not.
    hermes_nb.chat("warm up", profile="echo", delay=0).wait(30)
    nobody = pwd.getpwnam("nobody")
    os.setgroups([])
    os.setgid(nobody.pw_gid)
    os.setuid(nobody.pw_uid)
    store = get_store()
    session = Session.open("nb")
    out: dict[str, object] = {
        "read_only": store.read_only,
        "sessions": [s.name for s in hermes_nb.sessions.list()],
        "history": [m.content for m in session.messages],
        "search": [h.snippet for h in hermes_nb.sessions.search("stored")],
        "export": "stored question" in session.export("md"),
    }
    try:
        store.create_session(name="another")
    except StoreReadOnlyError as exc:
        out["refused"] = str(exc.message)
    run = session.chat("a new question", profile="echo", delay=0, reply="a new answer").wait(30)
    out.update(status=str(run.status), text=run.text, notice=run.notice)
    out["after"] = [m.content for m in session.messages]
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "turns":
        turns(rest[0], int(rest[1]), Path(rest[2]))
    elif mode == "crash":
        crash(rest[0])
    elif mode == "commit-and-exit":
        commit_and_exit(rest[0])
    elif mode == "as-nobody":
        as_nobody()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
