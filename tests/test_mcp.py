"""Tools from MCP servers, end to end: real servers as processes (``mcp-server-time`` from PyPI,
and ``tests/mcp_server.py`` written with the SDK's server side, over stdio and streamable HTTP),
the engine's tool loop driven by the offline echo model (scripted with ``tool_calls``) or by the
loopback OpenAI-style server (for images sent to a model with vision)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from ci_env import unavailable
from sse_server import RecordedRequest, Reply, SSEServer, finish, tool_call
from tool_envs import ToolEnvError, mcp_server_time

import hermes_nb
from hermes_nb import Profile, Run
from hermes_nb.core.config import load_config
from hermes_nb.core.exceptions import ConfigError, HermesError
from hermes_nb.engine.mcp import ServerState, manager
from hermes_nb.engine.tools import resolve_tools

HERE = Path(__file__).resolve().parent
SERVER = HERE / "mcp_server.py"
WAIT = 20.0


@pytest.fixture(autouse=True)
def _servers_closed() -> Iterator[None]:
    """Every test starts its servers afresh and leaves none running."""
    yield
    manager().close()


@pytest.fixture(scope="session")
def time_server() -> Path:
    """``mcp-server-time`` from ``.venv-tools/`` (built on first use; CI must have it)."""
    try:
        return mcp_server_time()
    except ToolEnvError as exc:
        unavailable(f"mcp-server-time is not available: {exc}", "CI must build it")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """``tests/mcp_server.py`` over streamable HTTP on 127.0.0.1, as a process of its own."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HttpServer:
        if self.process is not None:  # started again after it ended: reap the old one
            self.process.wait(10)
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "http", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the streamable HTTP test server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The HTTP test server's URL (one process for the module's tests)."""
    server = HttpServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def test_server(
    transport: str, write_config: Callable[[str], Path], tmp_path: Path, request: Any
) -> Path:
    """``config.toml`` with ``[mcp_servers.test]`` (ask = false) over the chosen transport;
    returns the marks file the stdio server writes (cancellations)."""
    marks = tmp_path / "marks"
    if transport == "stdio":
        write_config(
            f"""
[mcp_servers.test]
command = [{json.dumps(sys.executable)}, {json.dumps(str(SERVER))}, "stdio"]
env = {{MCP_TEST_MARKS = {json.dumps(str(marks))}}}
ask = false
"""
        )
    else:
        url = request.getfixturevalue("http_server")
        write_config(f'[mcp_servers.test]\nurl = "{url}"\nask = false\n')
    return marks


def _chat(calls: list[tuple[str, dict[str, Any]]], tools: list[str], **kw: Any) -> Run:
    return hermes_nb.chat(
        "go",
        tools=tools,
        tool_calls=[{"name": n, "arguments": a} for n, a in calls],
        delay=0,
        **kw,
    )


def _results(run: Run) -> list[dict[str, Any]]:
    return list(run.tool_calls.values())


def _wait_for(condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)
    return value


# -- configuration -----------------------------------------------------------------------------


def test_config_reads_servers_for_every_profile_and_one_profile(write_config) -> None:
    write_config(
        """
[mcp_servers.time]
command = "mcp-server-time --local-timezone UTC"
allow = ["get_current_time"]
timeout = 5

[mcp_servers.remote]
url = "https://example.org/mcp"
headers = {Authorization = "Bearer ${MY_TOKEN}", X-Client = "hermes"}
ask = false
enabled = false

[profiles.work]
provider = "echo"
[profiles.work.mcp_servers.files]
command = ["npx", "-y", "@modelcontextprotocol/server-filesystem", "."]
cwd = "~/data"
env = {ROOT = "$HOME"}
"""
    )
    config = load_config()
    time_server = config.profile("echo").mcp_servers["time"]
    assert time_server.command == ("mcp-server-time", "--local-timezone", "UTC")
    assert time_server.ask and time_server.asks("convert_time")
    assert not time_server.asks("get_current_time") and time_server.timeout == 5.0
    remote = config.profile("openai").mcp_servers["remote"]
    assert remote.url == "https://example.org/mcp" and not remote.ask and not remote.enabled
    assert remote.headers["Authorization"] == "Bearer ${MY_TOKEN}"  # named, never expanded here
    assert set(config.profile("work").mcp_servers) == {"time", "remote", "files"}
    assert "files" not in config.profile("echo").mcp_servers


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('command = ["x"]\nurl = "http://h/mcp"', "exactly one of command"),
        ("ask = true", "exactly one of command"),
        ('command = ["x"]\ncolour = "red"', "colour is not a setting of an MCP server"),
        ('url = "http://h/mcp"\nheaders = {Authorization = "Bearer sk-123"}', "literal value"),
        ('command = ["x"]\ntimeout = -1', "timeout must be a positive number"),
        ('command = ""', "command is empty; name the server's program"),
        ("command = [1]", "command must be a list of strings or a string"),
        ('command = "a \'b"', "command cannot be split like a shell command line"),
        ('url = "ftp://h"', "must be an http:// or https:// address"),
        ('command = ["x"]\nallow = "get"', "allow must be a list"),
    ],
)
def test_config_mistakes_are_one_sentence_naming_the_server(write_config, table, words) -> None:
    path = write_config(f"[mcp_servers.clock]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = caught.value.message
    assert words in message and "mcp_servers.clock" in message and str(path) in message


def test_a_header_secret_comes_from_the_environment(write_config, monkeypatch) -> None:
    from hermes_nb.core.mcp_config import expand_header

    write_config(
        '[mcp_servers.r]\nurl = "http://h/mcp"\nheaders = {Authorization = "Bearer ${T}"}\n'
    )
    server = load_config().profile().mcp_servers["r"]
    with pytest.raises(ConfigError, match="needs the environment variable T, which is not set"):
        expand_header("r", "Authorization", server.headers["Authorization"])
    monkeypatch.setenv("T", "tok-1")
    assert expand_header("r", "Authorization", server.headers["Authorization"]) == "Bearer tok-1"


def test_unknown_server_and_no_server_are_one_sentence(write_config) -> None:
    write_config('[mcp_servers.time]\ncommand = ["mcp-server-time"]\nenabled = false\n')
    with pytest.raises(ConfigError, match="no MCP server named 'nope' \\(configured: time\\)"):
        resolve_tools(["mcp:nope"])
    with pytest.raises(ConfigError, match="turned off"):
        resolve_tools(["mcp:time"])
    with pytest.raises(ConfigError, match="No MCP server is configured"):
        resolve_tools(["mcp"])


# -- mcp-server-time, the real one ---------------------------------------------------------------


def _time_config(write_config, program: Path, extra: str = "") -> None:
    write_config(
        f'[mcp_servers.time]\ncommand = [{json.dumps(str(program))}, "--local-timezone", '
        f'"UTC"]\n{extra}'
    )


def test_time_server_call_asks_is_approved_and_answers(time_server, write_config) -> None:
    _time_config(write_config, time_server)
    tools = {t.name: t for t in resolve_tools(["mcp:time"])}
    assert {"time__get_current_time", "time__convert_time", "ask_user"} == set(tools)
    spec = tools["time__get_current_time"].spec()["function"]
    assert (
        "timezone" in spec["parameters"]["properties"] and "MCP server time" in spec["description"]
    )
    run = _chat([("time__get_current_time", {"timezone": "Europe/Paris"})], ["mcp:time"])
    prompt = _wait_for(lambda: run.pending)[0]
    assert prompt.kind == "approval" and "timezone='Europe/Paris'" in prompt.detail
    assert run.answer(prompt.id, "once")
    run.wait(WAIT)
    (call,) = _results(run)
    assert not call["error"]
    assert json.loads(call["result"])["timezone"] == "Europe/Paris"
    assert run.status.value == "done"


def test_time_server_denied_call_is_not_made(time_server, write_config) -> None:
    _time_config(write_config, time_server)
    run = _chat([("time__get_current_time", {"timezone": "Europe/Paris"})], ["mcp:time"])
    prompt = _wait_for(lambda: run.pending)[0]
    run.answer(prompt.id, "deny")
    run.wait(WAIT)
    (call,) = _results(run)
    assert call["result"].startswith("Not run: the person denied it.")
    assert "Europe/Paris" not in call["result"]


def test_time_server_with_ask_false_and_bad_arguments(time_server, write_config) -> None:
    _time_config(write_config, time_server, "ask = false\n")
    run = _chat(
        [
            ("time__get_current_time", {"timezone": "UTC"}),
            ("time__get_current_time", {"timezone": 5}),
        ],
        ["mcp"],
    )
    run.wait(WAIT)
    assert not run.prompt_record()
    good, bad = _results(run)
    assert json.loads(good["result"])["timezone"] == "UTC" and not good["error"]
    assert bad["error"] and "do not fit its input schema" in bad["result"]
    assert "5 is not of type 'string'" in bad["result"]


# -- the test server, over stdio and streamable HTTP ---------------------------------------------


def test_text_error_structured_and_big_results(test_server) -> None:
    run = _chat(
        [
            ("test__echo", {"text": "hi", "times": 2}),
            ("test__fail", {}),
            ("test__count", {}),
            ("test__big", {}),
        ],
        ["mcp:test"],
        tool_result_limit=2000,  # the echo model says the results back: keep it short
    )
    run.wait(WAIT)
    echo, fail, count, big = _results(run)
    assert echo["result"] == "hi hi" and not echo["error"]
    assert fail["error"] and "the tool failed on purpose" in fail["result"]
    assert json.loads(count["result"]) == {"count": 3}
    assert big["result"].startswith("x" * 2000) and "cut: 998,000 more characters" in big["result"]


def test_an_image_result_reaches_the_view_and_a_model_with_vision(
    test_server, sse_server: SSEServer
) -> None:
    seen: list[RecordedRequest] = []

    def after(request: RecordedRequest) -> Reply:
        seen.append(request)
        return Reply.text("a red dot")

    sse_server.enqueue(
        Reply(
            chunks=[
                tool_call(0, id="c1", name="test__picture", arguments="{}"),
                finish("tool_calls"),
            ]
        )
    )
    sse_server.enqueue(after)
    base = Profile(name="v", provider="openai", base_url=sse_server.url, model="m")
    for vision in (True, False):
        if not vision:
            sse_server.enqueue(
                Reply(
                    chunks=[
                        tool_call(0, id="c2", name="test__picture", arguments="{}"),
                        finish("tool_calls"),
                    ]
                )
            )
            sse_server.enqueue(after)
        run = hermes_nb.chat("draw", profile=base.with_overrides(vision=vision), tools=["mcp:test"])
        run.wait(WAIT)
        assert run.status.value == "done", run.error
        end = next(e.data for e in run.events() if e.event == "tool_end")
        assert end["images"][0]["mime"] == "image/png"
        messages = seen[-1].body["messages"]
        tool_message = next(m for m in messages if m["role"] == "tool")
        assert "[image 1: image/png" in tool_message["content"]
        if vision:
            last = messages[-1]
            assert last["role"] == "user" and "test__picture" in last["content"][0]["text"]
            assert last["content"][1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
        else:
            assert messages[-1]["role"] == "tool"
            assert "image(s) left out: this model does not read images" in tool_message["content"]


def test_stop_cancels_a_slow_call_and_the_server_answers_the_next(test_server, transport) -> None:
    run = _chat([("test__slow", {"seconds": 30})], ["mcp:test"])
    _wait_for(lambda: any(e.event == "tool_start" for e in run.events()))
    time.sleep(0.3)  # the call reached the server
    stopped = time.monotonic()
    run.cancel()
    run.wait(5)
    assert time.monotonic() - stopped <= 1.0
    assert run.status.value == "stopped"
    if transport == "stdio":  # the server's own record: notifications/cancelled arrived
        _wait_for(lambda: test_server.exists() and "slow cancelled" in test_server.read_text(), 5)
    after = _chat([("test__echo", {"text": "still here"})], ["mcp:test"])
    after.wait(WAIT)
    assert _results(after)[0]["result"] == "still here"


def test_a_server_that_crashes_mid_call_is_restarted(test_server, transport) -> None:
    if transport == "http":
        pytest.skip("over HTTP: test_a_remote_server_that_crashes_mid_call_is_reconnected")
    run = _chat(
        [
            ("test__crash", {}),
        ],
        ["mcp:test"],
    )
    run.wait(WAIT)
    (call,) = _results(run)
    assert call["error"] and "stopped during the call" in call["result"]
    assert "the test server is dying now" in call["result"]  # its stderr tail
    assert run.status.value == "done"
    again = _chat([("test__echo", {"text": "back"})], ["mcp:test"])
    again.wait(WAIT)
    assert _results(again)[0]["result"] == "back"
    (conn,) = manager().status([load_config().profile().mcp_servers["test"]])
    assert conn.starts == 2 and conn.state is ServerState.RUNNING


def test_a_remote_server_that_crashes_mid_call_is_reconnected(write_config) -> None:
    server = HttpServer().start()
    try:
        write_config(f'[mcp_servers.remote]\nurl = "{server.url}"\nask = false\n')
        run = _chat([("remote__crash", {})], ["mcp:remote"])
        run.wait(WAIT)
        (call,) = _results(run)
        assert call["error"] and "The MCP server remote" in call["result"]
        assert "The next call connects to it again." in call["result"]
        assert run.status.value == "done"
        server.start()  # the same address answers again: the next call connects afresh
        again = _chat([("remote__echo", {"text": "back"})], ["mcp:remote"])
        again.wait(WAIT)
        assert _results(again)[0]["result"] == "back"
    finally:
        server.stop()


def test_list_changed_refreshes_the_tools(test_server) -> None:
    assert "test__added" not in {t.name for t in resolve_tools(["mcp:test"])}
    run = _chat([("test__grow", {})], ["mcp:test"])
    run.wait(WAIT)
    assert _results(run)[0]["result"] == "grown"
    _wait_for(lambda: "test__added" in {t.name for t in resolve_tools(["mcp:test"])}, 5)


# -- bad input ------------------------------------------------------------------------------------


def _stdio(write_config, mode: str, extra: str = "") -> None:
    write_config(
        f"[mcp_servers.bad]\ncommand = [{json.dumps(sys.executable)}, "
        f'{json.dumps(str(SERVER))}, "{mode}"]\nask = false\n{extra}'
    )


def test_a_command_not_installed(write_config) -> None:
    write_config('[mcp_servers.gone]\ncommand = ["no-such-mcp-server-anywhere"]\n')
    with pytest.raises(HermesError) as caught:
        resolve_tools(["mcp:gone"])
    assert "'no-such-mcp-server-anywhere' is not installed" in caught.value.message


def test_a_server_that_exits_at_start(write_config) -> None:
    _stdio(write_config, "exit-at-start")
    with pytest.raises(HermesError) as caught:
        resolve_tools(["mcp:bad"])
    message = caught.value.message
    assert message.startswith("The MCP server bad exited as it started")
    assert "cannot open its database" in message
    (conn,) = manager().status([load_config().profile().mcp_servers["bad"]])
    assert conn.state is ServerState.FAILED


def test_a_server_that_never_answers_initialize(write_config) -> None:
    _stdio(write_config, "silent", "start_timeout = 1\n")
    started = time.monotonic()
    with pytest.raises(HermesError, match="did not answer initialize within 1 s"):
        resolve_tools(["mcp:bad"])
    assert time.monotonic() - started < 8


def test_non_utf8_output_is_not_fatal(write_config) -> None:
    _stdio(write_config, "junk-stdout")
    run = _chat([("bad__echo", {"text": "ok"})], ["mcp:bad"])
    run.wait(WAIT)
    assert _results(run)[0]["result"] == "ok"


def test_two_servers_giving_one_tool_name(write_config) -> None:
    from hermes_nb.engine.mcp import tool_name

    long = "s" * 30
    assert tool_name(long, "t" * 40) == tool_name(long, "t" * 40)
    assert len(tool_name(long, "t" * 40)) == 64
    assert tool_name("a", "get.time/now") == "a__get_time_now"
    command = f'[{json.dumps(sys.executable)}, {json.dumps(str(SERVER))}, "stdio"]'
    write_config(f"[mcp_servers.x]\ncommand = {command}\n[mcp_servers.y]\ncommand = {command}\n")
    assert {"x__echo", "y__echo"} <= {t.name for t in resolve_tools(["mcp"])}


# -- %hermes mcp -----------------------------------------------------------------------------------


def test_hermes_mcp_shows_a_failed_server_with_its_stderr_and_restarts_one(
    ip, write_config
) -> None:
    command = f"[{json.dumps(sys.executable)}, {json.dumps(str(SERVER))}"
    write_config(
        f'[mcp_servers.bad]\ncommand = {command}, "exit-at-start"]\n'
        f'[mcp_servers.good]\ncommand = {command}, "stdio"]\nask = false\n'
    )
    shown = ip.run_line_magic("hermes", "mcp").data
    assert "| bad |" in shown and "not started" in shown
    with pytest.raises(HermesError):
        resolve_tools(["mcp:bad"])
    shown = ip.run_line_magic("hermes", "mcp").data
    assert "failed" in shown and "cannot open its database" in shown
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="exited as it started"):
        ip.run_line_magic("hermes", "mcp restart bad")
    with pytest.raises(UsageError, match="no MCP server named 'nope'"):
        ip.run_line_magic("hermes", "mcp restart nope")
    ip.run_line_magic("hermes", "mcp restart good")
    shown = ip.run_line_magic("hermes", "mcp").data
    assert "running" in shown and "`good__echo`" in shown


def test_an_image_result_shows_in_the_tool_block(test_server, transport) -> None:
    from hermes_nb.view._blocks import Transcript

    if transport == "http":
        pytest.skip("the block is the same whichever transport brought the image")
    run = _chat([("test__picture", {})], ["mcp:test"])
    run.wait(WAIT)
    blocks = Transcript(run).consume(run.events())
    (tool,) = [html for kind, html in blocks.values() if kind == "tool"]
    assert '<img src="data:image/png;base64,iVBOR' in tool and "Images" in tool
    # Only the result's own images become data: URLs: a forged entry is dropped.
    from hermes_nb.view._blocks import _tool_images

    forged = [{"mime": "image/svg+xml", "data": "PHN2Zz4="}, {"mime": "image/png", "data": '"x'}]
    assert _tool_images(forged) == ""


def test_a_profiles_own_server_serves_its_tools_list(write_config) -> None:
    command = f'[{json.dumps(sys.executable)}, {json.dumps(str(SERVER))}, "stdio"]'
    write_config(
        f'[profiles.work]\nprovider = "echo"\ntools = ["mcp:mine"]\n'
        f"[profiles.work.mcp_servers.mine]\ncommand = {command}\nask = false\n"
    )
    run = hermes_nb.chat(
        "go", profile="work", tool_calls=[{"name": "mine__echo", "arguments": {"text": "own"}}]
    )
    run.wait(WAIT)
    assert _results(run)[0]["result"] == "own"
    with pytest.raises(ConfigError, match="no MCP server named 'mine'"):
        resolve_tools(["mcp:mine"], profile=load_config().profile("echo"))


def test_an_unknown_name_is_told_apart_from_a_server_that_cannot_start(write_config) -> None:
    from hermes_nb.engine.tools import UnknownToolError

    write_config('[mcp_servers.gone]\ncommand = ["no-such-mcp-server-anywhere"]\n')
    with pytest.raises(UnknownToolError):
        resolve_tools(["no_such_tool"])
    with pytest.raises(HermesError) as caught:
        resolve_tools(["mcp:gone"])
    assert not isinstance(caught.value, UnknownToolError)


def test_a_profile_built_in_code_brings_its_own_servers(tmp_path: Path) -> None:
    """A turn resolves ``mcp:NAME`` with its own profile's servers: one made in code (never in
    config.toml) works as a configured one does."""
    from hermes_nb.core.mcp_config import McpServer

    server = McpServer(
        "mine", command=(sys.executable, str(SERVER), "stdio"), ask=False, start_timeout=30
    )
    profile = Profile(name="coded", provider="echo", model="echo", mcp_servers={"mine": server})
    run = _chat([("mine__echo", {"text": "from code"})], ["mcp:mine"], profile=profile).wait(WAIT)
    assert run.status == "done", run.error
    assert [r["result"] for r in _results(run)] == ["from code"]


def test_tools_naming_a_server_that_cannot_start_say_why(ip, write_config) -> None:
    """``--tools mcp:NAME`` of a server that fails to start says that, not "nothing is named"."""
    from IPython.core.error import UsageError

    write_config('[mcp_servers.broken]\ncommand = ["hnb-no-such-mcp-server"]\n')
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("hermes", "--wait --tools mcp:broken", "hi")
    message = str(caught.value)
    assert message.startswith("--tools mcp:broken: ") and "nothing is named" not in message
    assert "hnb-no-such-mcp-server" in message
