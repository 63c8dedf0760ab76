"""The public surface: ``__all__`` is complete, alphabetised, and names only what exists; and
what a ``chat()`` run tells its caller."""

from __future__ import annotations

import subprocess
import sys
import types

import hermes_nb


def test_all_names_exist_and_are_sorted() -> None:
    for name in hermes_nb.__all__:
        assert hasattr(hermes_nb, name), name
    public = [n for n in hermes_nb.__all__ if n != "__version__"]
    assert public == sorted(public)


def test_no_public_name_is_missing_from_all() -> None:
    exported = set(hermes_nb.__all__)
    for name, value in vars(hermes_nb).items():
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if name in ("annotations", "Any"):
            continue
        assert name in exported, f"{name} is public but not in __all__"


def test_import_does_not_start_anything() -> None:
    code = (
        "import threading, hermes_nb, sys; "
        "print(len(threading.enumerate()), 'IPython' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    threads, ipython, httpx = out.stdout.split()
    assert threads == "1"  # no runtime thread until the first turn
    assert ipython == "False"  # the magics module is imported by load_ipython_extension
    assert httpx == "False"  # the HTTP client is created on the runtime thread when needed


def test_chat_run_tells_a_reply_cut_off_at_max_tokens_from_a_finished_one() -> None:
    from hermes_nb.engine.turn import MemoryTranscript, truncation_notice

    history = MemoryTranscript()
    run = hermes_nb.chat(
        "a b c d e f",
        profile="echo",
        history=history,
        reply="abcdefgh",
        chunk_size=4,
        delay=0,
        max_tokens=1,
    ).wait(10)
    assert run.status == "done" and run.text == "abcd"
    assert run.finish_reason == "length" and run.truncated
    assert run.notice == truncation_notice("length")
    assert "max_tokens" in run.notice and "continue" in run.notice
    assert history.messages[-1] == {"role": "notice", "content": run.notice}
    # The notice is for the reader: the next turn sends the model the conversation without it.
    again = hermes_nb.chat("go on", profile="echo", history=history, delay=0).wait(10)
    assert again.finish_reason == "stop" and not again.truncated and again.notice is None
    assert again.usage["prompt_tokens"] == 6 + 1 + 2  # the echo model counts the words it got
    assert [m["role"] for m in history.messages] == [
        "user",
        "assistant",
        "notice",
        "user",
        "assistant",
    ]
