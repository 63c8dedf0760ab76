"""What a long-lived kernel keeps per settled ``%%hermes`` turn, measured from its RSS.

Run it as ``.venv/bin/python benchmarks/bench_memory.py`` (a few minutes; ``--turns N`` for
fewer). A real ipykernel is driven through ``jupyter_client`` as JupyterLab drives it
(``tests/kernel_harness.py``): each turn is a ``%%hermes`` cell on the offline echo model
(``-o delay=0``, a Markdown prompt echoed ``-o repeat=`` times: ~4,000 token events, ~16 KB of
reply), sent as an interactive front end sends it (``allow_stdin: true``); the front end opens
the chat view's model (``comm_open``), asks for its replay as a rendered view does, and waits
for the settle's ``update_display_data``.

After a warm-up longer than the runtime's window of settled runs (``KEEP_SETTLED``: the kernel
keeps the newest ones for ``%hermes runs``; older ones live on in the session store) the
kernel's resident set (``VmRSS`` in ``/proc/<pid>/status``, after a ``gc.collect()``) is read
before and after ``--turns`` turns (default 200), in two fresh kernels:

a. **view**: each turn a ``%%hermes --new`` cell (a session per turn, so every turn is the
   same size and no compression runs), shown live; the front end renders the view (replay),
   applies the settle's ``update_display_data`` and, as the view does when the static bundle
   replaces it (``labextension/src/view/render.ts``), says its view was removed.
b. **reference**: the same cells in a kernel whose ``%%hermes`` shows no live view (it waits
   for the run and displays the static answer, as a headless run does): what the run, the
   magic and the store keep of a turn.

Printed: the reply's size, each kernel's growth per turn (also after ``malloc_trim(0)``, which
leaves what the heap holds without what malloc keeps free for later; and what ``gc`` tracks and
the widgets ipywidgets still holds). Targets (issue 14): a long-lived kernel grows by no more
than the settled text of a turn (its prompt and reply, UTF-8) per turn, with a view or without;
the view's own share (view minus reference) at most half a reply; no widget held.

Exit status 0 when the target is met.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, use_tests_dir  # benchmarks/ is sys.path[0]

use_tests_dir()

from kernel_harness import ExecResult, KernelHarness  # noqa: E402

from hermes_nb.engine.runtime import KEEP_SETTLED  # noqa: E402
from hermes_nb.providers.echo import echo_reply  # noqa: E402
from hermes_nb.view.display import MAX_SETTLED  # noqa: E402

TURNS = 200
# Past the windows of settled runs a kernel holds: the runtime's and the view's (for a reload).
WARMUP = max(KEEP_SETTLED, MAX_SETTLED) + 10
# Before each reading: background work after a reply (titles) ends, and ipykernel closes the
# iopub pipes of threads that have ended (every 10 s; each pump thread that sent frames has one).
SETTLE = 11.0
CHUNK = 4  # the echo model's default: one token event per 4 characters
TOKENS = 4000

# A Markdown prompt with what replies hold: paragraphs, a list, inline code, a code block.
PROMPT = """\
Merging is slow when the **diffs are large** and the history is long; `git merge` walks
both sides to their merge base and then compares every changed file, line by line.

- big binary files make every comparison expensive
- renames are detected by similarity, which costs time on wide trees

```python
def merge_base(a, b):
    seen = set(walk(a))
    return next(c for c in walk(b) if c in seen)
```

A shallow clone, `git gc` and a rename limit (`merge.renameLimit`) all help."""

REPEAT = max(1, round(TOKENS * CHUNK / (len(PROMPT) + 2)))
REPLY = echo_reply(PROMPT, REPEAT)

STATS = """
import ctypes, gc, os, sys
from ipywidgets.widgets.widget import _instances
def _rss():
    with open(f"/proc/{os.getpid()}/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
gc.collect()
_raw = _rss()
try:  # what the heap holds, without what malloc keeps free for later (glibc only)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
except OSError:
    pass
print(_raw, _rss(), len(gc.get_objects()), len(_instances), sys.getallocatedblocks())
"""


def execute(k: KernelHarness, code: str, timeout: float = 60.0) -> ExecResult:
    """Run a cell as JupyterLab does (``allow_stdin: true``: a person is at the notebook)."""
    msg = k.kc.session.msg(
        "execute_request",
        {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": True,
            "stop_on_error": True,
        },
    )
    k._send_shell(msg)
    result = k.result(msg["header"]["msg_id"], timeout)
    if not result.ok:
        raise AssertionError(f"cell failed:\n{code}\n{result.error()}")
    return result


def stats(k: KernelHarness) -> tuple[int, ...]:
    """RSS, RSS after ``malloc_trim``, gc-tracked objects, widgets held, allocated blocks."""
    return tuple(int(v) for v in execute(k, STATS).stdout().split())


# A one-time cost paid at an unforeseeable turn, paid before the first reading instead: the first
# unknown fence language (a streamed "```pyt" before its newline) makes Pygments scan its plugin
# lexers, which imports a few hundred lexer classes.
ONCE = """
import contextlib, pygments.lexers, pygments.util
with contextlib.suppress(pygments.util.ClassNotFound):
    pygments.lexers.get_lexer_by_name("no-such-language")
"""

# The reference kernel's %%hermes shows no live view: it waits for the run and displays the
# static answer, as a headless run does.
NO_VIEW = """
import hermes_nb.view as _view
from IPython.display import display as _display

def _static_only(run, include_plain=True):
    run.wait(60)
    data, metadata = _view.static_bundle(run)
    _display(data, metadata=metadata, raw=True)

_view.show = _static_only
"""


def turn(k: KernelHarness, view: bool) -> bool:
    """One turn; False when the run had settled before the cell showed it (then the static
    answer is shown at once, no view: the echo model at ``delay=0`` is that fast now and then)."""
    mark = k.mark()
    result = execute(k, f"%%hermes --new -o delay=0 -o repeat={REPEAT}\n{PROMPT}")
    views = list(k.widget_views(result))
    if not view:
        assert not views and len(result.displays()) == 1
        return True
    if not views:
        [shown] = result.displays()
        assert "text/html" in shown["content"]["data"], shown["content"]["data"].keys()
        return False
    [(display_id, w)] = views
    w.replay(0)  # the view renders and asks for everything so far
    k.wait_iopub(
        lambda m: (
            m["msg_type"] == "update_display_data"
            and m["content"].get("transient", {}).get("display_id") == display_id
        ),
        timeout=60,
        start=mark,
    )
    # The page replaced the view with the static bundle; the view, removed, says so.
    w.send({"type": "removed"})
    return True


def measure(view: bool, turns: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="hermes-nb-bench-") as home,
        KernelHarness(Path(home)) as k,
    ):
        execute(k, "%load_ext hermes_nb")
        execute(k, ONCE)
        if not view:
            execute(k, NO_VIEW)
        for _ in range(WARMUP):
            turn(k, view)
        time.sleep(SETTLE)
        before = stats(k)
        t0 = time.monotonic()
        live = sum(turn(k, view) for _ in range(turns))
        took = time.monotonic() - t0
        time.sleep(SETTLE)
        after = stats(k)
        return {
            "before": before,
            "after": after,
            "took": took,
            "live": live,
            "ipykernel": k.ipykernel_version,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=TURNS)
    args = parser.parse_args()
    turns = args.turns
    reply_bytes = len(REPLY.encode())
    tokens = len(REPLY) // CHUNK
    print(
        f"{turns} turns of %%hermes on the echo model: reply {reply_bytes / 1024:.1f} KB "
        f"({tokens} token events, prompt {len(PROMPT)} chars × {REPEAT})"
    )
    results = {}
    for name, view in (("view", True), ("reference", False)):
        r = results[name] = measure(view, turns)
        (rss0, trim0, obj0, w0, blk0), (rss1, trim1, obj1, w1, blk1) = r["before"], r["after"]
        print(
            f"{name:<9} RSS {rss0 / 2**20:6.1f} -> {rss1 / 2**20:6.1f} MB: "
            f"{(rss1 - rss0) / turns / 1024:6.1f} KB/turn "
            f"(after malloc_trim {(trim1 - trim0) / turns / 1024:6.1f} KB/turn); "
            f"gc objects {(obj1 - obj0) / turns:+6.1f}/turn; "
            f"allocated blocks {(blk1 - blk0) / turns:+6.1f}/turn; "
            f"widgets held {w0} -> {w1}; {r['took'] / turns * 1000:.0f} ms/turn",
            flush=True,
        )
        if view and r["live"] < turns:
            print(f"          ({turns - r['live']} runs settled before the cell showed them)")
    print(f"(ipykernel {results['view']['ipykernel']})")

    def grew(name: str, field: int = 0) -> float:
        r = results[name]
        return (r["after"][field] - r["before"][field]) / turns

    text_bytes = reply_bytes + len(PROMPT.encode())
    report = Report()
    for label, field in (("", 0), (" (after malloc_trim)", 1)):
        for name in ("view", "reference"):
            growth = grew(name, field)
            report.figure(
                f"{name}: RSS growth per settled turn{label}",
                growth / 1024,
                "KB",
                text_bytes / 1024,
                f"{growth / text_bytes:.2f}x the turn's text ({text_bytes / 1024:.1f} KB)",
            )
        added = grew("view", field) - grew("reference", field)
        report.figure(
            f"the view's share per turn{label}",
            added / 1024,
            "KB",
            0.5 * reply_bytes / 1024,
            f"{added / reply_bytes:.2f}x the reply",
        )
    report.figure("view: widgets ipywidgets still holds per turn", grew("view", 3), "", 0)
    return report.summary()


if __name__ == "__main__":
    assert re.search(r"\{\w+\}", PROMPT) is None  # nothing for %%hermes to interpolate
    raise SystemExit(main())
