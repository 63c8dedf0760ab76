"""The live status line keeps counting while a slow reply streams in frames that carry no meta.

A live frame's meta carries only what changed (VIEW_PROTOCOL 2): most frames of a reply at 10
tokens a second have none, and the token count comes every few seconds. The view merges what
comes and its clock ticks on between: the elapsed time never runs backwards nor restarts at
zero, the token count only grows, and the settled line says Done.
"""

from __future__ import annotations

import re
import time

import pytest
from chat_dom import ChatView

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

# ~7 s at 10 tokens a second (4 characters a token).
PROMPT = "%%hermes -o delay=0.1 -o chunk_size=4\n" + " ".join(f"w{i:03d}" for i in range(60))
_DETAIL = re.compile(r"·\s*(?:(\d+) min )?(\d+) s(?:\s*·\s*(\d+) tokens)?")


def test_the_clock_and_token_count_carry_on_between_slim_frames(open_notebook) -> None:
    nb = open_notebook(["%load_ext hermes_nb", PROMPT])
    nb.run(0)
    chat = ChatView(nb, 1)
    nb.run(1)
    chat.follow()  # its end in view: every update drawn
    chat.wait_live()
    detail = chat.root.locator(".hnb-status-detail")
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = chat.root.get_attribute("data-state")
        if state != "streaming":
            if seen:
                break
            time.sleep(0.1)
            continue
        match = _DETAIL.search(detail.inner_text())
        if match:
            minutes, seconds, tokens = match.groups()
            seen.append((int(minutes or 0) * 60 + int(seconds), int(tokens or 0)))
        time.sleep(0.25)
    final = chat.wait_settled()
    assert final["state"] == "done"
    assert len(seen) >= 12, seen
    elapsed = [s for s, _ in seen]
    counts = [t for _, t in seen]
    assert elapsed == sorted(elapsed), f"the clock ran backwards or restarted: {seen}"
    assert elapsed[-1] - elapsed[0] >= 3, seen  # it ticked
    assert counts == sorted(counts) and counts[-1] > counts[0] > 0, seen
