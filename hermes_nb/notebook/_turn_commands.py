"""The run side of ``%hermes``: a turn once it has started, and the sub-commands about runs.

:class:`_TurnCommands`, mixed into :class:`~.magics.HermesMagics`: ``--wait`` (the live view,
blocking until the run settles or asks, running the notebook tools' queued code meanwhile),
plain-text output (asking on the terminal in a ``--wait`` turn), a reply's code into the next
cell, and ``stop``, ``runs``, ``code``, ``answer`` / ``approve`` / ``deny`` and ``fix`` /
``explain`` (the last failure, sent as a turn).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ..core import md_table, short
from ._answers import (
    answer_options,
    answered,
    how_to_answer,
    open_prompt,
    prompt_words,
    read_answer,
    unquote_whole,
)
from ._help import _md
from ._options import _no_args

# How long the wait loops sleep between looks at the run (and at the main thread's queued work).
_POLL = 0.05


class _TurnCommands:
    """Waiting, plain output, code and the run sub-commands, mixed into
    :class:`~.magics.HermesMagics` (which sets ``_plain_at`` in its ``__init__``)."""

    shell: Any
    _plain_at: dict[str, int]

    if TYPE_CHECKING:  # in HermesMagics (magics.py) and _SessionCommands (_session_commands.py)

        def _ask(self, prompt: str, args: Any, *, expand: bool = True) -> Any: ...

        def _current_session(self) -> Any: ...

    def _wait_and_settle(self, run: Any, *, code: bool = False, live: bool = True) -> None:
        """``--wait`` in a notebook: show the live view and block until the run settles — then
        the static transcript replaces it — or until it asks the person, when the cell ends
        with the view (and its card) in place and one line on how to answer, so the next cell
        (or the person) can.

        ``live=False`` (a headless run: nbconvert, papermill, nbval) shows no view at all: no
        page would ever render it, and a widget would leave its state (the view's code
        included) in the saved notebook; the static transcript is the cell's one output."""
        from IPython.display import clear_output, display

        from .. import view

        if live:
            view.show(run, include_plain=False)
        try:
            waiting = self._wait_for_settle_or_prompt(run)
        except KeyboardInterrupt:
            run.cancel()
            run.wait(10)
            waiting = None
        if waiting is not None:
            print(how_to_answer(run, waiting, view=live))
            return
        data, metadata = view.static_bundle(run)
        if live:
            clear_output(wait=True)
        display(data, metadata=metadata, raw=True)
        if code and run.status == "done":
            self._code_to_next_cell(run.text, "")

    def _code_to_next_cell(self, reply: str, spec: str) -> None:
        """Put the reply's code (every block, or block ``spec``) into the next cell."""
        from ._code import code_blocks, pick

        code, what = pick(code_blocks(reply), spec)
        if self.shell is not None:
            self.shell.set_next_input(code, replace=False)
        verb = "are" if what.endswith("blocks") else "is"
        print(f"hermes: {what} of the reply {verb} in the next cell.")

    def _code(self, arg: str) -> None:
        """``%hermes code [N]``: the current session's last reply's code into the next cell."""
        from ._code import last_reply

        self._code_to_next_cell(last_reply(self._current_session().messages), arg)

    def _wait_for_settle_or_prompt(self, run: Any) -> Any:
        """Block until ``run`` settles (None) or has an open prompt (the oldest one)."""
        seq = 0
        while not run.settled:
            pending = run.pending
            if pending:
                return pending[0]
            self._serve_main_thread()
            seq = run.wait_for_event(seq, timeout=_POLL)
        return None

    def _serve_main_thread(self) -> None:
        """A waiting cell holds the kernel's main thread: run the ``run_python`` code the
        notebook tools queued for it (it runs between cells, on this thread), so a run that
        waits for its code does not wait for this cell, which waits for the run."""
        if threading.current_thread() is threading.main_thread():  # not on a kernel subshell
            from .tools import run_queued

            run_queued()

    def _plain(self, run: Any, *, ask: bool, after_seq: int = 0) -> None:
        """Print ``run`` as plain text (the view's :func:`stream_plain`, which also prints each
        prompt with how to answer it) until it settles or asks. When it asks: with ``ask`` (a
        ``--wait`` turn in terminal IPython) read the answer from the terminal with
        :func:`input`, answer, and go on; without, return — the cell ends, and ``%hermes
        answer`` / ``approve`` / ``deny`` go on printing from where it stopped."""
        from .. import view

        seq = after_seq
        while True:
            seq = view.stream_plain(run, after_seq=seq, until_prompt=True)
            entries = run.events(after_seq=seq - 1) if seq > 0 else []
            if not entries or entries[0].event != "prompt":  # the stream ended
                self._plain_at.pop(run.run_id, None)
                return
            prompt = next((p for p in run.pending if p.id == entries[0].data["id"]), None)
            if prompt is None:  # answered meanwhile (another channel, its deadline): go on
                continue
            self._plain_at[run.run_id] = seq
            if not ask:
                return
            try:
                while prompt.id in {p.id for p in run.pending}:
                    value = read_answer(prompt)
                    if value is None:
                        continue
                    if not run.answer(prompt.id, value, by="magic"):
                        print(f"hermes: {run.refusal(prompt.id, value) or 'not taken.'}")
            except KeyboardInterrupt:  # Ctrl-C at the question stops the run, as Stop does
                run.cancel()
            except EOFError:  # no terminal to read from after all: the printed hint stands
                return

    # -- sub-commands ---------------------------------------------------------------------------

    def _stop(self, arg: str) -> None:
        from ..engine.runtime import get_runtime

        runtime = get_runtime()
        targets = [runtime.get(arg)] if arg else [r for r in runtime.runs() if not r.settled]
        stopped = [r.run_id for r in targets if r.cancel()]
        print(f"hermes: stopped {', '.join(stopped)}" if stopped else "hermes: nothing to stop.")

    def _list_runs(self, arg: str) -> Any:
        from ..engine.runtime import get_runtime

        _no_args("runs", arg)
        rows = []
        waiting = False
        for r in get_runtime().runs():
            status = f"{r.status} (cut off: {r.finish_reason})" if r.truncated else str(r.status)
            pending = r.pending
            if pending:
                waiting = True
                status = f"waiting: {prompt_words(pending[0])}"
                if len(pending) > 1:
                    status += f" (+{len(pending) - 1} more)"
            rows.append(
                (f"`{r.run_id}`", status, r.profile.name, len(r.text), short(r.request.prompt))
            )
        if not rows:
            return _md("No runs yet in this kernel.")
        table = md_table(("run", "status", "profile", "chars", "prompt"), rows)
        if waiting:
            table += (
                "\n\nWaiting for you: answer in the chat view, or with `%hermes answer TEXT`, "
                "`%hermes approve` or `%hermes deny`."
            )
        return _md(table)

    # -- answering prompts ----------------------------------------------------------------------

    def _answer(self, arg: str) -> None:
        """``%hermes answer [--run RUN] [--prompt ID] [--wait] TEXT``."""
        picks, value = answer_options("answer", arg)
        run, prompt = open_prompt(picks, approval=False)
        self._give(run, prompt, unquote_whole(value), wait=picks["wait"])

    def _approve(self, arg: str) -> None:
        """``%hermes approve [once|session|always] [--run RUN] [--prompt ID] [--wait]``."""
        picks, value = answer_options("approve", arg)
        choice = value.strip() or "once"
        if choice not in ("once", "session", "always"):
            raise UsageError(
                f"%hermes approve takes once, session or always, not {choice!r} "
                "(%hermes deny refuses)."
            )
        run, prompt = open_prompt(picks, approval=True)
        self._give(run, prompt, choice, wait=picks["wait"])

    def _deny(self, arg: str) -> None:
        """``%hermes deny [--run RUN] [--prompt ID] [--wait]``."""
        picks, value = answer_options("deny", arg)
        if value.strip():
            raise UsageError(f"%hermes deny takes no answer (got {value.strip()!r}).")
        run, prompt = open_prompt(picks, approval=True)
        self._give(run, prompt, "deny", wait=picks["wait"])

    def _give(self, run: Any, prompt: Any, value: str, *, wait: bool) -> None:
        """Answer ``prompt`` of ``run`` as the person (``by="magic"``) and say so in one line;
        a refusal is one UsageError and changes nothing. With ``wait``, block until the run
        settles or asks again."""
        if not run.answer(prompt.id, value, by="magic"):
            raise UsageError(run.refusal(prompt.id, value) or "The answer was not taken.")
        print(answered(run, prompt, value))
        seq = self._plain_at.pop(run.run_id, None)
        if seq is not None:  # a plain-text turn: print the rest (until it ends or asks again)
            self._plain(run, ask=False, after_seq=seq)
        elif wait:
            try:
                again = self._wait_for_settle_or_prompt(run)
            except KeyboardInterrupt:
                run.cancel()
                run.wait(10)
                again = None
            if again is not None:
                print(how_to_answer(run, again, view=True))
            else:
                print(f"hermes: {run.run_id} {run.status}.")

    def _failure(self, mode: str, args: Any) -> Any:
        """``%hermes fix`` / ``%hermes explain``: the last failure of this kernel, as a turn in
        the current session (with the usual options)."""
        from ._fix import failure_prompt

        prompt = failure_prompt(self.shell, "fix" if mode == "fix" else "explain")
        # (nothing failed yet in this kernel: a HermesError, one line)
        return self._ask(prompt, args, expand=False)  # code and tracebacks hold braces
