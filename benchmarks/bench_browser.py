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
  ``TaskDuration`` delta around it (for the streaming ratio), and its task plus its frame in a
  trace (for the settle).
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
drawn twice a second.

Printed figures (targets in brackets):

* main-thread time while streaming / one render of the final HTML      [≤ 3×; ≤ 5× with --follow]
* busy fraction while streaming                                                   [reported]
* long tasks over 50 ms while streaming                                           [0]
* the longest task while streaming                                                [≤ 50 ms]
* the settle's re-render / one render of the final HTML                           [≤ 1×]

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
import bisect
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import Report, median, prose_sentence, use_tests_dir

ROOT = use_tests_dir()
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from chat_dom import FOLLOW_JS  # noqa: E402
from jupyter_harness import (  # noqa: E402
    ARTIFACTS,
    CHROMIUM_ARGS,
    INIT_SCRIPT,
    JupyterServer,
    NotebookPage,
)

CHROMIUM = Path("/usr/bin/chromium")
SIZE = 50_000
BLOCKS = 66
CHUNK = 5
DELAY = 0.0002  # under the event loop's ~1.2 ms timer granularity: ~1.2-1.4 ms a chunk
SAMPLE_S = 0.05  # Performance.getMetrics every 50 ms while the reply streams
SETTLE_WAIT_S = 2.0  # after the settle's frame: what the page does next, then idle for baselines
BASELINE_REPS = 5
JLAB_REPS = 3  # JupyterLab rendering the settled output again (JLAB_RENDER_JS)
REST_S = 3.0  # the page at rest, after the baselines: what it does with nothing streaming
FOLLOW_MS = 250  # --follow: the view's end scrolled into view this often, as a reader does
LONG_TASK_MS = 50.0
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

_VOCABULARY = (
    "the merge sorts each partition before it joins rows so memory grows with the largest "
    "key group index pandas frame column query plan latency cache window stream buffer"
)


def make_reply(size: int = SIZE, blocks: int = BLOCKS, seed: int = 15) -> str:
    """A deterministic Markdown reply of about ``size`` characters: ``blocks`` sections, each a
    heading, prose (inline code, a link, bold now and then) and one ```` ```python ```` block."""
    rng = random.Random(seed)
    words = _VOCABULARY.split()

    def sentence() -> str:
        return prose_sentence(rng, words, longest=16, link=0.15)

    per = size // blocks
    sections = []
    for n in range(1, blocks + 1):
        head = f"## {n}. {sentence()[:36].rstrip()}"
        prose = " ".join(sentence() for _ in range(rng.randint(2, 3)))
        lines = ["```python", "import pandas as pd", ""]
        i = 0
        while len(head) + len(prose) + sum(len(x) + 1 for x in lines) < per - 60:
            name = rng.choice(words)
            lines.append(f"def step_{i}(df: pd.DataFrame) -> pd.DataFrame:")
            lines.append(f"    return df.groupby('{name}').agg({{'x': 'sum'}})  # {i}")
            i += 1
        lines.append("```")
        sections.append("\n\n".join([head, prose, "\n".join(lines)]))
    return "\n\n".join(sections) + "\n"


# -- the page's instruments ---------------------------------------------------------------------

# Before any of the page's scripts: long tasks and long animation frames, from the start.
BENCH_INIT = """
(() => {
  const b = (window.__bench = { longtasks: [], loaf: [], marks: {} });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) b.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: 'longtask', buffered: true });
  } catch (err) { b.longtask_error = String(err); }
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        b.loaf.push({
          start: e.startTime, duration: e.duration, renderStart: e.renderStart,
          styleAndLayoutStart: e.styleAndLayoutStart, blocking: e.blockingDuration,
          scripts: e.scripts.map((s) => ({
            invoker: s.invoker, type: s.invokerType, url: s.sourceURL,
            fn: s.sourceFunctionName, start: s.startTime, duration: s.duration,
            forced: s.forcedStyleAndLayoutDuration,
          })),
        });
      }
    }).observe({ type: 'long-animation-frame', buffered: true });
  } catch (err) { b.loaf_error = String(err); }
})();
"""

# Marks on the chat cell (performance.now(), and performance.mark for the trace): the first reply
# block shown, the live view showing a settled state, the static output in place, the frame that
# renders it and the end of that frame. Cheap: a querySelector per batch of mutations, so the page
# does no more work than it would.
WATCH_JS = """
(cell) => {
  const b = window.__bench;
  b.marks = {};
  b.batches = 0;
  const mark = (name) => {
    if (name in b.marks) return;
    b.marks[name] = performance.now();
    performance.mark('hnb-' + name);
  };
  const observer = new MutationObserver(() => {
    b.batches += 1;
    const root = cell.querySelector('.hnb-chat');
    if (!root) return;
    if (root.classList.contains('hnb-static')) {
      mark('static');
      observer.disconnect();
      requestAnimationFrame(() => {
        mark('static_raf'); // in the frame that renders it
        const ch = new MessageChannel();
        ch.port1.onmessage = () => mark('static_painted');
        ch.port2.postMessage(0);
      });
      return;
    }
    if (!('first' in b.marks) && root.querySelector('.hnb-reply .hnb-block')) mark('first');
    if (['done', 'stopped', 'error'].includes(root.dataset.state)) mark('done');
  });
  observer.observe(cell, {
    subtree: true, childList: true, attributes: true, attributeFilter: ['data-state'],
  });
}
"""

# One render of the settled output's HTML (see the module's docstring). First the settled output
# is hidden (display: none; a frame passes) so that only the new copy is styled and laid out,
# as in the settle, where the live view goes as the static output comes.
HIDE_JS = """
async (cell) => {
  const stat = cell.querySelector('.hnb-chat.hnb-static');
  const host = stat.parentElement;
  const rect = stat.getBoundingClientRect();
  window.__bench.base = {
    host, html: host.innerHTML, width: host.getBoundingClientRect().width,
    info: {
      html_bytes: host.innerHTML.length, host_width: rect.width, host_height: rect.height,
      elements: stat.querySelectorAll('*').length, pres: stat.querySelectorAll('pre').length,
    },
  };
  host.style.display = 'none';
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}
"""

# The output area (a block: its children are the outputs' rows), the renderer's classes and
# width: the same styles and line lengths as the output, without sharing its flex row.
BASELINE_JS = """
async (rep) => {
  const base = window.__bench.base;
  const box = document.createElement('div');
  box.className = base.host.className;
  box.style.display = 'block';
  box.style.width = `${base.width}px`;
  performance.mark('hnb-base-start-' + rep);
  const t0 = performance.now();
  box.innerHTML = base.html;
  base.host.closest('.jp-OutputArea').appendChild(box);
  const height = box.getBoundingClientRect().height;
  const t1 = performance.now();
  await new Promise((resolve) => requestAnimationFrame(() => {
    performance.mark('hnb-base-raf-' + rep);
    const ch = new MessageChannel();
    ch.port1.onmessage = resolve;
    ch.port2.postMessage(0);
  }));
  performance.mark('hnb-base-end-' + rep);
  base.box = box; // removed once the metrics are read (REMOVE_JS)
  return {
    ...base.info, sync_ms: t1 - t0, height,
    width: box.querySelector('.hnb-chat').getBoundingClientRect().width,
  };
}
"""

REMOVE_JS = """
async (restore) => {
  const base = window.__bench.base;
  base.box.remove();
  if (restore) base.host.style.display = '';
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
}
"""

# --css: a stylesheet at the end of <head>, kept last (anywidget appends chat.css when the view's
# model is made), so its rules win over chat.css's of the same specificity.
EXTRA_CSS_JS = """
document.addEventListener('DOMContentLoaded', () => {
  const style = document.createElement('style');
  style.id = 'hnb-bench-css';
  style.textContent = %s;
  document.head.appendChild(style);
  new MutationObserver(() => {
    if (document.head.lastElementChild !== style) document.head.appendChild(style);
  }).observe(document.head, { childList: true });
});
"""

CELL_JS = "(path) => window.__hnb_panel(path).content.widgets[1].node"


# JupyterLab rendering the settled output once: the cell's output set again to the same data, as
# a kernel's update_display_data does (its model, its renderer, the HTML replaced in place,
# the output area's own checks), with the settled output on show.
# With `swap`, the output is first made a plain-text one (a frame passes), so JupyterLab puts a
# new HTML output in its place (a new output widget and renderer), as the settle does for the
# live view's widget output.
JLAB_RENDER_JS = """
async ([path, rep, swap]) => {
  const outputs = window.__hnb_panel(path).content.widgets[1].model.outputs;
  const data = outputs.get(0).toJSON();
  if (swap) {
    outputs.set(0, { output_type: 'display_data', data: { 'text/plain': 'placeholder' },
                     metadata: {} });
    await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  }
  await new Promise((resolve) => setTimeout(resolve, 0));
  const tag = (swap ? 'js-' : 'jl-');
  performance.mark('hnb-' + tag + 'start-' + rep);
  outputs.set(0, data);
  await new Promise((resolve) => requestAnimationFrame(() => {
    performance.mark('hnb-' + tag + 'raf-' + rep);
    const ch = new MessageChannel();
    ch.port1.onmessage = resolve;
    ch.port2.postMessage(0);
  }));
}
"""


# -- metrics and traces ------------------------------------------------------------------------


def metrics(cdp: Any) -> dict[str, float]:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def at(samples: list[dict[str, float]], t: float, name: str) -> float:
    """Metric ``name`` at time ``t`` (``Timestamp`` seconds), interpolated between samples."""
    times = [s["Timestamp"] for s in samples]
    i = bisect.bisect_left(times, t)
    if i <= 0:
        return samples[0][name]
    if i >= len(samples):
        return samples[-1][name]
    a, b = samples[i - 1], samples[i]
    span = b["Timestamp"] - a["Timestamp"]
    frac = (t - a["Timestamp"]) / span if span > 0 else 1.0
    return a[name] + (b[name] - a[name]) * frac


@dataclass
class Trace:
    """The renderer's main thread in a trace: its tasks (merged spans, µs) and the page's marks."""

    events: list[dict[str, Any]]
    pid: int
    tid: int
    marks: dict[str, float]  # mark name (without "hnb-") -> ts, µs
    spans: list[tuple[float, float]] = field(default_factory=list)  # merged task spans
    # The benchmark's own DevTools commands (metrics samples, page.evaluate): tasks posted by
    # the inspector's task runner.
    instrument: list[tuple[float, float]] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes) -> Trace:
        data = json.loads(raw)
        events = data["traceEvents"] if isinstance(data, dict) else data
        marks: dict[str, float] = {}
        where: Counter[tuple[int, int]] = Counter()
        for e in events:
            name = e.get("name", "")
            if name.startswith("hnb-") and "user_timing" in e.get("cat", ""):
                marks.setdefault(name[4:], float(e["ts"]))
                where[(e["pid"], e["tid"])] += 1
        if not where:
            raise RuntimeError("the trace holds none of the page's marks")
        (pid, tid), _ = where.most_common(1)[0]
        trace = cls(events, pid, tid, marks)
        toplevel = [
            e
            for e in trace.main()
            if e.get("ph") == "X" and "toplevel" in e.get("cat", "").split(",")
        ]
        tasks = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in toplevel)
        trace.instrument = sorted(
            (float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0)))
            for e in toplevel
            if "inspector" in str((e.get("args") or {}).get("src_file", ""))
        )
        for start, end in tasks:
            if trace.spans and start <= trace.spans[-1][1]:
                last = trace.spans[-1]
                trace.spans[-1] = (last[0], max(last[1], end))
            else:
                trace.spans.append((start, end))
        return trace

    def main(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("pid") == self.pid and e.get("tid") == self.tid]

    def busy(self, start: float, end: float) -> float:
        """Main-thread busy time (µs) within [start, end]."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.spans)

    def instrument_busy(self, start: float, end: float) -> float:
        """Time (µs) within [start, end] in tasks of the benchmark's own DevTools commands."""
        return sum(max(0.0, min(b, end) - max(a, start)) for a, b in self.instrument)

    def span_at(self, ts: float) -> tuple[float, float] | None:
        """The merged task span holding ``ts``."""
        for a, b in self.spans:
            if a <= ts <= b:
                return (a, b)
        return None

    def task_and_frame(self, task_mark: str, frame_mark: str) -> list[float]:
        """Busy time (µs) of the task holding mark ``task_mark`` and of the one holding
        ``frame_mark`` (a requestAnimationFrame callback: the frame that renders its work)."""
        spans = []
        for name in (task_mark, frame_mark):
            span = self.span_at(self.marks[name])
            if span is None:
                raise RuntimeError(f"no task holds the mark {name!r} in the trace")
            if span not in spans:
                spans.append(span)
        return [b - a for a, b in spans]

    def render_s(self, tag: str, reps: int) -> float:
        """Median seconds of a render repeated ``reps`` times, each marked ``<tag>-start-<i>``
        in its task and ``<tag>-raf-<i>`` in the frame that draws it: task and frame."""
        return (
            median(
                [
                    sum(self.task_and_frame(f"{tag}-start-{i}", f"{tag}-raf-{i}"))
                    for i in range(reps)
                ]
            )
            / 1e6
        )


# -- the --trace breakdown ---------------------------------------------------------------------

TASK_KINDS = ("frame", "kernel message", "timer", "other task")
CATEGORIES = (
    "script",
    "parse",
    "style",
    "layout",
    "paint",
    "composite",
    "lifecycle",
    "GC",
    "untraced",
)
_STYLE = (
    "UpdateLayoutTree",
    "Document::recalcStyle",
    "Document::rebuildLayoutTree",
    "Document::updateStyle",
    "Document::updateActiveStyle",
    "StyleEngine",
    "Blink.Style",
    "ParseAuthorStyleSheet",
)
_LAYOUT = (
    "Layout",
    "LocalFrameView::performLayout",
    "InlineNode",
    "LayoutView",
    "LocalFrameView::performPostLayoutTasks",
    "LocalFrameView::NotifyResizeObservers",
)
_PAINT = (
    "Paint",
    "PrePaint",
    "Blink.Paint",
    "Blink.PrePaint",
    "CullRectUpdate",
    "LocalFrameView::RunPaintLifecyclePhase",
    "LocalFrameView::RunPrePaintLifecyclePhase",
)
_COMPOSITE = (
    "Layerize",
    "PaintArtifactCompositor",
    "Blink.CompositingInputs",
    "Commit",
    "ProxyMain::BeginMainFrame::commit",
    "Blink.CompositingCommit",
    "UpdateLayer",
    "LocalFrameView::pushPaintArtifactToCompositor",
    "LayerTreeHost",
    "LocalFrameView::RunCompositingInputsLifecyclePhase",
    "ScrollTree",
)
_SCRIPT = (
    "FunctionCall",
    "EvaluateScript",
    "RunMicrotasks",
    "TimerFire",
    "FireAnimationFrame",
    "EventDispatch",
    "v8.",
    "V8.",
    "AsyncTask",
    "BlinkScheduler_PerformMicrotaskCheckpoint",
    "CustomElementReactionQueue",
)


def _is_task(e: dict[str, Any]) -> bool:
    return "toplevel" in e.get("cat", "").split(",")


def _category(e: dict[str, Any]) -> str:
    """What kind of main-thread work a trace event's self time is."""
    name = e["name"]
    if _is_task(e) or name in {"RunTask", "ThreadControllerImpl::RunTask"}:
        return "untraced"
    if "GC" in name or "marking" in name:
        return "GC"
    if name.startswith(("ParseHTML", "HTMLDocumentParser")):
        return "parse"
    for category, prefixes in (
        ("style", _STYLE),
        ("layout", _LAYOUT),
        ("composite", _COMPOSITE),
        ("paint", _PAINT),
        ("script", _SCRIPT),
    ):
        if name.startswith(prefixes):
            return category
    return "lifecycle"  # the frame's other steps: animations, observers, scroll, …


def _task_kind(inner: list[dict[str, Any]]) -> str:
    """A task's kind, from the first traced event inside it."""
    for e in inner:
        name = e["name"]
        data = (e.get("args") or {}).get("data") or {}
        if name in {"ProxyMain::BeginMainFrame", "BeginMainFrame", "FireAnimationFrame"}:
            return "frame"
        if name == "FunctionCall" and "WSMessage" in str(data.get("functionName", "")):
            return "kernel message"
        if name == "TimerFire":
            return "timer"
        if name in {"FunctionCall", "EventDispatch"}:
            return "other task"
    return "other task"


def breakdown(events: list[dict[str, Any]], start: float, end: float) -> dict[str, Any]:
    """The main thread's tasks starting in [start, end]: time (µs) by task kind and category of
    work (self time of the trace events inside), and the paint time by painted node."""
    xs = sorted(
        (e for e in events if e.get("ph") == "X" and "dur" in e and start <= e["ts"] < end),
        key=lambda e: (e["ts"], -e["dur"]),
    )
    table: dict[str, dict[str, float]] = {k: defaultdict(float) for k in TASK_KINDS}
    painted: dict[str, float] = defaultdict(float)
    frames = 0
    i = 0
    while i < len(xs):
        task = xs[i]
        if not _is_task(task):
            i += 1
            continue
        t_end = task["ts"] + task["dur"]
        j = i + 1
        while j < len(xs) and xs[j]["ts"] < t_end:
            j += 1
        inner = [e for e in xs[i + 1 : j] if not _is_task(e)]
        kind = _task_kind(inner)
        frames += kind == "frame"
        row = table[kind]
        row["untraced"] += task["dur"]
        stack: list[tuple[float, str]] = [(t_end, "untraced")]
        for e in inner:
            while len(stack) > 1 and stack[-1][0] <= e["ts"]:
                stack.pop()
            category = _category(e)
            dur = min(e["dur"], stack[-1][0] - e["ts"])
            row[category] += dur
            row[stack[-1][1]] -= dur
            stack.append((e["ts"] + dur, category))
            if e["name"] == "Paint":
                node = str(((e.get("args") or {}).get("data") or {}).get("nodeName", "?"))
                painted[node] += e["dur"]
        i = j
    return {"table": {k: dict(v) for k, v in table.items()}, "painted": painted, "frames": frames}


def _source(url: str) -> str:
    if url.startswith("blob:"):
        return "view.js (fallback module)"
    for needle, label in (
        ("/extensions/@jupyter-widgets/", "ipywidgets' manager"),
        ("/extensions/anywidget/", "anywidget"),
        ("/extensions/hermes-nb/", "hermes_nb's extension"),
        ("/extensions/", "other extensions"),
        ("/static/lab/", "JupyterLab"),
    ):
        if needle in url:
            return label
    return url or "(native)"


def profile_self(
    profile: dict[str, Any], start: float, end: float
) -> tuple[dict[str, float], list[tuple[str, float]]]:
    """Self time (µs) of a V8 CPU profile's samples in [start, end]: by source (``(program)`` is
    the renderer's own work, no JavaScript on the stack), and the hottest JS functions."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    sources: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = defaultdict(float)
    t = float(profile["startTime"])
    deltas = profile["timeDeltas"]
    for i, node_id in enumerate(profile["samples"]):
        t += deltas[i]
        step = deltas[i + 1] if i + 1 < len(deltas) else 0
        if not start <= t < end:
            continue
        frame = nodes[node_id]["callFrame"]
        name = frame.get("functionName") or "(anonymous)"
        url = frame.get("url", "")
        if name.startswith("(") and not url:
            sources[name] += step
            continue
        where = _source(url)
        sources[where] += step
        functions[f"{name} [{where}:{frame.get('lineNumber', 0) + 1}]"] += step
    top = sorted(functions.items(), key=lambda kv: -kv[1])[:12]
    return dict(sources), top


# -- one run -----------------------------------------------------------------------------------


@dataclass
class RunResult:
    stream_wall_s: float  # first reply block shown -> the live view showing "done"
    stream_busy_s: float  # TaskDuration over that window, less the benchmark's own commands
    instrument_s: float  # the benchmark's own DevTools commands in that window (not counted)
    script_s: float
    style_s: float
    layout_s: float
    layout_count: float
    style_count: float
    trace_stream_busy_s: float
    long_tasks: list[float]  # ms, from the longtask observer
    loaf_longest: dict[str, Any] | None
    settle_s: float  # the settle's task and the frame that renders it (trace)
    settle_parts_ms: list[float]
    after_settle_s: float  # busy in the second after that frame
    base_metrics_s: float  # one render, TaskDuration delta around it (median)
    base_trace_s: float  # one render: its task and its frame (trace; median)
    base_sync_s: float  # parse + style + layout, in the page (median)
    base_info: dict[str, Any]
    batches: int
    jlab_render_s: float  # JupyterLab rendering the settled output once: task and frame (trace)
    jlab_swap_s: float  # the same, put in place of a plain-text output (a new output widget)
    rest_s: float  # main-thread seconds a second at rest (a focused editor's caret, polls)
    detail: dict[str, Any] = field(default_factory=dict)


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

    base: list[tuple[float, dict[str, Any]]] = []
    page.evaluate(HIDE_JS, cell)
    for rep in range(BASELINE_REPS):
        time.sleep(0.3)
        m0 = metrics(cdp)
        info = page.evaluate(BASELINE_JS, rep)
        m1 = metrics(cdp)
        page.evaluate(REMOVE_JS, rep == BASELINE_REPS - 1)
        base.append((m1["TaskDuration"] - m0["TaskDuration"], info))
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


# -- printing ----------------------------------------------------------------------------------


def info(name: str, value: float, unit: str, detail: str = "") -> None:
    """A figure with no target, in the same columns as ``Report.figure``."""
    extra = f"  [{detail}]" if detail else ""
    print(f"{name:<44} {value:>10.3f} {unit:<4} (no target){extra}", flush=True)


def print_run(i: int, r: RunResult) -> None:
    other = r.stream_busy_s - r.script_s - r.style_s - r.layout_s
    label = f"run {i}" if i else "traced run"
    print(
        f"{label}: stream {r.stream_wall_s:.1f} s, {r.batches} DOM update batches; main thread busy"
        f" {r.stream_busy_s:.2f} s ({r.stream_busy_s / r.stream_wall_s:.0%}; trace"
        f" {r.trace_stream_busy_s:.2f} s; not counted: the benchmark's own DevTools commands"
        f" {r.instrument_s:.2f} s): script {r.script_s:.2f}, style {r.style_s:.2f}"
        f" ({r.style_count:.0f}x), layout {r.layout_s:.2f} ({r.layout_count:.0f}x),"
        f" the rest (paint, composite, HTML parse, GC…) {other:.2f}",
        flush=True,
    )
    tasks = sorted(r.long_tasks, reverse=True)
    print(
        f"    long tasks > 50 ms: {len(tasks)} "
        f"{[round(t) for t in tasks[:10]]}{' …' if len(tasks) > 10 else ''}; settle"
        f" {r.settle_s * 1000:.0f} ms (its task + its frame:"
        f" {' + '.join(f'{p:.0f}' for p in r.settle_parts_ms)}), then"
        f" {r.after_settle_s * 1000:.0f} ms busy in the next second; one render"
        f" {r.base_metrics_s * 1000:.0f} ms (metrics) / {r.base_trace_s * 1000:.0f} ms (trace)"
        f" / {r.base_sync_s * 1000:.0f} ms parse+style+layout",
        flush=True,
    )
    b = r.base_info
    print(
        f"    final HTML {b['html_bytes'] / 1000:.0f} KB: {b['elements']} elements,"
        f" {b['pres']} <pre>; one render {b['width']:.0f} x {b['height']:.0f} px (the settled"
        f" output: {b['host_width']:.0f} x {b['host_height']:.0f} px)",
        flush=True,
    )
    if r.loaf_longest:
        f = r.loaf_longest
        script = sum(s["duration"] for s in f["scripts"])
        forced = sum(s["forced"] for s in f["scripts"])
        render = f["start"] + f["duration"] - f["renderStart"] if f["renderStart"] else 0.0
        style_layout = (
            f["start"] + f["duration"] - f["styleAndLayoutStart"]
            if f["styleAndLayoutStart"]
            else 0.0
        )
        calls = sorted(f["scripts"], key=lambda s: -s["duration"])[:3]
        print(
            f"    longest animation frame {f['duration']:.0f} ms, {f['offset_s']:.1f} s into the"
            f" stream: scripts {script:.0f} ms"
            f" (forced style/layout {forced:.0f}), rendering {render:.0f} ms (style+layout"
            f" {style_layout:.0f}); scripts: "
            + ("; ".join(f"{s['invoker']} {s['duration']:.0f} ms" for s in calls) or "none"),
            flush=True,
        )


def print_breakdown(title: str, d: dict[str, Any], wall_us: float | None = None) -> None:
    table = d["table"]
    kinds = [k for k in TASK_KINDS if sum(table[k].values()) > 0]
    total = sum(sum(table[k].values()) for k in kinds)
    share = f", {total / wall_us:.0%} of the wall time" if wall_us else ""
    print(f"  {title}: {total / 1000:.0f} ms busy{share}")
    print("    " + " " * 16 + "".join(f"{c:>11}" for c in (*CATEGORIES, "total")))
    for k in kinds:
        row = table[k]
        cells = "".join(f"{row.get(c, 0) / 1000:>11.0f}" for c in CATEGORIES)
        print(f"    {k:<16}{cells}{sum(row.values()) / 1000:>11.0f}")


def print_detail(r: RunResult) -> None:
    d = r.detail
    if not d:
        return
    wall = r.stream_wall_s * 1e6
    print("--trace: where the main thread's time goes (ms; a traced run, so slower)")
    stream = d["stream"]
    print_breakdown("while streaming", stream, wall)
    frames = stream["frames"]
    frame_ms = sum(stream["table"]["frame"].values()) / 1000
    print(
        f"    {frames} frames, {frame_ms / max(frames, 1):.1f} ms each;"
        f" {r.batches} DOM update batches in the cell"
    )
    painted = sorted(stream["painted"].items(), key=lambda kv: -kv[1])[:4]
    print(
        "    paint by painted layer: "
        + "; ".join(f"{node} {us / 1000:.0f} ms" for node, us in painted)
    )
    if "profile" in d:
        sources, functions = d["profile"]
        print(
            f"    V8 CPU profile, self time by source (clock aligned: {d['profile_clock_ok']}): "
            + ", ".join(
                f"{k} {us / 1000:.0f} ms"
                for k, us in sorted(sources.items(), key=lambda kv: -kv[1])
                if k != "(idle)" and us >= 1000
            )
        )
        print("    hottest JS functions (self): ")
        for fn, us in functions[:8]:
            print(f"      {us / 1000:>6.0f} ms  {fn}")
    print_breakdown("the settle's task", d["settle"])
    if "profile_settle" in d:
        _, functions = d["profile_settle"]
        print(
            "    hottest there (self, with the style and layout it forces): "
            + "; ".join(f"{fn} {us / 1000:.0f} ms" for fn, us in functions[:6])
        )
    print_breakdown("the settle's frame", d["settle_frame"])
    print_breakdown("one render: its task (parse, style, layout forced)", d["base"])
    print_breakdown("the second after the settle's frame", d["after"])
    if "profile_after" in d:
        _, functions = d["profile_after"]
        print(
            "    hottest there: "
            + "; ".join(f"{fn} {us / 1000:.0f} ms" for fn, us in functions[:5])
        )


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
        help="a stylesheet added to every page (after chat.css): try a change without editing it",
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


def check(results: list[RunResult], follow: bool = False) -> int:
    """Print the figures against their targets; with ``follow``, the streaming ratio's is 5×
    (issue 25: the page draws every update a reader sees, where it started it draws few)."""
    report = Report()

    def runs(values: list[float], fmt: str) -> str:
        return "runs: " + ", ".join(fmt.format(v) for v in values)

    ratios = [r.stream_busy_s / r.base_metrics_s for r in results]
    report.figure(
        "main-thread time streaming / one render",
        median(ratios),
        "x",
        5.0 if follow else 3.0,
        f"{median([r.stream_busy_s for r in results]) * 1000:.0f} ms vs "
        f"{median([r.base_metrics_s for r in results]) * 1000:.0f} ms; " + runs(ratios, "{:.1f}x"),
    )
    busy = [r.stream_busy_s / r.stream_wall_s * 100 for r in results]
    info(
        "busy fraction while streaming",
        median(busy),
        "%",
        f"over {median([r.stream_wall_s for r in results]):.1f} s; " + runs(busy, "{:.0f} %"),
    )
    rest = [r.rest_s * r.stream_wall_s for r in results]
    info(
        "the page at rest, over as long",
        median(rest) * 1000,
        "ms",
        f"{median([r.rest_s for r in results]) * 1000:.1f} ms a second with nothing streaming "
        "(a focused cell's caret, JupyterLab's polls), counted in the figures above",
    )
    net = [(r.stream_busy_s - x) / r.base_metrics_s for r, x in zip(results, rest, strict=True)]
    info("streaming less the page at rest / one render", median(net), "x", runs(net, "{:.1f}x"))
    counts = [float(len(r.long_tasks)) for r in results]
    report.figure(
        "long tasks > 50 ms while streaming", median(counts), "", 0, runs(counts, "{:.0f}")
    )
    longest = [max(r.long_tasks, default=0.0) for r in results]
    report.figure(
        "longest task while streaming",
        median(longest),
        "ms",
        LONG_TASK_MS,
        runs(longest, "{:.0f} ms") + " (0: none over 50 ms)",
    )
    settle = [r.settle_s / r.base_trace_s for r in results]
    report.figure(
        "settle's re-render / one render",
        median(settle),
        "x",
        1.0,
        f"{median([r.settle_s for r in results]) * 1000:.0f} ms vs "
        f"{median([r.base_trace_s for r in results]) * 1000:.0f} ms; " + runs(settle, "{:.2f}x"),
    )
    jl = [r.settle_s / r.jlab_render_s for r in results]
    info(
        "settle's re-render / JupyterLab's render",
        median(jl),
        "x",
        f"{median([r.jlab_render_s for r in results]) * 1000:.0f} ms for JupyterLab to render the"
        " settled output once (set again in its model); " + runs(jl, "{:.2f}x"),
    )
    swap = [r.settle_s / r.jlab_swap_s for r in results]
    info(
        "settle's re-render / JupyterLab's swap",
        median(swap),
        "x",
        f"{median([r.jlab_swap_s for r in results]) * 1000:.0f} ms for JupyterLab to put the"
        " settled output in place of a plain-text one; " + runs(swap, "{:.2f}x"),
    )
    return report.summary()


if __name__ == "__main__":
    raise SystemExit(main())
