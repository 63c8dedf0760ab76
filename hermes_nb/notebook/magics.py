"""``%hermes`` and ``%%hermes``: the notebook's way in.

``%hermes <prompt>`` or a ``%%hermes [options]`` cell starts a turn and shows the live chat view
under the cell; the cell finishes at once. ``%hermes <sub-command>`` manages runs and sessions,
answers the questions and approvals a run asks the person (``answer``, ``approve``, ``deny``),
and sends the last failure to the model (``fix``, ``explain``).
Every user mistake raises :class:`~IPython.core.error.UsageError` (one line, no traceback), and
every :class:`~hermes_nb.core.exceptions.HermesError` is turned into one.

Options are declared with IPython's ``@magic_arguments`` so ``%hermes?`` shows help generated
from this code. They are parsed by hand from the front of the line only, so a prompt may contain
anything (apostrophes, quotes, dashes) without shell-style quoting.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import threading
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..core import md_table, short
from ..core.exceptions import HermesError, SessionNotFound
from ._answers import (
    answer_options,
    answered,
    how_to_answer,
    open_prompt,
    prompt_words,
    read_answer,
    unquote_whole,
)

__all__ = ["HermesMagics", "load", "unload"]

_NOTEBOOK_SESSION_PREFIX = "notebook:"
_TOKEN = re.compile(r"""\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'])+)""")
_QUOTED = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'""")
# A one-line ``%hermes`` question ending in ``?`` (not ``%hermes?``, the magic's own help).
_QUESTION_LINE = re.compile(r"^([ \t]*)%hermes[ \t]+(.*\S.*\?)[ \t]*$")
# How long the wait loops sleep between looks at the run (and at the main thread's queued work).
_POLL = 0.05

# Every sub-command with its usage and what it does: ``%hermes help`` prints this table, and the
# ``prompt`` argument's help (``%hermes?``) lists the usages.
_USAGE: tuple[tuple[str, str], ...] = (
    ("stop [RUN]", "stop a run (default: every live run of this kernel)"),
    ("runs", "runs of this kernel, with their status (waiting ones with their question)"),
    ("answer [--run RUN] [--prompt ID] [--wait] TEXT", "answer the oldest open prompt"),
    ("approve [once|session|always] [--run RUN] [--prompt ID] [--wait]", "allow a tool call"),
    ("deny [--run RUN] [--prompt ID] [--wait]", "refuse a tool call"),
    ("fix [OPTIONS]", "send the last failing cell and its traceback; ask for a corrected cell"),
    ("explain [OPTIONS]", "send the last failing cell and its traceback; ask what went wrong"),
    ("sessions", "stored sessions, most recent first"),
    ("session NAME", "switch to a session (by name or id), creating it if the name is new"),
    ("history", "the current session's messages"),
    ("code [N]", "put the last reply's code blocks (or block N) into the next cell"),
    ("branch [K]", "fork the current session after its first K messages"),
    ("compress", "summarise the current session into a continuation"),
    ("search TEXT", "full-text search over every session"),
    ("export [md|json] [FILE]", "the current session as Markdown or JSON"),
    ("profiles", "the profiles, the default, and whether each key is set"),
    ("doctor [PROFILE]", "check config, key, endpoint, store and versions"),
    ("help", "this help"),
)


def _unquote(token: str) -> str:
    """Shell-style: drop the quotes around quoted parts (``--x="a b"`` → ``--x=a b``)."""
    return _QUOTED.sub(lambda m: m.group(1) if m.group(2) is None else m.group(2), token)


def _friendly(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a HermesError into a one-line UsageError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HermesError as exc:
            raise UsageError(str(exc)) from None

    return wrapper


@magics_class
class HermesMagics(Magics):
    """The ``%hermes`` magics. One instance per IPython shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self._session: Any = None
        # Runs streamed as plain text whose printing stopped at an open prompt: run id -> the
        # seq printed so far, so the answer goes on printing the rest where it stopped.
        self._plain_at: dict[str, int] = {}

    # -- the magic ------------------------------------------------------------------------------

    @no_var_expand  # {name} is ours (summaries, {{ }}); IPython would eval it and str() it
    @magic_arguments()
    @argument(
        "-p", "--profile", help="Profile from config.toml to use (default: the configured one)."
    )
    @argument(
        "-s", "--session", help="Session name or id to continue (created if the name is new)."
    )
    @argument("--new", action="store_true", help="Start a new session for this notebook.")
    @argument("-m", "--model", help="Model name for this turn, overriding the profile's.")
    @argument("--system", help="System prompt for this turn.")
    @argument(
        "--wait",
        action="store_true",
        help="Block until the reply is complete, or until the run asks you something. Headless "
        "runs (nbconvert --execute, papermill, nbval) always wait, so the saved notebook holds "
        "the answer.",
    )
    @argument(
        "--no-wait",
        action="store_true",
        help="Return at once and let the reply stream, even in a headless run.",
    )
    @argument(
        "--code",
        action="store_true",
        help="Ask for code only; with --wait (or headless) the reply's code goes into the next "
        "cell.",
    )
    @argument("--plain", action="store_true", help="Stream plain text to the output, no widget.")
    @argument(
        "--tools",
        metavar="NAMES",
        help="Tools the model may call, comma-separated: functions or @hermes_nb.tool tools of "
        "the notebook, else registered tool or toolset names (notebook, ask_user).",
    )
    @argument(
        "--no-interpolate", action="store_true", help="Leave {name} in the prompt as written."
    )
    @argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A per-turn option, e.g. -o temperature=0.2, -o prompt_timeout=60 (echo: -o "
        "delay=0.05); values are read as TOML, else JSON, else text.",
    )
    @argument(
        "prompt",
        nargs="*",
        help="The question, or a sub-command: " + "; ".join(u for u, _ in _USAGE) + ".",
    )
    @line_cell_magic
    @_friendly
    def hermes(self, line: str, cell: str | None = None) -> Any:
        """Ask the model: ``%hermes <prompt>`` or a ``%%hermes [options]`` cell."""
        args, pos = self._parse_span(line)
        rest = line[pos:].strip()
        if cell is None:
            word, _, tail = rest.partition(" ")
            if not args.explicit_prompt and word in _FAILURE_MODES:
                # ``%hermes --wait fix`` and ``%hermes fix --wait``: options on either side.
                args, extra = self._parse(f"{line[:pos]} {tail}")
                if extra:
                    raise UsageError(
                        f"%hermes {word} takes options only, not {extra!r}: "
                        f"it sends the last failing cell and its traceback."
                    )
                return self._failure(word, args)
            if not args.explicit_prompt and word in _SUBCOMMANDS:
                return _SUBCOMMANDS[word](self, tail.strip())
            prompt = rest
        else:
            if rest:
                raise UsageError(
                    f"Unexpected text after the options: {rest!r}. "
                    "In a %%hermes cell the question goes in the cell body."
                )
            prompt = cell
        if not prompt.strip():
            raise UsageError("Nothing to ask: write a prompt after %hermes or in the cell body.")
        return self._ask(prompt, args)

    def _parse(self, line: str) -> tuple[Any, str]:
        """Options from the front of ``line``; the rest, verbatim, is the prompt."""
        args, pos = self._parse_span(line)
        return args, line[pos:].strip()

    def _parse_span(self, line: str) -> tuple[Any, int]:
        """:meth:`_parse`, returning where the prompt starts in ``line`` instead of the prompt."""
        parser = self.hermes.parser
        takes_value = {
            opt: bool(action.nargs != 0)
            for action in parser._actions
            for opt in action.option_strings
        }
        tokens: list[str] = []
        pos = 0
        explicit = False
        while True:
            match = _TOKEN.match(line, pos)
            if not match:
                pos = len(line)
                break
            token = match.group(1)
            if token == "--":
                pos = match.end()
                explicit = True
                break
            if not token.startswith("-") or token == "-":
                break
            name = token.split("=", 1)[0]
            if name not in takes_value:
                if name in ("-h", "--help"):
                    raise UsageError(parser.format_help())
                raise UsageError(f"Unknown option {name!r}. %hermes? lists the options.")
            tokens.append(_unquote(token))
            pos = match.end()
            if takes_value[name] and "=" not in token:
                value = _TOKEN.match(line, pos)
                if not value:
                    raise UsageError(f"Option {name} needs a value.")
                tokens.append(_unquote(value.group(1)))
                pos = value.end()
        try:
            args = parser.parse_args(tokens)
        except UsageError as exc:
            raise UsageError(str(exc).splitlines()[-1]) from None
        args.explicit_prompt = explicit
        return args, pos

    # -- asking ---------------------------------------------------------------------------------

    def _ask(self, prompt: str, args: Any, *, expand: bool = True) -> Any:
        from ..core.config import load_config

        overrides = _options(args.option)
        if args.model:
            overrides["model"] = args.model
        load_config().profile(args.profile)  # an unknown profile fails before anything is stored
        tools = self._tools(args.tools)  # so does an unknown tool name
        if expand and not args.no_interpolate:
            from ._interpolate import interpolate

            result = interpolate(prompt, self.shell.user_ns if self.shell is not None else {})
            prompt = result.text
            if result.undefined:
                names = ", ".join(result.undefined)
                print(f"hermes: left as written (not defined): {{{names.replace(', ', '}, {')}}}")
        from .. import view

        session = self._session_for(args)
        system = args.system
        if args.code:
            from ._code import CODE_ONLY

            base = system
            if base is None:
                base = load_config().profile(args.profile or session.profile).system_prompt
            system = f"{base}\n\n{CODE_ONLY}" if base else CODE_ONLY
        run = session.chat(prompt, profile=args.profile, system=system, tools=tools, **overrides)
        widgets = view.widgets_available()
        if args.plain or not widgets:
            # Terminal IPython can ask on the terminal while a --wait turn blocks; elsewhere
            # (--plain in a notebook, or no --wait) the cell says how to answer and returns.
            self._plain(run, ask=args.wait and not widgets)
            return None
        if args.wait or (self._headless() and not args.no_wait):
            return self._wait_and_settle(run, code=args.code)
        view.show(run)
        return None

    def _headless(self) -> bool:
        """True when no person is at this notebook: the front end that sent the running cell
        cannot answer ``input()``. nbclient (nbconvert ``--execute``, papermill, nbval) sends
        ``allow_stdin: false``; JupyterLab, Notebook 7, VS Code and the console send true.
        There, a turn waits as with ``--wait`` — no view would ever render, and the saved
        notebook must hold the answer — while interactive cells keep returning at once."""
        kernel = getattr(self.shell, "kernel", None)
        if kernel is None:
            return False
        return getattr(kernel, "_allow_stdin", True) is False

    def _tools(self, spec: str | None) -> list[Any] | None:
        """``--tools f,g``: each name is looked up in the notebook's namespace first (a
        ``@hermes_nb.tool`` tool or a function there is that object), else taken as the name of
        a registered tool or toolset. An unknown name is one UsageError, before anything is
        stored."""
        if spec is None:
            return None
        from ..engine.tools import Tool, resolve_tools

        names = [n.strip() for n in spec.split(",")]
        if not any(names):
            raise UsageError("--tools takes names separated by commas, e.g. --tools f,g.")
        namespace = self.shell.user_ns if self.shell is not None else {}
        items: list[Any] = []
        for name in names:
            if not name:
                continue
            found = namespace.get(name)
            item = (
                found
                if isinstance(found, Tool) or inspect.isfunction(found) or inspect.ismethod(found)
                else name
            )
            try:
                resolve_tools([item])
            except HermesError as exc:
                if isinstance(item, str):
                    known = str(getattr(exc, "hint", "")).split(". ")[0]
                    raise UsageError(
                        f"--tools: nothing is named {name!r}: it is neither a function or "
                        f"@hermes_nb.tool in the notebook nor a registered tool or toolset "
                        f"({known.removeprefix('Known: ') or 'none registered'})."
                    ) from None
                raise UsageError(f"--tools {name}: {exc}") from None
            items.append(item)
        return items

    def _wait_and_settle(self, run: Any, *, code: bool = False) -> None:
        """``--wait`` in a notebook: show the live view and block until the run settles — then
        the static transcript replaces it — or until it asks the person, when the cell ends
        with the view (and its card) in place and one line on how to answer, so the next cell
        (or the person) can."""
        from IPython.display import clear_output, display

        from .. import view

        view.show(run, include_plain=False)
        try:
            waiting = self._wait_for_settle_or_prompt(run)
        except KeyboardInterrupt:
            run.cancel()
            run.wait(10)
            waiting = None
        if waiting is not None:
            print(how_to_answer(run, waiting, view=True))
            return
        data, metadata = view.static_bundle(run)
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

    def _session_for(self, args: Any) -> Any:
        from ..store.sessions import Session

        if args.session:
            if args.new:
                raise UsageError("Use either --new or --session, not both.")
            session = Session.open_or_create(args.session, profile=args.profile)
            self._session = session
            return session
        if args.new or self._session is None:
            name = _notebook_session_name()
            if args.new:
                if name is not None:
                    try:
                        Session.open(name).rename(None)
                    except HermesError:
                        pass
                self._session = Session.new(name=name, profile=args.profile)
            elif name is not None:
                self._session = Session.open_or_create(name, profile=args.profile)
            else:
                self._session = Session.new(profile=args.profile)
        return self._session

    def _current_session(self) -> Any:
        if self._session is None:
            from types import SimpleNamespace

            return self._session_for(SimpleNamespace(session=None, new=False, profile=None))
        return self._session

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

    def _list_sessions(self, arg: str) -> Any:
        from ..store import sessions

        _no_args("sessions", arg)
        current = self._session.id if self._session is not None else None
        rows = [
            (
                f"`{s.id[:12]}`" + (" ◀ current" if s.id == current else ""),
                s.name,
                short(s.title or ""),
                s.source,
                s.profile,
            )
            for s in sessions.list()
        ]
        if not rows:
            return _md("No sessions yet. Ask something with `%hermes` to start one.")
        return _md(md_table(("id", "name", "title", "source", "profile"), rows))

    def _switch_session(self, arg: str) -> None:
        from ..store.database import get_store
        from ..store.sessions import Session

        if not arg:
            raise UsageError("Usage: %hermes session NAME_OR_ID")
        try:
            self._session = Session.open(arg)
            print(f"hermes: now in session {_label(self._session)}.")
        except SessionNotFound:
            self._session = Session.new(name=arg)
            if self._session.unsaved:  # a read-only or full store: say so now, not at its turn
                store = get_store()
                print(
                    f"hermes: started session {arg!r} for this kernel only: the session store "
                    f"{store.path} {store.read_only or 'cannot be written'}, so it is not saved."
                )
            else:
                print(f"hermes: started new session {arg!r}.")

    def _history(self, arg: str) -> Any:
        _no_args("history", arg)
        session = self._current_session()
        messages = session.messages
        if not messages:
            return _md(f"Session {_label(session)} has no messages yet.")
        lines = [f"**Session {_label(session)}** — {len(messages)} messages\n"]
        for i, m in enumerate(messages, start=1):
            flag = " *(partial)*" if m.partial else ""
            lines.append(f"{i}. **{m.role}**{flag}: {short(m.content, 200)}")
        return _md("\n".join(lines))

    def _branch(self, arg: str) -> None:
        session = self._current_session()
        count = len(session.messages)
        if arg:
            if not arg.isdigit():
                raise UsageError(f"branch takes a message count, not {arg!r}.")
            k = int(arg)
            if k > count:
                raise UsageError(f"The session has only {count} messages; branch at 0–{count}.")
        else:
            k = count
        self._session = session.branch(k)
        print(f"hermes: branched {_label(session)} at message {k} → {_label(self._session)}.")

    def _compress(self, arg: str) -> None:
        _no_args("compress", arg)
        old = self._current_session()
        self._session = old.compress()
        print(
            f"hermes: compressed {_label(old)} (archived) → continuing in {_label(self._session)}."
        )

    def _search(self, arg: str) -> Any:
        from ..store import sessions

        if not arg:
            raise UsageError("Usage: %hermes search TEXT")
        hits = sessions.search(arg)
        if not hits:
            return _md(f"Nothing found for {arg!r}.")
        rows = [
            (f"`{h.session_id[:12]}`", short(h.title or ""), h.position, short(h.snippet, 120))
            for h in hits
        ]
        return _md(md_table(("session", "title", "message", "match"), rows))

    def _export(self, arg: str) -> Any:
        from IPython.display import JSON

        parts = arg.split()
        fmt = parts[0] if parts else "md"
        if fmt not in ("md", "json") or len(parts) > 2:
            raise UsageError("Usage: %hermes export [md|json] [FILE]")
        text = self._current_session().export(fmt)
        if len(parts) == 2:
            path = os.path.expanduser(parts[1])
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as exc:
                raise UsageError(f"Cannot write {path}: {exc.strerror}.") from None
            print(f"hermes: exported to {path}.")
            return None
        if fmt == "json":
            import json

            return JSON(json.loads(text))
        return _md(text)

    def _profiles(self, arg: str) -> Any:
        from ..core.config import load_config

        _no_args("profiles", arg)
        config = load_config()
        rows = []
        for name, p in sorted(config.profiles.items()):
            mark = " ◀ default" if name == config.default_profile else ""
            if p.api_key_env:
                key = f"`{p.api_key_env}` {'set' if os.environ.get(p.api_key_env) else 'not set'}"
            else:
                key = "none needed"
            rows.append((f"{name}{mark}", p.provider, p.model, p.base_url or "", key))
        header = ("profile", "provider", "model", "endpoint", "key")
        return _md(f"Config: `{config.path}`\n\n{md_table(header, rows)}")

    def _doctor(self, arg: str) -> Any:
        try:
            from ..doctor import doctor_report
        except ImportError:  # pragma: no cover - doctor lands with its own issue
            raise UsageError("doctor is not available in this version.") from None
        return _md(doctor_report(profile=arg or None).markdown())

    def _help(self, arg: str) -> None:
        # The parser's help holds the usage line once (the magic's docstring repeats it).
        print(self.hermes.parser.format_help())
        print("sub-commands:")
        for usage, what in _USAGE:
            print(f"  %hermes {usage}\n      {what}")
        print(
            "\nA run that asks (an approval, a question) waits: answer in the chat view or with "
            "%hermes answer / approve / deny; --run and --prompt pick which one."
        )


# Sub-commands that start a turn and take the turn's options: the last failure, sent as a prompt.
_FAILURE_MODES = ("fix", "explain")

_SUBCOMMANDS: dict[str, Callable[[HermesMagics, str], Any]] = {
    "stop": HermesMagics._stop,
    "runs": HermesMagics._list_runs,
    "answer": HermesMagics._answer,
    "approve": HermesMagics._approve,
    "deny": HermesMagics._deny,
    "sessions": HermesMagics._list_sessions,
    "session": HermesMagics._switch_session,
    "history": HermesMagics._history,
    "code": HermesMagics._code,
    "branch": HermesMagics._branch,
    "compress": HermesMagics._compress,
    "search": HermesMagics._search,
    "export": HermesMagics._export,
    "profiles": HermesMagics._profiles,
    "doctor": HermesMagics._doctor,
    "help": HermesMagics._help,
}


def _options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → a dict. A value is read as a TOML value where it parses
    (``0.2``, ``true``, ``'x'``, ``[1, 2]``), else as JSON (``[{"name": "f"}]``, for the echo
    model's scripted ``tool_calls``), else kept as text."""
    import json
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-o takes KEY=VALUE, not {item!r}.")
        value: Any
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            try:
                value = json.loads(raw)
            except ValueError:
                value = raw
        out[key.strip()] = value
    timeout = out.get("prompt_timeout")
    if "prompt_timeout" in out and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0
    ):
        raise UsageError(f"-o prompt_timeout takes seconds (0 waits for ever), not {timeout!r}.")
    return out


def _no_args(name: str, arg: str) -> None:
    if arg:
        raise UsageError(f"%hermes {name} takes no arguments (got {arg!r}).")


def _label(session: Any) -> str:
    return f"{session.name!r}" if session.name else f"`{session.id[:12]}`"


class _Markdown:
    """A sub-command's answer: Markdown where a front end renders it (``text/markdown``), the
    same text where none does (terminal IPython prints the ``repr``), never
    ``<IPython.core.display.Markdown object>``."""

    def __init__(self, data: str) -> None:
        self.data = data  # the name IPython's Markdown gives it

    def _repr_markdown_(self) -> str:
        return self.data

    def __repr__(self) -> str:
        return self.data


def _md(text: str) -> Any:
    return _Markdown(text)


def _notebook_session_name() -> str | None:
    """The default session's name: the notebook's path where the server provides it."""
    path = os.environ.get("JPY_SESSION_NAME")
    return f"{_NOTEBOOK_SESSION_PREFIX}{path}" if path else None


def _keep_questions(lines: list[str]) -> list[str]:
    """IPython reads a line ending in ``?`` as a help request: ``%hermes why is it slow?``
    would become ``%pinfo slow``. Such lines are turned into a plain magic call first, so the
    question reaches ``%hermes`` (a cleanup transformer runs before IPython's help syntax).
    The body of a ``%%`` cell is left alone."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines
    out = []
    for line in lines:
        match = _QUESTION_LINE.match(line.rstrip("\n"))
        if match:
            indent, rest = match.groups()
            line = f"{indent}get_ipython().run_line_magic('hermes', {rest!r})\n"
        out.append(line)
    return out


_magics: dict[int, HermesMagics] = {}


def load(ipython: Any) -> None:
    """Register the magics on ``ipython`` (``%load_ext hermes_nb``)."""
    from . import tools  # noqa: F401  (importing it registers the ``notebook`` toolset)

    magics = HermesMagics(ipython)
    _magics[id(ipython)] = magics
    ipython.register_magics(magics)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_questions not in cleanup:
        cleanup.append(_keep_questions)


def unload(ipython: Any) -> None:
    """Forget this shell's magics state (IPython keeps the registration)."""
    _magics.pop(id(ipython), None)
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_questions in cleanup:
        cleanup.remove(_keep_questions)
