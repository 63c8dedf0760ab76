"""The magics' side of a person in the loop: ``%hermes answer`` / ``approve`` / ``deny``,
``--wait`` that returns when a run asks, ``--tools``, ``%hermes fix`` / ``explain``, and a
``--wait`` turn in terminal IPython that asks on the terminal.

The kernel tests drive a real ipykernel through jupyter_client (``tests/kernel_harness.py``), one
cell at a time as a notebook would, on the offline echo model scripted to call tools
(``-o 'tool_calls=[...]'``): ``ask_user`` asks a question, a ``@hermes_nb.tool(ask=True)``
function needs an approval. The terminal tests run the magics in an in-process
``InteractiveShell`` (no kernel, so no widgets) with :func:`input` replaced.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from kernel_harness import ExecResult, KernelHarness

import hermes_nb
from hermes_nb.core.prompts import NO_ANSWER
from hermes_nb.engine import get_runtime

_FIX_READY = (Path(__file__).parent.parent / "hermes_nb" / "notebook" / "_fix.py").exists()
needs_fix = pytest.mark.skipif(not _FIX_READY, reason="hermes_nb/notebook/_fix.py not there yet")


def _calls(*calls: tuple[str, dict[str, Any]]) -> str:
    """``-o 'tool_calls=[...]'``: the echo model calls these tools (name, arguments) at once."""
    script = json.dumps([{"name": name, "arguments": args} for name, args in calls])
    return f"-o delay=0 -o 'tool_calls={script}'"


COLOUR = _calls(("ask_user", {"question": "Which colour?", "choices": ["red", "blue"]}))

SETUP = """
import json, time
import hermes_nb
from hermes_nb.engine import get_runtime

def last():
    return get_runtime().runs()[-1]

def settle(run=None, timeout=20):
    run = run or last()
    run.wait(timeout)
    return run

def report(run=None):
    run = settle(run)
    print(json.dumps({"status": str(run.status), "text": run.text,
                      "prompts": run.prompt_record(), "id": run.run_id}))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHarness]:
    home = tmp_path_factory.mktemp("prompts-kernel-home")
    with KernelHarness(home) as k:
        k.execute("%load_ext hermes_nb")
        k.execute(SETUP)
        yield k


@pytest.fixture
def k(kernel: KernelHarness) -> Iterator[KernelHarness]:
    """The shared kernel, with no run left waiting or streaming after the test (a prompt left
    open would be the oldest for the next test's ``%hermes answer``)."""
    yield kernel
    kernel.execute("for _r in get_runtime().runs():\n    _r.cancel()\n    _r.wait(20)", check=False)


def fails(k: KernelHarness, code: str) -> str:
    """Run a cell that must fail with one UsageError line; return the message."""
    result = k.execute(code, check=False)
    content = result.reply["content"]
    assert not result.ok, f"expected a UsageError from {code!r}, got: {result.stdout()}"
    assert content["ename"] == "UsageError", content
    message = str(content["evalue"])
    assert "\n" not in message and "Traceback" not in message, message
    assert not content.get("traceback"), "a UsageError shows no traceback"
    return message


def report(k: KernelHarness, run: str = "") -> dict[str, Any]:
    return json.loads(k.execute(f"report({run})").stdout())


def markdown(result: ExecResult) -> str:
    """The Markdown a sub-command returned (``%hermes runs``)."""
    [shown] = [m for m in result.iopub if m["msg_type"] == "execute_result"]
    return str(shown["content"]["data"]["text/markdown"])


def waits(result: ExecResult) -> str:
    """A ``--wait`` cell that ended because its run asks: its one line, and the view shown."""
    out = result.stdout()
    assert "waits for your" in out, out
    assert out.count("\n") == 1, f"one line: {out!r}"
    assert list(result.displays()), "the live view (with its card) stays in the output"
    return out


# -- answering from the next cell --------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_question_answered_by_the_magic_reaches_the_model(k: KernelHarness) -> None:
    line = waits(k.execute(f"%hermes --wait --tools ask_user {COLOUR} pick a colour"))
    assert "“Which colour?” (choices: red, blue)" in line
    assert "%hermes answer TEXT" in line
    run_id = k.execute("print(last().run_id, last().status)").stdout().split()
    assert run_id[1] == "waiting"
    out = k.execute("%hermes answer blue").stdout()
    assert out == f"hermes: answered 'blue' to “Which colour?” ({run_id[0]}).\n"
    state = report(k)
    assert state["status"] == "done"
    assert "`call_0`: blue" in state["text"], "the model received the answer as the tool result"
    [prompt] = state["prompts"]
    assert (prompt["value"], prompt["by"]) == ("blue", "magic")


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_an_answer_may_hold_spaces_and_quotes_pick_a_choice_by_its_text(k: KernelHarness) -> None:
    waits(k.execute(f"%hermes --wait --tools ask_user {COLOUR} pick"))
    out = k.execute('%hermes answer "sky blue, really"').stdout()
    assert "answered 'sky blue, really'" in out
    assert "`call_0`: sky blue, really" in report(k)["text"]


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_approve_runs_the_tool_and_deny_does_not(k: KernelHarness) -> None:
    k.execute(
        "calls = []\n"
        "@hermes_nb.tool(ask=True)\n"
        "def remember(item: str) -> str:\n"
        '    """Write the item down."""\n'
        "    calls.append(item)\n"
        "    return f'remembered {item}'\n"
    )
    script = _calls(("remember", {"item": "apple"}))
    line = waits(k.execute(f"%hermes --wait --tools remember {script} note it"))
    assert "waits for your approval of remember(item='apple')" in line
    assert "%hermes approve" in line and "%hermes deny" in line
    assert k.execute("print(calls)").stdout() == "[]\n", "nothing runs before the approval"
    out = k.execute("%hermes approve --wait").stdout()
    first, second = out.splitlines()
    assert first.startswith("hermes: allowed once: remember(item='apple') (run-")
    assert second.endswith(" done."), "--wait on the answer: the run has settled"
    assert k.execute("print(calls)").stdout() == "['apple']\n", "approved: the function ran"
    assert "remembered apple" in report(k)["text"]

    waits(k.execute(f"%hermes --wait --tools remember {_calls(('remember', {'item': 'pear'}))} x"))
    out = k.execute("%hermes deny").stdout()
    assert out.startswith("hermes: denied: remember(item='pear') (run-")
    state = report(k)
    assert k.execute("print(calls)").stdout() == "['apple']\n", "denied: the function did not run"
    assert "Not run: the person denied it" in state["text"], "the model is told"
    assert (state["prompts"][0]["value"], state["prompts"][0]["by"]) == ("deny", "magic")


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_second_answer_is_refused_in_one_sentence(k: KernelHarness) -> None:
    steps = json.dumps(
        [
            [{"name": "ask_user", "arguments": {"question": "First?"}}],
            [{"name": "ask_user", "arguments": {"question": "Second?"}}],
        ]
    )
    waits(k.execute(f"%hermes --wait --tools ask_user -o delay=0 -o 'tool_steps={steps}' go"))
    first = k.execute("print(last().pending[0].id)").stdout().strip()
    # --wait on the answer returns when the run asks again, saying so
    out = k.execute("%hermes answer --wait blue").stdout()
    assert "answered 'blue' to “First?”" in out
    assert "waits for your answer to “Second?”" in out
    message = fails(k, f"%hermes answer --prompt {first} red")
    assert message.startswith(f"Prompt {first} was already answered 'blue' by the %hermes magic")
    assert "only the first answer counts" in message
    message = fails(k, "%hermes answer --prompt p9-nosuch red")
    assert message == (
        "There is no prompt 'p9-nosuch' in this kernel's runs; %hermes runs shows what is waiting."
    )
    # nothing changed: the second prompt still waits and takes its answer
    k.execute("%hermes answer green")
    prompts = report(k)["prompts"]
    assert [(p["text"], p["value"]) for p in prompts] == [("First?", "blue"), ("Second?", "green")]


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_bad_answers_are_one_sentence_and_change_nothing(k: KernelHarness) -> None:
    assert fails(k, "%hermes answer x") == "No prompt is waiting for an answer in this kernel."
    assert fails(k, "%hermes approve") == "No approval is waiting for an answer in this kernel."
    assert fails(k, "%hermes answer --run run-nosuch x").startswith("No run 'run-nosuch'.")

    waits(k.execute(f"%hermes --wait --tools ask_user {COLOUR} pick"))
    message = fails(k, '%hermes answer ""')
    assert (
        message
        == "An empty answer cannot be taken; pick one of: red, blue, or type a reply of your own."
    )
    assert fails(k, "%hermes answer").startswith("An empty answer cannot be taken")
    message = fails(k, "%hermes approve")
    assert message.startswith("No approval is waiting in this kernel; run-")
    assert "asks a question (“Which colour?”): answer it with %hermes answer TEXT." in message
    runs = markdown(k.execute("%hermes runs"))
    assert "| waiting: “Which colour?” |" in runs
    assert "Waiting for you: answer in the chat view, or with `%hermes answer TEXT`" in runs
    k.execute("%hermes answer red")
    assert report(k)["prompts"][0]["value"] == "red"

    k.execute("@hermes_nb.tool(ask=True)\ndef wipe(path: str) -> str:\n    return 'wiped'\n")
    waits(k.execute(f"%hermes --wait --tools wipe {_calls(('wipe', {'path': '/tmp/x'}))} go"))
    message = fails(k, "%hermes answer maybe")
    assert message == (
        "'maybe' is not an approval answer; answer with exactly one of: once, session, always, "
        "deny."
    )
    assert fails(k, "%hermes approve maybe") == (
        "%hermes approve takes once, session or always, not 'maybe' (%hermes deny refuses)."
    )
    assert fails(k, "%hermes deny now").startswith("%hermes deny takes no answer")
    assert k.execute("print(last().status, len(last().pending))").stdout() == "waiting 1\n"
    run_id = k.execute("print(last().run_id)").stdout().strip()
    k.execute(f"%hermes deny --run {run_id}")
    report(k)
    message = fails(k, f"%hermes answer --run {run_id} once")
    assert message == f"{run_id} has already finished (done); nothing of it waits."


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_at_the_deadline_the_question_is_answered_for_the_person(k: KernelHarness) -> None:
    waits(k.execute(f"%hermes --wait --tools ask_user -o prompt_timeout=1 {COLOUR} pick"))
    state = report(k)  # the deadline passes; the run goes on and settles by itself
    [prompt] = state["prompts"]
    assert (prompt["value"], prompt["by"]) == (NO_ANSWER, "timeout")
    assert NO_ANSWER in state["text"]
    assert fails(k, "%hermes answer blue") == "No prompt is waiting for an answer in this kernel."
    assert "prompt_timeout takes seconds" in fails(k, "%hermes -o prompt_timeout=-1 hi")


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_plain_in_a_notebook_says_how_to_answer_and_the_answer_prints_the_rest(
    k: KernelHarness,
) -> None:
    out = k.execute(f"%hermes --plain --wait --tools ask_user {COLOUR} pick").stdout()
    assert out.endswith(
        "Question: Which colour?\nChoices: red, blue\nTo answer: %hermes answer VALUE.\n"
        "After 300 s without an answer the model goes on without one.\n"
    ), "the plain stream printed the prompt and how to answer it; the cell ended there"
    assert k.execute("print(last().status)").stdout() == "waiting\n"
    out = k.execute("%hermes answer blue").stdout()
    run_id = k.execute("print(settle().run_id)").stdout().strip()
    lines = out.splitlines()
    assert lines[0] == f"hermes: answered 'blue' to “Which colour?” ({run_id})."
    assert lines[1].startswith("→ Answered “blue”, by you")
    assert "`call_0`: blue" in out, "the rest of the reply, under the answering cell"


# -- --tools ----------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_tools_from_the_notebook_namespace(k: KernelHarness) -> None:
    k.execute(
        "def add(a: int, b: int) -> int:\n"
        '    """Add two numbers."""\n'
        "    return a + b\n"
        "@hermes_nb.tool\n"
        "def shout(text: str) -> str:\n"
        "    return text.upper()\n"
    )
    script = _calls(("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"}))
    result = k.execute(f"%hermes --wait --tools add,shout {script} compute")
    assert "waits for" not in result.stdout()
    bundle = result.displays()[-1]["content"]["data"]
    assert set(bundle) == {"text/html", "text/markdown", "text/plain"}, "the static transcript"
    state = report(k)
    assert "`call_0`: 5" in state["text"] and "`call_1`: HI" in state["text"]
    names = k.execute("print([t.name for t in last().request.tools])").stdout()
    assert names == "['add', 'shout', 'ask_user']\n"


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_an_unknown_tool_name_is_one_sentence_before_anything_is_stored(k: KernelHarness) -> None:
    count = "print(len(hermes_nb.sessions.list()), len(get_runtime().runs()))"
    before = k.execute(count).stdout()
    message = fails(k, "%hermes --new --tools add_nothing,nosuch hi")
    assert message.startswith(
        "--tools: nothing is named 'add_nothing': it is neither a function or @hermes_nb.tool in "
        "the notebook nor a registered tool or toolset ("
    )
    assert "ask_user" in message
    assert fails(k, "%hermes --tools , hi") == (
        "--tools takes names separated by commas, e.g. --tools f,g."
    )
    assert k.execute(count).stdout() == before, "no session, no run"


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_approve_wait_runs_the_agents_code_while_it_holds_the_main_thread(
    k: KernelHarness,
) -> None:
    """``run_python`` runs on the main thread between cells; a cell that waits for the run
    holds that thread, so it runs the queued code itself instead of deadlocking."""
    script = _calls(("run_python", {"code": "z = 41 + 1\nprint(z)"}))
    line = waits(k.execute(f"%hermes --wait --tools notebook {script} compute z"))
    assert "waits for your approval of run_python(code='z = 41 + 1\\nprint(z)')" in line
    out = k.execute("%hermes approve --wait", timeout=30).stdout()
    assert out.splitlines()[-1].endswith(" done.")
    assert k.execute("print(z)").stdout() == "42\n", "the code ran in the notebook's namespace"
    assert "42" in report(k)["text"]


# -- %hermes fix / explain ----------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.timeout(120)
@needs_fix
def test_fix_and_explain_send_the_last_failure(tmp_path: Path) -> None:
    with KernelHarness(tmp_path) as k:
        k.execute("%load_ext hermes_nb")
        assert fails(k, "%hermes fix").startswith("Nothing has failed yet in this kernel.")
        k.execute("x = 1\ny = x / 0", check=False)
        k.execute("%hermes --wait fix -o delay=0")  # options before and after the word
        prompt = k.execute(
            "from hermes_nb.engine import get_runtime\n"
            "run = get_runtime().runs()[-1]\nrun.wait(20)\nprint(run.request.prompt)"
        ).stdout()
        assert "ZeroDivisionError" in prompt and "y = x / 0" in prompt
        k.execute("%hermes explain --wait -o delay=0")
        assert "ZeroDivisionError" in k.execute("print(get_runtime().runs()[-1].text)").stdout()
        assert fails(k, "%hermes fix now").startswith("%hermes fix takes options only")


# -- kernel shutdown while waiting ----------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_shutdown_while_waiting_answers_for_the_person(tmp_path: Path) -> None:
    dump = tmp_path / "runs.json"
    with KernelHarness(tmp_path) as k:
        # Registered before hermes_nb starts its runtime, so it runs after the runtime's own
        # exit handler (atexit is last in, first out) and sees what the shutdown did.
        k.execute(
            "import atexit, json\n"
            "def _dump():\n"
            "    from hermes_nb.engine import get_runtime\n"
            f"    with open({str(dump)!r}, 'w') as fh:\n"
            "        json.dump([r.prompt_record() for r in get_runtime().runs()], fh)\n"
            "atexit.register(_dump)\n"
        )
        k.execute("%load_ext hermes_nb")
        waits(k.execute(f"%hermes --wait --tools ask_user {COLOUR} pick"))
        k.km.shutdown_kernel(now=False)  # a graceful shutdown, as the front end asks for one
    [[prompt]] = json.loads(dump.read_text(encoding="utf-8"))
    assert (prompt["value"], prompt["by"]) == (NO_ANSWER, "shutdown")


# -- terminal IPython: no widgets, a --wait turn asks on the terminal ----------------------------


class Terminal:
    """The person at the terminal: ``typed`` holds what they type at each :func:`input`, in
    order (nothing left: end of input); ``asked`` records the prompts :func:`input` showed."""

    def __init__(self) -> None:
        self.typed: list[str] = []
        self.asked: list[str] = []

    def input(self, prompt: str = "") -> str:
        self.asked.append(prompt)
        if not self.typed:
            raise EOFError
        return self.typed.pop(0)


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    person = Terminal()
    monkeypatch.setattr(builtins, "input", person.input)
    return person


def _last_run() -> Any:
    return get_runtime().runs()[-1].wait(10)


@pytest.mark.usefixtures("stores_closed")
def test_terminal_wait_asks_a_question_on_the_terminal(ip, capsys, terminal) -> None:
    terminal.typed.extend(["", "2"])  # an empty line is refused, then choice 2
    ip.run_line_magic("hermes", f"--wait --tools ask_user {COLOUR} pick a colour")
    out = capsys.readouterr().out
    run = _last_run()
    # the stream prints the question (and how to answer it elsewhere); the terminal asks
    assert "Question: Which colour?\nChoices: red, blue\n" in out
    assert terminal.asked == ["Your answer (1 = red, 2 = blue, or your own words): "] * 2
    assert "an empty answer cannot be taken" in out
    assert "→ Answered “blue”, by you" in out
    assert out.index("→ Answered") < out.index("`call_0`: blue"), "then the reply goes on"
    assert run.status == "done"
    assert run.prompt_record()[0]["by"] == "magic"


@pytest.mark.usefixtures("stores_closed")
def test_terminal_wait_asks_for_an_approval(ip, capsys, terminal) -> None:
    ran: list[int] = []

    @hermes_nb.tool(name="bump_counter", ask=True)
    def bump(by: int) -> str:
        ran.append(by)
        return f"bumped {by}"

    ip.user_ns["bump"] = bump
    terminal.typed.extend(["perhaps", "y"])
    ip.run_line_magic("hermes", f"--wait --tools bump {_calls(('bump_counter', {'by': 2}))} go")
    out = capsys.readouterr().out
    assert "Approval needed: Allow the tool bump_counter to run?\n    bump_counter(by=2)" in out
    assert terminal.asked == ["Allow? once / session / always / deny (y = once, n = deny): "] * 2
    assert "'perhaps' is not an answer" in out
    assert "→ Allowed once, by you" in out
    assert ran == [2]
    assert "bumped 2" in out

    terminal.typed.extend(["n"])
    ip.run_line_magic("hermes", f"--wait --tools bump {_calls(('bump_counter', {'by': 5}))} go")
    out = capsys.readouterr().out
    assert "→ Denied, by you" in out
    assert ran == [2], "denied: not run"
    assert [r.prompt_record()[0]["by"] for r in get_runtime().runs()[-2:]] == ["magic"] * 2


@pytest.mark.usefixtures("stores_closed")
def test_terminal_without_wait_says_how_to_answer_and_returns(ip, capsys, terminal) -> None:
    ip.run_line_magic("hermes", f"--tools ask_user {COLOUR} pick")
    out = capsys.readouterr().out
    assert terminal.asked == [], "without --wait nothing is read from the terminal"
    assert out.endswith(
        "Question: Which colour?\nChoices: red, blue\nTo answer: %hermes answer VALUE.\n"
        "After 300 s without an answer the model goes on without one.\n"
    )
    assert get_runtime().runs()[-1].status == "waiting", "the cell ended; the run waits"
    ip.run_line_magic("hermes", "answer red")
    run = _last_run()
    out = capsys.readouterr().out
    # the answer's line, then the rest of the reply where the stream stopped
    assert out.startswith(
        f"hermes: answered 'red' to “Which colour?” ({run.run_id}).\n→ Answered “red”, by you"
    )
    assert "`call_0`: red" in out
    assert "Which colour?\nChoices" not in out, "nothing printed twice"


@pytest.mark.usefixtures("stores_closed")
def test_terminal_wait_without_a_terminal_falls_back_to_the_magic(ip, capsys, terminal) -> None:
    ip.run_line_magic("hermes", f"--wait --tools ask_user {COLOUR} pick")  # input() hits EOF
    assert "To answer: %hermes answer VALUE." in capsys.readouterr().out
    ip.run_line_magic("hermes", "answer 1")  # the magic takes the text as written
    assert "`call_0`: 1" in _last_run().text


# -- parsing, help and docs ---------------------------------------------------------------------


def test_option_values_read_as_toml_then_json_then_text() -> None:
    from hermes_nb.notebook._options import _options

    got = _options(
        ["a=0.5", "b='x y'", "c=[1, 2]", 'd=[{"name": "f", "arguments": {"k": 1}}]', "e=plain"]
    )
    assert got == {
        "a": 0.5,
        "b": "x y",
        "c": [1, 2],
        "d": [{"name": "f", "arguments": {"k": 1}}],
        "e": "plain",
    }


def test_a_quoted_json_option_survives_the_line_parser(ip) -> None:
    from hermes_nb.notebook._options import _options
    from hermes_nb.notebook.magics import _magics

    args, rest = _magics[id(ip)]._parse(f"--tools ask_user {COLOUR} pick one")
    assert args.tools == "ask_user" and rest == "pick one"
    assert _options(args.option)["tool_calls"][0]["arguments"]["choices"] == ["red", "blue"]


@pytest.mark.parametrize(
    ("arg", "picks", "value"),
    [
        ("blue sky", {"run": None, "prompt": None, "wait": False}, "blue sky"),
        ("--run run-3 --wait a b", {"run": "run-3", "prompt": None, "wait": True}, "a b"),
        (
            "--prompt=p1-x --run=r -- --weird",
            {"run": "r", "prompt": "p1-x", "wait": False},
            "--weird",
        ),
        ("-1", {"run": None, "prompt": None, "wait": False}, "-1"),
        ("--other", {"run": None, "prompt": None, "wait": False}, "--other"),
    ],
)
def test_answer_options_then_the_answer_verbatim(
    arg: str, picks: dict[str, Any], value: str
) -> None:
    from hermes_nb.notebook._answers import answer_options

    assert answer_options("answer", arg) == (picks, value)


def test_answer_option_without_a_value_is_one_line(ip) -> None:
    with pytest.raises(UsageError, match=r"^%hermes answer --run needs a value\.$"):
        ip.run_line_magic("hermes", "answer --run")


def test_help_lists_the_prompt_sub_commands(ip, capsys) -> None:
    ip.run_line_magic("hermes", "help")
    out = capsys.readouterr().out
    for usage in ("answer [--run RUN]", "approve [once|session|always]", "deny", "fix", "explain"):
        assert f"%hermes {usage}" in out
    assert "--tools NAMES" in out
