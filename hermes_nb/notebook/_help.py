"""``%hermes help`` and ``%hermes doctor``, the table of sub-commands, and how a sub-command's
answer shows.

``_USAGE`` is every sub-command's usage and what it does: ``%hermes help`` prints it, and the
``prompt`` argument's help (``%hermes?``) lists the usages. :func:`_md` wraps a sub-command's
Markdown answer so it renders where a front end renders Markdown and prints as the same text
where none does.
"""

from __future__ import annotations

from typing import Any

from IPython.core.error import UsageError

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
    ("usage", "tokens in and out per session, and the cost where the profile has prices"),
    ("agents", "the ACP agents this kernel keeps running (profile, pid, command, uptime)"),
    ("agents restart [PROFILE]", "close an ACP agent (default: all); the next turn starts it"),
    ("mcp [restart NAME] [--profile P]", "MCP servers: state, stderr tail, tools; restart one"),
    ("doctor [PROFILE]", "check config, key, endpoint, store and versions"),
    ("help", "this help"),
)


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


class _HelpCommands:
    """``help`` and ``doctor``, mixed into :class:`~.magics.HermesMagics`."""

    # The magic (in HermesMagics): its ``parser`` is built from the declared options.
    hermes: Any

    def _doctor(self, arg: str) -> Any:
        try:
            from ..doctor import doctor_report
        except ImportError:  # pragma: no cover - doctor lands with its own issue
            raise UsageError("doctor is not available in this version.") from None
        return _md(doctor_report(profile=arg or None).markdown())

    def _help(self, arg: str) -> None:
        from ..providers.echo import OPTIONS

        # The parser's help holds the usage line once (the magic's docstring repeats it), after
        # the "::" IPython writes for the reST of ``%hermes?``.
        print(self.hermes.parser.format_help().removeprefix("::").lstrip("\n"))
        print("sub-commands:")
        for usage, what in _USAGE:
            print(f"  %hermes {usage}\n      {what}")
        print(
            "\nA run that asks (an approval, a question) waits: answer in the chat view or with "
            "%hermes answer / approve / deny; --run and --prompt pick which one."
        )
        print("\nThe offline echo model's options (-o NAME=VALUE, or a profile's options):")
        for name, what in OPTIONS.items():
            print(f"  {name:<14}{what}")
