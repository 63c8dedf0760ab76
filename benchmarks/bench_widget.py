"""The widget pump and replay, against baselines measured in the same run.

Runs real echo turns in this process and records what the widget would send to the front end
through a patched comm (``comm.create_comm``, the seam the unit tests use); every message is
JSON-encoded as the kernel would, and its size counted.

Printed figures (targets in brackets):

* bytes sent for a ~50 KB Markdown reply streamed in 10,000 chunks of 5 characters, paced
  (the echo model's smallest non-zero delay sleeps ~1.2 ms a chunk, so ~13 s: the harder case,
  ~30 frames a second throughout), vs the size of its final HTML                    [≤ 3×]
* the most frames in any one second, streaming as fast as the echo model can, and at a
  fast but finite rate                                                              [≤ 30]
* one replay ``after=0`` of that 10,000-event run (answered from the block cache, JSON-encoded)
  vs one full ``markdown_to_html`` of its final text                                [≤ 0.2×]

Run: ``.venv/bin/python benchmarks/bench_widget.py``
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from _common import Report, median, use_tests_dir

use_tests_dir()

import comm  # noqa: E402
from bench_render import make_reply  # noqa: E402

import hermes_nb  # noqa: E402
from hermes_nb.view import display as view  # noqa: E402
from hermes_nb.view.render import markdown_to_html  # noqa: E402

CHUNK = 5
SIZE = 50_000


class MeasuringComm:
    """Counts what would cross the wire: JSON of every message, with its send time."""

    def __init__(self, **kwargs: Any) -> None:
        self.comm_id = kwargs.get("comm_id") or f"bench-{id(self):x}"
        self.sent: list[tuple[float, int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._callback: Any = None

    def send(self, data: Any = None, metadata: Any = None, buffers: Any = None) -> None:
        size = len(json.dumps(data, separators=(",", ":")).encode())
        with self._lock:
            self.sent.append((time.monotonic(), size, data))

    def on_msg(self, callback: Any) -> None:
        self._callback = callback

    def on_close(self, callback: Any) -> None:
        pass

    def close(self, *args: Any, **kwargs: Any) -> None:
        pass

    def frames(self) -> list[tuple[float, int, dict[str, Any]]]:
        return [
            (t, n, d["content"])
            for t, n, d in self.sent
            if d.get("method") == "custom" and d["content"].get("type") == "frame"
        ]


def run_live(**options: Any) -> view._Controller:
    run = hermes_nb.chat("x", profile="echo", chunk_size=CHUNK, usage=True, **options)
    controller = view._Controller(run)
    controller.start()
    run.wait(120)
    controller.join(120)
    return controller


def worst_second(times: list[float]) -> int:
    return max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)


def main() -> int:
    comm.create_comm = MeasuringComm  # the one seam: no kernel, every send measured
    report = Report()
    reply = make_reply(SIZE)
    reply = reply[: SIZE - SIZE % CHUNK] if len(reply) > SIZE else reply
    final_html = markdown_to_html(reply)
    chunks = -(-len(reply) // CHUNK)
    print(f"reply: {len(reply):,} chars in {chunks:,} chunks; final HTML {len(final_html):,} B")

    # 1. bytes on the wire for a stream of a few seconds
    controller = run_live(reply=reply, delay=0.0002)
    c = controller.widget.comm
    assert isinstance(c, MeasuringComm)
    assert controller.run.text == reply
    frames = c.frames()
    sent = sum(n for _, n, _ in c.sent)
    span = frames[-1][0] - frames[0][0]
    print(f"stream: {span:.1f} s, {len(frames)} frames, {controller.run.last_event_id:,} events")
    report.figure(
        "bytes sent / final HTML",
        sent / len(final_html),
        "x",
        3.0,
        f"{sent:,} B vs {len(final_html):,} B",
    )
    report.figure("peak frames/s, paced stream", worst_second([t for t, *_ in frames]), "", 30)

    # 2. frame rate at any token rate
    for label, delay in (("unpaced", 0.0), ("0.05 ms/chunk", 0.00005)):
        fast = run_live(reply=reply, delay=delay)
        fc = fast.widget.comm
        assert isinstance(fc, MeasuringComm)
        times = [t for t, *_ in fc.frames()]
        report.figure(
            f"peak frames/s, {label}",
            worst_second(times),
            "",
            30,
            f"{len(times)} frames over {times[-1] - times[0]:.2f} s",
        )

    # 3. replay of the 10,000-event run from the cache vs one full render
    def full_render() -> float:
        start = time.perf_counter()
        markdown_to_html(reply)
        return time.perf_counter() - start

    def replay() -> float:
        start = time.perf_counter()
        json.dumps(controller.replay(0, "bench"), separators=(",", ":"))
        return time.perf_counter() - start

    render_s = median([full_render() for _ in range(5)])
    replay_s = median([replay() for _ in range(21)])
    report.ratio("replay after=0 / one full render", replay_s, render_s, 0.2)
    return report.summary()


if __name__ == "__main__":
    raise SystemExit(main())
