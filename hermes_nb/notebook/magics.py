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

This module holds the magic itself (its options, the dispatch, starting a turn) and ``load`` /
``unload``; the rest of :class:`HermesMagics` comes from mixins, one module per concern:
:mod:`._options` (parsing the options), :mod:`._turn_commands` (a run once started: ``--wait``,
plain output, ``stop``, ``runs``, ``code``, ``answer`` / ``approve`` / ``deny``, ``fix`` /
``explain``), :mod:`._session_commands` (the notebook's session and the session sub-commands) and
:mod:`._help` (``help``, ``doctor``, the sub-command table).
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments

from ..core.exceptions import HermesError
from ._agent_commands import _AgentCommands
from ._help import _USAGE, _HelpCommands
from ._mcp_commands import mcp_command
from ._options import _OptionParsing, _options
from ._session_commands import _SessionCommands
from ._turn_commands import _TurnCommands
from ._usage_command import usage_command

__all__ = ["HermesMagics", "load", "unload"]

# A one-line ``%hermes`` question ending in ``?`` (not ``%hermes?``, the magic's own help).
_QUESTION_LINE = re.compile(r"^([ \t]*)%(hermes|hnb)[ \t]+(.*\S.*\?)[ \t]*$")
#: The other name of ``%hermes`` / ``%%hermes``, always hermes_nb's: another package may
#: register a ``%hermes`` of its own (jupyter-ai-hermes-magics does), and the last loaded wins.
ALIAS = "hnb"


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
class HermesMagics(
    _OptionParsing, _TurnCommands, _SessionCommands, _AgentCommands, _HelpCommands, Magics
):
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
        "--no-rules",
        action="store_true",
        help="Leave out the project's rules (AGENTS.md or HERMES.md in the notebook's folder or "
        "a parent) this turn.",
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

    # -- asking ---------------------------------------------------------------------------------

    def _ask(self, prompt: str, args: Any, *, expand: bool = True) -> Any:
        from ..core.config import load_config

        overrides = _options(args.option)
        if args.model:
            overrides["model"] = args.model
        # An unknown profile fails before anything is stored; so does an unknown tool name.
        tools = self._tools(args.tools, load_config().profile(args.profile))
        images: tuple[Any, ...] = ()
        if expand and not args.no_interpolate:
            from ._interpolate import interpolate
            from ._outputs import cell_outputs

            shell = self.shell
            result = interpolate(
                prompt,
                shell.user_ns if shell is not None else {},
                outputs=lambda n: cell_outputs(shell, n),
            )
            prompt, images = result.text, result.images
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
        rules = None
        if not args.no_rules:
            from ._where import notebook_folder

            rules = notebook_folder(self.shell.user_ns if self.shell is not None else None)
        run = session.chat(
            prompt,
            profile=args.profile,
            system=system,
            tools=tools,
            images=images,
            rules=rules,
            **overrides,
        )
        widgets = view.widgets_available()
        if args.plain or not widgets:
            # Terminal IPython can ask on the terminal while a --wait turn blocks; elsewhere
            # (--plain in a notebook, or no --wait) the cell says how to answer and returns.
            self._plain(run, ask=args.wait and not widgets)
            return None
        headless = self._headless()
        if args.wait or (headless and not args.no_wait):
            return self._wait_and_settle(run, code=args.code, live=not headless)
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

    def _tools(self, spec: str | None, profile: Any = None) -> list[Any] | None:
        """``--tools f,g``: each name is looked up in the notebook's namespace first (a
        ``@hermes_nb.tool`` tool or a function there is that object), else taken as the name of
        a registered tool or toolset (``mcp:NAME``: ``profile``'s MCP server). An unknown name is
        one UsageError, before anything is stored; so is a name that cannot be resolved (an MCP
        server that cannot start), with its own reason."""
        if spec is None:
            return None
        from ..engine.tools import Tool, UnknownToolError, resolve_tools

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
                resolve_tools([item], profile=profile)
            except HermesError as exc:
                if isinstance(item, str) and isinstance(exc, UnknownToolError):
                    known = str(getattr(exc, "hint", "")).split(". ")[0]
                    raise UsageError(
                        f"--tools: nothing is named {name!r}: it is neither a function or "
                        f"@hermes_nb.tool in the notebook nor a registered tool or toolset "
                        f"({known.removeprefix('Known: ') or 'none registered'})."
                    ) from None
                raise UsageError(f"--tools {name}: {exc}") from None
            items.append(item)
        return items


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
    "agents": HermesMagics._agents,
    "mcp": mcp_command,
    "usage": usage_command,
    "doctor": HermesMagics._doctor,
    "help": HermesMagics._help,
}


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
            indent, name, rest = match.groups()
            line = f"{indent}get_ipython().run_line_magic({name!r}, {rest!r})\n"
        out.append(line)
    return out


_magics: dict[int, HermesMagics] = {}


def load(ipython: Any) -> None:
    """Register the magics on ``ipython`` (``%load_ext hermes_nb``)."""
    from . import tools  # noqa: F401  (importing it registers the ``notebook`` toolset)
    from ._outputs import watch_outputs

    watch_outputs(ipython)  # what each cell displays, for {Out[n]} and get_cell

    taken = _other_owner(ipython)
    magics = HermesMagics(ipython)
    _magics[id(ipython)] = magics
    ipython.register_magics(magics)
    # A magic of its own, not an alias: an alias would follow %hermes to whoever takes it next.
    ipython.register_magic_function(magics.hermes, "line_cell", ALIAS)
    if taken:
        print(
            f"hermes_nb: %hermes was {taken}'s and is hermes_nb's now; "
            f"%{ALIAS} is always hermes_nb's."
        )
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_questions not in cleanup:
        cleanup.append(_keep_questions)


def _other_owner(ipython: Any) -> str | None:
    """The package whose ``%hermes`` is registered now, if it is not hermes_nb's."""
    manager = getattr(ipython, "magics_manager", None)
    registered = manager.magics["line"].get("hermes") if manager is not None else None
    if registered is None:
        return None
    owner = getattr(registered, "__self__", registered)
    module = getattr(owner, "__module__", None) or type(owner).__module__
    package = module.split(".", 1)[0]
    return None if package == "hermes_nb" else package


def unload(ipython: Any) -> None:
    """Forget this shell's magics state (IPython keeps the registration) and close the ACP
    agents this kernel started (``%unload_ext``: no agent outlives the extension)."""
    from ._agent_commands import close_agents

    _magics.pop(id(ipython), None)
    close_agents()
    cleanup = getattr(ipython, "input_transformers_cleanup", None)
    if cleanup is not None and _keep_questions in cleanup:
        cleanup.remove(_keep_questions)
