"""The magics in a real IPython shell: parsing, interpolation notices and every error."""

from __future__ import annotations

import types

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hermes_nb


def _magics(ip: InteractiveShell):
    from hermes_nb.notebook.magics import _magics

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
    from hermes_nb.notebook.magics import _SUBCOMMANDS

    for name in _SUBCOMMANDS:
        assert f"`%hermes {name}" in docs, name


# -- asking and sub-commands, end to end on the echo model (terminal IPython: plain text) -------


def _ask(ip: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str, cell=None) -> str:
    if cell is None:
        ip.run_line_magic("hermes", line)
    else:
        ip.run_cell_magic("hermes", line, cell)
    return capsys.readouterr().out


def test_line_magic_streams_plain_text_without_widgets(ip, capsys) -> None:
    out = _ask(ip, capsys, "-o delay=0 what's new?")
    assert "what's new?" in out
    assert "**Echo** (offline model)" in out


def test_cell_magic_uses_the_body_and_interpolates(ip, capsys) -> None:
    ip.user_ns["table"] = "orders"
    out = _ask(ip, capsys, "-o delay=0", "Why is {table} slow? {missing} {{literal}}")
    assert "Why is orders slow? {missing} {literal}" in out
    assert "left as written (not defined): {missing}" in out


def test_no_interpolate_keeps_braces(ip, capsys) -> None:
    ip.user_ns["table"] = "orders"
    out = _ask(ip, capsys, "--no-interpolate -o delay=0", "Why is {table} slow?")
    assert "Why is {table} slow?" in out


def test_notebook_session_continues_across_shells(ip, capsys, monkeypatch) -> None:
    from hermes_nb import Session

    monkeypatch.setenv("JPY_SESSION_NAME", "/home/me/analysis.ipynb")
    _ask(ip, capsys, "-o delay=0 first question")
    session = Session.open("notebook:/home/me/analysis.ipynb")
    assert [m.role for m in session.messages] == ["user", "assistant"]
    # a new kernel for the same notebook (a fresh magics instance) continues the same session
    hermes_nb.unload_ipython_extension(ip)
    hermes_nb.load_ipython_extension(ip)
    _ask(ip, capsys, "-o delay=0 second question")
    assert [m.content for m in session.messages if m.role == "user"] == [
        "first question",
        "second question",
    ]
    # --new starts fresh and takes over the notebook's name; the old one is kept
    _ask(ip, capsys, "--new -o delay=0 third")
    fresh = Session.open("notebook:/home/me/analysis.ipynb")
    assert fresh.id != session.id
    assert [m.content for m in fresh.messages if m.role == "user"] == ["third"]
    assert len(Session.open(session.id).messages) == 4


def test_history_branch_search_export_and_sessions(ip, capsys, tmp_path) -> None:
    _ask(ip, capsys, "-s research -o delay=0 tell me about b-trees")
    _ask(ip, capsys, "-o delay=0 and about tries")
    history = ip.run_line_magic("hermes", "history").data
    assert "tell me about b-trees" in history
    assert "and about tries" in history
    assert "4 messages" in history
    found = ip.run_line_magic("hermes", "search tries").data
    assert "tries" in found
    exported = ip.run_line_magic("hermes", "export md").data
    assert "tell me about b-trees" in exported
    target = tmp_path / "out.json"
    ip.run_line_magic("hermes", f"export json {target}")
    assert "b-trees" in target.read_text(encoding="utf-8")
    ip.run_line_magic("hermes", "branch 2")
    out = capsys.readouterr().out
    assert "branched 'research' at message 2" in out
    assert "2 messages" in ip.run_line_magic("hermes", "history").data
    listing = ip.run_line_magic("hermes", "sessions").data
    assert "research" in listing
    assert "◀ current" in listing


def test_branch_beyond_the_end_is_one_line(ip, capsys) -> None:
    _ask(ip, capsys, "-s short -o delay=0 hi")
    with pytest.raises(UsageError, match="only 2 messages"):
        ip.run_line_magic("hermes", "branch 9")


def test_compress_archives_and_continues(ip, capsys) -> None:
    for i in range(4):
        _ask(ip, capsys, f"-s long -o delay=0 question {i}")
    ip.run_line_magic("hermes", "compress")
    out = capsys.readouterr().out
    assert "compressed 'long' (archived)" in out
    from hermes_nb import Session

    current = Session.open("long")
    assert current.source == "compression"
    assert Session.open(current.parent_session_id).archived


def test_sessions_and_doctor_count_the_same_sessions(ip, capsys) -> None:
    _ask(ip, capsys, "-s other -o delay=0 hello")
    for i in range(4):
        _ask(ip, capsys, f"-s long -o delay=0 question {i}")
    ip.run_line_magic("hermes", "compress")
    listed = ip.run_line_magic("hermes", "sessions").data
    rows = [line for line in listed.splitlines() if line.startswith("| `")]
    assert len(rows) == 2  # 'long' continued, and 'other'
    assert "1 archived by compression: not listed" in listed
    doctor = ip.run_line_magic("hermes", "doctor").data
    assert "healthy, 2 sessions (and 1 archived by compression)" in doctor


def test_stop_and_runs(ip, capsys) -> None:
    run = hermes_nb.chat("slow " * 100, delay=0.05)
    while not run.text:
        run.wait_for_event(run.last_event_id, timeout=1)
    ip.run_line_magic("hermes", "stop")
    assert "stopped run-" in capsys.readouterr().out
    assert run.wait(5).status == "stopped"
    table = ip.run_line_magic("hermes", "runs").data
    assert run.run_id in table
    assert "stopped" in table
    ip.run_line_magic("hermes", "stop")
    assert "nothing to stop" in capsys.readouterr().out


def test_runs_marks_a_reply_cut_off_at_the_token_limit(ip) -> None:
    cut = hermes_nb.chat("cut", reply="abcdefgh", chunk_size=4, delay=0, max_tokens=1).wait(5)
    whole = hermes_nb.chat("whole", delay=0).wait(5)
    rows = {
        line.split("|")[1].strip(" `"): line
        for line in ip.run_line_magic("hermes", "runs").data.splitlines()
        if "run-" in line
    }
    assert "done (cut off: length)" in rows[cut.run_id]
    assert "cut off" not in rows[whole.run_id]


def test_session_switch_creates_once_then_opens(ip, capsys) -> None:
    ip.run_line_magic("hermes", "session notes")
    assert "started new session 'notes'" in capsys.readouterr().out
    _ask(ip, capsys, "-o delay=0 remember this")
    ip.run_line_magic("hermes", "session notes")
    assert "now in session 'notes'" in capsys.readouterr().out


def test_provider_failure_is_shown_not_raised(ip, capsys) -> None:
    out = _ask(ip, capsys, "-o delay=0 -o fail='auth' hello")
    assert "auth" in out.lower()


def test_a_line_question_ending_in_a_question_mark_reaches_the_magic(ip, capsys) -> None:
    ip.run_cell("%hermes -o delay=0 why is my merge slow?")
    out = capsys.readouterr().out
    assert "why is my merge slow?" in out
    assert "not found" not in out


def test_ipython_does_not_expand_variables_in_the_line(ip, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HNB_SECRETISH", "should-not-appear")
    ip.user_ns["x"] = "orders"
    ip.run_cell("%hermes -o delay=0 sum {1+1} of {x} in $HNB_SECRETISH {{x}}")
    out = capsys.readouterr().out
    assert "sum {1+1} of orders in $HNB_SECRETISH {x}" in out
    assert "should-not-appear" not in out


def test_hnb_is_hermes_nb_s_other_name(ip, capsys) -> None:
    ip.run_cell("%hnb -o delay=0 why is the other name here?")
    assert "why is the other name here?" in capsys.readouterr().out
    ip.run_cell_magic("hnb", "-o delay=0", "a cell through the alias")
    assert "a cell through the alias" in capsys.readouterr().out


def test_loading_over_another_packages_hermes_says_so(ip, capsys) -> None:
    """jupyter-ai-hermes-magics registers a %hermes of its own: loading hermes_nb after it says
    so in one line; %hnb stays hermes_nb's whoever takes %hermes next."""
    other = types.ModuleType("jupyter_ai_hermes_magics")
    exec("def hermes(line, cell=None):\n    return 'the other one'", other.__dict__)
    ip.register_magic_function(other.hermes, "line_cell", "hermes")
    capsys.readouterr()

    hermes_nb.load_ipython_extension(ip)
    printed = capsys.readouterr().out
    assert printed.strip().splitlines() == [
        "hermes_nb: %hermes was jupyter_ai_hermes_magics's and is hermes_nb's now; "
        "%hnb is always hermes_nb's."
    ]
    assert "why" in _ask(ip, capsys, "-o delay=0 why")

    ip.register_magic_function(other.hermes, "line_cell", "hermes")  # it loads again, after us
    assert ip.run_line_magic("hermes", "x") == "the other one"
    assert "still ours" in _ask_hnb(ip, capsys, "-o delay=0 still ours")
    hermes_nb.load_ipython_extension(ip)  # loading again over our own says nothing
    hermes_nb.load_ipython_extension(ip)
    assert capsys.readouterr().out.count("hermes_nb: %hermes was") == 1


def _ask_hnb(ip, capsys, line: str) -> str:
    ip.run_line_magic("hnb", line)
    return capsys.readouterr().out


def test_unloading_removes_the_question_transformer(ip) -> None:
    from hermes_nb.notebook.magics import _keep_questions

    assert _keep_questions in ip.input_transformers_cleanup
    hermes_nb.unload_ipython_extension(ip)
    assert _keep_questions not in ip.input_transformers_cleanup
    hermes_nb.load_ipython_extension(ip)


def test_sub_commands_read_as_text_where_nothing_renders_markdown(ip, capsys) -> None:
    # Terminal IPython prints an object's repr: the answer itself, never
    # "<IPython.core.display.Markdown object>".
    _ask(ip, capsys, "-s plain -o delay=0 hello there")
    for command in ("history", "sessions", "runs", "profiles", "doctor"):
        shown = ip.run_line_magic("hermes", command)
        assert repr(shown) == shown.data == shown._repr_markdown_(), command
        assert "object at 0x" not in repr(shown) and "<IPython" not in repr(shown)
    assert "hello there" in repr(ip.run_line_magic("hermes", "history"))


def _code_blocks(markdown: str) -> list[str]:
    from markdown_it import MarkdownIt

    return [t.content for t in MarkdownIt().parse(markdown) if t.type == "fence"]


def test_history_keeps_code_blocks_whole_and_cuts_long_messages_cleanly(ip, capsys) -> None:
    code = "x = 1\ny = 2\n"
    _ask(ip, capsys, "-s code -o delay=0 --wait", f"Show code:\n\n```python\n{code}```\n\nDone.")
    history = ip.run_line_magic("hermes", "history").data
    assert _code_blocks(history) == [code, code]  # the prompt's, and the echo of it
    assert "```python x = 1" not in history

    long_code = "".join(f"line_{i} = {i}\n" for i in range(200))
    ip.run_cell_magic("hermes", "-s long -o delay=0 --wait", f"```\n{long_code}```\nafter")
    capsys.readouterr()
    history = ip.run_line_magic("hermes", "history").data
    blocks = _code_blocks(history)  # the prompt's and the echo's, each cut inside its code
    assert len(blocks) == 2
    for block in blocks:
        assert block.startswith("line_0 = 0\n") and len(block) < 700
        assert all(line.startswith("line_") for line in block.splitlines())  # at a line's end
    assert history.count("…") == 2 and "after" not in history


def test_printed_messages_carry_no_markdown(ip, capsys) -> None:
    _ask(ip, capsys, "-o delay=0 first")
    _ask(ip, capsys, "-o delay=0 second")
    ip.run_line_magic("hermes", "branch 2")
    printed = capsys.readouterr().out
    assert printed.startswith("hermes: branched ") and "`" not in printed


def test_help_prints_the_usage_once(ip, capsys) -> None:
    ip.run_line_magic("hermes", "help")
    out = capsys.readouterr().out
    assert out.count("%hermes [-p PROFILE]") == 1
    assert "%hermes code [N]" in out and "sub-commands:" in out
    assert out.startswith("usage:") or out.lstrip().startswith("%hermes"), out[:40]
    assert "::" not in out.splitlines()[0]  # no reST marker meant for %hermes?


def test_help_lists_every_option_of_the_offline_model(ip, capsys) -> None:
    from hermes_nb.providers.echo import OPTIONS

    ip.run_line_magic("hermes", "help")
    out = capsys.readouterr().out
    listed = out.split("The offline echo model's options", 1)[1]
    for name in OPTIONS:
        assert f"\n  {name} " in listed, name
    assert "repeat" in OPTIONS and "tool_calls" in OPTIONS
