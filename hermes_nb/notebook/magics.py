"""``%hermes`` and ``%%hermes``: the notebook's way in.

``%hermes <prompt>`` or a ``%%hermes [options]`` cell starts a turn and shows the live chat view
under the cell; the cell finishes at once. ``%hermes <sub-command>`` manages runs and sessions.
Every user mistake raises :class:`~IPython.core.error.UsageError` (one line, no traceback), and
every :class:`~hermes_nb.exceptions.HermesError` is turned into one.

Options are declared with IPython's ``@magic_arguments`` so ``%hermes?`` shows help generated
from this code. They are parsed by hand from the front of the line only, so a prompt may contain
anything (apostrophes, quotes, dashes) without shell-style quoting.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..core import md_table, short
from ..core.exceptions import HermesError, SessionNotFound

__all__ = ["HermesMagics", "load", "unload"]

_NOTEBOOK_SESSION_PREFIX = "notebook:"
_TOKEN = re.compile(r"""\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'])+)""")
_QUOTED = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'""")
# A one-line ``%hermes`` question ending in ``?`` (not ``%hermes?``, the magic's own help).
_QUESTION_LINE = re.compile(r"^([ \t]*)%hermes[ \t]+(.*\S.*\?)[ \t]*$")


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
        self._runs: list[Any] = []

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
        "--wait", action="store_true", help="Block until the reply is complete (scripts, nbval)."
    )
    @argument("--plain", action="store_true", help="Stream plain text to the output, no widget.")
    @argument(
        "--no-interpolate", action="store_true", help="Leave {name} in the prompt as written."
    )
    @argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="A provider option for this turn, e.g. -o temperature=0.2 (echo: -o delay=0.05).",
    )
    @argument(
        "prompt",
        nargs="*",
        help="The question, or a sub-command: stop [run], runs, sessions, session NAME, history, "
        "branch [k], compress, search TEXT, export [md|json] [FILE], profiles, doctor, help.",
    )
    @line_cell_magic
    @_friendly
    def hermes(self, line: str, cell: str | None = None) -> Any:
        """Ask the model: ``%hermes <prompt>`` or a ``%%hermes [options]`` cell."""
        args, rest = self._parse(line)
        if cell is None:
            word, _, tail = rest.partition(" ")
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
        return args, line[pos:].strip()

    # -- asking ---------------------------------------------------------------------------------

    def _ask(self, prompt: str, args: Any) -> Any:
        from ..core.config import load_config

        overrides = _options(args.option)
        if args.model:
            overrides["model"] = args.model
        load_config().profile(args.profile)  # an unknown profile fails before anything is stored
        if not args.no_interpolate:
            from ._interpolate import interpolate

            result = interpolate(prompt, self.shell.user_ns if self.shell is not None else {})
            prompt = result.text
            if result.undefined:
                names = ", ".join(result.undefined)
                print(f"hermes: left as written (not defined): {{{names.replace(', ', '}, {')}}}")
        from .. import view

        session = self._session_for(args)
        run = session.chat(prompt, profile=args.profile, system=args.system, **overrides)
        self._runs.append(run)
        if args.plain or not view.widgets_available():
            view.stream_plain(run)
            return None
        if args.wait:
            return self._wait_and_settle(run)
        view.show(run)
        return None

    def _wait_and_settle(self, run: Any) -> None:
        from IPython.display import clear_output, display

        from .. import view

        view.show(run, include_plain=False)
        try:
            run.wait()
        except KeyboardInterrupt:
            run.cancel()
            run.wait(10)
        data, metadata = view.static_bundle(run)
        clear_output(wait=True)
        display(data, metadata=metadata, raw=True)

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
        rows = [
            (
                f"`{r.run_id}`",
                f"{r.status} (cut off: {r.finish_reason})" if r.truncated else r.status,
                r.profile.name,
                len(r.text),
                short(r.request.prompt),
            )
            for r in get_runtime().runs()
        ]
        if not rows:
            return _md("No runs yet in this kernel.")
        return _md(md_table(("run", "status", "profile", "chars", "prompt"), rows))

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
        from ..store.sessions import Session

        if not arg:
            raise UsageError("Usage: %hermes session NAME_OR_ID")
        try:
            self._session = Session.open(arg)
            print(f"hermes: now in session {_label(self._session)}.")
        except SessionNotFound:
            self._session = Session.new(name=arg)
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
        print(self.hermes.__doc__)
        print(self.hermes.parser.format_help())


_SUBCOMMANDS: dict[str, Callable[[HermesMagics, str], Any]] = {
    "stop": HermesMagics._stop,
    "runs": HermesMagics._list_runs,
    "sessions": HermesMagics._list_sessions,
    "session": HermesMagics._switch_session,
    "history": HermesMagics._history,
    "branch": HermesMagics._branch,
    "compress": HermesMagics._compress,
    "search": HermesMagics._search,
    "export": HermesMagics._export,
    "profiles": HermesMagics._profiles,
    "doctor": HermesMagics._doctor,
    "help": HermesMagics._help,
}


def _options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings → a dict, values parsed as TOML scalars where they parse."""
    import tomllib

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-o takes KEY=VALUE, not {item!r}.")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        out[key.strip()] = value
    return out


def _no_args(name: str, arg: str) -> None:
    if arg:
        raise UsageError(f"%hermes {name} takes no arguments (got {arg!r}).")


def _label(session: Any) -> str:
    return f"{session.name!r}" if session.name else f"`{session.id[:12]}`"


def _md(text: str) -> Any:
    from IPython.display import Markdown

    return Markdown(text)


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
