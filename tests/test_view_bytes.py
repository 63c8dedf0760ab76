"""Slow tokens cost little: a live frame's bytes are mostly the text it brings.

A real kernel (jupyter_client) streams replies at a few tokens a second, 4 characters a token;
the test reads the frames on iopub as a front end does and measures each against its envelope:
the same message with its blocks' HTML emptied and no ``meta`` (Jupyter's header, the comm
wrapper and the frame's fixed fields). What is left (HTML and meta) must stay within about
twice the reply text the frame brought — it was ~25x when every frame carried a whole meta
(bot name, model, clock) and one token. The view must still end with exactly the reply.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kernel_harness import KernelHarness, ViewState

pytestmark = pytest.mark.timeout(180)

REPLY = (
    "Streaming replies arrive a few characters at a time, and each frame carries what came. " * 2
    + "\n\nA second paragraph follows, with `inline code` and **bold** words in it.\n\n"
    + "- a list item that grows\n- and another one\n"
)
SETUP = """
import json, hermes_nb
from hermes_nb.view import show

def token_bytes(run):
    run.wait(60)
    print(json.dumps({e.seq: len(e.data["text"].encode()) for e in run.events()
                      if e.event == "token"}))
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelHarness]:
    with KernelHarness(tmp_path_factory.mktemp("bytes-home")) as k:
        k.execute(SETUP)
        yield k


def _size(msg: Any) -> int:
    return len(json.dumps(msg, default=str))


def _stream(kernel: KernelHarness, name: str, delay: float) -> tuple[Any, list[dict[str, Any]]]:
    """Start an echo run streaming :data:`REPLY` in 4-character tokens ``delay`` apart, show
    it; its widget and the iopub messages of the frames its view took, once it settled."""
    shown = kernel.execute(
        f"{name} = hermes_nb.chat('x', profile='echo', reply={REPLY!r}, chunk_size=4,"
        f" delay={delay})\nshow({name})"
    )
    ((_, w),) = list(kernel.widget_views(shown))
    w.wait_frame(lambda f: f["rid"] is None and f["status"] == "done", timeout=120)
    messages = [
        m
        for m in kernel.iopub
        if m["msg_type"] == "comm_msg"
        and m["content"]["comm_id"] == w.comm_id
        and m["content"]["data"].get("content", {}).get("type") == "frame"
        and m["content"]["data"]["content"]["rid"] in (None, w.asked)
    ]  # what the view takes: the answer to the replay it asked as it rendered, the live frames
    return w, messages


def _beyond_envelope(msg: dict[str, Any]) -> int:
    bare = copy.deepcopy(msg)
    frame = bare["content"]["data"]["content"]
    frame.pop("meta", None)
    for block in frame["blocks"]:
        block["html"] = ""
    return _size(msg) - _size(bare)


@pytest.mark.parametrize("rate", [10, 30])
def test_a_slow_streams_frames_are_mostly_its_new_text(kernel: KernelHarness, rate: int) -> None:
    name = f"slow{rate}"
    started = time.monotonic()
    _, messages = _stream(kernel, name, 1 / rate)
    took = time.monotonic() - started
    text_at = {
        int(k): v for k, v in json.loads(kernel.execute(f"token_bytes({name})").stdout()).items()
    }
    payload = text = 0
    streaming = 0
    for msg in messages:
        frame = msg["content"]["data"]["content"]
        new = sum(n for seq, n in text_at.items() if frame["prev"] < seq <= frame["seq"])
        if frame["status"] != "streaming" or not new or not frame["prev"]:
            continue  # the first frame (the prompt, the head) and the settle: not slow tokens
        streaming += 1
        payload += _beyond_envelope(msg)
        text += new
        # Neither the bot's name nor the model (synced traits) ride in a live frame.
        assert not {"bot_name", "model"} & set(frame.get("meta", {})), frame
    assert text >= 0.8 * sum(text_at.values())  # most of the reply came while streaming
    assert payload <= 2.2 * text, (payload, text)  # was ~25x: a whole meta and one token each
    # A few words a frame, not a letter: at 10 tokens a second well under the 10 frames a
    # second a fast stream gets; at 30, never more than that.
    assert streaming <= took * (4 if rate <= 10 else 10), (streaming, took)
    # Most frames carry no meta at all; the token count goes now and then, and at the end.
    frames = [m["content"]["data"]["content"] for m in messages]
    assert sum("meta" not in f for f in frames) >= len(frames) / 2
    assert frames[-1]["meta"]["tokens"] == len(text_at) and frames[-1]["meta"]["live"] is False


def test_a_view_applying_the_slim_frames_ends_with_the_reply_and_a_replay_is_whole(
    kernel: KernelHarness,
) -> None:
    w, messages = _stream(kernel, "whole", 0.05)
    view = ViewState()
    meta: dict[str, Any] = {}
    for msg in messages:
        frame = msg["content"]["data"]["content"]
        assert view.apply(frame) == "applied", frame  # one chain: prev is the last frame sent
        meta.update(frame.get("meta", {}))  # what the view keeps (status.ts merges)
    replay = w.replay(0)
    assert replay["seq"] == view.cursor and view.gaps == 0
    assert {k: b["html"] for k, b in view.visible().items()} == {
        b["id"]: b["html"] for b in replay["blocks"]
    }
    assert set(replay["meta"]) == {"elapsed", "tokens", "live", "clock"}
    assert meta["tokens"] == replay["meta"]["tokens"] and meta["live"] is False
    assert messages[0]["content"]["data"]["content"]["meta"].keys() >= {"elapsed", "clock"}


def test_a_fast_stream_is_not_held_back(kernel: KernelHarness) -> None:
    started = time.monotonic()
    _, messages = _stream(kernel, "fast", 0.002)  # ~500 tokens a second: frames at MAX_FPS
    took = time.monotonic() - started
    streaming = [m for m in messages if m["content"]["data"]["content"]["status"] == "streaming"]
    # The reply takes ~0.1 s of tokens; frames are not stretched to the slow stream's pace.
    assert took < 5 and len(streaming) >= 1
    assert len(messages) <= took * 12 + 2
