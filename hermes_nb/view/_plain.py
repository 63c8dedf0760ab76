"""The plain-text view: :func:`stream_plain` prints a run as it streams where widgets cannot
render (terminal IPython, ``--plain``, a script), with each prompt and how to answer it.

Apart from :mod:`.display` because it shares nothing with the live view but the decisions'
wording (:func:`~hermes_nb.view._blocks.decision`).
"""

from __future__ import annotations

import queue
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from ..core.events import Event
from ._blocks import decision

if TYPE_CHECKING:
    from ..engine.runtime import Run

#: Seconds the plain-text stream (terminal IPython, ``--plain``, headless) gathers tokens before
#: one write: fast enough to read as streaming, few enough writes for IPython to keep cheaply.
PLAIN_FLUSH = 0.05


def stream_plain(
    run: Run, out: TextIO | None = None, *, after_seq: int = 0, until_prompt: bool = False
) -> int:
    """Print the run as plain text while it streams (terminal IPython, ``--plain``) and return
    when it settles. Ctrl-C stops the run; what streamed so far stays.

    Each prompt of the run is printed when it opens, with how to answer it (``%hermes
    approve``, ``%hermes deny``, ``%hermes answer VALUE``), and its decision when it has one.
    ``until_prompt=True`` returns as soon as a prompt has been printed and is still open, so a
    notebook cell can end and the person answer from the next one; call again with
    ``after_seq`` set to the returned seq to go on printing where it stopped. Returns the seq of
    the last event printed.
    """
    out = out if out is not None else sys.stdout
    q = run.subscribe(after_seq=after_seq)
    seq = after_seq
    wrote = False
    at_line_start = True

    def write(text: str) -> None:
        nonlocal wrote, at_line_start
        if text:
            out.write(text)
            out.flush()
            wrote = True
            at_line_start = text.endswith("\n")

    def line(text: str) -> None:
        write(("" if at_line_start else "\n") + text + "\n")

    # Tokens are written in batches, at most every PLAIN_FLUSH seconds: IPython 9 keeps every
    # write of a cell's stdout (``history_manager.outputs``), so a write per 4-character token
    # would keep ~50 bytes of string header per token for the kernel's lifetime.
    pending: list[str] = []
    due = 0.0

    def flush() -> None:
        if pending:
            write("".join(pending))
            pending.clear()

    kinds: dict[str, str] = {}
    options: dict[str, Any] = {}
    try:
        while True:
            try:
                if pending:
                    try:
                        event, data = q.get(timeout=max(0.0, due - time.monotonic()))
                    except queue.Empty:
                        flush()
                        continue
                else:
                    event, data = q.get()
            except KeyboardInterrupt:
                run.cancel()
                continue
            seq += 1
            if event == Event.TOKEN:
                if not pending:
                    due = time.monotonic() + PLAIN_FLUSH
                pending.append(data["text"])
                continue
            flush()
            if event == Event.TOOL_START:
                line(f"[tool {data.get('name') or 'tool'}]")
            elif event == Event.TOOL_END:
                flag = "failed" if data.get("error") else "done"
                line(f"[tool {data.get('name') or 'tool'} {flag}]")
            elif event == Event.PROMPT:
                kinds[data["id"]] = str(data.get("kind", ""))
                options[data["id"]] = data.get("options") or ()
                line(_plain_prompt(data, getattr(run.profile, "prompt_timeout", None)))
                if until_prompt and any(p.id == data["id"] for p in run.pending):
                    break
            elif event == Event.PROMPT_ANSWERED:
                if data["id"] not in kinds:  # opened before ``after_seq``
                    for p in run.prompt_record():
                        kinds[p["id"]] = str(p["kind"])
                        options[p["id"]] = p.get("options") or ()
                what, who = decision(
                    kinds.get(data["id"], ""),
                    data["value"],
                    data["by"],
                    options.get(data["id"], ()),
                )
                line(f"→ {what}, {who}.")
            elif event == Event.APPERROR:
                line(f"Error: {data.get('message', '')}")
                if data.get("hint"):
                    line(f"Hint: {data['hint']}")
            elif event == Event.AGENT_SESSION and data.get("notice"):  # the agent started over
                line(str(data["notice"]))
            elif event == Event.CANCEL:
                line(str(data["message"]))
            elif event == Event.DONE and data.get("notice"):  # the reply was cut short
                line(str(data["notice"]))
            elif event == Event.STREAM_END:
                break
    finally:
        flush()
        run.unsubscribe(q)
    if wrote and not at_line_start:
        write("\n")
    return seq


def _plain_prompt(data: dict[str, Any], timeout: object) -> str:
    """A prompt as plain text, with how to answer it (and no clock time: nbval compares it)."""
    detail = str(data.get("detail") or "")
    approval = data.get("kind") == "approval"
    lines = [f"{'Approval needed' if approval else 'Question'}: {data.get('text', '')}"]
    lines += [f"    {row}" for row in detail.splitlines()]
    if approval:
        lines.append(
            "To answer: %hermes approve (allow once), %hermes approve session, "
            "%hermes approve always, or %hermes deny."
        )
    else:
        choices = [str(c) for c in data.get("choices") or ()]
        if choices:
            lines.append("Choices: " + ", ".join(choices))
        lines.append("To answer: %hermes answer VALUE.")
    if isinstance(timeout, int | float) and timeout > 0 and data.get("deadline") is not None:
        default = "it is denied" if approval else "the model goes on without one"
        lines.append(f"After {timeout:g} s without an answer {default}.")
    return "\n".join(lines)
