"""The chat view in a real browser while a long reply streams, against one render of its HTML.

JupyterLab (``tests/browser/jupyter_harness.py``: an isolated server on 127.0.0.1) in Debian's
Chromium (``/usr/bin/chromium``, headless, 1280 x 1000) driven by Playwright. One notebook; its
second cell displays a live run of the offline echo model whose ``reply=`` is a ~50 KB Markdown
text of 66 sections, each prose and a highlighted ```` ```python ```` block, streamed in ~10,000
chunks of 5 characters (``chunk_size=5, delay=0.0002``: the echo model's timer sleeps ~1.3 ms a
chunk, so ~13-14 s). Each run is a fresh page and kernel; the browser context (HTTP cache) is
shared. Measured in the page (issue 15, section 3):

* **While it streams**, from the first reply block shown to the live view showing ``done``
  (marks a MutationObserver sets in the page): main-thread time from the DevTools Performance
  metrics (CDP ``Performance.getMetrics``: ``TaskDuration``, of which ``ScriptDuration``,
  ``RecalcStyleDuration``, ``LayoutDuration``; the rest is paint, compositing, HTML parsing, GC),
  sampled every 50 ms and interpolated at the window's ends, less the benchmark's own DevTools
  commands (those samples and the polls for the marks run as tasks on the page's main thread:
  about 250 of them, 50 ms in a 12-s window, 130 ms when traced, half a render or more; the
  trace attributes each to ``inspector_task_runner.cc``, and their time within the window is
  taken out); the busy fraction (that time over the window's wall time); long tasks from a
  ``PerformanceObserver({type: "longtask"})`` in the page: how many over 50 ms, and the
  longest (and the longest long-animation-frame entry: its scripts, style/layout and render
  parts).
* **Baseline: one render of the final HTML**, after the settle, in the same page: the settled
  output is hidden, and its HTML (the ``innerHTML`` of its ``text/html`` renderer: the inline
  stylesheet and the ``.hnb-chat.hnb-static`` markup, i.e. what the settle renders) is set into
  a new element with the renderer's classes and width, appended to the same output area, forced
  to lay out (``getBoundingClientRect``), and the next frame painted; median of 5. Its main-thread
  time is taken two ways, each compared with a figure measured the same way: the
  ``TaskDuration`` delta around it, and its task plus its frame in a trace (for the settle).
* **The reference render**, the yardstick of the streaming and settle targets: the same, for
  the final HTML with every code token in a ``<span>`` of its own, as Pygments writes it and as
  the final HTML was when issue 25 set the targets (302 KB and 9,960 elements where the final
  HTML now has 179 KB and 4,578: ``_browser_page.reference_html``); rendered in turn with the
  final HTML, median of 5. A ratio to the final HTML's own render grows whenever that HTML gets
  lighter, the stream being cheaper too (it was 5.0x before the plain tokens went unwrapped,
  7.7x after, for a stream 20 % cheaper): it is printed, not checked.
* **The settle**: the kernel replaces the live view with the static output (one
  ``update_display_data``). Its main-thread time is the task that inserts the static output plus
  the frame that renders it (from a trace of category ``toplevel``, which costs next to nothing:
  one event per task). JupyterLab then typesets the new HTML output (MathJax, loaded on first
  use); what the page does in the second after the settle's frame is printed, not checked.

* **The page at rest**: after the baselines, what the same page does in 3 s with nothing
  streaming (a focused cell's blinking caret, JupyterLab's polls), over as long as the stream:
  part of the streaming figure, printed beside it, not taken out.
* **JupyterLab's own render** of the settled output: its model's output set again to the same
  data (as an ``update_display_data`` does): JupyterLab's script, the HTML replaced in place,
  the frame. Printed beside the settle, which also swaps a widget output for an HTML one.

The page is left where the run started, as the issue measured it: the reply soon grows past the
window, and the view's end is off screen (the view then draws every 3 s, and the kernel sends a
frame a second: ``labextension/src/view/render.ts``, ``view/_controller.py``). ``--follow`` keeps
the view's end in view instead, scrolled to every 250 ms as a person reading along would (the
scrolling's own frames are counted): the view stays in sight, and every update is drawn, at most
one per 300 ms, or per 500 ms while each update grows the view by a third of the window or more
(``labextension/src/view/pace.ts``): this reply does, ~550 px an update at 300 ms, so it is
drawn twice a second, and the view tells the kernel, which then sends a frame per update.

Printed figures (targets in brackets):

* main-thread time while streaming / the reference render            [≤ 3×; ≤ 5× with --follow]
* main-thread time while streaming / one render of the final HTML                 [reported]
* busy fraction while streaming                                                   [reported]
* long tasks over 50 ms while streaming                                           [0]
* the longest task while streaming                                                [≤ 50 ms]
* the settle's re-render / the reference render                                   [≤ 1×]
* the settle's re-render / one render of the final HTML                           [reported]

With several runs (``--runs N``, default 2) the medians are checked. ``--trace`` adds a run with
a full DevTools trace (``devtools.timeline``) and a V8 CPU profile, printed as where the main
thread's time goes: by kind of task (rendering frames, kernel messages, timers) and kind of work
(script, HTML parsing, style, layout, paint, compositing, GC), paint by painted layer, and script
self time by source (JupyterLab, ipywidgets, hermes_nb's extension, which holds the view, or its
fallback module ``view.js``).
Tracing slows the page (its figures are not checked); the trace is kept in
``artifacts/browser/bench-browser-trace.json`` (DevTools' Performance panel opens it).

Run: ``.venv/bin/python benchmarks/bench_browser.py`` (about 30 s per run plus JupyterLab's
start). Needs ``/usr/bin/chromium`` and the ``playwright`` package (``pip install -e
'.[browser]'``). Exit status 0 when every target is met.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import median, use_tests_dir

ROOT = use_tests_dir()
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from _browser_page import (  # noqa: E402
    BASELINE_JS,
    BENCH_INIT,
    CELL_JS,
    EXTRA_CSS_JS,
    HIDE_JS,
    JLAB_RENDER_JS,
    REMOVE_JS,
    WATCH_JS,
    make_reply,
    reference_html,
)
from _browser_report import RunResult, check, print_detail, print_run  # noqa: E402
from _browser_trace import Trace, at, breakdown, metrics, profile_self  # noqa: E402
from chat_dom import FOLLOW_JS  # noqa: E402
from jupyter_harness import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    JupyterServer,
    NotebookPage,
)

CHROMIUM = Path("/usr/bin/chromium")
CHUNK = 5
DELAY = 0.0002  # under the event loop's ~1.2 ms timer granularity: ~1.2-1.4 ms a chunk
SAMPLE_S = 0.05  # Performance.getMetrics every 50 ms while the reply streams
SETTLE_WAIT_S = 2.0  # after the settle's frame: what the page does next, then idle for baselines
BASELINE_REPS = 5
JLAB_REPS = 3  # JupyterLab rendering the settled output again (JLAB_RENDER_JS)
REST_S = 3.0  # the page at rest, after the baselines: what it does with nothing streaming
FOLLOW_MS = 250  # --follow: the view's end scrolled into view this often, as a reader does
REPLY_FILE = "bench_reply.md"
TRACE_FILE = ARTIFACTS / "bench-browser-trace.json"
PROFILE_FILE = ARTIFACTS / "bench-browser.cpuprofile"  # the traced run's V8 CPU profile

# Always traced (cheap: one event per task): every task's span, and the page's marks.
LIGHT_CATEGORIES = ["toplevel", "blink.user_timing"]
# The --trace run: what DevTools' Performance panel records, less screenshots.
FULL_CATEGORIES = [
    *LIGHT_CATEGORIES,
    "devtools.timeline",
    "disabled-by-default-devtools.timeline",
    "disabled-by-default-devtools.timeline.frame",
    "v8.execute",
    "blink",
    "cc",
    "gpu",
]


def setup_source(fps: float | None) -> str:
    """The notebook's first cell: the reply, and with ``--fps`` the kernel pump's frame interval
    (a private knob of ``hermes_nb.view._controller``, patched for the experiment)."""
    source = f"import pathlib\nimport hermes_nb\nREPLY = pathlib.Path({REPLY_FILE!r}).read_text()"
    if fps:
        source += (
            "\nfrom hermes_nb.view import _controller as _display"
            f"\n_display._FRAME_INTERVAL = {1 / fps + 0.0005!r}"
        )
    return source


def one_run(
    browser: Any,
    context: Any,
    server: JupyterServer,
    index: int,
    full_trace: bool,
    setup: str,
    follow: bool = False,
) -> RunResult:
    page = context.new_page()
    try:
        return _measure(browser, context, page, server, index, full_trace, setup, follow)
    finally:
        with contextlib.suppress(Exception):
            page.goto("about:blank")
        with contextlib.suppress(Exception):
            page.close()
        with contextlib.suppress(Exception):
            server.shutdown_kernels()


def _measure(
    browser: Any,
    context: Any,
    page: Any,
    server: JupyterServer,
    index: int,
    full_trace: bool,
    setup: str,
    follow: bool = False,
) -> RunResult:
    name = f"bench_browser_{index}.ipynb"
    server.notebook(
        name,
        [
            setup,
            f"run = hermes_nb.chat('Stream the benchmark reply.', reply=REPLY,"
            f" chunk_size={CHUNK}, delay={DELAY})\nrun",
        ],
    )
    nb = NotebookPage(page, server, name, workspace=f"bench{index}")
    nb.open()
    nb.run(0)
    cell = page.evaluate_handle(CELL_JS, name)
    page.evaluate(WATCH_JS, cell)
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable", {"timeDomain": "timeTicks"})
    browser.start_tracing(page=page, categories=FULL_CATEGORIES if full_trace else LIGHT_CATEGORIES)
    if full_trace:
        cdp.send("Profiler.enable")
        cdp.send("Profiler.setSamplingInterval", {"interval": 250})
        cdp.send("Profiler.start")
    # The clocks: a mark between two metrics samples must fall between their Timestamps.
    clock = [metrics(cdp)["Timestamp"]]
    page.evaluate("() => performance.mark('hnb-clock')")
    clock.append(metrics(cdp)["Timestamp"])
    samples = [metrics(cdp)]
    nb.run(1, wait=False)
    if follow:
        page.evaluate(FOLLOW_JS, [cell, FOLLOW_MS])
    deadline = time.monotonic() + 180
    marks: dict[str, float] = {}
    polls = 0
    settled_at = None
    while settled_at is None or time.monotonic() - settled_at < SETTLE_WAIT_S:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run did not settle within 180 s; marks: {marks}")
        time.sleep(SAMPLE_S)
        samples.append(metrics(cdp))
        polls += 1
        if settled_at is None and polls % 5 == 0:
            marks = page.evaluate("() => window.__bench.marks")
            if "static_painted" in marks:
                settled_at = time.monotonic()
    profile = cdp.send("Profiler.stop")["profile"] if full_trace else None

    page.evaluate(HIDE_JS, cell)
    reference, blocks = reference_html(page.evaluate("() => window.__bench.base.html"))
    renders: dict[str, list[tuple[float, dict[str, Any]]]] = {"base": [], "ref": []}
    for rep in range(BASELINE_REPS):
        # The final HTML and the reference in turn, so a change in the machine's load hits both.
        for tag, html in (("base", None), ("ref", reference)):
            time.sleep(0.3)
            m0 = metrics(cdp)
            info = page.evaluate(BASELINE_JS, [rep, tag, html])
            m1 = metrics(cdp)
            page.evaluate(REMOVE_JS, rep == BASELINE_REPS - 1 and tag == "ref")
            renders[tag].append((m1["TaskDuration"] - m0["TaskDuration"], info))
    base, ref = renders["base"], renders["ref"]
    for rep in range(JLAB_REPS):
        time.sleep(0.5)
        page.evaluate(JLAB_RENDER_JS, [name, rep, False])
    for rep in range(JLAB_REPS):
        time.sleep(0.5)
        page.evaluate(JLAB_RENDER_JS, [name, rep, True])
    time.sleep(0.5)
    m0 = metrics(cdp)
    time.sleep(REST_S)
    m1 = metrics(cdp)
    rest_s = (m1["TaskDuration"] - m0["TaskDuration"]) / (m1["Timestamp"] - m0["Timestamp"])
    raw = browser.stop_tracing()
    bench = page.evaluate("() => window.__bench")
    marks = bench["marks"]
    trace = Trace.parse(raw)
    if full_trace:
        TRACE_FILE.parent.mkdir(parents=True, exist_ok=True)
        TRACE_FILE.write_bytes(raw)
        if profile is not None:
            PROFILE_FILE.write_text(json.dumps(profile))

    # The trace's clock (µs) is the metrics' Timestamp (s): both are the browser's TimeTicks.
    if not clock[0] <= trace.marks["clock"] / 1e6 <= clock[1]:
        raise RuntimeError(
            f"the metrics' Timestamp and the trace's clock disagree: {trace.marks['clock']} µs"
            f" is not within {clock[0]}-{clock[1]} s"
        )
    first_us, done_us = trace.marks["first"], trace.marks["done"]
    t0, t1 = first_us / 1e6, done_us / 1e6

    def delta(name: str) -> float:
        return at(samples, t1, name) - at(samples, t0, name)

    first_ms, done_ms = marks["first"], marks["done"]
    long_tasks = [d for s, d in bench["longtasks"] if first_ms <= s < done_ms]
    loafs = [
        {**f, "offset_s": (f["start"] - first_ms) / 1000}
        for f in bench["loaf"]
        if first_ms <= f["start"] < done_ms
    ]

    settle_parts = trace.task_and_frame("static", "static_raf")
    after_start = trace.marks["static_painted"]
    instrument_s = trace.instrument_busy(first_us, done_us) / 1e6
    result = RunResult(
        stream_wall_s=(done_us - first_us) / 1e6,
        stream_busy_s=delta("TaskDuration") - instrument_s,
        instrument_s=instrument_s,
        script_s=delta("ScriptDuration"),
        style_s=delta("RecalcStyleDuration"),
        layout_s=delta("LayoutDuration"),
        layout_count=delta("LayoutCount"),
        style_count=delta("RecalcStyleCount"),
        trace_stream_busy_s=trace.busy(first_us, done_us) / 1e6 - instrument_s,
        long_tasks=long_tasks,
        loaf_longest=max(loafs, key=lambda f: f["duration"], default=None),
        settle_s=sum(settle_parts) / 1e6,
        settle_parts_ms=[p / 1000 for p in settle_parts],
        after_settle_s=trace.busy(after_start, after_start + 1e6) / 1e6,
        base_metrics_s=median([b for b, _ in base]),
        base_trace_s=trace.render_s("base", BASELINE_REPS),
        base_sync_s=median([i["sync_ms"] for _, i in base]) / 1000,
        base_info=base[-1][1],
        ref_metrics_s=median([b for b, _ in ref]),
        ref_trace_s=trace.render_s("ref", BASELINE_REPS),
        ref_info={**ref[-1][1], "code_blocks": blocks},
        batches=bench.get("batches", 0),
        rest_s=rest_s,
        jlab_render_s=trace.render_s("jl", JLAB_REPS),
        jlab_swap_s=trace.render_s("js", JLAB_REPS),
    )
    if full_trace:
        main = trace.main()
        result.detail = {
            "stream": breakdown(main, first_us, done_us),
            "settle": breakdown(main, *trace.span_at(trace.marks["static"])),
            "settle_frame": breakdown(main, *trace.span_at(trace.marks["static_raf"])),
            "base": breakdown(main, *trace.span_at(trace.marks["base-start-0"])),
            "after": breakdown(main, after_start, after_start + 1e6),
        }
        if profile is not None:
            result.detail["profile_clock_ok"] = (
                float(profile["startTime"]) <= first_us <= float(profile["endTime"])
            )
            result.detail["profile"] = profile_self(profile, first_us, done_us)
            settle_span = trace.span_at(trace.marks["static"])
            if settle_span is not None:
                result.detail["profile_settle"] = profile_self(profile, *settle_span)
            result.detail["profile_after"] = profile_self(
                profile, after_start, min(after_start + 1e6, float(profile["endTime"]))
            )
    return result


# -- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="measured runs (default 2)")
    parser.add_argument(
        "--trace", action="store_true", help="then one fully traced run, for the breakdown"
    )
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep the reply's end in view while it streams (a person reading along scrolls"
        " every 250 ms) instead of leaving the page where the run started",
    )
    parser.add_argument(
        "--css",
        type=Path,
        help="a stylesheet added to every page (after the view's): try a change without editing it",
    )
    parser.add_argument(
        "--fps",
        type=float,
        help="experiment: the kernel sends at most this many frames a second (default 3: MAX_FPS)",
    )
    args = parser.parse_args()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("the playwright package is not installed (pip install -e '.[browser]')")
        return 2
    if not CHROMIUM.is_file():
        print(f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
        return 2

    reply = make_reply()
    chunks = -(-len(reply) // CHUNK)
    print(
        f"reply: {len(reply):,} chars, {reply.count('```python')} code blocks, {chunks:,} chunks"
        f" of {CHUNK} (delay {DELAY} s)",
        flush=True,
    )
    setup = setup_source(args.fps)
    if args.fps:
        print(f"experiment: at most {args.fps:g} frames a second from the kernel", flush=True)
    started = time.monotonic()
    results: list[RunResult] = []
    traced: RunResult | None = None
    with tempfile.TemporaryDirectory(prefix="hnb-bench-browser-") as tmp:
        server = JupyterServer(Path(tmp), ui="lab")
        server.start()
        try:
            (server.root_dir / REPLY_FILE).write_text(reply, encoding="utf-8")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                context = browser.new_context(viewport={"width": 1280, "height": 1000})
                context.set_default_timeout(60_000)
                context.add_init_script(INIT_SCRIPT)
                context.add_init_script(BENCH_INIT)
                if args.css:
                    context.add_init_script(EXTRA_CSS_JS % json.dumps(args.css.read_text()))
                    print(f"extra CSS from {args.css}", flush=True)
                try:
                    for i in range(args.runs):
                        results.append(
                            one_run(browser, context, server, i + 1, False, setup, args.follow)
                        )
                        print_run(i + 1, results[-1])
                    if args.trace:
                        traced = one_run(browser, context, server, 0, True, setup, args.follow)
                        print_run(0, traced)
                finally:
                    context.close()
                    browser.close()
        finally:
            server.stop()
    print(f"({time.monotonic() - started:.0f} s in all)\n")
    if traced is not None:
        print_detail(traced)
        print(f"  (trace: {TRACE_FILE.relative_to(ROOT)})\n")
    return check(results, args.follow) if results else 0


if __name__ == "__main__":
    raise SystemExit(main())
