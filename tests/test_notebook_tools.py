"""The ``notebook`` toolset (``hermes_nb/notebook/tools.py``) and ``%hermes fix`` / ``explain``'s
prompt (``hermes_nb/notebook/_fix.py``).

Unit tests read a real ``InteractiveShell``; the kernel tests drive a real ipykernel through
jupyter_client (``kernel_harness.py``) with the echo model scripted to call the tools, and check
what the tools returned in the run's events. ``run_python`` must run on the kernel's main thread
between cells: the kernel tests hold the main thread with a sleeping (and an awaiting) cell while
the agent's code is queued, stop a long run_python, and wait on a run from a cell
(``wait_for_run``, what ``%%hermes --wait`` does). ``HERMES_NB_KERNEL_PYTHON=/path/to/python``
runs them against another ipykernel (6.29 queues shell messages, 7.4 locks them).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from kernel_harness import TOOL_CALLS_SETUP, KernelHarness

import hermes_nb
from hermes_nb.core.exceptions import HermesError
from hermes_nb.engine.tools import resolve_tools
from hermes_nb.notebook import _fix
from hermes_nb.notebook import tools as nbtools
from hermes_nb.notebook._fix import (
    failure_prompt,
    last_failure,
    looks_secret,
    strip_ansi,
    trim_middle,
)

# -- unit tests in an InteractiveShell -----------------------------------------------------------


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """The IPython singleton with a fresh namespace and history, and no earlier failure."""
    ip = InteractiveShell.instance()
    ip.reset(new_session=True)
    for name in ("last_type", "last_value", "last_traceback", "last_exc"):
        monkeypatch.delattr(sys, name, raising=False)
    monkeypatch.setattr(_fix, "_failures", {})
    _fix.watch_failures(ip)
    yield ip
    ip.reset(new_session=True)


def run_cell(ip: InteractiveShell, code: str) -> None:
    ip.run_cell(code, store_history=True)


def tools_for(ip: InteractiveShell) -> dict[str, Any]:
    return {t.name: t for t in nbtools.notebook_tools(ip)}


def call(ip: InteractiveShell, tool_name: str, /, **arguments: Any) -> Any:
    found = tools_for(ip)[tool_name]
    assert found.function is not None
    return found.function(**found.arguments(json.dumps(arguments)))


def test_the_toolset_is_registered_and_offers_five_tools_run_python_asks(
    shell: InteractiveShell,
) -> None:
    offered = {t.name: t for t in resolve_tools(["notebook"])}
    assert list(offered) == [*nbtools.NOTEBOOK_TOOLS, "ask_user"]
    assert offered["run_python"].ask and offered["run_python"].is_async
    assert not any(offered[n].ask for n in nbtools.NOTEBOOK_TOOLS[:-1])
    assert offered["get_cell"].parameters["properties"]["n"]["type"] == "integer"
    assert offered["describe"].parameters["required"] == ["name"]


def test_the_toolset_does_not_take_over_a_persons_tool_names(shell: InteractiveShell) -> None:
    @hermes_nb.tool
    def describe(thing: str) -> str:
        """Mine."""
        return thing

    resolve_tools(["notebook"])
    assert resolve_tools(["describe"])[0] is describe


def test_list_variables_skips_ipython_and_modules_and_shows_shape_and_length(
    shell: InteractiveShell,
) -> None:
    pd = pytest.importorskip("pandas")
    shell.user_ns["pd"] = pd
    run_cell(shell, "df = pd.DataFrame({'a': [1, 2, 3], 'b': list('xyz')})\nitems = [1, 2]")
    run_cell(shell, "import os\ndef f(a, b=1):\n    return a\n_private = 1\ndf")
    text = call(shell, "list_variables")
    assert "| df | DataFrame | 3 × 2 | columns: a, b |" in text
    assert "| items | list | length 2 | [1, 2] |" in text
    assert "| f | function |  | f(a, b=1) |" in text
    for hidden in ("| In |", "| Out |", "| exit |", "| get_ipython |", "_private", "| os |"):
        assert hidden not in text
    assert "| pd |" not in text  # a module


def test_secrets_are_redacted_by_name_and_by_shape(shell: InteractiveShell) -> None:
    run_cell(
        shell,
        "OPENAI_API_KEY = 'abc123'\ngithubToken = 'g-1'\ndb_password = 'hunter2'\n"
        "note = 'key is sk-abcdefghijklmnopqrstuvwxyz0123'\nmonkey = 'banana'",
    )
    text = call(shell, "list_variables")
    for secret in ("abc123", "g-1", "hunter2", "sk-abcdefghijklmnopqrstuvwxyz0123"):
        assert secret not in text
    assert text.count("<redacted: the name looks like a secret>") == 3
    assert "<redacted key>" in text
    assert "banana" in text  # "monkey" is not a key
    assert "hunter2" not in call(shell, "describe", name="db_password")
    assert "sk-abc" not in call(shell, "get_cell", n=1)
    secret_like = ("API_KEY", "apikey", "SessionToken", "db_Password", "MYSECRET", "auth_header")
    assert all(looks_secret(n) for n in secret_like)
    plain = ("keyboard", "monkey", "max_tokens", "tokenizer", "tokens", "keys", "author")
    assert not any(looks_secret(n) for n in plain)


def test_describe_summarises_as_interpolation_does_and_names_an_unknown_variable(
    shell: InteractiveShell,
) -> None:
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    shell.user_ns.update(pd=pd, np=np)
    run_cell(shell, "df = pd.DataFrame({'key': [f'k{i}' for i in range(100)], 'v': range(100)})")
    run_cell(shell, "arr = np.arange(10_000)")
    text = call(shell, "describe", name="df")
    assert "DataFrame with 100 rows × 2 columns (key, v)" in text
    assert "k4" in text and "k5" not in text
    assert "Column types: key:" in text and "v: int64" in text
    assert "array of shape (10000,)" in call(shell, "describe", name="arr")
    with pytest.raises(LookupError, match=r"no variable named 'nope'.*list_variables"):
        call(shell, "describe", name="nope")
    with pytest.raises(LookupError):
        call(shell, "describe", name="In")  # IPython's own


def test_get_cell_gives_the_source_as_typed_and_the_output_text(shell: InteractiveShell) -> None:
    run_cell(shell, "x = 20")
    run_cell(shell, "%time y = x + 1\ny * 2")
    text = call(shell, "get_cell", n=2)
    assert "%time y = x + 1" in text  # as typed, not get_ipython().run_line_magic(...)
    assert "Out[2]: 42" in text
    assert "Out[1]: none" in call(shell, "get_cell", n=1)
    for n in (0, 3, -1):
        with pytest.raises(LookupError, match=r"There is no cell In\[.*In\[1\] to In\[2\]"):
            call(shell, "get_cell", n=n)


def test_last_error_names_the_cell_and_gives_a_plain_traceback(shell: InteractiveShell) -> None:
    assert call(shell, "last_error") == "Nothing has failed yet in this kernel."
    run_cell(shell, "def f(a):\n    return a / 0")
    run_cell(shell, "x = 1\ny = f(x)")
    run_cell(shell, "z = 3")  # a later cell that works
    text = call(shell, "last_error")
    assert text.startswith("ZeroDivisionError: division by zero")
    assert "raised by cell In[2] (1 cell ran after it)" in text
    assert "x = 1\ny = f(x)" in text
    assert "Cell In[2], line 2, in <module>" in text
    assert "Cell In[1], line 2, in f" in text  # the function's cell, also shown
    assert "interactiveshell.py" not in text  # IPython's own frame above the cell
    assert "\x1b[" not in text


def test_a_mistyped_magic_does_not_hide_the_cell_that_failed(shell: InteractiveShell) -> None:
    run_cell(shell, "rows = []\nfirst = rows[0]")
    run_cell(shell, "%no_such_magic")  # a UsageError: IPython shows it as the last error
    assert type(sys.last_value).__name__ == "UsageError"
    failure = last_failure(shell)
    assert failure is not None
    assert failure.type_name == "IndexError" and failure.cell == 1
    assert "first = rows[0]" in failure_prompt(shell, "explain")


def test_last_error_for_a_syntax_error_names_the_cell(shell: InteractiveShell) -> None:
    run_cell(shell, "1 +* 2")
    failure = last_failure(shell)
    assert failure is not None
    assert failure.type_name == "SyntaxError"
    assert failure.cell == 1
    assert failure.source == "1 +* 2"


def test_failure_prompt_has_source_traceback_variables_and_the_request(
    shell: InteractiveShell,
) -> None:
    with pytest.raises(HermesError, match="Nothing has failed yet") as info:
        failure_prompt(shell, "fix")
    assert info.value.hint == "Run a cell that raises, then %hermes fix."
    run_cell(shell, "denominator = 0\nrows = [3, 4]\nsecret_token = 'zzz-top'")
    run_cell(shell, "ratio = sum(rows) / denominator\nprint(secret_token)")
    fix = failure_prompt(shell, "fix")
    assert "raised ZeroDivisionError: division by zero" in fix
    assert "```python\nratio = sum(rows) / denominator\nprint(secret_token)\n```" in fix
    assert "Cell In[2], line 1, in <module>" in fix
    assert "`denominator` (int): 0" in fix
    assert "`rows` (list): [3, 4]" in fix
    assert "zzz-top" not in fix
    assert "`sum`" not in fix  # a builtin, not the person's variable
    assert "ONE fenced ```python code block" in fix
    explain = failure_prompt(shell, "explain")
    assert "Explain this error" in explain and "ONE fenced" not in explain
    assert "\x1b[" not in fix + explain


def test_long_tracebacks_are_trimmed_in_the_middle_with_a_note(shell: InteractiveShell) -> None:
    text = "\n".join(f"line {i}" for i in range(1000))
    cut = trim_middle(text, max_lines=60)
    lines = cut.splitlines()
    assert lines[0] == "line 0" and lines[-1] == "line 999"
    assert any("lines left out" in line for line in lines)
    assert len(lines) <= 61
    wide = trim_middle("x" * 50_000, max_chars=6000)
    assert len(wide) < 6100 and "characters left out" in wide
    assert strip_ansi("\x1b[31mred\x1b[39m \x1b]8;;http://x\x07link\x1b]8;;\x07") == "red link"

    run_cell(
        shell,
        "def ping(n):\n    return pong(n + 1) if n < 60 else 1 / 0\n"
        "def pong(n):\n    return ping(n + 1)\nping(0)",
    )
    prompt = failure_prompt(shell, "explain")
    assert "ZeroDivisionError" in prompt and "left out" in prompt
    assert len(prompt) < 12_000


def test_run_python_without_a_kernel_says_so_unless_a_main_thread_waits(
    shell: InteractiveShell,
) -> None:
    run = hermes_nb.chat(
        "go",
        profile="echo",
        tools=nbtools.notebook_tools(shell),
        tool_calls=[{"name": "run_python", "arguments": {"code": "made = 1"}}],
        delay=0,
    )
    answer_when_asked(run)
    run.wait(20)
    (result,) = tool_results(run)
    assert result["error"] and "needs a Jupyter kernel" in result["result"]
    assert "made" not in shell.user_ns


def test_wait_for_run_runs_queued_code_on_the_main_thread(shell: InteractiveShell) -> None:
    code = (
        "import threading, sys\nprint('out'); print('err', file=sys.stderr)\n"
        "from IPython.display import display, Markdown\ndisplay(Markdown('**md**'))\n"
        "on_main = threading.current_thread() is threading.main_thread()\n{'k': 1}"
    )
    run = hermes_nb.chat(
        "go",
        profile="echo",
        tools=nbtools.notebook_tools(shell),
        tool_calls=[{"name": "run_python", "arguments": {"code": code}}],
        delay=0,
    )
    answer_when_asked(run)
    nbtools.wait_for_run(run, 20)
    (result,) = tool_results(run)
    assert not result["error"]
    assert result["result"] == (
        "stdout:\nout\n\nstderr:\nerr\n\ndisplay:\n**md**\n\nresult:\n{'k': 1}"
    )
    assert shell.user_ns["on_main"] is True
    assert "In" in shell.user_ns and len(shell.user_ns["In"]) == 1  # no cell was added


def test_run_python_errors_are_the_agents_not_the_notebooks_last_error(
    shell: InteractiveShell,
) -> None:
    run = hermes_nb.chat(
        "go",
        profile="echo",
        tools=nbtools.notebook_tools(shell),
        tool_steps=[
            [
                {
                    "name": "run_python",
                    "arguments": {"code": "def g():\n    raise KeyError('k')\ng()"},
                }
            ],
            [{"name": "run_python", "arguments": {"code": "x = (1"}}],
            [{"name": "run_python", "arguments": {"code": "import sys\nsys.exit(3)"}}],
        ],
        delay=0,
    )
    answers = threading.Thread(target=answer_all, args=(run, 3), daemon=True)
    answers.start()
    nbtools.wait_for_run(run, 20)
    first, second, third = (r["result"] for r in tool_results(run))
    assert first.startswith("error:\nTraceback (most recent call last):")
    assert 'File "<run_python>", line 3, in <module>' in first
    assert "    raise KeyError('k')" in first and first.endswith("KeyError: 'k'")
    assert "tools.py" not in first  # our own frames are left out
    assert second.startswith("error:\n") and "SyntaxError" in second
    assert "SystemExit: 3" in third
    assert last_failure(shell) is None


# -- helpers for runs ------------------------------------------------------------------------------


def tool_results(run: Any) -> list[dict[str, Any]]:
    return [e.data for e in run.events() if e.event == "tool_end"]


def answer_when_asked(run: Any, value: str = "once") -> threading.Thread:
    def answer() -> None:
        deadline = time.monotonic() + 20
        while not run.pending and not run.settled and time.monotonic() < deadline:
            time.sleep(0.005)
        if run.pending:
            run.answer(run.pending[0].id, value)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return thread


def answer_all(run: Any, count: int) -> None:
    for _ in range(count):
        answer_when_asked(run).join(20)


# -- kernel tests --------------------------------------------------------------------------------

SETUP = (
    TOOL_CALLS_SETUP
    + """
import threading
from hermes_nb.notebook import tools as nbtools   # importing it registers "notebook"

def approve(run, timeout=20):
    deadline = time.monotonic() + timeout
    while not run.pending:
        assert time.monotonic() < deadline, "no approval prompt"
        time.sleep(0.005)
    assert run.answer(run.pending[0].id, "once")

def until_queued(run, timeout=20):
    deadline = time.monotonic() + timeout
    while nbtools.queued() == 0:
        assert time.monotonic() < deadline and not run.settled, "run_python was never queued"
        time.sleep(0.005)
"""
)


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = tmp_path_factory.mktemp("kernel-home")
    with KernelHarness(home) as k:
        k.execute(SETUP)
        yield k


def kernel_json(k: Any, code: str, timeout: float = 60) -> Any:
    return json.loads(k.execute(code, timeout).stdout().strip().splitlines()[-1])


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_list_variables_sees_a_dataframe_from_an_earlier_cell(kernel: Any) -> None:
    kernel.execute(
        "import pandas as pd\nsales = pd.DataFrame({'region': ['n', 's'], 'total': [1.5, 2.5]})\n"
        "HF_TOKEN = 'tok-shh'"
    )
    got = kernel_json(
        kernel,
        "r = start(('list_variables', {}))\nr.wait(30)\n"
        "print(json.dumps({'results': results(r), 'text': r.text, 'status': r.status}))",
    )
    assert got["status"] == "done"
    (result,) = got["results"]
    assert not result["error"]
    assert "| sales | DataFrame | 2 × 2 | columns: region, total |" in result["result"]
    assert "| HF_TOKEN | str |  | <redacted: the name looks like a secret> |" in result["result"]
    assert "tok-shh" not in json.dumps(got)
    assert "sales" in got["text"]  # the echo model replies with what the tool returned


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_approved_run_python_defines_a_variable_the_next_cell_reads(kernel: Any) -> None:
    code = (
        "answer = 6 * 7\nprint('set')\nfrom IPython.display import display, Markdown\n"
        "display(Markdown('**shown**'))\nanswer + 1"
    )
    kernel.execute(f"r2 = start(('run_python', {{'code': {code!r}}}))")
    mark = kernel.mark()
    # a later cell answers the approval; the code runs once that cell has ended
    kernel.execute("approve(r2)\nuntil_queued(r2)\nassert 'answer' not in globals()")
    last = kernel.execute("print(json.dumps([answer, r2.wait(30).status, results(r2)]))")
    value, status, (result,) = json.loads(last.stdout())
    assert value == 42
    assert status == "done"
    assert result["result"] == "stdout:\nset\n\ndisplay:\n**shown**\n\nresult:\n43"
    # the output went to the model only, not into the notebook
    for msg in kernel.iopub_since(mark):
        if msg["parent_header"].get("msg_id") == last.msg_id:
            continue  # the cell that printed the results
        if msg["msg_type"] in ("stream", "display_data", "execute_result"):
            assert "set" not in json.dumps(msg["content"])
            assert "shown" not in json.dumps(msg["content"])


@pytest.mark.kernel
@pytest.mark.timeout(120)
@pytest.mark.parametrize("hold", ["time.sleep(1.0)", "await asyncio.sleep(1.0)"])
def test_kernel_run_python_waits_for_the_running_cell(kernel: Any, hold: str) -> None:
    code = "import threading, time\nran_at = time.time()\non_main = threading.current_thread().name"
    kernel.execute(f"r3 = start(('run_python', {{'code': {code!r}}}))")
    # the cell that holds the kernel: the code is queued while it sleeps (or awaits, when the
    # kernel's event loop runs other callbacks), and must not run before it has ended
    kernel.execute(
        f"import asyncio\napprove(r3)\nuntil_queued(r3)\n{hold}\ncell_ended = time.time()"
    )
    got = kernel_json(
        kernel, "r3.wait(30)\nprint(json.dumps([ran_at - cell_ended, on_main, r3.status]))"
    )
    after, thread, status = got
    assert after >= 0, f"the code ran {-after:.3f} s before the cell ended"
    assert thread == "MainThread"
    assert status == "done"


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_stop_interrupts_a_long_run_python(kernel: Any, tmp_path: Path) -> None:
    started, interrupted = tmp_path / "started", tmp_path / "interrupted"
    code = (
        f"import time\nopen({str(started)!r}, 'w').close()\n"
        f"try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
        f"    open({str(interrupted)!r}, 'w').close()\n    raise\nafter_sleep = True"
    )
    kernel.execute(f"r4 = start(('run_python', {{'code': {code!r}}}))")
    # Stop comes from a thread once the code is running (a Stop click arrives the same way)
    kernel.execute(
        "approve(r4)\n"
        f"def stop_when_started():\n"
        f"    while not os.path.exists({str(started)!r}):\n"
        f"        time.sleep(0.01)\n"
        f"    time.sleep(0.2)\n"
        f"    r4.cancel()\n"
        "threading.Thread(target=stop_when_started, daemon=True).start()"
    )
    t0 = time.monotonic()
    got = kernel_json(
        kernel,
        "r4.wait(30)\nprint(json.dumps([r4.status, 'after_sleep' in globals(), results(r4)]))",
    )
    assert time.monotonic() - t0 < 20
    status, finished, (result,) = got
    assert status == "stopped"
    assert not finished
    assert started.exists() and interrupted.exists()
    assert result["error"] and "Stopped" in result["result"]
    # the kernel is healthy, and a KeyboardInterrupt after the job does not reach a cell
    assert kernel.execute("import signal\nprint(1 + 1)").stdout() == "2\n"


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_last_error_and_failure_prompt_after_one_over_zero(kernel: Any) -> None:
    kernel.execute("divisor = 0")
    failed = kernel.execute("print('before')\n1/divisor", check=False)
    assert not failed.ok
    got = kernel_json(
        kernel,
        "r5 = start(('last_error', {}))\nr5.wait(30)\n"
        "from hermes_nb.notebook._fix import failure_prompt\n"
        "print(json.dumps([results(r5), failure_prompt(get_ipython(), 'fix')]))",
    )
    (result,), prompt = got
    for text in (result["result"], prompt):
        assert "ZeroDivisionError: division by zero" in text
        assert "print('before')\n1/divisor" in text
        assert "\x1b[" not in text
    assert "It was raised by cell In[" in result["result"]
    assert "`divisor` (int): 0" in prompt
    assert "ONE fenced ```python code block" in prompt


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_a_cell_waiting_on_the_run_runs_its_queued_code(kernel: Any) -> None:
    # what %%hermes --wait does: the cell holds the main thread until the run settles, so it
    # runs the agent's code itself (a plain run.wait() here would wait for itself)
    got = kernel_json(
        kernel,
        "r6 = start(('run_python', {'code': 'waited = get_ipython().execution_count'}))\n"
        "threading.Thread(target=approve, args=(r6,), daemon=True).start()\n"
        "nbtools.wait_for_run(r6, 30)\n"
        "print(json.dumps([r6.status, waited, get_ipython().execution_count]))",
    )
    status, waited, count = got
    assert status == "done"
    assert waited == count  # ran inside this very cell


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_stop_while_queued_drops_the_code(kernel: Any) -> None:
    kernel.execute("r7 = start(('run_python', {'code': 'dropped = True'}))")
    kernel.execute("approve(r7)\nuntil_queued(r7)\nr7.cancel()\ntime.sleep(0.3)")
    got = kernel_json(
        kernel,
        "r7.wait(30)\nprint(json.dumps([r7.status, 'dropped' in globals(), nbtools.queued()]))",
    )
    assert got == ["stopped", False, 0]


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_the_interrupt_button_stops_the_agents_code(kernel: Any, tmp_path: Path) -> None:
    started = tmp_path / "started"
    code = f"import time\nopen({str(started)!r}, 'w').close()\ntime.sleep(60)\nnot_reached = 1"
    kernel.execute(f"r8 = start(('run_python', {{'code': {code!r}}}))")
    kernel.execute("approve(r8)\nuntil_queued(r8)")
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.02)
    time.sleep(0.2)
    kernel.km.interrupt_kernel()  # what the front end's interrupt button does
    got = kernel_json(
        kernel,
        "r8.wait(30)\nprint(json.dumps([r8.status, 'not_reached' in globals(), results(r8)]))",
    )
    status, reached, (result,) = got
    assert status == "done"  # the run goes on: the model reads that its code was interrupted
    assert not reached
    assert "Interrupted (KeyboardInterrupt)" in result["result"]


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_kernel_hermes_fix_after_one_over_zero_sends_the_error_and_the_source(
    kernel: Any,
) -> None:
    kernel.execute("%load_ext hermes_nb")
    assert not kernel.execute("total = 10\nshare = total / 0", check=False).ok
    shown = kernel.execute("%hermes fix --wait -p echo -o delay=0")
    text = json.dumps([m["content"] for m in shown.displays()])
    assert "ZeroDivisionError: division by zero" in text
    assert "share = total / 0" in text
    assert "ONE fenced" in text
