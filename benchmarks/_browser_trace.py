"""Reading what Chromium recorded for ``bench_browser.py``: metrics, the trace, the profile.

``Trace`` cuts the renderer's main thread into tasks at the page's marks; ``breakdown`` sorts a
window's time by kind of task and kind of work; ``profile_self`` sums a V8 CPU profile's self
time by source. Nothing here drives the browser.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from _common import median

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
