"""``provider = "acp"`` against real agent processes: the scripted agent in ``tests/acp_agent.py``
(raw JSON-RPC over stdio, no SDK), run with this interpreter, and at the end the real
``hermes acp`` (from ``.venv-agents/hermes-acp/``, built by ``tests/agent_envs.py``) talking to
the loopback OpenAI-style server. Every test drives whole turns through :func:`hermes_nb.chat`
or a stored session (the runtime, the turn, the prompt broker), as a notebook does."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from acp.schema import AgentCapabilities, McpCapabilities
from agent_envs import AgentEnvError, hermes_acp, hermes_acp_profile
from sse_server import Pause, RecordedRequest, Reply, SSEServer, content, finish, tool_call

import hermes_nb
from hermes_nb.core.config import load_config
from hermes_nb.core.exceptions import ConfigError
from hermes_nb.core.mcp_config import McpServer
from hermes_nb.core.profiles import Profile
from hermes_nb.engine.runtime import Run, get_runtime
from hermes_nb.providers.acp import agents, restart_agents
from hermes_nb.providers.acp._mcp_servers import mcp_servers
from hermes_nb.view._blocks import ask_html, decision

AGENT = str(Path(__file__).with_name("acp_agent.py"))
WAIT = 20.0


pytestmark = pytest.mark.usefixtures("agents_closed")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "notebook-folder"
    path.mkdir()
    return path


@pytest.fixture
def profile(folder: Path) -> Callable[..., Profile]:
    """A profile running the scripted agent with ``args``, in ``folder``."""

    def make(*args: str, **fields: object) -> Profile:
        values: dict[str, object] = {
            "name": "scripted",
            "provider": "acp",
            "model": "agent",
            "command": (sys.executable, AGENT, *args),
            "cwd": str(folder),
            "connect_timeout": 10.0,
            "titles": False,
            **fields,
        }
        return Profile(**values)  # type: ignore[arg-type]

    return make


def chat(prompt: str, profile: Profile, **kwargs: object) -> Run:
    return hermes_nb.chat(prompt, profile=profile, **kwargs).wait(WAIT)


def wait_until(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def events(run: Run, *names: str) -> list[tuple[str, dict[str, object]]]:
    return [(e, d) for _, e, d in run.events() if not names or e in names]


def pid_of(name: str = "scripted") -> int:
    found = [a.pid for a in agents() if a.profile == name]
    assert len(found) == 1
    return found[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone; so does one reaped while we read.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


# -- streaming --------------------------------------------------------------------------------


def test_a_reply_streams_as_tokens_and_the_process_stays_warm(profile) -> None:
    p = profile()
    run = chat("echo hello from the agent", p)
    assert run.status == "done", run.error
    assert run.text == "hello from the agent"
    assert run.finish_reason == "stop"
    first = pid_of()
    again = chat("echo second turn", p)
    assert again.text == "second turn"
    assert pid_of() == first  # one warm process per profile, reused across turns
    assert agents()[0].command == f"{sys.executable} {AGENT}"


def test_ten_thousand_chunks_arrive_exactly_and_in_order(profile) -> None:
    run = chat("chunks 10000", profile())
    expected = "".join(f"{i}," for i in range(10_000))
    assert run.text == expected
    tokens = "".join(d["text"] for e, d in events(run, "token"))  # type: ignore[misc]
    assert tokens == expected
    assert len(events(run, "token")) < 10_000  # merged as they arrive, never reordered


def test_thoughts_are_reasoning_before_the_reply(profile) -> None:
    run = chat("think", profile())
    assert run.reasoning == "Let me think."
    assert run.text == "Thought about it."
    kinds = [e for e, _ in events(run, "token", "reasoning")]
    assert kinds[-1] == "token"
    assert set(kinds[:-1]) == {"reasoning"}  # one event, or two if a read split them


def test_a_tool_call_with_a_diff_is_a_tool_block_with_a_unified_diff(profile, folder) -> None:
    path = folder / "notes.txt"
    run = chat(f"tool-diff {path}", profile())
    call = run.tool_calls["edit-1"]
    assert call["name"] == "Edit notes.txt"
    assert json.loads(call["arguments"]) == {"path": str(path)}
    rel = str(path).lstrip("/")
    assert call["result"] == f"--- a/{rel}\n+++ b/{rel}\n@@ -1,2 +1,2 @@\n one\n-two\n+2\n"
    assert call["error"] is False
    assert run.text == "Edited."


def test_a_plan_is_a_tool_block_redrawn_with_each_update(profile) -> None:
    run = chat("plan", profile())
    assert run.tool_calls["acp-plan"]["name"] == "Plan"
    assert run.tool_calls["acp-plan"]["result"] == "- [x] look\n- [x] fix"
    ends = [d["result"] for e, d in events(run, "tool_end")]
    assert ends == ["- [x] look\n- [ ] fix", "- [x] look\n- [x] fix"]


def test_usage_from_the_prompt_response(profile) -> None:
    run = chat("usage", profile())
    assert run.usage == {
        "prompt_tokens": 7,
        "completion_tokens": 3,
        "total_tokens": 10,
        "context_tokens": 10,
    }


def test_a_ten_megabyte_message_arrives_whole(profile) -> None:
    run = chat("big 10000000", profile())
    assert run.status == "done"
    assert len(run.text) == 10_000_000
    assert set(run.text) == {"x"}


def test_a_line_that_is_not_json_is_logged_and_skipped(profile, hermes_home) -> None:
    run = chat("malformed", profile())
    assert run.status == "done"
    assert run.text == "ab"
    log = (hermes_home / "agents" / "scripted.log").read_text()
    assert "ignored a stdout line that is not JSON-RPC: 'this is not json'" in log
    assert "ignored a stdout line that is not JSON-RPC: '[1, 2]'" in log


def test_a_stored_session_keeps_its_acp_session(profile) -> None:
    p = profile()
    session = hermes_nb.Session.new("acp-memory", profile=p)
    session.chat("echo first", profile=p).wait(WAIT)
    run = session.chat("remember", profile=p).wait(WAIT)
    assert run.text == "echo first"  # the agent's own session saw the first prompt
    other = hermes_nb.Session.new("acp-other", profile=p)
    assert other.chat("remember", profile=p).wait(WAIT).text == "(nothing)"


def test_two_sessions_stream_at_once_through_one_agent(profile) -> None:
    p = profile()
    one = hermes_nb.Session.new("acp-one", profile=p)
    two = hermes_nb.Session.new("acp-two", profile=p)
    runs = [one.chat("chunks 3000", profile=p), two.chat("chunks 2000", profile=p)]
    for run in runs:
        run.wait(WAIT)
    assert runs[0].text == "".join(f"{i}," for i in range(3000))
    assert runs[1].text == "".join(f"{i}," for i in range(2000))
    assert [a.sessions for a in agents()] == [2]  # one process, an ACP session each


def test_a_new_acp_session_is_told_the_instructions_and_the_history(profile) -> None:
    p = profile()
    history = [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
    ]
    run = chat("And times 3?", p, history=history, system="Answer in one word.")
    assert run.text == (
        "Instructions for this conversation (from the notebook):\n\nAnswer in one word.\n\n"
        "Earlier in this conversation (for context; it happened before you joined):\n\n"
        "User: What is 2 + 2?\n\nAssistant: 4.\n\nNow the user says:\n\nAnd times 3?"
    )
    assert chat("echo plain", p).text == "plain"  # nothing to tell: the prompt alone


# -- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("once", "option yes: ran"),
        ("session", "option yes-session: ran"),
        ("always", "option yes-always: ran"),  # not the session-scoped allow_always before it
        ("deny", "option no: not run"),
    ],
)
def test_a_permission_is_an_approval_card(profile, value: str, said: str) -> None:
    run = hermes_nb.chat("permit rm -rf build", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    assert prompt.kind == "approval"
    assert prompt.text == "Run a shell command"
    assert prompt.detail == "rm -rf build"
    assert run.answer(prompt.id, value)
    run.wait(WAIT)
    assert run.text == said
    assert run.tool_calls["run-1"]["error"] is (value == "deny")


def test_a_permission_answered_with_one_of_the_agents_own_options(profile) -> None:
    run = hermes_nb.chat("permit make install", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    # The card's buttons are the agent's own options, by their names; the four are answers too.
    assert [(o.value, o.label, o.allows) for o in prompt.options] == [
        ("yes", "Allow", True),
        ("yes-session", "For this session", True),
        ("yes-always", "Always allow", True),
        ("no", "Reject", False),
    ]
    html = ask_html(prompt.to_event())
    assert re.findall(r'data-answer="([^"]+)">([^<]+)</button>', html) == [
        ("yes", "Allow"),
        ("yes-session", "For this session"),
        ("yes-always", "Always allow"),
        ("no", "Reject"),
    ]
    assert run.refusal(prompt.id, "maybe") == (
        "'maybe' is not an approval answer; answer with exactly one of: once, session, always, "
        "deny, or one of the agent's own options: yes, yes-session, yes-always, no."
    )
    assert not run.answer(prompt.id, "maybe")
    assert run.answer(prompt.id, "no")
    assert run.wait(WAIT).text == "option no: not run"
    (asked,) = run.prompt_record()
    assert decision("approval", asked["value"], asked["by"], asked["options"]) == (
        "Reject",
        "by you",
    )
    assert 'data-verdict="denied"' in ask_html(asked)


def test_a_permission_past_its_deadline_is_rejected(profile) -> None:
    run = chat("permit make clean", profile(prompt_timeout=0.2))
    assert run.text == "option no: not run"
    assert [d["by"] for _, d in events(run, "prompt_answered")] == ["timeout"]


def test_stop_during_a_permission_answers_cancelled(profile, folder) -> None:
    record = folder.parent / "record.txt"
    p = profile("--record", str(record))
    run = hermes_nb.chat("permit rm -rf /", profile=p)
    wait_until(lambda: bool(run.pending))
    run.cancel()
    run.wait(WAIT)
    assert run.status == "stopped"
    assert run.text == ""
    wait_until(lambda: "session/cancel" in record.read_text())
    # The permission was answered (cancelled) and the agent never ran the command.
    assert chat("echo after", p).text == "after"


# -- files ------------------------------------------------------------------------------------


def test_reading_inside_the_folder_and_refusing_outside(profile, folder, tmp_path) -> None:
    (folder / "data.txt").write_text("inside\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    p = profile()
    assert chat(f"read {folder / 'data.txt'}", p).text == "inside\n"
    refused = chat(f"read {tmp_path / 'secret.txt'}", p).text
    assert refused == (
        f"error: hermes_nb refused to read {tmp_path / 'secret.txt'}: it is outside "
        f"{folder}, the folder this agent may use (the profile's cwd)."
    )
    sneaky = chat(f"read {folder}/../secret.txt", p).text
    assert sneaky.startswith("error: hermes_nb refused to read")
    (folder / "lines.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    assert chat(f"read-lines {folder / 'lines.txt'} 3 2", p).text == "line 3\nline 4\n"
    missing = chat(f"read {folder / 'nope.txt'}", p).text
    assert missing == f"error: hermes_nb cannot read {folder / 'nope.txt'}: there is no such file."


@pytest.mark.parametrize("value", ["once", "deny"])
def test_writing_a_file_goes_through_an_approval_with_the_diff(profile, folder, value) -> None:
    target = folder / "out.txt"
    target.write_text("old line\n")
    run = hermes_nb.chat(f"write {target} new line", profile=profile())
    wait_until(lambda: bool(run.pending))
    prompt = run.pending[0]
    assert prompt.text == f"Write {target}"
    assert "-old line\n" in prompt.detail
    assert "+new line" in prompt.detail
    run.answer(prompt.id, value)
    run.wait(WAIT)
    if value == "once":
        assert run.text == "written"
        assert target.read_text() == "new line"
    else:
        assert run.text == f"error: The person at the notebook did not allow writing {target}."
        assert target.read_text() == "old line\n"


# -- Stop -------------------------------------------------------------------------------------


def test_stop_sends_cancel_and_settles_at_once(profile, folder) -> None:
    record = folder.parent / "record.txt"
    run = hermes_nb.chat("hang", profile=profile("--record", str(record)))
    wait_until(lambda: run.text == "waiting")
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    assert run.text == "waiting"
    wait_until(lambda: "session/cancel" in record.read_text(), timeout=2)


def test_an_agent_that_ignores_cancel_is_left_behind_then_restarted(profile) -> None:
    p = profile()
    run = hermes_nb.chat("ignore-cancel", profile=p)
    wait_until(lambda: run.text == "ignoring")
    first = pid_of()
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    time.sleep(0.3)  # the agent keeps sending for that turn: none of it reaches the run
    assert run.text == "ignoring"
    after = chat("echo fresh", p)
    assert after.text == "fresh"
    assert pid_of() != first  # it never answered the stopped prompt: restarted
    wait_until(lambda: not alive(first), timeout=5)


# -- failures ---------------------------------------------------------------------------------


def test_a_crash_mid_turn_is_one_sentence_and_the_next_turn_works(profile) -> None:
    p = profile()
    run = chat("crash", p)
    assert run.status == "error"
    assert run.text == "about to crash"  # what came before the crash stays
    assert run.error is not None
    message = run.error["message"]
    assert message == (
        f"The agent '{sys.executable} {AGENT}' exited with status 3 during the reply; its "
        "stderr ends: boom: the scripted agent crashed on purpose."
    )
    assert "Traceback" not in message
    assert chat("echo back again", p).text == "back again"


def test_the_profile_env_reaches_the_agent_but_no_error_shows_it(profile, monkeypatch) -> None:
    monkeypatch.setenv("HNB_KERNEL_ONLY", "from-the-kernel")
    p = profile(env={"HNB_TOKEN": "$HNB_KERNEL_ONLY-and-more"})
    assert chat("echo-env HNB_TOKEN", p).text == "from-the-kernel-and-more"
    first = pid_of()
    monkeypatch.setenv("HNB_KERNEL_ONLY", "changed-in-the-kernel")
    assert chat("echo-env HNB_TOKEN", p).text == "changed-in-the-kernel-and-more"
    assert pid_of() != first  # the agent's environment changed: a new process
    run = chat("leak HNB_TOKEN", p)
    assert run.status == "error"
    assert "changed-in-the-kernel" not in json.dumps(run.error)
    assert "***" in run.error["message"]  # type: ignore[index]


def test_the_profile_env_never_enters_the_kernels_environment(profile) -> None:
    """The agent gets the profile's env when it starts; the kernel's os.environ never holds it,
    not even while a turn runs (it would leak the agent's secrets to the notebook's code)."""
    p = profile(env={"HNB_AGENT_SECRET": "s3cret-for-the-agent"})
    run = hermes_nb.chat("hang", profile=p)
    wait_until(lambda: bool(run.text))  # mid-turn
    assert "HNB_AGENT_SECRET" not in os.environ
    run.cancel()
    run.wait(WAIT)
    assert chat("echo-env HNB_AGENT_SECRET", p).text == "s3cret-for-the-agent"
    assert "HNB_AGENT_SECRET" not in os.environ


def test_the_profiles_mcp_servers_are_given_to_the_agent(profile, monkeypatch) -> None:
    """The agent calls MCP servers itself: session/new carries the profile's enabled stdio
    servers (environment expanded now); an HTTP one only for an agent that takes HTTP servers."""
    monkeypatch.setenv("HNB_TZ", "Europe/Oslo")
    servers = {
        "time": McpServer("time", command=("uvx", "mcp-server-time"), env={"TZ": "$HNB_TZ"}),
        "off": McpServer("off", command=("never",), enabled=False),
        "remote": McpServer("remote", url="https://mcp.example.com/mcp"),
    }
    given = json.loads(chat("mcp", profile(mcp_servers=servers)).text)
    assert given == [
        {
            "name": "time",
            "command": "uvx",
            "args": ["mcp-server-time"],
            "env": [{"name": "TZ", "value": "Europe/Oslo"}],
        }
    ]
    # An agent that takes HTTP servers gets the remote one too, its header's secret read now.
    monkeypatch.setenv("HNB_MCP_TOKEN", "tok-123")
    remote = McpServer(
        "remote", url="https://mcp.example.com/mcp", headers={"X-Key": "${HNB_MCP_TOKEN}"}
    )
    takes_http = AgentCapabilities(mcp_capabilities=McpCapabilities(http=True))
    (http,) = mcp_servers({"remote": remote}, takes_http)
    assert (http.type, http.url, [(h.name, h.value) for h in http.headers]) == (
        "http",
        "https://mcp.example.com/mcp",
        [("X-Key", "tok-123")],
    )


def test_a_command_that_is_not_installed(profile) -> None:
    run = chat("echo hi", profile(command=("hermes", "acp"), env={"PATH": "/nonexistent"}))
    assert run.status == "error"
    assert run.error == {
        "kind": "config",
        "message": "The agent command 'hermes' is not installed (not found on PATH).",
        "hint": 'Install it (pipx install "hermes-agent[acp]"), or give the profile\'s command '
        "as a full path.",
        "status": None,
        "retry_after": None,
    }


def test_an_agent_that_exits_during_the_handshake(profile) -> None:
    run = chat("echo hi", profile("--exit-at-init", "5"))
    assert run.error is not None
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --exit-at-init 5' exited with status 5 during the "
        "handshake; its stderr ends: starting up | fatal: no configuration found."
    )


def test_a_slow_handshake_times_out(profile) -> None:
    started = time.monotonic()
    run = chat("echo hi", profile("--init-delay", "5", connect_timeout=0.5))
    assert time.monotonic() - started < 3
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.error["message"].startswith(
        f"The agent '{sys.executable} {AGENT} --init-delay 5' did not answer initialize within "
        "0.5 s"
    )


def test_a_session_that_never_starts_times_out(profile) -> None:
    run = chat("echo hi", profile("--session-delay", "5", connect_timeout=0.5))
    assert run.error is not None
    assert run.error["kind"] == "timeout"
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --session-delay 5' did not answer session/new "
        "within 0.5 s."
    )


def test_a_protocol_version_not_spoken(profile) -> None:
    run = chat("echo hi", profile("--protocol", "2"))
    assert run.error is not None
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --protocol 2' speaks ACP protocol version 2; "
        "hermes_nb speaks version 1."
    )


def test_authentication_required_names_the_methods(profile) -> None:
    run = chat("echo hi", profile("--auth-required"))
    assert run.error is not None
    assert run.error["kind"] == "auth"
    assert run.error["message"] == (
        f"The agent '{sys.executable} {AGENT} --auth-required' requires authentication; its "
        "methods: Log in with a browser (id login), Use an API key (id api-key)."
    )


# -- configuration ----------------------------------------------------------------------------


def test_config_command_as_a_list_or_a_shell_string(write_config) -> None:
    write_config(
        '[profiles.a]\ncommand = ["hermes", "acp"]\n'  # a command alone means acp
        '[profiles.b]\nprovider = "acp"\ncommand = "gemini --experimental-acp \'two words\'"\n'
        'cwd = "~/work"\n[profiles.b.env]\nGEMINI_API_KEY = "$MY_GEMINI_KEY"\n'
    )
    config = load_config()
    assert config.profile("a").command == ("hermes", "acp")
    assert config.profile("a").provider == "acp"
    assert config.profile("a").titles is False  # titling would be a whole agent turn
    assert config.profile("a").connect_timeout == 60.0  # time for the agent to start
    b = config.profile("b")
    assert b.command == ("gemini", "--experimental-acp", "two words")
    assert b.cwd == "~/work"
    assert b.env == {"GEMINI_API_KEY": "$MY_GEMINI_KEY"}
    assert b.describe() == "b: acp agent \"gemini --experimental-acp 'two words'\""
    # The view's head names the agent where another profile names its model.
    assert config.profile("a").model == "hermes acp"
    assert b.model == "gemini --experimental-acp two words"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('provider = "acp"', "profiles.x.command is required for acp"),
        ('provider = "acp"\ncommand = []', "profiles.x.command is empty"),
        ('provider = "acp"\ncommand = "   "', "profiles.x.command is empty"),
        ('provider = "acp"\ncommand = [1]', "profiles.x.command must be a list of strings"),
        ('provider = "acp"\ncommand = "a \'b"', "cannot be split like a shell command line"),
        ('provider = "acp"\ncommand = "x"\ncwd = 3', "profiles.x.cwd must be a string"),
    ],
)
def test_config_bad_agent_settings_are_one_sentence(write_config, table, message) -> None:
    write_config(f"[profiles.x]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert message in str(caught.value)
    assert str(caught.value).count(". ") <= 1


def test_a_cwd_that_is_not_a_folder(profile, tmp_path) -> None:
    run = chat("echo hi", profile(cwd=str(tmp_path / "missing")))
    assert run.error is not None
    assert run.error["message"] == (
        f"The profile 'scripted' names cwd {str(tmp_path / 'missing')!r}, which is not a folder."
    )


# -- no orphans -------------------------------------------------------------------------------


def _recorded_pid(record: Path) -> int:
    wait_until(lambda: record.exists() and " pid " in record.read_text(), timeout=10)
    return int(record.read_text().split(" pid ", 1)[1].split()[0])


def test_stop_during_the_handshake_leaves_no_agent_behind(profile, folder) -> None:
    record = folder.parent / "record.txt"
    run = hermes_nb.chat("echo hi", profile=profile("--init-delay", "30", "--record", str(record)))
    pid = _recorded_pid(record)
    wait_until(lambda: "initialize" in record.read_text(), timeout=10)
    run.cancel()
    run.wait(WAIT)
    assert run.status == "stopped"
    wait_until(lambda: not alive(pid), timeout=5)
    assert agents() == []


def test_the_runtime_shutting_down_closes_its_agents(profile, folder) -> None:
    from hermes_nb.engine.runtime import Runtime
    from hermes_nb.engine.turn import TurnRequest

    record = folder.parent / "record.txt"
    runtime = Runtime()
    try:
        run = runtime.start(TurnRequest("echo up", profile("--record", str(record))))
        assert run.wait(WAIT).text == "up"
        pid = _recorded_pid(record)
        assert [a.pid for a in agents()] == [pid]
    finally:
        runtime.shutdown()
    wait_until(lambda: not alive(pid), timeout=5)
    assert agents() == []


_KERNEL = textwrap.dedent(
    """
    import sys, time
    import hermes_nb
    from hermes_nb.core.profiles import Profile
    from hermes_nb.providers.acp import agents
    p = Profile(name="k", provider="acp", command=(sys.executable, sys.argv[1]), cwd=sys.argv[2])
    run = hermes_nb.chat("echo up", profile=p).wait(20)
    assert run.text == "up", run.error
    print(agents()[0].pid, flush=True)
    time.sleep(60)
    """
)


def test_a_killed_kernel_leaves_no_agent_behind(folder) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _KERNEL, AGENT, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ) as kernel:
        try:
            assert kernel.stdout is not None
            pid = int(kernel.stdout.readline())
            assert alive(pid)
            kernel.send_signal(signal.SIGKILL)
            kernel.wait(10)
            wait_until(lambda: not alive(pid), timeout=5)
        finally:
            kernel.kill()


# -- the real hermes acp ----------------------------------------------------------------------


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="module")
def hermes_program() -> Path:
    """``hermes`` from ``.venv-agents/hermes-acp/`` (built on first use; CI must have it)."""
    try:
        return hermes_acp()
    except AgentEnvError as exc:
        if _ci():
            pytest.fail(f"The hermes-acp environment cannot be built, and CI=true: {exc}")
        pytest.skip(f"The hermes-acp environment cannot be built here: {exc}")


@pytest.fixture
def hermes_profile(hermes_program: Path, tmp_path: Path, folder: Path, sse_server: SSEServer):
    """``hermes acp`` with a home whose model is the loopback server; every other host goes
    through a proxy that refuses, so the agent stays offline even where CI has a network."""
    return hermes_acp_profile(
        hermes_program, tmp_path / "hermes-agent-home", sse_server.url, folder
    )


def _last_user(request: RecordedRequest) -> str:
    users = [m for m in request.body["messages"] if m.get("role") == "user"]
    text = users[-1]["content"] if users else ""
    return text if isinstance(text, str) else json.dumps(text)


def test_hermes_acp_streams_a_reply_and_remembers_the_session(hermes_profile, sse_server) -> None:
    def reply(request: RecordedRequest) -> Reply:
        if "What did I say" in _last_user(request):
            return Reply.text("You ", "said ", "hello.")
        return Reply.text("Hello ", "from ", "the loopback.")

    sse_server.enqueue(*[reply] * 6)
    session = hermes_nb.Session.new("hermes-acp", profile=hermes_profile)
    first = session.chat("Say hello", profile=hermes_profile).wait(120)
    assert first.status == "done", first.error
    assert first.text == "Hello from the loopback."
    assert events(first, "token")
    second = session.chat("What did I say first?", profile=hermes_profile).wait(60)
    assert second.status == "done", second.error
    assert second.text == "You said hello."
    asked = [r for r in sse_server.chat_requests if "What did I say" in _last_user(r)]
    assert asked, "the second prompt never reached the model"
    said = [(m["role"], m.get("content")) for m in asked[-1].body["messages"]]
    # The agent's own ACP session kept the first turn: it sends it with the second.
    assert ("user", "Say hello") in said
    assert ("assistant", "Hello from the loopback.") in said


def test_hermes_acp_loads_the_kept_session_after_a_restart(hermes_profile, sse_server) -> None:
    """hermes acp 0.19 advertises loadSession: after the agent restarted, the stored session's
    next turn loads the agent's own session (its history, kept in HERMES_HOME) instead of
    telling a new one the transcript; the history it replays does not stream into the run."""

    def reply(request: RecordedRequest) -> Reply:
        if "What did I say" in _last_user(request):
            return Reply.text("You ", "said ", "hello.")
        return Reply.text("Hello ", "from ", "the loopback.")

    sse_server.enqueue(*[reply] * 6)
    session = hermes_nb.Session.new("hermes-acp-load", profile=hermes_profile)
    first = session.chat("Say hello", profile=hermes_profile).wait(120)
    assert first.status == "done", first.error
    (made,) = [d for e, d in events(first, "agent_session")]
    assert made["loaded"] is False
    assert get_runtime().submit(restart_agents).result(30) == ["hermes"]
    second = session.chat("What did I say first?", profile=hermes_profile).wait(120)
    assert second.status == "done", second.error
    assert second.text == "You said hello."  # the replayed "Hello from the loopback." is not
    assert second.reasoning == "" and second.tool_calls == {}
    (loaded,) = [d for e, d in events(second, "agent_session")]
    assert loaded == {**made, "loaded": True}
    asked = [r for r in sse_server.chat_requests if "What did I say" in _last_user(r)]
    assert asked, "the second prompt never reached the model"
    said = [(m["role"], m.get("content")) for m in asked[-1].body["messages"]]
    assert ("user", "Say hello") in said
    assert ("assistant", "Hello from the loopback.") in said
    assert _last_user(asked[-1]) == "What did I say first?"  # no transcript in the prompt


def test_hermes_acp_stop_cancels_the_model_request(hermes_profile, sse_server) -> None:
    sse_server.enqueue(Reply(chunks=[content("partial "), Pause(30), content("never")]))
    run = hermes_nb.chat("Tell me a long story", profile=hermes_profile)
    wait_until(lambda: run.text == "partial ", timeout=120)
    started = time.monotonic()
    run.cancel()
    run.wait(WAIT)
    assert time.monotonic() - started < 1.0
    assert run.status == "stopped"
    assert run.text == "partial "
    # session/cancel reached hermes, which closed its request to the model: generation stopped.
    assert sse_server.wait_for_disconnect(timeout=10)
    sse_server.enqueue(Reply.text("Still ", "here."))
    after = hermes_nb.chat("Are you there?", profile=hermes_profile).wait(120)
    assert after.text == "Still here."


@pytest.mark.parametrize("value", ["once", "deny"])
def test_hermes_acp_a_dangerous_command_goes_through_the_card(
    hermes_profile, sse_server, folder, value
) -> None:
    victim = folder / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("keep me?\n")
    command = f"rm -rf {victim}"

    def reply(request: RecordedRequest) -> Reply:
        if request.body["messages"][-1]["role"] == "tool":
            return Reply.text("The tool answered.")
        arguments = json.dumps({"command": command})
        call = tool_call(0, id="call_1", name="terminal", arguments=arguments)
        return Reply(chunks=[call, finish("tool_calls")])

    sse_server.enqueue(*[reply] * 4)
    run = hermes_nb.chat("Delete the victim folder", profile=hermes_profile)
    wait_until(lambda: bool(run.pending) or run.settled, timeout=120)
    assert run.pending, run.error
    prompt = run.pending[0]
    assert prompt.detail == command  # what will run, verbatim
    assert command in prompt.text
    run.answer(prompt.id, value)
    run.wait(60)
    assert run.status == "done", run.error
    assert run.text.strip() == "The tool answered."
    (call,) = run.tool_calls.values()
    assert call["error"] is (value == "deny")
    assert victim.exists() is (value == "deny")  # approved: it ran; denied: it did not
