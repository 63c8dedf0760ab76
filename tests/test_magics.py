"""The magics in a real IPython shell: parsing, interpolation notices and every error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hermes_nb


@pytest.fixture
def ip() -> Iterator[InteractiveShell]:
    shell = InteractiveShell.instance()
    hermes_nb.load_ipython_extension(shell)
    yield shell
    hermes_nb.unload_ipython_extension(shell)


def _magics(ip: InteractiveShell):
    from hermes_nb.magics import _magics

    return _magics[id(ip)]


def test_options_then_verbatim_prompt(ip: InteractiveShell) -> None:
    args, rest = _magics(ip)._parse("-p echo --model m1 what's a 'quote' -- and -x?")
    assert args.profile == "echo"
    assert args.model == "m1"
    assert rest == "what's a 'quote' -- and -x?"


def test_option_values_with_equals_and_quotes(ip: InteractiveShell) -> None:
    args, rest = _magics(ip)._parse('--system="Be brief, please" -o delay=0.5 -o x=true hi')
    assert args.system == "Be brief, please"
    assert args.option == ["delay=0.5", "x=true"]
    assert rest == "hi"


def test_double_dash_makes_a_subcommand_word_a_prompt(ip: InteractiveShell) -> None:
    args, rest = _magics(ip)._parse("-- stop the loop")
    assert args.explicit_prompt
    assert rest == "stop the loop"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--bogus hi", "Unknown option '--bogus'"),
        ("-p", "Option -p needs a value"),
        ("", "Nothing to ask"),
        ("runs extra", "%hermes runs takes no arguments"),
        ("export pdf", "Usage: %hermes export [md|json] [FILE]"),
        ("search", "Usage: %hermes search TEXT"),
        ("-o novalue hi", "-o takes KEY=VALUE"),
        ("-p nosuchprofile hello", "Unknown profile 'nosuchprofile'"),
        ("stop run-does-not-exist", "No run 'run-does-not-exist'"),
    ],
)
def test_every_mistake_is_one_line(ip: InteractiveShell, line: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("hermes", line)
    text = str(info.value)
    assert message in text
    assert "Traceback" not in text


def test_cell_magic_rejects_a_prompt_on_the_line(ip: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="the question goes in the cell body"):
        ip.run_cell_magic("hermes", "--wait hello", "body")


def test_help_is_generated_from_the_declared_options(ip: InteractiveShell) -> None:
    doc = _magics(ip).hermes.parser.format_help()
    for option in ("--profile", "--session", "--new", "--model", "--system", "--wait", "--plain"):
        assert option in doc
    assert "--no-interpolate" in doc


def test_profiles_lists_builtins_and_never_a_key(
    ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-never-shown-123")
    out = ip.run_line_magic("hermes", "profiles")
    text = out.data
    assert "openai ◀ default" in text
    assert "`OPENAI_API_KEY` set" in text
    assert "sk-never-shown" not in text


def test_every_option_is_documented(ip: InteractiveShell) -> None:
    from pathlib import Path

    docs = (Path(__file__).parent.parent / "docs" / "magics.md").read_text(encoding="utf-8")
    parser = _magics(ip).hermes.parser
    for action in parser._actions:
        for option in action.option_strings:
            if option not in ("-h", "--help"):
                assert f"`{option}" in docs or f", `{option}" in docs, option
    from hermes_nb.magics import _SUBCOMMANDS

    for name in _SUBCOMMANDS:
        assert f"`%hermes {name}" in docs, name
