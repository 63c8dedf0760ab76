"""What a notebook of short questions costs: on the wire while it runs, and on disk once saved.

Printed figures (targets from the issue "the view's code travels once", in brackets):

* iopub bytes per short interactive run after the first, as a JupyterLab page receives them:
  JupyterLab in Chromium runs ``%hermes -o delay=0 …`` cells one by one and counts its kernel
  websocket's iopub frames from each Shift+Enter to 1.5 s after the cell finished (the settle,
  and whatever the view asks and gets). Printed beside it, the kernel's side through
  jupyter_client (the JSON of every iopub message the run caused), with a view that never asks
  (JupyterLab's view of a short reply is made after the settle's update replaced its output,
  and is never attached: ``labextension/src/view/render.ts``) and with one that asks for its
  replay at once (a run still live when its view renders). Without Chromium or Playwright the
  kernel's side is the figure                                                       [≤ 8 KB]
* the widget state an interactive save keeps per run: what JupyterLab's "save widget state"
  writes for each model a run opened (its ``comm_open`` state: the ChatWidget's alone, a run
  opens no Layout widget)                                                            [≤ 2 KB]
* bytes per live frame while a reply streams at 10 tokens a second (4-character tokens), against
  the reply text each frame brought (the baseline, same run): what a frame carries beyond its
  envelope — the iopub message with its blocks' HTML emptied and no ``meta``: Jupyter's header,
  the comm wrapper and the frame's fixed fields (type, seq, prev, status, rid, block id, kind,
  offset) — over that new text                                                        [≤ 2×]
* a notebook of 10 short ``%hermes`` cells executed by ``jupyter nbconvert --execute``: its size
  against its outputs (the saved answers) + 5 KB                                   [≤ 1.5×]
* the widget state that notebook carries, per cell (a headless run makes no widget) [≤ 2 KB]
* for information: the CSS a short saved answer carries, against the whole stylesheet
  (``chat.css`` and ``cards.css``, shortened) it is taken from, measured in this process.

Run: ``.venv/bin/python benchmarks/bench_notebook.py``
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, median, use_tests_dir

ROOT = use_tests_dir()

from kernel_harness import KernelHarness  # noqa: E402  (tests/ is on the path now)

RUNS = 8
CELLS = 10
TOKENS_PER_S = 10
SLOW_REPLY = (
    "Streaming replies arrive a few characters at a time, and each frame carries what came. " * 2
    + "\n\nA second paragraph follows, with `inline code` and **bold** words in it.\n\n"
    + "- a list item that grows\n- and another one\n"
)


def _size(msg: Any) -> int:
    return len(json.dumps(msg, default=str))


def _widget_state(opened: list[dict[str, Any]]) -> int:
    """The bytes JupyterLab's saved widget state gives these ``comm_open`` messages' models."""
    saved = {}
    for msg in opened:
        state = msg["content"]["data"].get("state", {})
        saved[msg["content"]["comm_id"]] = {
            "model_name": state.get("_model_name"),
            "model_module": state.get("_model_module"),
            "model_module_version": state.get("_model_module_version"),
            "state": state,
        }
    return len(json.dumps(saved))


def _short_runs(
    kernel: KernelHarness, *, ask: bool = False
) -> tuple[list[int], list[int], int, int]:
    """Bytes on iopub, and widget state, for each of :data:`RUNS` short interactive runs (the
    first left out: it also loads what every later one shares), and how many runs were not
    measured because they had settled before ``%hermes`` showed them.

    A ``delay=0`` reply can settle on the runtime's thread before the cell displays it; it is
    then shown as its static answer, with no live view — not what this measures (it happened
    in about one benchmark in three). Such a run is left out and asked again, at most
    :data:`RUNS` times in all."""
    sizes, states, esm, early = [], [], 0, 0
    i = 0
    while i <= RUNS:
        start = kernel.mark()
        shown = kernel.execute(f"%hermes -o delay=0 short question {i}?")
        views = list(kernel.widget_views(shown, ask=ask))
        if not views:
            early += 1
            if early > RUNS:
                raise RuntimeError(f"{early} runs settled before they were shown: no live view")
            time.sleep(0.5)  # its messages, before the next run's mark
            continue
        ((display_id, _),) = views
        kernel.wait_iopub(
            lambda m, did=display_id: (
                m["msg_type"] == "update_display_data"
                and m["content"]["transient"].get("display_id") == did
            ),
            timeout=30,
            start=start,
        )  # the settle: the static answer replaces the view
        time.sleep(0.5)  # the view's last messages
        sent = kernel.iopub_since(start)
        if i:
            sizes.append(sum(_size(m) for m in sent))
            opened = [m for m in sent if m["msg_type"] == "comm_open"]
            states.append(_widget_state(opened))
            esm = sum(len(json.dumps(m["content"]["data"]["state"].get("_esm"))) for m in opened)
        i += 1
    return sizes, states, esm, early


def _jupyterlab_runs(home: Path) -> list[int] | str:
    """Bytes a JupyterLab page receives on iopub for each of :data:`RUNS` short runs after the
    first (its kernel websocket's frames on the iopub channel, from the cell's Shift+Enter
    until 1.5 s after it finished: the settle and whatever the view sends and gets back), or
    the sentence saying why it was not measured (no Chromium, no Playwright)."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "Playwright is not installed (pip install -e '.[browser]')"
    if not chromium.exists():
        return f"no Chromium at {chromium}"
    sys.path.insert(0, str(ROOT / "tests" / "browser"))
    from jupyter_harness import CHROMIUM_ARGS, INIT_SCRIPT, JupyterServer, NotebookPage

    received: list[int] = []

    def on_socket(ws: Any) -> None:
        def on_frame(payload: Any) -> None:
            raw = payload if isinstance(payload, bytes) else payload.encode()
            # The binary kernel protocol names the channel after its offsets; the JSON one
            # has it as a key.
            head = raw[:120]
            if b"iopub" in head or b'"channel": "iopub"' in raw or b'"channel":"iopub"' in raw:
                received.append(len(raw))

        ws.on("framereceived", on_frame)

    sources = ["%load_ext hermes_nb"] + [
        f"%hermes -o delay=0 short question {i}?" for i in range(RUNS + 1)
    ]
    sizes = []
    with JupyterServer(home, ui="lab").running() as server:
        server.notebook("short.ipynb", sources)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1280, "height": 1000})
                context.add_init_script(INIT_SCRIPT)
                page = context.new_page()
                page.on("websocket", on_socket)
                nb = NotebookPage(page, server, "short.ipynb").open()
                nb.run(0)
                for i in range(1, len(sources)):
                    mark = len(received)
                    nb.run(i)
                    time.sleep(1.5)
                    if i > 1:
                        sizes.append(sum(received[mark:]))
            finally:
                browser.close()
    return sizes


def _slow_frames(kernel: KernelHarness) -> tuple[list[int], int, int]:
    """Each live frame's iopub bytes while a reply streams at :data:`TOKENS_PER_S`, what they
    carry beyond their envelope in all, and the reply text they brought in all."""
    delay = 1 / TOKENS_PER_S
    shown = kernel.execute(
        f"import json as _json, hermes_nb as _hnb\n"
        f"_slow = _hnb.chat('slow', profile='echo', reply={SLOW_REPLY!r}, chunk_size=4,"
        f" delay={delay})\n_slow"
    )
    ((_, view),) = list(kernel.widget_views(shown))
    view.wait_frame(lambda f: f["status"] in {"done", "error", "stopped"}, timeout=120)
    tokens = json.loads(
        kernel.execute(
            "print(_json.dumps({e.seq: len(e.data['text'].encode()) for e in _slow.events()"
            " if e.event == 'token'}))"
        ).stdout()
    )
    text_at = {int(k): v for k, v in tokens.items()}
    sizes, payload, text = [], 0, 0
    for msg in kernel.iopub:
        content = msg["content"]
        data = content.get("data", {}) if msg["msg_type"] == "comm_msg" else {}
        frame = data.get("content") if content.get("comm_id") == view.comm_id else None
        if not frame or frame.get("type") != "frame" or frame.get("rid") is not None:
            continue
        new = sum(n for seq, n in text_at.items() if frame["prev"] < seq <= frame["seq"])
        if not new or frame["status"] != "streaming" or not frame["prev"]:
            continue  # the first frame (the prompt, the head) and the settle: not slow tokens
        bare = copy.deepcopy(msg)
        shell = bare["content"]["data"]["content"]
        shell.pop("meta", None)
        for block in shell["blocks"]:
            block["html"] = ""
        sizes.append(_size(msg))
        payload += _size(msg) - _size(bare)
        text += new
    return sizes, payload, text


def _answer_css() -> tuple[int, int]:
    """The CSS of a short saved answer, and the whole stylesheet shortened (its baseline)."""
    import re

    import hermes_nb
    from hermes_nb.view import _stylesheet, static_bundle
    from hermes_nb.view._css_subset import shortened

    html = static_bundle(hermes_nb.chat("hi", profile="echo", delay=0).wait(30))[0]["text/html"]
    own = re.search(r"<style>(.*?)</style>", html, re.S)
    return len(own.group(1)) if own else 0, len(shortened(_stylesheet.stylesheet()))


def _executed_notebook(folder: Path, home: Path) -> tuple[int, int, int]:
    """Saved size, outputs' size and widget state's size of :data:`CELLS` short cells run by
    nbconvert."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext hermes_nb")] + [
        nbformat.v4.new_code_cell(f"%hermes -o delay=0 short question number {i}?")
        for i in range(CELLS)
    ]
    source = folder / "ten.ipynb"
    nbformat.write(nb, source)
    env = {**os.environ, "HERMES_NB_HOME": str(home), "PYTHONPATH": str(ROOT)}
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
         "--output", "saved.ipynb", str(source)],
        env=env, cwd=folder, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    saved = folder / "saved.ipynb"
    data = json.loads(saved.read_text(encoding="utf-8"))
    outputs = sum(len(json.dumps(c.get("outputs", []))) for c in data["cells"])
    widgets = (
        len(json.dumps(data["metadata"].get("widgets", {}))) if "widgets" in data["metadata"] else 0
    )
    return saved.stat().st_size, outputs, widgets


def main() -> int:
    report = Report()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "home").mkdir()
        with KernelHarness(root / "home") as kernel:
            kernel.execute("%load_ext hermes_nb")
            sizes, states, esm, early = _short_runs(kernel)
            asking, _, _, _ = _short_runs(kernel, ask=True)
            frames, payload, text = _slow_frames(kernel)
        (root / "lab").mkdir()
        lab = _jupyterlab_runs(root / "lab")
        kernel_side = (
            f"kernel side (jupyter_client): {median(sizes) / 1024:.1f} KB, runs"
            f" {', '.join(f'{s / 1024:.1f}' for s in sizes)} KB"
            + (f" ({early} settled before shown: asked again)" if early else "")
            + f"; {median(asking) / 1024:.1f} KB with a view that asks for its replay at once"
        )
        if isinstance(lab, str):
            report.figure(
                "iopub bytes per short run (median)", median(sizes) / 1024, "KB", 8,
                f"{kernel_side}; not measured in JupyterLab: {lab}",
            )  # fmt: skip
        else:
            report.figure(
                "iopub bytes per short run in JupyterLab (median)", median(lab) / 1024, "KB", 8,
                f"runs 2-{RUNS + 1}: {', '.join(f'{s / 1024:.1f}' for s in lab)} KB; {kernel_side}",
            )  # fmt: skip
        report.figure(
            "widget state an interactive save keeps per run", median(states) / 1024, "KB", 2,
            f"the models' comm_open state; {esm / 1024:.1f} KB of it the widget's module (_esm)",
        )  # fmt: skip
        report.figure(
            f"frame bytes beyond envelope / new text ({TOKENS_PER_S} tok/s)",
            payload / max(text, 1), "x", 2,
            f"{len(frames)} frames, {median(frames) if frames else 0:.0f} B each as sent (median),"
            f" {payload / max(len(frames), 1):.0f} B beyond the envelope for"
            f" {text / max(len(frames), 1):.1f} B of new text",
        )  # fmt: skip
        size, outputs, widgets = _executed_notebook(root, root / "home")
        report.figure(
            f"{CELLS}-cell notebook by nbconvert vs outputs+5KB", size / (outputs + 5120), "x", 1.5,
            f"{size / 1024:.1f} KB saved, {outputs / 1024:.1f} KB of outputs",
        )  # fmt: skip
        report.figure(
            "widget state per cell", widgets / CELLS / 1024, "KB", 2,
            f"{widgets / 1024:.1f} KB in all",
        )  # fmt: skip
        os.environ["HERMES_NB_HOME"] = str(root / "home")
        css, whole = _answer_css()
        print(
            f"(information) a short saved answer's CSS: {css} B, of the {whole} B stylesheet"
            f" (chat.css and cards.css, shortened); the aim is < 1 KB",
            flush=True,
        )
    return report.summary()


if __name__ == "__main__":
    sys.exit(main())
