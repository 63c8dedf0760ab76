"""render.py: sanitised Markdown, whole and streamed block by block.

Live output in JupyterLab is trusted (DESIGN.md §4, §9), so the safety tests parse the HTML we
produce and check what a browser would act on; each of the two walls (renderer URL policy, nh3
allow-list) is also tested with the other one removed. Streaming: ``test_render_stream.py``;
shared helpers: ``render_support.py``.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import pytest
from hostile_markdown import HOSTILE
from pygments import highlight as pygments_highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from render_support import chunks, joined

from hermes_nb.view import _markdown
from hermes_nb.view.render import (
    MarkdownStream,
    escape,
    highlight_css,
    markdown_to_html,
    render_tool_args,
)

# ----------------------------------------------------------------------------- helpers

# Written independently of the renderer's own allow-list: what a chat reply may contain.
SAFE_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "img", "input", "li", "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td",
    "th", "thead", "tr", "ul",
}  # fmt: skip
SAFE_HREF_SCHEMES = {"http", "https", "mailto"}
SAFE_IMAGE_DATA = re.compile(r"data:image/(png|gif|jpeg|webp)[;,]")
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f-\xa0\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]")


class _Elements(HTMLParser):
    """Every start tag with its attributes, entities decoded (as a browser would)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))


def elements(fragment: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(fragment)
    parser.close()
    return parser.elements


def url_scheme(url: str) -> str:
    """The scheme a browser would act on ("" if relative), after stripping what it ignores."""
    cleaned = _INVISIBLE.sub("", html.unescape(url)).lower()
    match = _SCHEME.match(cleaned)
    return match[1] if match else ""


def assert_inert(fragment: str) -> None:
    """Nothing in ``fragment`` can run script, load a document or restyle the page."""
    for tag, attrs in elements(fragment):
        assert tag in SAFE_TAGS, f"<{tag}> survived in {fragment!r}"
        for name in attrs:
            assert not name.startswith("on"), f"{name} on <{tag}> in {fragment!r}"
            assert name not in {"style", "srcdoc", "formaction", "action"}, (tag, name)
        if "href" in attrs:
            scheme = url_scheme(attrs["href"] or "")
            assert scheme in SAFE_HREF_SCHEMES | {""}, f"href {attrs['href']!r}"
        if "src" in attrs:
            src = attrs["src"] or ""
            scheme = url_scheme(src)
            assert scheme in {"http", "https"} or (
                scheme == "data" and SAFE_IMAGE_DATA.match(_INVISIBLE.sub("", src.lower()))
            ), f"src {src!r}"
        if tag == "input":
            assert attrs.get("type") == "checkbox", attrs
            assert "disabled" in attrs, attrs


# ----------------------------------------------------------------------------- safety


@pytest.mark.parametrize(("name", "markdown"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_markdown_renders_inert(name: str, markdown: str) -> None:
    assert_inert(markdown_to_html(markdown))


@pytest.mark.parametrize(("name", "markdown"), HOSTILE, ids=[name for name, _ in HOSTILE])
def test_hostile_markdown_renders_inert_without_the_sanitiser(
    name: str, markdown: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first wall alone (raw HTML off, URL policy in the renderer) already holds."""
    monkeypatch.setattr(_markdown, "sanitize", lambda fragment: fragment)
    assert_inert(markdown_to_html(markdown))


@pytest.mark.parametrize(
    ("name", "markdown"),
    [(n, m) for n, m in HOSTILE if len(m) < 400],
    ids=[n for n, m in HOSTILE if len(m) < 400],
)
def test_hostile_markdown_streams_inert(name: str, markdown: str) -> None:
    md = MarkdownStream()
    for piece in chunks(markdown, "random", seed=3):
        for block in md.append(piece):
            assert_inert(block.html)
    assert_inert(joined(md.final()))


def test_raw_html_is_shown_as_text() -> None:
    out = markdown_to_html('<script>alert(1)</script> and <img src=x onerror="alert(1)">')
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert "&lt;img src=x onerror=" in out
    assert elements(out) == [("p", {})]


@pytest.mark.parametrize(
    "markdown",
    [
        "[click](javascript:alert(1))",
        "![x](data:image/svg+xml;base64,PHN2Zz4=)",
        "<vbscript:msgbox(1)>",
        "[settings](ms-settings:privacy)",
        "<ftp://example.com/file>",
        "[click][x]\n\n[x]: javascript:alert(1)",
    ],
)
def test_refused_links_show_their_markdown_as_text(markdown: str) -> None:
    """A URL fit for neither a link nor an image is not parsed as one: the reader sees it."""
    out = markdown_to_html(markdown)
    assert [tag for tag, _ in elements(out)] == ["p"] * out.count("<p>")
    assert html.escape(markdown.split("\n")[0], quote=False) in out


RAW_ATTACKS = [
    '<script>alert(1)</script><p onclick="alert(1)">x</p>',
    '<img src="x" onerror="alert(1)"><img src="data:image/svg+xml,<svg onload=alert(1)>">',
    '<a href="javascript:alert(1)">a</a><a href="JaVa&#x09;ScRiPt:alert(1)">b</a>',
    '<a href="vbscript:x">c</a><a href="data:text/html,<script>alert(1)</script>">d</a>',
    '<a href=" &#106;avascript:alert(1)">e</a><a href="java%09script:alert(1)">f</a>',
    '<svg onload="alert(1)"><circle/></svg><math><mi>x</mi></math>',
    '<iframe src="https://example.com"></iframe><object data="x"></object><embed src="x">',
    '<style>*{color:red}</style><p style="position:fixed">x</p><link rel=stylesheet href=x>',
    '<form action="https://example.com"><input type="text" onfocus="alert(1)" autofocus></form>',
    '<input type="checkbox" onclick="alert(1)"><input type="image" src="javascript:x">',
    '<a href="https://example.com" target="_top" rel="opener">x</a>',
    '<span class="jp-Dialog k">x</span><pre class="jp-Cell hnb-hl">y</pre>',
    '<base href="javascript:alert(1)//"><meta http-equiv="refresh" content="0;url=x">',
]


@pytest.mark.parametrize("fragment", RAW_ATTACKS)
def test_sanitiser_alone_strips_everything_unlisted(fragment: str) -> None:
    """The second wall alone, fed raw HTML the renderer itself would never emit."""
    assert_inert(_markdown.sanitize(fragment))


def test_sanitiser_keeps_only_known_classes_and_safe_link_attributes() -> None:
    out = _markdown.sanitize(
        '<span class="jp-Dialog k">x</span><pre class="jp-Cell hnb-hl">y</pre>'
        '<a href="https://example.com" target="_top" rel="opener">z</a>'
    )
    assert '<span class="k">' in out
    assert '<pre class="hnb-hl">' in out
    assert "jp-" not in out
    assert "_top" not in out
    assert "opener" not in out


@pytest.mark.parametrize(
    ("url", "link", "image"),
    [
        ("https://example.com/a?b#c", True, True),
        ("http://example.com", True, True),
        ("mailto:someone@example.com", True, False),
        ("/relative/path", True, False),
        ("relative.html", True, False),
        ("#section", True, False),
        ("?q=1", True, False),
        ("javascript:alert(1)", False, False),
        ("JaVaScRiPt:alert(1)", False, False),
        (" \tjavascript:alert(1)", False, False),
        ("java\tscript:alert(1)", False, False),
        ("java%09script:alert(1)", False, False),
        ("&#106;avascript:alert(1)", False, False),
        ("java\u200bscript:alert(1)", False, False),
        ("vbscript:msgbox(1)", False, False),
        ("data:text/html,<script>", False, False),
        ("data:image/svg+xml;base64,AAAA", False, False),
        ("data:image/png;base64,AAAA", False, True),
        ("DATA:IMAGE/WEBP;base64,AAAA", False, True),
        ("data:image/jpeg,AAAA", False, True),
        ("file:///etc/passwd", False, False),
        ("ftp://example.com", False, False),
    ],
)
def test_url_policy(url: str, link: bool, image: bool) -> None:
    assert _markdown.link_allowed(url) is link
    assert _markdown.image_allowed(url) is image


def test_links_and_images_follow_the_policy_in_rendered_output() -> None:
    out = markdown_to_html(
        "[ext](https://example.com) [rel](docs/x.md) [frag](#top) [mail](mailto:a@b.c) "
        "![png](data:image/png;base64,AAAA) ![web](https://example.com/a.png) "
        "![rel](img/a.png) [data](data:image/png;base64,AAAA)"
    )
    anchors = [attrs for tag, attrs in elements(out) if tag == "a"]
    assert anchors == [
        {"href": "https://example.com", "rel": "noopener noreferrer", "target": "_blank"},
        {"href": "docs/x.md"},
        {"href": "#top"},
        {"href": "mailto:a@b.c"},
        {},  # a data: URL is an image source, never a link target: the anchor is inert
    ]
    images = [attrs["src"] for tag, attrs in elements(out) if tag == "img"]
    assert images == ["data:image/png;base64,AAAA", "https://example.com/a.png"]
    assert "rel" in out.split("https://example.com/a.png")[1]  # refused image keeps its alt


def test_protocol_relative_links_are_external() -> None:
    (attrs,) = [a for tag, a in elements(markdown_to_html("[x](//example.com)")) if tag == "a"]
    assert attrs["target"] == "_blank"
    assert attrs["rel"] == "noopener noreferrer"


# ----------------------------------------------------------------------------- rendering


def test_headings_and_emphasis() -> None:
    out = markdown_to_html(
        "# One\n## Two\n###### Six\n\nSetext\n===\n\n*em* **strong** ~~gone~~ `code`"
    )
    assert "<h1>One</h1>" in out
    assert "<h2>Two</h2>" in out
    assert "<h6>Six</h6>" in out
    assert "<h1>Setext</h1>" in out
    assert "<em>em</em> <strong>strong</strong> <s>gone</s> <code>code</code>" in out


def test_lists_keep_structure_and_start_number() -> None:
    out = markdown_to_html("- a\n- b\n  - nested\n\n3. three\n4. four\n")
    tags = [tag for tag, _ in elements(out)]
    assert tags == ["ul", "li", "li", "ul", "li", "ol", "li", "li"]
    assert '<ol start="3">' in out


def test_tables_align_with_the_align_attribute_not_style() -> None:
    out = markdown_to_html("| l | c | r | n |\n|:--|:-:|--:|---|\n| 1 | 2 | 3 | 4 |\n")
    cells = [(tag, attrs) for tag, attrs in elements(out) if tag in {"th", "td"}]
    aligns = [attrs.get("align") for _, attrs in cells]
    assert aligns == ["left", "center", "right", None] * 2
    assert "style" not in out
    assert [tag for tag, _ in elements(out)][:3] == ["table", "thead", "tr"]


def test_task_lists_render_disabled_checkboxes_that_survive_the_sanitiser() -> None:
    out = markdown_to_html("- [ ] todo\n- [x] done\n- plain\n")
    inputs = [attrs for tag, attrs in elements(out) if tag == "input"]
    assert inputs == [
        {"class": "task-list-item-checkbox", "type": "checkbox", "disabled": "disabled"},
        {
            "class": "task-list-item-checkbox",
            "checked": "checked",
            "type": "checkbox",
            "disabled": "disabled",
        },
    ]
    assert '<ul class="contains-task-list">' in out
    assert out.count('<li class="task-list-item">') == 2


def test_code_fences_are_highlighted_with_classes_not_inline_styles() -> None:
    out = markdown_to_html("```python\ndef f(x):\n    return x  # hi\n```\n")
    assert out.startswith('<pre class="hnb-hl"><code class="language-python">')
    assert '<span class="k">def</span>' in out
    assert '<span class="c1"># hi</span>' in out
    assert "style" not in out


@pytest.mark.parametrize(
    ("lang", "code"),
    [
        ("python", "import os\n@dec\nclass A(B):\n    x: int = 0x1F  # c\n    s = f'{x!r}'\n"),
        ("javascript", "const a = `t${b}`; /re/g.test(a) && console.log(null);\n"),
        ("bash", 'for f in *.py; do echo "$f" | grep -v x; done # loop\n'),
        ("json", '{"a": [1, 2.5, true, null], "b": "c"}\n'),
        ("sql", "SELECT a, COUNT(*) FROM t WHERE b > 1 GROUP BY a;\n"),
        ("diff", "--- a\n+++ b\n@@ -1 +1 @@\n-x\n+y\n"),
    ],
)
def test_sanitiser_keeps_every_pygments_class(lang: str, code: str) -> None:
    """Whatever classes Pygments emits must survive nh3, or the colours silently vanish."""
    raw = pygments_highlight(code, get_lexer_by_name(lang), HtmlFormatter(nowrap=True))
    expected = set(re.findall(r'class="([^"]+)"', raw)) - _plain_classes()
    out = markdown_to_html(f"```{lang}\n{code}```\n")
    kept = set(re.findall(r'<span class="([^"]+)"', out))
    assert expected
    assert kept == expected
    inner = re.search(r"<code[^>]*>(.*)</code>", out, re.S)
    assert inner and html.unescape(re.sub(r"<[^>]+>", "", inner.group(1))) == code  # all of it


def _plain_classes() -> set[str]:
    return {STANDARD_TYPES[kind] for kind in _markdown._plain_types()} - {""}


def test_tokens_that_look_plain_in_both_themes_go_unwrapped() -> None:
    # A name, a bracket, a space: more than half of Pygments' spans in Python, each an element
    # for the page to style, lay out and paint, and bytes in every saved answer.
    out = markdown_to_html("```python\ndef f(x):\n    return x.y  # hi\n```\n")
    assert out == (
        '<pre class="hnb-hl"><code class="language-python"><span class="k">def</span> '
        '<span class="nf">f</span>(x):\n    <span class="k">return</span> '
        'x<span class="o">.</span>y  <span class="c1"># hi</span>\n</code></pre>\n'
    )
    assert {"n", "p", "w"} <= _plain_classes()
    # Each unwrapped token looks as the code around it in both themes: no rule of its own, or
    # one that gives it the block's own colour (whitespace shows no colour at all).
    css = highlight_css()
    for theme in ('body:not([data-jp-theme-light="false"])', 'body[data-jp-theme-light="false"]'):
        scope = f"{theme} .hnb-chat .hnb-hl"
        block = re.search(rf"^{re.escape(scope)} {{ (.*) }}$", css, re.M)
        for token in _plain_classes() - {"w"}:
            rule = re.search(rf"^{re.escape(scope)} \.{token} {{ (.*) }}$", css, re.M)
            assert rule is None or (block and rule.group(1) == block.group(1)), (theme, token)


def test_unknown_or_missing_language_falls_back_to_escaped_code() -> None:
    assert markdown_to_html("```nosuchlang\n<b>&\n```\n") == (
        '<pre><code class="language-nosuchlang">&lt;b&gt;&amp;\n</code></pre>\n'
    )
    assert (
        markdown_to_html("```\nplain <i>\n```\n") == "<pre><code>plain &lt;i&gt;\n</code></pre>\n"
    )


def test_highlight_css_scopes_light_and_dark_themes() -> None:
    css = highlight_css()
    light = 'body:not([data-jp-theme-light="false"]) .hnb-chat .hnb-hl'
    dark = 'body[data-jp-theme-light="false"] .hnb-chat .hnb-hl'
    rules = [line for line in css.splitlines() if line.strip()]
    assert rules
    assert all(rule.startswith((light, dark)) for rule in rules)  # nothing leaks globally
    assert any(rule.startswith(f"{light} .k {{") for rule in rules)
    assert any(rule.startswith(f"{dark} .k {{") for rule in rules)
    light_k = next(r for r in rules if r.startswith(f"{light} .k {{"))
    dark_k = next(r for r in rules if r.startswith(f"{dark} .k {{"))
    assert light_k.split("{")[1] != dark_k.split("{")[1]  # two different palettes


def test_escape() -> None:
    assert escape("<a href=\"x\" title='y'>&</a>") == (
        "&lt;a href=&quot;x&quot; title=&#x27;y&#x27;&gt;&amp;&lt;/a&gt;"
    )


def test_render_tool_args_pretty_prints_and_highlights_json() -> None:
    out = render_tool_args('{"query": "<script>alert(1)</script>", "n": [1, 2]}')
    assert out.startswith('<pre class="hnb-hl"><code class="language-json">')
    assert '<span class="nt">"query"</span>' in out
    assert "&lt;script&gt;" in out
    assert "\n  <span" in out  # indented over several lines
    assert_inert(out)


def test_render_tool_args_shows_invalid_json_escaped() -> None:
    out = render_tool_args('{"query": "<img src=x onerror=alert(1)>", ')
    assert out == (
        "<pre><code>{&quot;query&quot;: &quot;&lt;img src=x onerror=alert(1)&gt;&quot;, "
        "</code></pre>\n"
    )
