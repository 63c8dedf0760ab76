"""The rules of a stylesheet that one HTML fragment can use, shortened: a saved answer's CSS.

Every saved answer carries its own ``<style>`` (nbconvert's HTML export and a trusted notebook
without the extension have nothing else), so what it carries is paid once per answer, in every
saved notebook. :func:`css_subset` keeps a rule only if one of its selectors matches an element
of the answer, in any page the answer may be shown in (JupyterLab's light or dark theme, or a
page without JupyterLab), and writes it without comments or layout whitespace.

**tinycss2** (Kozea's CSS Syntax Level 3 parser, used by WeasyPrint and bleach) parses the
stylesheet into rules, at-rules and tokens, instead of regular expressions: a selector list
splits at its real commas, ``@media`` blocks nest, and strings and ``var()`` fallbacks survive
shortening untouched. Whether a selector matches is :mod:`._css_match`'s (why not soupsieve: see
there). What only a person's pointer or keyboard makes true (``:hover``, ``:focus-visible``, a
``<details>`` opened: ``[open]``) and pseudo-elements (``::before``) match their element, so a
rule for an element the answer has is kept whatever state it may be put in; a selector the
matcher cannot read is kept.

What the matching cannot see is given: the element JupyterLab (and nbconvert's lab template)
renders HTML output into (:data:`_HOST_CLASSES`), and ``<body>``'s ``data-jp-theme-light``
(``true``, ``false`` or absent). ``@media`` / ``@supports`` blocks are kept with the rules inside
them that are kept; ``@keyframes`` only when a kept declaration names them; custom properties
(``--name: …``) only when a kept ``var()`` reads them. Adjacent rules left with the same
declarations are merged (nothing between them, so the cascade is the same).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from ._css_match import CannotTell, Page, Selector, parse_selector, split_selectors, strip_blank

__all__ = ["css_subset", "shortened"]

#: The classes of the element JupyterLab renders an HTML output into.
_HOST_CLASSES = "jp-OutputArea-output jp-RenderedHTMLCommon jp-RenderedHTML"
#: ``<body>``'s theme attribute in each page a saved answer may be shown in (the dark theme
#: first: a selector that names the attribute is most often a dark-theme rule).
_THEMES = ("false", "true", None)
_THEME_ATTR = "data-jp-theme-light"
#: At-rules whose block holds rules: kept with the rules inside them that are kept.
_GROUPING = frozenset({"media", "supports", "container", "layer"})
#: Whitespace around these is not a descendant combinator (selectors) or is not needed (values).
_SELECTOR_TIGHT = frozenset({",", ">", "+", "~"})
_VALUE_TIGHT = frozenset({","})


# -- the stylesheet, parsed once -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Decl:
    """One declaration, shortened, with the custom properties and names its value reads."""

    text: str  # "color:var(--x,#fff)" (with "!important" when it is)
    name: str
    refs: frozenset[str]  # custom properties read through var()
    idents: frozenset[str]  # every identifier in the value (an animation's keyframes)


@dataclass(frozen=True, slots=True)
class _Rule:
    """A style rule: its selectors (shortened, and as the matcher reads them)."""

    selectors: tuple[str, ...]
    matchers: tuple[Selector | None, ...]  # None: the matcher cannot read it
    decls: tuple[_Decl, ...]


@dataclass(frozen=True, slots=True)
class _AtRule:
    """An at-rule: a group of rules (``@media``), ``@keyframes`` (by name) or anything else."""

    head: str  # "@media (prefers-color-scheme:dark)"
    kind: str  # "group", "keyframes" or "other"
    name: str = ""  # the keyframes' name
    rules: tuple[_Rule | _AtRule, ...] = ()
    body: str | None = None  # the block, shortened, when it is not a group; None: no block


@cache
def _parsed(css: str) -> tuple[_Rule | _AtRule, ...]:
    """``css`` as rules (parsing a stylesheet costs milliseconds; answers reuse it)."""
    import tinycss2

    return tuple(_rules(tinycss2.parse_stylesheet(css, skip_comments=True, skip_whitespace=True)))


def _rules(nodes: Iterable[Any]) -> Iterable[_Rule | _AtRule]:
    import tinycss2

    for node in nodes:
        if node.type == "qualified-rule":
            parts = split_selectors(node.prelude)
            body = tinycss2.parse_blocks_contents(
                node.content, skip_comments=True, skip_whitespace=True
            )
            decls = tuple(_decl(d) for d in body if d.type == "declaration")
            if parts and decls:
                yield _Rule(
                    tuple(_compact(p, _SELECTOR_TIGHT) for p in parts),
                    tuple(_matcher(p) for p in parts),
                    decls,
                )
        elif node.type == "at-rule":
            head = f"@{node.at_keyword}"
            prelude = _compact(node.prelude, _SELECTOR_TIGHT)
            if prelude:
                head += f" {prelude}"
            keyword = node.lower_at_keyword
            if node.content is None:
                yield _AtRule(head, "other")
            elif keyword in _GROUPING:
                inner = tinycss2.parse_rule_list(
                    node.content, skip_comments=True, skip_whitespace=True
                )
                yield _AtRule(head, "group", rules=tuple(_rules(inner)))
            elif keyword.endswith("keyframes"):  # and -webkit-keyframes
                yield _AtRule(head, "keyframes", name=prelude, body=_block(node.content))
            else:
                yield _AtRule(head, "other", body=_block(node.content))


def _block(content: Sequence[Any]) -> str:
    """A block that is not a group of style rules (``@keyframes``, ``@font-face``), shortened:
    its declarations, and its rules (a keyframe: ``from{…}``) with theirs."""
    import tinycss2

    out: list[str] = []
    after_decl = False  # a declaration before this one needs its ";"
    for node in tinycss2.parse_blocks_contents(content, skip_comments=True, skip_whitespace=True):
        if node.type == "declaration":
            out.append((";" if after_decl else "") + _decl(node).text)
            after_decl = True
        elif node.type == "qualified-rule":
            out.append(f"{_compact(node.prelude, _SELECTOR_TIGHT)}{{{_block(node.content)}}}")
            after_decl = False
    return "".join(out)


def _decl(decl: Any) -> _Decl:
    refs: set[str] = set()
    idents: set[str] = set()
    _scan(decl.value, refs, idents)
    value = _compact(strip_blank(decl.value), _VALUE_TIGHT)
    text = f"{decl.name}:{value}" + ("!important" if decl.important else "")
    return _Decl(text, decl.name, frozenset(refs), frozenset(idents))


def _scan(tokens: Iterable[Any], refs: set[str], idents: set[str]) -> None:
    """The custom properties a value reads (``var(--x)``) and the identifiers it names."""
    for token in tokens:
        if token.type == "ident":
            idents.add(token.value)
        elif token.type == "function":
            if token.lower_name == "var":
                name = next((t for t in token.arguments if t.type == "ident"), None)
                if name is not None:
                    refs.add(name.value)
            _scan(token.arguments, refs, idents)
        elif token.type in ("() block", "[] block", "{} block"):
            _scan(token.content, refs, idents)


def _compact(tokens: Sequence[Any], tight: frozenset[str] | tuple[()]) -> str:
    """Tokens written back with comments dropped, whitespace runs as one space, and none at the
    ends or next to a ``tight`` character; strings, escapes and numbers as they were."""
    import tinycss2

    out: list[str] = []
    space = False
    for token in tokens:
        kind = token.type
        if kind == "comment":
            continue
        if kind == "whitespace":
            space = True
            continue
        text: str
        if kind == "function":
            inner = _compact(strip_blank(token.arguments), tight)
            text = f"{tinycss2.serializer.serialize_identifier(token.name)}({inner})"
        elif kind == "() block":
            text = f"({_compact(strip_blank(token.content), tight)})"
        elif kind == "[] block":
            text = f"[{_compact(strip_blank(token.content), tight)}]"
        elif kind == "{} block":
            text = f"{{{_compact(strip_blank(token.content), tight)}}}"
        else:
            text = token.serialize()
        is_tight = kind == "literal" and token.value in tight
        if space and out and not is_tight and out[-1] not in tight:
            out.append(" ")
        out.append(text)
        space = False
    return "".join(out)


def _matcher(tokens: Sequence[Any]) -> Selector | None:
    """The selector as the matcher reads it; None when it cannot (the rule is then kept)."""
    try:
        return parse_selector(tokens)
    except CannotTell:
        return None


# -- the answer --------------------------------------------------------------------------------


class _Answer:
    """The answer's HTML, parsed once, inside the element a front end renders it into."""

    def __init__(self, html: str) -> None:
        self.page = Page(html, _HOST_CLASSES)
        self._seen: dict[str, bool] = {}

    def matches(self, text: str, selector: Selector | None) -> bool:
        """Whether ``selector`` matches an element in some page the answer is shown in."""
        if selector is None:
            return True  # the matcher cannot read it: it may match
        seen = self._seen.get(text)
        if seen is None:
            seen = self._seen[text] = self._match(text, selector)
        return seen

    def _match(self, text: str, selector: Selector) -> bool:
        body = self.page.body.attrs
        for theme in _THEMES if _THEME_ATTR in text else (None,):
            if theme is None:
                body.pop(_THEME_ATTR, None)
            else:
                body[_THEME_ATTR] = theme
            try:
                if self.page.has(selector):
                    return True
            except CannotTell:  # an element fits all but what the matcher cannot read
                return True
        return False


def css_subset(css: str, html: str) -> str:
    """The rules of ``css`` that can style ``html``, shortened (see the module docstring)."""
    answer = _Answer(html)
    kept = [item for node in _parsed(css) if (item := _keep(node, answer)) is not None]
    refs, idents = _reads(kept)
    return "".join(_write(item, refs, idents) for item in _merged(kept))


def shortened(css: str) -> str:
    """All of ``css``, shortened as :func:`css_subset` writes it (what a subset is measured
    against: ``benchmarks/bench_notebook.py``)."""
    kept = [_keep(node, None) for node in _parsed(css)]
    items = [item for item in kept if item is not None]
    refs, idents = _reads(items)
    return "".join(_write(item, refs, idents) for item in _merged(items))


@dataclass(frozen=True, slots=True)
class _KeptRule:
    """A style rule with the selectors the answer uses."""

    selectors: str
    decls: tuple[_Decl, ...]


@dataclass(frozen=True, slots=True)
class _KeptAt:
    """An at-rule kept: a group with the rules in it that are kept, or any other at-rule."""

    rule: _AtRule
    items: tuple[_KeptRule | _KeptAt, ...] = ()


_Kept = _KeptRule | _KeptAt


def _keep(node: _Rule | _AtRule, answer: _Answer | None) -> _Kept | None:
    """What of ``node`` the answer uses (None: every rule)."""
    if isinstance(node, _Rule):
        selectors = [
            s
            for s, m in zip(node.selectors, node.matchers, strict=True)
            if answer is None or answer.matches(s, m)
        ]
        return _KeptRule(",".join(selectors), node.decls) if selectors else None
    if node.kind == "group":
        inner = tuple(item for child in node.rules if (item := _keep(child, answer)) is not None)
        return _KeptAt(node, inner) if inner else None
    return _KeptAt(node)


def _reads(items: Iterable[_Kept]) -> tuple[set[str], set[str]]:
    """The custom properties the kept declarations read (following ``var()`` chains through the
    kept custom properties) and the identifiers they name."""
    decls = list(_decls(items))
    refs: set[str] = set()
    idents: set[str] = set()
    for d in decls:
        if not d.name.startswith("--"):
            refs |= d.refs
            idents |= d.idents
    grown = True
    while grown:
        grown = False
        for d in decls:
            if d.name in refs and not d.refs <= refs:
                refs |= d.refs
                grown = True
    return refs, idents


def _decls(items: Iterable[_Kept]) -> Iterable[_Decl]:
    for item in items:
        if isinstance(item, _KeptRule):
            yield from item.decls
        else:
            yield from _decls(item.items)


def _merged(items: Iterable[_Kept]) -> list[_Kept]:
    """Adjacent style rules with the same declarations as one rule."""
    out: list[_Kept] = []
    for item in items:
        last = out[-1] if out else None
        if isinstance(item, _KeptAt):
            out.append(_KeptAt(item.rule, tuple(_merged(item.items))))
        elif isinstance(last, _KeptRule) and last.decls == item.decls:
            out[-1] = _KeptRule(f"{last.selectors},{item.selectors}", item.decls)
        else:
            out.append(item)
    return out


def _write(item: _Kept, refs: set[str], idents: set[str]) -> str:
    if isinstance(item, _KeptRule):
        decls = [d.text for d in item.decls if not d.name.startswith("--") or d.name in refs]
        return f"{item.selectors}{{{';'.join(decls)}}}" if decls else ""
    rule = item.rule
    if rule.kind == "group":
        inner = "".join(_write(child, refs, idents) for child in item.items)
        return f"{rule.head}{{{inner}}}" if inner else ""
    if rule.kind == "keyframes" and rule.name not in idents:
        return ""
    return f"{rule.head}{{{rule.body}}}" if rule.body is not None else f"{rule.head};"
