"""The ``%hermes`` options, read from the front of the line.

The options are declared on :meth:`~.magics.HermesMagics.hermes` with IPython's
``@magic_arguments`` (so ``%hermes?`` shows them); :class:`_OptionParsing` reads them with that
parser, by hand and from the front of the line only, so the rest, verbatim, is the prompt and may
contain anything (apostrophes, quotes, dashes) without shell-style quoting. Also here: the
``-o KEY=VALUE`` per-turn options (:func:`_options`) and the one-line refusal of an argument to a
sub-command that takes none (:func:`_no_args`).
"""

from __future__ import annotations

import re
from typing import Any

from IPython.core.error import UsageError

_TOKEN = re.compile(r"""\s*((?:"(?:[^"\\]|\\.)*"|'[^']*'|[^\s"'])+)""")
_QUOTED = re.compile(r""""((?:[^"\\]|\\.)*)"|'([^']*)'""")


def _unquote(token: str) -> str:
    """Shell-style: drop the quotes around quoted parts (``--x="a b"`` → ``--x=a b``)."""
    return _QUOTED.sub(lambda m: m.group(1) if m.group(2) is None else m.group(2), token)


class _OptionParsing:
    """Option parsing, mixed into :class:`~.magics.HermesMagics`."""

    # The magic (in HermesMagics): its ``parser`` is built from the declared options.
    hermes: Any

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
