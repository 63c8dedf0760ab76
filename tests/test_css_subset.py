"""A saved answer carries only the CSS its HTML can use, shortened (view/_css_subset.py).

The rules: a selector is kept iff it matches an element of the answer in some page the answer
is shown in; what only a person makes true (hover, focus, an opened ``<details>``) and
pseudo-elements count as matching their element; @media keeps what it wraps; custom properties
and @keyframes only when read; strings and escapes survive shortening.
"""

from __future__ import annotations

import re
import time

import pytest

import hermes_nb
from hermes_nb import view
from hermes_nb.view import _static, _stylesheet, render
from hermes_nb.view._css_subset import css_subset

ANSWER = (
    '<div class="hnb-chat hnb-static" data-state="done">'
    '<div class="hnb-reply"><p>Hi <a href="https://x.org">there</a></p>'
    '<details class="hnb-tool"><summary>t</summary><pre>x</pre></details></div>'
    '<div class="hnb-footer"></div></div>'
)


def _style(html: str) -> str:
    return re.search(r"<style>(.*?)</style>", html, re.S).group(1)  # type: ignore[union-attr]


def test_only_selectors_that_match_an_element_are_kept() -> None:
    css = """
    /* a comment */
    .hnb-reply p, .hnb-nowhere { margin : 0 ; }
    .hnb-chat:not(.hnb-static) .hnb-reply { contain: content }
    .hnb-chat[data-state="error"] .hnb-footer { color: red }
    .hnb-chat[data-state="done"] .hnb-footer { color: green }
    .hnb-reply > p + details { margin-top: 4px }
    .hnb-reply:empty, .hnb-footer:empty { display: none }
    table td { padding: 2px }
    """
    assert css_subset(css, ANSWER) == (
        ".hnb-reply p{margin:0}"
        '.hnb-chat[data-state="done"] .hnb-footer{color:green}'
        ".hnb-reply>p+details{margin-top:4px}"
        ".hnb-footer:empty{display:none}"
    )


def test_states_a_person_brings_and_pseudo_elements_count_as_their_element() -> None:
    css = """
    .hnb-tool summary:hover { color: blue }
    .hnb-chat summary:focus-visible { outline: 2px solid }
    .hnb-tool[open] > summary::before { content: "▾ open:  now" }
    .hnb-tool a:hover { color: red }
    .hnb-chat button:focus-visible { outline: 1px solid }
    """
    assert css_subset(css, ANSWER) == (
        ".hnb-tool summary:hover{color:blue}"
        ".hnb-chat summary:focus-visible{outline:2px solid}"
        '.hnb-tool[open]>summary::before{content:"▾ open:  now"}'
    )


def test_the_page_around_the_answer_and_its_themes_are_matched_too() -> None:
    css = """
    .jp-RenderedHTMLCommon:has(> .hnb-chat.hnb-static) { padding-right: 0 }
    body:not([data-jp-theme-light="false"]) .hnb-chat pre { color: black }
    body[data-jp-theme-light="false"] .hnb-chat pre { color: white }
    body[data-jp-theme-light="false"] .hnb-chat table { color: white }
    .jp-Notebook .hnb-chat { color: gray }
    """
    assert css_subset(css, ANSWER) == (
        ".jp-RenderedHTMLCommon:has(>.hnb-chat.hnb-static){padding-right:0}"
        'body:not([data-jp-theme-light="false"]) .hnb-chat pre{color:black}'
        'body[data-jp-theme-light="false"] .hnb-chat pre{color:white}'
    )


def test_at_rules_keep_what_they_wrap_and_what_is_read() -> None:
    css = """
    @media (prefers-color-scheme: dark) { .hnb-reply p { color: white } .nowhere { x: y } }
    @media print { .nowhere { x: y } }
    @supports (display: grid) { .hnb-footer { display: grid } }
    @keyframes hnb-spin { from { rotate: 0deg } to { rotate: 360deg } }
    @keyframes hnb-unused { from { opacity: 0 } }
    .hnb-footer { animation: hnb-spin 1s linear infinite }
    @font-face { font-family: "Hnb Sans"; src: url(hnb.woff2) format("woff2") }
    """
    assert css_subset(css, ANSWER) == (
        "@media (prefers-color-scheme: dark){.hnb-reply p{color:white}}"
        "@supports (display: grid){.hnb-footer{display:grid}}"
        "@keyframes hnb-spin{from{rotate:0deg}to{rotate:360deg}}"
        ".hnb-footer{animation:hnb-spin 1s linear infinite}"
        '@font-face{font-family:"Hnb Sans";src:url(hnb.woff2) format("woff2")}'  # kept: cannot tell
    )


def test_custom_properties_are_kept_only_when_read() -> None:
    css = """
    .hnb-chat { --hnb-gap: 6px; --hnb-unused: 1px; --hnb-c: var(--hnb-base); --hnb-base: #123 }
    .nowhere { --hnb-other: 2px }
    .hnb-reply { gap: var(--hnb-gap, 4px); color: var( --hnb-c ) }
    """
    assert css_subset(css, ANSWER) == (
        ".hnb-chat{--hnb-gap:6px;--hnb-c:var(--hnb-base);--hnb-base:#123}"
        ".hnb-reply{gap:var(--hnb-gap,4px);color:var(--hnb-c)}"
    )


def test_shortening_keeps_meaning() -> None:
    css = """
    .hnb-reply   a ,  .hnb-reply  :first-child { color : rgba( 0 , 0 , 0 , 0.87 ) !important ;
      font-family: "A  B", sans-serif; margin: 0 auto }
    .hnb-reply p { margin: 0 }
    .hnb-footer { margin: 0 }
    """
    assert css_subset(css, ANSWER) == (
        ".hnb-reply a,.hnb-reply :first-child"
        '{color:rgba(0,0,0,0.87)!important;font-family:"A  B",sans-serif;margin:0 auto}'
        ".hnb-reply p,.hnb-footer{margin:0}"  # adjacent, same declarations: one rule
    )


def test_a_selector_the_matcher_cannot_read_is_kept() -> None:
    css = ".hnb-reply:-moz-any(p) { color: red } .hnb-reply::-webkit-scrollbar { width: 4px }"
    assert css_subset(css, ANSWER) == (
        ".hnb-reply:-moz-any(p){color:red}.hnb-reply::-webkit-scrollbar{width:4px}"
    )


def test_an_unread_pseudo_class_on_elements_the_answer_lacks_is_left_out() -> None:
    # The matcher cannot read :nth-last-child(), but no element has .hnb-chunk (the live
    # view's), and none fits .hnb-missing whatever the rest says: only the third rule may match.
    css = (
        ".hnb-chat:not(.hnb-static) .hnb-chunk:nth-last-child(n+3){content-visibility:auto}"
        ".hnb-reply .hnb-missing:nth-child(2){color:red}"
        ".hnb-reply p:nth-last-child(n+1){margin:0}"
    )
    assert css_subset(css, ANSWER) == ".hnb-reply p:nth-last-child(n+1){margin:0}"


def test_a_plain_short_answer_carries_little_css() -> None:
    html = view.static_bundle(hermes_nb.chat("hi", profile="echo", delay=0).wait(30))[0][
        "text/html"
    ]
    css = _style(html)
    # Was 3,967 bytes (chat.css minified, less the live view's controls); measured 1,462.
    assert len(css.encode()) < 1600, len(css)
    assert ".hnb-chat{" in css and ".hnb-footer{" in css and ".hnb-info{" in css
    for absent in (".hnb-stop", ".hnb-ask", ".hnb-tool", ":empty", ":not(.hnb-static)", "/*"):
        assert absent not in css, absent
    assert "hnb-hl" not in css  # no highlighted code, no code colours
    # The containers the view hides when empty are not written at all.
    assert 'class="hnb-errors"' not in html and 'class="hnb-tools"' not in html


def test_a_code_answer_carries_the_colours_of_its_own_tokens_in_both_themes() -> None:
    reply = "Some code:\n\n```python\nimport os\nprint('hi')  # say\n```\n"
    html = view.static_bundle(hermes_nb.chat(reply, profile="echo", delay=0).wait(30))[0][
        "text/html"
    ]
    css = _style(html)
    tokens = set(re.findall(r'<span class="([a-z0-9]+)">', html))
    assert {"kn", "nn", "nb", "s1", "c1"} <= tokens
    every = render.highlight_css()  # each theme colours some tokens (light leaves .p alone)
    for token in tokens:
        for theme in (
            'body:not([data-jp-theme-light="false"])',
            'body[data-jp-theme-light="false"]',
        ):
            selector = f"{theme} .hnb-chat .hnb-hl .{token}"
            assert (f"{selector} {{" in every) == (selector in css), selector
    assert ".hnb-hl .hll" not in css and ".hnb-hl .gd" not in css  # tokens it does not have
    assert ".hnb-chat pre" in css
    assert len(css) < 4500, len(css)  # the Pygments rules alone were 16 KB


def test_a_card_answer_keeps_the_card_rules_and_not_its_controls() -> None:
    question = {"name": "ask_user", "arguments": {"question": "Colour?", "choices": ["red"]}}
    run = hermes_nb.chat("q", profile="echo", delay=0, tools=["ask_user"], tool_calls=[question])
    while not run.pending:
        time.sleep(0.005)
    run.answer(run.pending[0].id, "red")
    css = _style(view.static_bundle(run.wait(30))[0]["text/html"])
    assert ".hnb-ask{" in css and '.hnb-ask-decision[data-verdict="answered"]' in css
    assert ".hnb-ask-btn" not in css and ".hnb-ask-input" not in css
    assert '[data-verdict="denied"]' not in css and ".hnb-tool{" in css


def test_a_long_answer_is_matched_quickly() -> None:
    rows = "\n".join(f"| {i} | `x{i}` |" for i in range(300))
    code = "\n".join(f"value_{i} = compute({i}, 'text')  # note" for i in range(300))
    reply = f"# Big\n\n| a | b |\n|---|---|\n{rows}\n\n```python\n{code}\n```\n" * 3
    run = hermes_nb.chat(reply, profile="echo", delay=0, chunk_size=10_000).wait(60)
    start = time.perf_counter()
    html = view.static_bundle(run)[0]["text/html"]
    took = time.perf_counter() - start
    assert len(html) > 200_000 and ".hnb-chat td" in _style(html)
    assert took < 5, took  # rendering included; the matching alone is a fraction of it


def test_should_the_subset_fail_the_answer_carries_the_whole_stylesheet(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(css: str, html: str) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(_static, "css_subset", broken)
    _static._css.cache_clear()
    try:
        run = hermes_nb.chat("whole", profile="echo", delay=0).wait(30)
        css = _style(view.static_bundle(run)[0]["text/html"])
    finally:
        _static._css.cache_clear()
    assert css == _stylesheet.stylesheet()  # styled, and the run settled
    assert "could not be subset" in caplog.text
