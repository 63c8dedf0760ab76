"""The Markdown engine behind :mod:`hermes_nb.view.render`: parser, URL policy, highlighting,
sanitiser.

Live output in JupyterLab is trusted (DESIGN.md §4, §9): whatever HTML we emit runs. So the
output passes three walls, each enough on its own for the cases it knows about:

1. markdown-it with raw HTML disabled, so ``<script>`` written by a model is text;
2. a URL policy applied by markdown-it (``validateLink``) and again by our render rules, which
   know whether a URL is a link target or an image source;
3. nh3 with an allow-list of exactly the tags, attributes and classes this renderer emits, and
   the same URL policy in its attribute filter.

Rendering is organised around *top-level blocks* (token groups at nesting level 0) because the
streaming renderer in :mod:`hermes_nb.view.render` caches finished blocks. A whole document renders
as the concatenation of its blocks through the very same functions, so a streamed reply and a
full render agree byte for byte.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, normalizeReference, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.tasklists import tasklists_plugin
from pygments import format as format_tokens
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import JsonLexer, get_lexer_by_name
from pygments.styles import get_style_by_name
from pygments.token import STANDARD_TYPES, Text, Whitespace
from pygments.token import Token as PygmentsToken
from pygments.util import ClassNotFound

# --------------------------------------------------------------------------- URL policy

_LINK_SCHEMES = frozenset({"", "http", "https", "mailto"})  # "" = relative or #fragment
_EXTERNAL_SCHEMES = frozenset({"http", "https"})
_IMAGE_DATA_RE = re.compile(r"data:image/(?:png|gif|jpeg|webp)[;,]")
# Characters a browser strips or ignores while reading a scheme, plus the invisible ones a
# model (or an attacker) can hide inside one: C0/C1 controls, spaces, zero-width and bidi marks.
_INVISIBLE_RE = re.compile(
    "[\x00-\x20\x7f-\xa0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u206f\u3000\ufeff]"
)
_PATH_DELIMITERS = "/?#"


def _decoded(url: str) -> str:
    """``url`` as a browser's scheme check would see it, erring on the side of seeing more.

    Entities and percent-escapes are decoded twice over (markdown-it has already decoded
    entities and then percent-encoded what it normalised, e.g. a tab as ``%09``), invisible
    characters are dropped and the result lower-cased. Over-decoding can only make an
    innocent URL look suspicious, never a hostile one look innocent.
    """
    text = html.unescape(unquote(html.unescape(unquote(url))))
    return _INVISIBLE_RE.sub("", text).lower()


def _scheme(decoded: str) -> str:
    """The scheme of a decoded URL, or ``""`` when it is relative (no colon before a path)."""
    colon = decoded.find(":")
    if colon < 0:
        return ""
    for delimiter in _PATH_DELIMITERS:
        found = decoded.find(delimiter, 0, colon)
        if found >= 0:
            return ""
    return decoded[:colon]


def link_allowed(url: str) -> bool:
    """May ``url`` be an ``<a href>``? http(s), mailto, relative paths and ``#`` fragments."""
    return _scheme(_decoded(url)) in _LINK_SCHEMES


def image_allowed(url: str) -> bool:
    """May ``url`` be an ``<img src>``? http(s) and raster ``data:image/…`` only.

    Relative image URLs are refused: in JupyterLab they resolve against the Jupyter server,
    and a GET issued by merely displaying a reply is not something a model should control.
    """
    decoded = _decoded(url)
    scheme = _scheme(decoded)
    if scheme in _EXTERNAL_SCHEMES:
        return True
    return scheme == "data" and _IMAGE_DATA_RE.match(decoded) is not None


def _is_external(url: str) -> bool:
    """Does ``url`` leave the notebook (absolute or protocol-relative http(s))?"""
    decoded = _decoded(url)
    return _scheme(decoded) in _EXTERNAL_SCHEMES or decoded[:2] in {"//", "\\\\", "/\\", "\\/"}


# --------------------------------------------------------------------------- highlighting

HIGHLIGHT_CLASS = "hnb-hl"
#: The Pygments styles of JupyterLab's light and dark themes (:func:`highlight_css`).
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
_HIGHLIGHT_MAX_CHARS = 200_000  # beyond this a code block is shown plain: lexers are regexes
_LANG_RE = re.compile(r"[A-Za-z0-9_+#.-]{1,40}")
_FORMATTER = HtmlFormatter(nowrap=True)


@lru_cache(maxsize=256)
def _lexer(lang: str) -> Lexer | None:
    """A Pygments lexer for ``lang`` (cached: unknown names trigger a plugin scan)."""
    try:
        return get_lexer_by_name(lang, stripnl=False)
    except ClassNotFound:
        return None


def highlight_code(code: str, lang: str, *, preview: bool = False) -> str:
    """``<pre><code>`` for a code block: Pygments classes if ``lang`` is known, else escaped.

    ``preview`` skips Pygments for a fence still being streamed: re-highlighting a growing block
    on every refresh costs CPU and bytes quadratic in its length. The preview carries the same
    text (Pygments ends it with a newline; so does the preview), only without colours.
    """
    lang_attr = f' class="language-{lang}"' if _LANG_RE.fullmatch(lang) else ""
    lexer = _lexer(lang.lower()) if lang_attr and len(code) <= _HIGHLIGHT_MAX_CHARS else None
    if lexer is None:
        return f"<pre><code{lang_attr}>{escapeHtml(code)}</code></pre>\n"
    if preview:
        code = code if code.endswith("\n") else code + "\n"
        return f"<pre><code{lang_attr}>{escapeHtml(code)}</code></pre>\n"
    body = _highlight(code, lexer)
    return f'<pre class="{HIGHLIGHT_CLASS}"><code{lang_attr}>{body}</code></pre>\n'


def _highlight(code: str, lexer: Lexer) -> str:
    """Pygments' HTML for ``code``, the tokens that look plain in both themes unwrapped."""
    plain = _plain_types()
    tokens = ((Text if kind in plain else kind, value) for kind, value in lexer.get_tokens(code))
    return format_tokens(tokens, _FORMATTER)


@lru_cache(maxsize=1)
def _plain_types(light: str = LIGHT_STYLE, dark: str = DARK_STYLE) -> frozenset[Any]:
    """The token types both themes show as the code around them: their text goes unwrapped.

    A name, a bracket or a space looks like plain code in both styles (no colour of its own,
    or the block's; whitespace is invisible whatever its colour), yet Pygments wraps each in a
    ``<span>``: more than half the elements of Python code. Every element costs the page its
    style, layout and paint, in a streaming view's updates and in each saved answer
    (``benchmarks/bench_browser.py``), and the saved notebook its bytes.
    """
    looks: list[tuple[Any, Any]] = []
    for name in (light, dark):
        style = get_style_by_name(name)
        looks.append((style, style.style_for_token(PygmentsToken)["color"]))

    def plain(kind: Any) -> bool:
        if kind in Whitespace:
            return True
        for style, base in looks:
            look = style.style_for_token(kind)
            if any(look[key] for key in ("bold", "italic", "underline", "bgcolor", "border")):
                return False
            if look["color"] not in (None, "", base):
                return False
        return True

    return frozenset(kind for kind in STANDARD_TYPES if plain(kind))


def highlight_json(text: str) -> str:
    """Highlighted JSON in the same wrapper as a ```` ```json ```` fence."""
    body = _highlight(text, JsonLexer(stripnl=False))
    return f'<pre class="{HIGHLIGHT_CLASS}"><code class="language-json">{body}</code></pre>\n'


# --------------------------------------------------------------------------- sanitiser

_TAGS = frozenset(
    {
        "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "img", "input", "li", "ol", "p", "pre", "s", "span", "strong", "table",
        "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
_ATTRIBUTES = {
    "a": {"href", "title", "rel", "target"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "ul": {"class"},
    "li": {"class"},
    "input": {"class", "checked"},
    "pre": {"class"},
    "code": {"class"},
    "span": {"class"},
}
_ALIGN = {"align": {"left", "center", "right"}}
_PYGMENTS_CLASSES = frozenset(name for name in STANDARD_TYPES.values() if name)
_TASK_CLASSES = {
    "ul": "contains-task-list",
    "li": "task-list-item",
    "input": "task-list-item-checkbox",
}
_EXTERNAL_REL = "noopener noreferrer"
_CHECKBOXES = frozenset(
    {
        '<input class="task-list-item-checkbox" disabled="disabled" type="checkbox">',
        '<input class="task-list-item-checkbox" checked="checked" disabled="disabled" '
        'type="checkbox">',
    }
)


def _class_allowed(tag: str, name: str) -> bool:
    if tag == "span":  # Pygments: a standard short name, or one extended with "-Subtype"
        return name.split("-", 1)[0] in _PYGMENTS_CLASSES
    if tag == "code":
        return name.startswith("language-") and _LANG_RE.fullmatch(name[9:]) is not None
    if tag == "pre":
        return name == HIGHLIGHT_CLASS
    return _TASK_CLASSES.get(tag) == name


def _filter_attribute(tag: str, attr: str, value: str) -> str | None:
    """nh3's per-attribute hook: the URL policy again, and only classes we emit."""
    if attr == "href":
        return value if link_allowed(value) else None
    if attr == "src":
        return value if image_allowed(value) else None
    if attr == "rel":
        return value if value == _EXTERNAL_REL else None
    if attr == "target":
        return value if value == "_blank" else None
    if attr == "class":
        kept = [name for name in value.split() if _class_allowed(tag, name)]
        return " ".join(kept) or None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(_TAGS),
    clean_content_tags={"script", "style"},
    attributes=_ATTRIBUTES,
    attribute_filter=_filter_attribute,
    link_rel=None,  # we set rel ourselves, only on external links
    tag_attribute_values={"th": _ALIGN, "td": _ALIGN},
    set_tag_attribute_values={"input": {"type": "checkbox", "disabled": "disabled"}},
    url_schemes={"http", "https", "mailto", "data"},
)


def sanitize(fragment: str) -> str:
    """The allow-list wall: only what this renderer emits survives."""
    return _CLEANER.clean(fragment)


# --------------------------------------------------------------------------- render rules


def _render_link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    if not link_allowed(href):
        token.attrs.pop("href", None)
    elif _is_external(href):
        token.attrSet("rel", _EXTERNAL_REL)
        token.attrSet("target", "_blank")
    return self.renderToken(tokens, idx, options, env)


def _render_image(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    if not image_allowed(str(token.attrGet("src") or "")):
        # The picture is refused; its description is still worth showing.
        return escapeHtml(self.renderInlineAsText(token.children or [], options, env))
    return self.image(tokens, idx, options, env)


def _render_fence(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    token = tokens[idx]
    info = unescapeAll(token.info).strip() if token.info else ""
    lang = info.split(maxsplit=1)[0] if info else ""
    return highlight_code(token.content, lang, preview=bool(env.get(PREVIEW_KEY)))


def _render_cell_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # markdown-it aligns cells with ``style``; ``align`` needs no style attribute (which we do
    # not allow) and survives GitHub's and nbconvert's sanitisers in a saved notebook.
    token = tokens[idx]
    style = str(token.attrs.pop("style", ""))
    if style.startswith("text-align:"):
        token.attrSet("align", style.removeprefix("text-align:"))
    return self.renderToken(tokens, idx, options, env)


def _render_html_inline(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    # Raw HTML parsing is off, so the only inline HTML is the task-list plugin's checkbox.
    content = tokens[idx].content
    return content if content in _CHECKBOXES else escapeHtml(content)


def _render_html_block(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return f"<p>{escapeHtml(tokens[idx].content)}</p>\n"


def _validate_link(url: str) -> bool:
    # Parse-time filter: a URL fit for neither a link nor an image stays literal text.
    return link_allowed(url) or image_allowed(url)


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False})
    md.enable(["table", "strikethrough"])
    md.use(tasklists_plugin)
    md.validateLink = _validate_link  # type: ignore[method-assign]
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("image", _render_image)
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("th_open", _render_cell_open)
    md.add_render_rule("td_open", _render_cell_open)
    md.add_render_rule("html_inline", _render_html_inline)
    md.add_render_rule("html_block", _render_html_block)
    return md


_MD = _build_parser()
# Core rules that run after block parsing (inline, tasklists, text_join, …), in order. Running
# them per block is what lets a block be rendered on its own, exactly as in a full render.
# ("normalize" is skipped too: sources reach us normalised, see normalize()).
_POST_BLOCK_RULES = [
    rule.fn
    for rule in _MD.core.ruler.__rules__
    if rule.enabled and rule.name not in {"normalize", "block"}
]
_NEWLINES_RE = re.compile(r"\r\n?")
_CLOSING_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*\n?")
PREVIEW_KEY = "hermes_nb.preview"  # env flag: render code fences without highlighting


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True, slots=True)
class TokenGroup:
    """The tokens of one top-level block and its source lines ``[start, end)``."""

    start: int
    end: int
    tokens: list[Token]


def normalize(text: str) -> str:
    """markdown-it's input normalisation (line endings, NUL), applied once up front."""
    return _NEWLINES_RE.sub("\n", text).replace("\0", "\ufffd")


def parse_blocks(src: str, env: EnvType) -> list[TokenGroup]:
    """Block-parse normalised ``src`` (collecting link definitions into ``env``) and split it.

    Inline content is left unparsed: a group is inline-parsed only if it is rendered.
    """
    tokens: list[Token] = []
    _MD.block.parse(src, _MD, env, tokens)
    groups: list[TokenGroup] = []
    depth = 0
    first = 0
    for i, token in enumerate(tokens):
        if depth == 0:
            first = i
        depth += token.nesting
        if depth == 0:
            opener = tokens[first]
            assert opener.map is not None  # every level-0 block token carries its lines
            groups.append(TokenGroup(opener.map[0], opener.map[1], tokens[first : i + 1]))
    return groups


def render_group(group: TokenGroup, env: EnvType, *, preview: bool = False) -> str:
    """Inline-parse, render and sanitise one block (``preview``: fences without colours)."""
    state = StateCore("", _MD, env)
    state.tokens = group.tokens
    for rule in _POST_BLOCK_RULES:
        rule(state)
    render_env = {**env, PREVIEW_KEY: True} if preview else env
    return sanitize(_MD.renderer.render(group.tokens, _MD.options, render_env))


def is_open_fence(group: TokenGroup, src: str, line_starts: Sequence[int]) -> bool:
    """Is ``group`` a top-level code fence whose closing line has not fully arrived?

    ``line_starts`` are the offsets of the lines of ``src`` (see ``render._line_starts``). A
    closing line counts only once its newline is there: ```` ``` ```` may still become
    ```` ```py ````, which is content, not a closing fence.
    """
    token = group.tokens[0]
    if token.type != "fence":
        return False
    if group.end - group.start < 2 or group.end >= len(line_starts):
        return True
    last_line = src[line_starts[group.end - 1] : line_starts[group.end]]
    match = _CLOSING_FENCE_RE.fullmatch(last_line)
    return not (
        match is not None and match[1][0] == token.markup[0] and len(match[1]) >= len(token.markup)
    )


def render_source(src: str, env: EnvType) -> str:
    """Render normalised ``src`` from scratch (a whole document, or one block's lines)."""
    return "".join(render_group(group, env) for group in parse_blocks(src, env))


def references_mentioned(src: str, labels: set[str]) -> bool:
    """Could a block with source ``src`` use one of these link reference ``labels``?

    Labels are normalised as markdown-it does (whitespace collapsed, case folded). A label's
    words each appear verbatim in any block that uses it, even if the use wraps across lines
    inside a quote or list, so this errs towards "yes".
    """
    folded = normalizeReference(src)
    return any(all(word in folded for word in label.split(" ")) for label in labels)


def reference_targets(env: EnvType) -> dict[str, tuple[Any, Any]]:
    """Link definitions as ``label -> (href, title)``, without positions, for comparison."""
    refs = env.get("references", {})
    return {label: (ref.get("href"), ref.get("title")) for label, ref in refs.items()}


# --------------------------------------------------------------------------- stylesheet

_LIGHT_SCOPE = 'body:not([data-jp-theme-light="false"]) .hnb-chat'
_DARK_SCOPE = 'body[data-jp-theme-light="false"] .hnb-chat'


@lru_cache(maxsize=1)
def highlight_css(light: str = LIGHT_STYLE, dark: str = DARK_STYLE) -> str:
    """Pygments rules for a light and a dark theme, each active only under its JupyterLab theme.

    The light rules are scoped with ``:not(...)`` rather than left global so that a token the
    dark style leaves uncoloured does not inherit a light-theme colour; outside JupyterLab
    (nbconvert, GitHub) no ``data-jp-theme-light`` attribute exists and the light theme applies.
    A block's background is the theme's editor background (``chat.css``), as a code cell's, not
    the Pygments style's own: github-dark's near-black stood out of JupyterLab's dark theme.
    """
    parts: list[str] = []
    for style, scope in ((light, _LIGHT_SCOPE), (dark, _DARK_SCOPE)):
        formatter = HtmlFormatter(style=style)
        selector = f"{scope} .{HIGHLIGHT_CLASS}"
        for rule in formatter.get_background_style_defs(selector):
            if rule.startswith(f"{selector} {{"):  # the block itself: its colour, not its ground
                rule = re.sub(r"background: [^;}]+;? ?", "", rule)
            if not rule.endswith("{ }"):
                parts.append(rule)
        parts.extend(formatter.get_token_style_defs(selector))
    return "\n".join(parts) + "\n"
