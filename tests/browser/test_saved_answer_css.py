"""A saved answer's own CSS (only the rules it uses, shortened) styles it exactly as the whole
stylesheet does: every element's computed style, and its ``::before`` / ``::after``, are the
same in Chromium with either, in JupyterLab's light and dark theme and in a page without
JupyterLab (nbconvert's export, GitHub), with its ``<details>`` closed and opened.

No Jupyter server: the answers are made in this process (the offline model) and each page is
the output element JupyterLab renders HTML into, with the answer in it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

import hermes_nb
from hermes_nb import view
from hermes_nb.view import render

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

RICH = (
    "# Title\n\nSome **bold**, `code` and a [link](https://example.org).\n\n"
    "> quoted\n\n- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
    "```python\nimport os\nprint('hi')  # say\n```\n\nLast line.\n"
)
QUESTION = {"name": "ask_user", "arguments": {"question": "Colour?", "choices": ["red"]}}

# Every element of the answer (and the output element around it): its computed style, and
# its ::before / ::after content.
_STYLES_JS = """
() => {
  const host = document.querySelector('.jp-OutputArea-output');
  const els = [host, ...host.querySelectorAll('*')].filter((el) => el.tagName !== 'STYLE');
  const all = (style) => Array.from(style).map((p) => p + ':' + style.getPropertyValue(p));
  return els.map((el) => [
    el.tagName + '.' + el.className,
    all(getComputedStyle(el)).join(';'),
    getComputedStyle(el, '::before').content + getComputedStyle(el, '::after').content,
  ]);
}
"""


def _answers() -> dict[str, str]:
    asked = hermes_nb.chat("q", profile="echo", delay=0, tools=["ask_user"], tool_calls=[QUESTION])
    while not asked.pending:
        time.sleep(0.005)
    asked.answer(asked.pending[0].id, "red")
    runs = {
        "plain": hermes_nb.chat("hi", profile="echo", delay=0),
        "rich": hermes_nb.chat(RICH, profile="echo", delay=0),
        "tool and reasoning": hermes_nb.chat(
            "look",
            profile="echo",
            delay=0,
            reasoning="I should **search**.",
            tool_calls=[{"name": "search", "arguments": {"q": "x"}, "result": "found"}],
        ),
        "error": hermes_nb.chat("x", profile="echo", delay=0, fail="auth"),
        "card": asked,
        "cut off": hermes_nb.chat(RICH, profile="echo", delay=0, max_tokens=5),
    }
    return {name: view.static_bundle(run.wait(30))[0]["text/html"] for name, run in runs.items()}


def _page_styles(page: Any, css: str, body: str, theme: str | None) -> list[Any]:
    attr = f' data-jp-theme-light="{theme}"' if theme else ""
    page.set_content(
        f"<!doctype html><html><body{attr}>"
        '<div class="jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML">'
        f"<style>{css}</style>{body}</div></body></html>"
    )
    closed = page.evaluate(_STYLES_JS)
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => (d.open = true))")
    return [closed, page.evaluate(_STYLES_JS)]


def test_a_saved_answer_looks_the_same_with_its_own_css_as_with_the_whole(browser) -> None:
    whole = (view._stylesheet.stylesheet() + render.highlight_css()).replace("</style", "")
    page = browser.new_page()
    try:
        for name, html in _answers().items():
            own = re.match(r"<style>(.*?)</style>", html, re.S)
            assert own is not None, name
            body = html[own.end() :]
            assert len(own.group(1)) < len(whole) / 3, name
            for theme in (None, "true", "false"):
                expected = _page_styles(page, whole, body, theme)
                shown = _page_styles(page, own.group(1), body, theme)
                for state, (want, got) in enumerate(zip(expected, shown, strict=True)):
                    assert len(want) == len(got) > 10, (name, theme)
                    for w, g in zip(want, got, strict=True):
                        differ = set(w[1].split(";")) ^ set(g[1].split(";"))
                        where = (name, theme, ["closed", "opened"][state], w[0])
                        assert not differ and w[2] == g[2], (where, sorted(differ)[:6])
    finally:
        page.close()
