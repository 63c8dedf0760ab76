"""The chat view in a real browser: streaming, Stop, reloads, two views, saved notebooks and
hostile model output — in JupyterLab, and scenarios 1–3 also in Notebook 7 and, in JupyterLab,
on the other documented ipykernel versions (``kernel_envs.EXTRA_KERNELS``; the server is the
same, only the kernel's interpreter differs).

Every assertion reads the DOM (``chat_dom.ChatView``); timings come from a MutationObserver's
record of what the page showed, not from sleeps.
"""

from __future__ import annotations

import itertools
import json
import time

import pytest
from chat_dom import CANCEL_NOTICE, ChatView, words
from jupyter_harness import NotebookPage
from kernel_envs import EXTRA_KERNELS, KernelEnv
from sse_server import Reply

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

# Both front ends on the project venv's kernel, and JupyterLab on each other documented ipykernel.
UIS_AND_KERNELS = pytest.mark.parametrize(
    ("ui", "kernel"),
    [
        pytest.param("lab", None, id="lab"),
        pytest.param("notebook7", None, id="notebook7"),
        *(pytest.param("lab", v, id=f"lab-ipykernel{v}") for v in EXTRA_KERNELS),
    ],
    indirect=True,
)
# JupyterLab on the project venv's kernel and on each other documented ipykernel (scenario 8).
LAB_KERNELS = pytest.mark.parametrize(
    ("ui", "kernel"),
    [
        pytest.param("lab", None, id="lab"),
        *(pytest.param("lab", v, id=f"lab-ipykernel{v}") for v in EXTRA_KERNELS),
    ],
    indirect=True,
)
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
STDOUT = "application/vnd.jupyter.stdout"

PROFILES = """\
default_profile = "slow"

[profiles.slow]
provider = "echo"
model = "echo"

[profiles.slow.options]
delay = 0.02
chunk_size = 3

[profiles.long]
provider = "echo"
model = "echo"

[profiles.long.options]
delay = 0.02
chunk_size = 3
repeat = 40
"""

# Markdown of every kind the view must render while it streams, then a plain tail long enough
# (about four seconds at the slow pace) to watch the rendered blocks live.
RICH_PROMPT = "\n".join(
    [
        "# Streaming check",
        "",
        "- first item",
        "- second item",
        "",
        "| name | value |",
        "| --- | --- |",
        "| alpha | 1 |",
        "| beta | 2 |",
        "",
        "```python",
        "def greet(name):",
        "    return 'hello ' + name",
        "```",
        "",
        " ".join(f"t{i:03d}" for i in range(1, 121)),
    ]
)

# Numbered words, so a duplicate or a gap in the shown text names itself.
WORDS = [f"w{i:03d}" for i in range(1, 601)]
WORD_PROMPT = "\n\n".join(" ".join(WORDS[i : i + 20]) for i in range(0, len(WORDS), 20))
SHORT_WORDS = WORDS[:240]
SHORT_PROMPT = "\n\n".join(
    " ".join(SHORT_WORDS[i : i + 20]) for i in range(0, len(SHORT_WORDS), 20)
)
COUNT_WORDS_JS = "(v.reply.match(/\\bw\\d{3}\\b/g) || []).length"

COUNTING = "Count with me: one two three four five six seven eight nine ten."


def tag(ui: str, kernel: KernelEnv | None) -> str:
    """``lab``, ``notebook7``, ``lab-ipykernel7.3.0``: for screenshot names."""
    return ui if kernel is None else f"{ui}-ipykernel{kernel.version}"


def norm(text: str) -> str:
    return " ".join(text.split())


def start(nb: NotebookPage, chat: ChatView, setup_cells: int = 1) -> None:
    """Run the setup cells, start recording the chat cell, then run it."""
    for i in range(setup_cells):
        nb.run(i)
    chat.watch()
    nb.run(chat.index)


# -- 1. streaming --------------------------------------------------------------------------


@UIS_AND_KERNELS
def test_reply_streams_as_rendered_markdown(ui, kernel, open_notebook, hermes_config, screenshot):
    hermes_config(PROFILES)
    nb = open_notebook(["%load_ext hermes_nb", "%%hermes\n" + RICH_PROMPT])
    chat = ChatView(nb, 1)
    start(nb, chat)
    chat.follow()  # its end in view: every update drawn

    live = chat.wait_live()
    assert live["stop_visible"], "the Stop button is shown while the reply streams"
    assert "Streaming check" in live["prompt"]
    final = chat.wait_settled(static=True)

    history = chat.history()
    streaming = [e for e in history if e["state"] == "streaming" and not e["static"]]
    steps = sum(1 for a, b in itertools.pairwise(streaming) if b["len"] > a["len"])
    assert steps >= 3, f"the reply grew in {steps} steps while streaming: {history}"
    assert any(e["rich"] for e in streaming), (
        "heading, list, table and code were never all rendered while the reply streamed"
    )
    states = [e["state"] for e in history if e["state"]]
    assert "streaming" in states
    assert states.index("streaming") < states.index("done"), states
    assert not {"stopped", "error"} & set(states), states

    assert final["state"] == "done"
    assert not final["stop_visible"]
    reply = chat.root.locator(".hnb-reply")
    assert reply.locator("h1").inner_text().strip() == "Streaming check"
    assert reply.locator("ul > li").all_inner_texts() == ["first item", "second item"]
    assert "alpha" in reply.locator("table td").all_inner_texts()
    assert "def greet(name):" in reply.locator("pre").first.inner_text()
    assert norm(final["reply"]).endswith("t119 t120")
    assert final["errors"] == []
    screenshot(f"s1-streaming-{tag(ui, kernel)}", nb.cell(1))


# -- 2. Stop ---------------------------------------------------------------------------------


# docs/kernel-versions.md: with subshells (ipykernel >= 7, and JupyterLab >= 4.4 / Notebook 7.4)
# Stop reaches the kernel while another cell blocks its main shell; ipykernel 6.x has none, so
# the Stop message waits behind that cell and takes effect as soon as it ends.
QUEUED_BLOCK_S = 6  # the blocking cell on 6.x: Stop waits this long, the reply (~17 s) streams on


@UIS_AND_KERNELS
def test_stop_while_another_cell_blocks(
    ui, kernel, open_notebook, hermes_config, server, screenshot
):
    queued = kernel is not None and int(kernel.version.split(".")[0]) < 7
    block = QUEUED_BLOCK_S if queued else 30
    hermes_config(PROFILES)
    nb = open_notebook(
        [
            "%load_ext hermes_nb",
            "%%hermes -p long\n" + COUNTING,
            f"import time\ntime.sleep({block})",
        ]
    )
    chat = ChatView(nb, 1)
    start(nb, chat)
    chat.follow()  # its end in view: the reply is seen streaming on while Stop waits
    chat.wait_live(min_chars=20)

    nb.run(2, wait=False)
    busy = nb.cell(2).locator(".jp-InputArea-prompt").filter(has_text="[*]")
    busy.wait_for()
    nb.watch_finish(2)
    # The kernel's main shell is blocked, the reply still streams.
    grown = len(chat.view()["reply"]) + 10
    chat.wait(f"v.reply.length > {grown}", 10_000, "the reply growing while a cell blocks")

    before = chat.view()
    assert before["state"] == "streaming"
    assert before["stop_visible"]
    clicked_at = chat.now()
    chat.root.locator(".hnb-stop").click()
    if queued:
        nb.wait_cell_done(2, timeout=(block + 15) * 1000)
    stopped = chat.wait("v.state === 'stopped'", 10_000, "data-state=stopped after Stop")
    history = chat.history()
    at = next(e["t"] for e in history if e["state"] == "stopped")
    finished = nb.finished_at(2)
    if queued:
        # Stop waited for the blocking cell (the reply streamed on meanwhile), then took effect.
        assert finished is not None and finished - clicked_at >= 2000, (
            "the blocking cell ended too soon after the click: Stop was not tested under load"
        )
        assert at >= finished - 250, (
            f"Stopped shown {finished - at:.0f} ms before the blocking cell ended (ipykernel"
            f" {kernel.version} has no subshells: docs/kernel-versions.md says Stop queues)"
        )
        assert at - finished <= 1000, f"Stopped shown {at - finished:.0f} ms after the cell ended"
        grew = [e for e in history if clicked_at < e["t"] < finished and e["state"] == "streaming"]
        assert len(grew) >= 3, f"the reply did not stream on while Stop waited: {grew}"
    else:
        assert at - clicked_at <= 1000, f"Stopped shown {at - clicked_at:.0f} ms after the click"
        assert finished is None and busy.count() == 1, (
            "the blocking cell had finished: Stop was not tested under load"
        )

    # What streamed before Stop is kept (a prefix, not the whole reply) under the cancel notice.
    assert norm(stopped["reply"]).startswith(norm(before["reply"])[:-8])
    assert 0 < stopped["reply"].count("Count with me") < 40
    assert any(CANCEL_NOTICE in n for n in stopped["notices"]), stopped["notices"]
    assert stopped["errors"] == []
    chat.wait("!v.stop_visible", 5_000, "the Stop button hidden once stopped")
    screenshot(f"s2-stopped-{tag(ui, kernel)}", nb.cell(1))

    # The settled output is replaced by the static bundle (on >= 7 while the main shell is busy).
    static = chat.wait_settled(static=True, timeout=15_000)
    assert static["state"] == "stopped"
    assert any(CANCEL_NOTICE in n for n in static["notices"])
    assert norm(static["reply"]) == norm(stopped["reply"])

    if not queued:
        server.interrupt_kernel(nb.path)
    nb.wait_cell_done(2)


@LAB_KERNELS
def test_stop_closes_the_provider_connection(
    ui, kernel, open_notebook, hermes_config, sse_server, screenshot
):
    pieces = [f"w{i:03d} " for i in range(1, 600)]
    sse_server.default = Reply.text(*pieces, chunk_delay=0.05)  # ~30 s unless stopped
    hermes_config(
        "\n".join(
            [
                'default_profile = "stub"',
                "[profiles.stub]",
                'provider = "openai"',
                f"base_url = {json.dumps(sse_server.url)}",
                'model = "test-model"',
            ]
        )
    )
    nb = open_notebook(["%load_ext hermes_nb", "%%hermes -p stub\nTell me a long story."])
    chat = ChatView(nb, 1)
    start(nb, chat)
    chat.wait(f"v.state === 'streaming' && {COUNT_WORDS_JS} >= 5", 30_000, "five streamed words")
    assert len(sse_server.chat_requests) == 1
    assert sse_server.disconnects == []

    clicked = time.perf_counter()
    chat.root.locator(".hnb-stop").click()
    gone = sse_server.wait_for_disconnect(timeout=5)
    assert gone, "the server never saw the connection close after Stop"
    assert gone[0].at - clicked < 2.0, f"closed {gone[0].at - clicked:.2f} s after the click"
    assert gone[0].sent_chunks < len(pieces)

    stopped = chat.wait("v.state === 'stopped'", 10_000, "data-state=stopped after Stop")
    shown = words(stopped["reply"])
    assert shown == [f"w{i:03d}" for i in range(1, len(shown) + 1)], "text lost or repeated"
    assert len(shown) >= 5
    assert any(CANCEL_NOTICE in n for n in stopped["notices"]), stopped["notices"]
    assert len(sse_server.chat_requests) == 1, "a stopped run must not retry the request"
    screenshot(f"s2-stop-closes-connection-{tag(ui, kernel)}", nb.cell(1))


# -- 3. reload mid-stream --------------------------------------------------------------------


@UIS_AND_KERNELS
def test_reload_mid_stream_twice_shows_the_transcript_exactly(
    ui, kernel, open_notebook, screenshot
):
    nb = open_notebook(
        [
            "import hermes_nb",
            f"run = hermes_nb.chat({WORD_PROMPT!r}, delay=0.025, chunk_size=4)\nrun",
            "print(run.wait(120).text)",
        ]
    )
    chat = ChatView(nb, 1)
    start(nb, chat)

    for fraction in (0.15, 0.55):
        need = int(len(WORDS) * fraction)
        seen = chat.wait(
            f"v.state === 'streaming' && !v.static && {COUNT_WORDS_JS} >= {need}",
            60_000,
            f"the view streaming with {need} words shown (to reload then)",
        )
        shown = words(seen["reply"])
        assert shown == WORDS[: len(shown)], f"before reload at {fraction:.0%}: {shown[-5:]}"
        nb.save()
        nb.reload()
        chat.wait("true", 30_000, "the chat view back after the reload")

    # A reloaded view paints the synced status ("done") at once and its text when the replay
    # answers: wait for both. Missing text times out here; repeated text fails just below.
    final = chat.wait(
        f"['done', 'stopped', 'error'].includes(v.state) && {COUNT_WORDS_JS} >= {len(WORDS)}",
        90_000,
        "the settled view showing every word",
    )
    assert final["state"] == "done"
    assert words(final["reply"]) == WORDS, "the view after two reloads repeats text"

    nb.run(2, timeout=60_000)
    truth = nb.output(2, STDOUT).inner_text()
    assert words(truth) == WORDS
    assert norm(final["reply"]) == norm(truth.replace("**", ""))
    screenshot(f"s3-reloaded-{tag(ui, kernel)}", nb.cell(1))


# -- 4. two views ----------------------------------------------------------------------------


@LAB_KERNELS
def test_two_views_of_one_run_stay_identical(ui, kernel, open_notebook, page, screenshot):
    nb = open_notebook(
        [
            "import hermes_nb",
            f"run = hermes_nb.chat({SHORT_PROMPT!r}, delay=0.02, chunk_size=3)\nrun",
            "run",
        ]
    )
    first, second = ChatView(nb, 1), ChatView(nb, 2)
    nb.run(0)
    first.watch()
    second.watch()
    nb.run(1)
    first.wait_live(min_chars=50)
    nb.run(2)

    together = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        a, b = first.views(), second.views()
        if a and b:
            a, b = a[0], b[0]
            wa, wb = words(a["reply"]), words(b["reply"])
            short, long = sorted((wa, wb), key=len)
            assert long[: len(short)] == short, f"the views diverged: {wa[-3:]} vs {wb[-3:]}"
            if a["state"] == b["state"] == "streaming" and wb:
                together += 1
            if a["static"] and b["static"]:
                break
        time.sleep(0.1)
    assert together >= 3, "the second view never streamed alongside the first"

    a, b = first.wait_settled(static=True), second.wait_settled(static=True)
    assert words(a["reply"]) == words(b["reply"]) == SHORT_WORDS
    assert a["reply_html"] == b["reply_html"]
    # Their last live frames (before the static replacement) showed the same text.
    last_a = [e for e in first.history() if not e["static"] and e["state"]][-1]
    last_b = [e for e in second.history() if not e["static"] and e["state"]][-1]
    if last_a["state"] == last_b["state"] == "done":
        assert last_a["len"] == last_b["len"]
    screenshot(f"s4-two-views-{tag(ui, kernel)}")


# -- 5. saved notebook, no kernel ------------------------------------------------------------


@LAB_KERNELS
def test_saved_answer_shows_after_kernel_shutdown(
    ui, kernel, open_notebook, server, page, screenshot
):
    nb = open_notebook(
        [
            "%load_ext hermes_nb",
            "%%hermes\n# Kept answer\n\nThe saved notebook shows this without a kernel.",
            "1 + 1",
        ]
    )
    chat = ChatView(nb, 1)
    start(nb, chat)
    chat.wait_settled(static=True)
    nb.save()

    outputs = server.read_notebook(nb.path).cells[1].outputs
    mimes = {mime for out in outputs for mime in out.get("data", {})}
    assert "text/html" in mimes, mimes
    assert WIDGET_MIME not in mimes, "a saved widget view shows 'Error displaying widget'"
    html = "".join(
        out["data"]["text/html"] for out in outputs if "text/html" in out.get("data", {})
    )
    assert "hnb-static" in html

    page.goto("about:blank")
    assert server.shutdown_kernels(nb.path) == 1
    nb.open()  # a fresh kernel, with no widget model
    nb.run(2)  # the front end has talked to the new kernel

    view = chat.view()
    assert view["static"]
    assert view["state"] == "done"
    assert chat.root.locator(".hnb-reply h1").inner_text().strip() == "Kept answer"
    assert "The saved notebook shows this without a kernel." in view["reply"]
    assert "Error displaying widget" not in nb.panel.inner_text()
    assert nb.output(2, "text/plain").inner_text().strip() == "2"
    screenshot(f"s5-saved-no-kernel-{tag(ui, kernel)}", nb.panel)


# -- 6. hostile output -----------------------------------------------------------------------

# Each one, if it ever runs, sets window.__hnb_xss or calls top.__hnb_pwn (the tripwire).
PAYLOADS = [
    "<script>window.__hnb_xss=1</script>",
    '<img src=x onerror="window.__hnb_xss=1">',
    '<svg onload="top.__hnb_pwn(\'svg-onload\')"><circle r="1"/></svg>',
    "<svg><script>top.__hnb_pwn('svg-script')</script></svg>",
    "<iframe srcdoc=\"<script>top.__hnb_pwn('srcdoc')</script>\"></iframe>",
    "<details open ontoggle=\"top.__hnb_pwn('ontoggle')\"><summary>x</summary></details>",
    "<a href=\"javascript:top.__hnb_pwn('raw-a')\">raw link</a>",
    "[md link](javascript:window.__hnb_xss=1)",
    "[spaced link]( JaVaScRiPt:top.__hnb_pwn('case') )",
    "[data link](data:text/html;base64,PHNjcmlwdD50b3AuX19obmJfcHduKCdkYXRhJyk8L3NjcmlwdD4=)",
    "![md image](javascript:top.__hnb_pwn('md-img'))",
    "<javascript:top.__hnb_pwn('autolink')>",
    "<math><mtext><table><mglyph><style><img src=x onerror=\"top.__hnb_pwn('mxss')\">",
    "<form action=\"javascript:top.__hnb_pwn('form')\"><button>go</button></form>",
    "<object data=\"javascript:top.__hnb_pwn('object')\"></object>",
    "<a href=\"data:text/html,<script>top.__hnb_pwn('data-a')</script>\">data html</a>",
]
PAYLOAD = "\n\n".join(PAYLOADS)
LINK_TEXTS = ["raw link", "md link", "spaced link", "data link", "data html", "md image"]

HOSTILE_CONFIG = """\
default_profile = "hostile"
bot_name = '<img src=x onerror="top.__hnb_pwn(1)">'

[profiles.hostile]
provider = "echo"
model = '<svg onload="top.__hnb_pwn(2)"></svg>'

[profiles.hostile.options]
delay = 0.01
chunk_size = 8
"""

# Anything in a chat view that could run script, now or on a click.
_DANGER_JS = """
() => {
  const bad = [];
  const banned = 'script,iframe,frame,object,embed,form,base,meta,link,applet,portal';
  for (const root of document.querySelectorAll('.hnb-chat')) {
    for (const el of root.querySelectorAll(banned)) { bad.push('element ' + el.outerHTML); }
    for (const el of root.querySelectorAll('*')) {
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        const value = attr.value.replace(/[\\s\\u0000-\\u001f]+/g, '').toLowerCase();
        if (name.startsWith('on')) { bad.push('handler ' + el.outerHTML); }
        if (/^(javascript|vbscript|data):/.test(value)
            && ['href', 'src', 'action', 'formaction', 'data', 'xlink:href', 'srcdoc']
                 .includes(name)) {
          bad.push('url ' + el.outerHTML);
        }
      }
    }
    for (const style of root.querySelectorAll('style')) {
      if (/__hnb|@import/.test(style.textContent)) { bad.push('style ' + style.outerHTML); }
    }
  }
  return bad;
}
"""


def assert_inert(nb: NotebookPage, page, where: str) -> None:
    """Nothing in the chat views can run, nothing ran, and clicking the links runs nothing."""
    assert page.evaluate(_DANGER_JS) == [], where
    url = page.url
    for text in LINK_TEXTS:
        links = nb.panel.locator(".hnb-chat a", has_text=text)
        for i in range(links.count()):
            links.nth(i).click()
    assert page.url == url, f"{where}: a link navigated the page away"
    assert nb.xss_hits() == [], where
    assert page.watch.dialogs == [], where
    assert page.watch.popups == [], where


@LAB_KERNELS
def test_hostile_output_runs_nothing(ui, kernel, open_notebook, hermes_config, page, screenshot):
    hermes_config(HOSTILE_CONFIG)
    tool = {"name": "<img src=x onerror=top.__hnb_pwn(3)>", "arguments": {"q": PAYLOAD}}
    nb = open_notebook(
        [
            "%load_ext hermes_nb",
            "%%hermes --no-interpolate\n" + PAYLOAD,
            "import hermes_nb\n"
            f"payload = {PAYLOAD!r}\n"
            f"tool = {tool!r}\n"
            "tool['result'] = payload\n"
            "run = hermes_nb.chat(payload, reasoning=payload, tool_calls=[tool], delay=0.01,"
            " chunk_size=8)\n"
            "run",
        ]
    )
    magic, api = ChatView(nb, 1), ChatView(nb, 2)
    start(nb, magic)
    magic.wait_live(min_chars=1)
    assert page.evaluate(_DANGER_JS) == [], "while the magic's reply streams"
    shown = magic.wait_settled(static=True)
    nb.run(2)
    api.wait("v.state === 'streaming' && v.tools.length > 0", 30_000, "the API run streaming")
    assert page.evaluate(_DANGER_JS) == [], "while the API run streams"
    api.wait_settled(static=True)

    # Raw HTML is shown as text, not dropped and not run.
    assert "<script>window.__hnb_xss=1</script>" in shown["reply"]
    assert api.view()["tools"], "the tool call is shown"
    assert_inert(nb, page, "after the runs settled")
    screenshot(f"s6-hostile-{tag(ui, kernel)}")

    # The saved notebook's static HTML, rendered as trusted output after a reload.
    nb.save()
    nb.reload()
    magic.wait_settled(static=True)
    assert_inert(nb, page, "after save and reload")
