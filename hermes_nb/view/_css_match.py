"""Whether a CSS selector matches an element of a saved answer: the test :mod:`._css_subset`
keeps a rule by.

A small matcher rather than a library's: Beautiful Soup with soupsieve (the obvious one) took
3 s to parse a 550 KB answer on a busy machine and 0.3 s for each selector that did not match,
where the standard library's ``HTMLParser`` builds this tree in a tenth of that and an index of
classes and tag names finds each selector's candidates at once. The selectors are tinycss2
tokens (parsed once per stylesheet). It reads what a stylesheet for this view uses: type,
universal, class, id and attribute selectors (``=``, ``~=``, ``|=``, ``^=``, ``$=``, ``*=``),
the four combinators, ``:first-child``, ``:last-child``, ``:only-child``, ``:empty``, ``:root``,
``:link``, ``:any-link``, ``:disabled``, ``:enabled``, ``:checked``, ``:not()``, ``:is()``,
``:where()`` and ``:has()``. What only a person makes true (``:hover``, ``:focus-visible``, …),
a ``<details>`` they may open (``[open]``) and pseudo-elements match their element. Anything
else raises :class:`CannotTell` (another pseudo-class only when an element fits the rest of its
compound): the caller keeps such a rule, since it may match.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

__all__ = ["CannotTell", "Page", "Selector", "parse_selector", "split_selectors", "strip_blank"]

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_FORM = frozenset({"button", "input", "select", "textarea", "fieldset", "optgroup", "option"})
#: Pseudo-classes a person's pointer or keyboard makes true: they match their element.
_DYNAMIC = frozenset(
    {"hover", "active", "focus", "focus-visible", "focus-within", "target", "visited"}
)
#: Pseudo-elements in CSS 2's one-colon spelling.
_LEGACY_PSEUDO_ELEMENTS = frozenset({"before", "after", "first-line", "first-letter"})
_ATTR_OPS = frozenset({"=", "~=", "|=", "^=", "$=", "*="})
_COMBINATORS = frozenset({">", "+", "~"})


class CannotTell(ValueError):
    """A selector this matcher does not read (``:nth-child()``, a namespace, …)."""


# -- the answer's elements ---------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Node:
    tag: str
    attrs: dict[str, str]
    parent: _Node | None
    index: int = 0  # among its parent's element children
    children: list[_Node] = field(default_factory=list)
    filled: bool = False  # has a child element or text (so not :empty)
    classes: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        self.classes = frozenset(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    """Elements as a tree (end tags close what they name; void elements have no content)."""

    def __init__(self, root: _Node) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [root]
        self.nodes: list[_Node] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parent = self.stack[-1]
        node = _Node(tag, {k: v or "" for k, v in attrs}, parent, len(parent.children))
        parent.children.append(node)
        parent.filled = True
        self.nodes.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if data:
            self.stack[-1].filled = True


class Page:
    """An HTML fragment inside the elements a page puts around it (``<html>``, ``<body>``, and
    an element with ``host_classes``), with its elements indexed by class and tag name."""

    def __init__(self, html: str, host_classes: str) -> None:
        self.root = _Node("html", {}, None)
        self.body = _Node("body", {}, self.root)
        host = _Node("div", {"class": host_classes}, self.body)
        self.root.children.append(self.body)
        self.body.children.append(host)
        self.root.filled = self.body.filled = True
        builder = _Builder(host)
        builder.feed(html)
        builder.close()
        self.nodes = [self.root, self.body, host, *builder.nodes]
        self.by_class: dict[str, list[_Node]] = {}
        self.by_tag: dict[str, list[_Node]] = {}
        for node in self.nodes:
            self.by_tag.setdefault(node.tag, []).append(node)
            for cls in node.classes:
                self.by_class.setdefault(cls, []).append(node)

    def has(self, selector: Selector) -> bool:
        """Whether any element matches ``selector``: none if a class or tag it needs is absent,
        else its candidates from the indexes, each ancestor tried once (``memo``)."""
        for _, compound in selector.parts:
            if any(c not in self.by_class for c in compound.classes):
                return False
            if compound.tag is not None and compound.tag not in self.by_tag:
                return False
        subject = selector.parts[-1][1]
        if subject.classes:
            candidates = min((self.by_class[c] for c in subject.classes), key=len)
        elif subject.tag is not None:
            candidates = self.by_tag[subject.tag]
        else:
            candidates = self.nodes
        last = len(selector.parts) - 1
        memo: dict[tuple[int, int], bool] = {}
        return any(_matches(node, selector.parts, last, None, memo) for node in candidates)


# -- selectors ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compound:
    """What one element must be: ``tag.class#id[attr=v]:pseudo``. ``anchor``: the element a
    ``:has()`` argument is relative to."""

    tag: str | None = None
    classes: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    attrs: tuple[tuple[str, str, str], ...] = ()  # (name, operator or "", value)
    tests: tuple[Callable[[_Node, _Node | None], bool], ...] = ()
    anchor: bool = False


@dataclass(frozen=True, slots=True)
class Selector:
    """A complex selector: ``(combinator, compound)`` pairs, the subject last; the first
    pair's combinator is ``""`` (or, inside ``:has()``, how it relates to its anchor)."""

    parts: tuple[tuple[str, _Compound], ...]


def parse_selector(tokens: Sequence[Any]) -> Selector:
    """One complex selector from its tinycss2 tokens; :class:`CannotTell` if it uses what this
    matcher does not read."""
    return Selector(tuple(_complex(tokens, relative=False)))


def _complex(tokens: Sequence[Any], *, relative: bool) -> list[tuple[str, _Compound]]:
    groups: list[tuple[str, list[Any]]] = []
    combinator, space = "", False
    if not relative and tokens and _is(tokens[0], "literal") and tokens[0].value in _COMBINATORS:
        raise CannotTell("a selector starts with a combinator")
    for token in tokens:
        if token.type in ("whitespace", "comment"):
            space = True
        elif token.type == "literal" and token.value in _COMBINATORS:
            combinator, space = token.value, False
        else:
            if space or combinator or not groups:
                if groups or relative:
                    groups.append((combinator or " ", []))
                else:
                    groups.append(("", []))
                combinator, space = "", False
            groups[-1][1].append(token)
    if combinator or not groups:
        raise CannotTell("a selector ends with a combinator or is empty")
    parts = [(comb, _compound(simple)) for comb, simple in groups]
    if relative:  # :has(> .x): the first compound relates to the anchor
        parts.insert(0, ("", _Compound(anchor=True)))
    return parts


def _compound(tokens: list[Any]) -> _Compound:
    tag: str | None = None
    classes: list[str] = []
    ids: list[str] = []
    attrs: list[tuple[str, str, str]] = []
    tests: list[Callable[[_Node, _Node | None], bool]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        after: Any = tokens[i + 1] if i + 1 < len(tokens) else None
        if i == 0 and token.type == "ident":
            tag = token.lower_value
        elif i == 0 and token.type == "literal" and token.value == "*":
            pass
        elif token.type == "literal" and token.value == "." and _is(after, "ident"):
            classes.append(after.value)
            i += 1
        elif token.type == "hash":
            ids.append(token.value)
        elif token.type == "[] block":
            attr = _attribute(token.content)
            if attr is not None:
                attrs.append(attr)
        elif token.type == "literal" and token.value == ":":
            if _is(after, "literal") and after.value == ":":  # a pseudo-element: its element
                i += 3
                continue
            tests.append(_pseudo(after))
            i += 1
        else:
            raise CannotTell(f"{token.type} in a selector")
        i += 1
    return _Compound(tag, tuple(classes), tuple(ids), tuple(attrs), tuple(tests))


def _is(token: Any, kind: str) -> bool:
    return token is not None and token.type == kind


def _attribute(content: Sequence[Any]) -> tuple[str, str, str] | None:
    """``[name]``, ``[name op value]`` (None for ``[open]``, which a person changes)."""
    parts = [t for t in content if t.type not in ("whitespace", "comment")]
    if not parts or parts[0].type != "ident":
        raise CannotTell("an attribute selector without a name")
    name = parts[0].lower_value
    if name == "open":
        return None
    if len(parts) == 1:
        return (name, "", "")
    op, value = parts[1], parts[2] if len(parts) > 2 else None
    if op.type != "literal" or op.value not in _ATTR_OPS or value is None:
        raise CannotTell("an attribute selector this matcher does not read")
    if value.type not in ("ident", "string") or len(parts) > 3:  # a case flag: cannot tell
        raise CannotTell("an attribute selector this matcher does not read")
    return (name, op.value, value.value)


def _pseudo(token: Any) -> Callable[[_Node, _Node | None], bool]:
    if _is(token, "ident"):
        name = token.lower_value
        if name in _DYNAMIC or name in _LEGACY_PSEUDO_ELEMENTS:
            return lambda _n, _a: True
        simple = _PSEUDO_CLASSES.get(name)
        if simple is not None:
            return lambda n, _a: simple(n)
    elif _is(token, "function") and token.lower_name in ("not", "is", "where", "has"):
        negate, relative = token.lower_name == "not", token.lower_name == "has"
        group = [
            tuple(_complex(part, relative=relative)) for part in split_selectors(token.arguments)
        ]
        if relative:
            return lambda n, _a: any(_has(n, parts) for parts in group)
        if negate:
            return lambda n, a: not any(_matches(n, p, len(p) - 1, a) for p in group)
        return lambda n, a: any(_matches(n, p, len(p) - 1, a) for p in group)
    return _cannot_tell


def _cannot_tell(_node: _Node, _anchor: _Node | None) -> bool:
    """A pseudo-class this matcher does not read (``:nth-last-child()``, …), asked of an element
    that fits the rest of its compound. Raised then, not when the selector is read: a selector
    that needs a class, tag or ancestor the answer does not have matches nothing whatever its
    pseudo-classes say (``.hnb-chat:not(.hnb-static) .hnb-chunk:nth-last-child(n+3)``, the live
    view's, left every saved answer's stylesheet)."""
    raise CannotTell("a pseudo-class this matcher does not read")


def split_selectors(tokens: Sequence[Any]) -> list[list[Any]]:
    """A selector list at its top-level commas, each selector without outer whitespace.

    Shared with _css_subset, which cuts a rule's prelude the same way; empty
    parts are dropped, and stripping lets :not( > .x) fail as a leading combinator.
    """
    parts: list[list[Any]] = [[]]
    for token in tokens:
        if token.type == "literal" and token.value == ",":
            parts.append([])
        else:
            parts[-1].append(token)
    return [strip_blank(p) for p in parts if strip_blank(p)]


def strip_blank(tokens: Sequence[Any]) -> list[Any]:
    """The tokens without leading and trailing whitespace or comments."""
    tokens = list(tokens)
    while tokens and tokens[0].type in ("whitespace", "comment"):
        tokens.pop(0)
    while tokens and tokens[-1].type in ("whitespace", "comment"):
        tokens.pop()
    return tokens


_PSEUDO_CLASSES: dict[str, Callable[[_Node], bool]] = {
    "first-child": lambda n: n.parent is not None and n.index == 0,
    "last-child": lambda n: n.parent is not None and n.index == len(n.parent.children) - 1,
    "only-child": lambda n: n.parent is not None and len(n.parent.children) == 1,
    "empty": lambda n: not n.filled,
    "root": lambda n: n.parent is None,
    "link": lambda n: n.tag in ("a", "area") and "href" in n.attrs,
    "any-link": lambda n: n.tag in ("a", "area") and "href" in n.attrs,
    "disabled": lambda n: n.tag in _FORM and "disabled" in n.attrs,
    "enabled": lambda n: n.tag in _FORM and "disabled" not in n.attrs,
    "checked": lambda n: "checked" in n.attrs or (n.tag == "option" and "selected" in n.attrs),
}


# -- matching ----------------------------------------------------------------------------------


def _matches(
    node: _Node,
    parts: Sequence[tuple[str, _Compound]],
    i: int,
    anchor: _Node | None,
    memo: dict[tuple[int, int], bool] | None = None,
) -> bool:
    """Whether ``node`` matches ``parts[i]`` and the parts before it relate as they say
    (``memo``: the answers so far for these ``parts``, by element and part)."""
    if memo is not None:
        key = (id(node), i)
        seen = memo.get(key)
        if seen is None:
            seen = memo[key] = _match_here(node, parts, i, anchor, memo)
        return seen
    return _match_here(node, parts, i, anchor, memo)


def _match_here(
    node: _Node,
    parts: Sequence[tuple[str, _Compound]],
    i: int,
    anchor: _Node | None,
    memo: dict[tuple[int, int], bool] | None,
) -> bool:
    combinator, compound = parts[i]
    if not _fits(node, compound, anchor):
        return False
    if i == 0:
        return True
    if combinator == ">":
        return node.parent is not None and _matches(node.parent, parts, i - 1, anchor, memo)
    if combinator == " ":
        up = node.parent
        while up is not None:
            if _matches(up, parts, i - 1, anchor, memo):
                return True
            up = up.parent
        return False
    siblings = node.parent.children if node.parent is not None else []
    if combinator == "+":
        return node.index > 0 and _matches(siblings[node.index - 1], parts, i - 1, anchor, memo)
    return any(_matches(s, parts, i - 1, anchor, memo) for s in siblings[: node.index])  # "~"


def _fits(node: _Node, c: _Compound, anchor: _Node | None) -> bool:
    if c.anchor:
        return node is anchor
    if c.tag is not None and node.tag != c.tag:
        return False
    if c.classes and not node.classes.issuperset(c.classes):
        return False
    if c.ids and any(node.attrs.get("id") != i for i in c.ids):
        return False
    for name, op, value in c.attrs:
        have = node.attrs.get(name)
        if have is None or not _attr_fits(have, op, value):
            return False
    return all(test(node, anchor) for test in c.tests)


def _attr_fits(have: str, op: str, value: str) -> bool:
    if op == "=":
        return have == value
    if op == "~=":
        return value in have.split()
    if op == "|=":
        return have == value or have.startswith(value + "-")
    if op == "^=":
        return bool(value) and have.startswith(value)
    if op == "$=":
        return bool(value) and have.endswith(value)
    if op == "*=":
        return bool(value) and value in have
    return True  # [name]: present


def _has(node: _Node, parts: tuple[tuple[str, _Compound], ...]) -> bool:
    """``:has()``: an element relative to ``node`` matches (``node`` is the anchor)."""
    last = len(parts) - 1
    lead = parts[1][0] if len(parts) > 1 else " "
    if lead in ("+", "~"):
        pool = node.parent.children[node.index + 1 :] if node.parent is not None else []
        candidates = list(_descendants(pool)) if last > 1 else pool
    else:
        candidates = list(_descendants(node.children))
    return any(_matches(c, parts, last, node) for c in candidates)


def _descendants(nodes: Sequence[_Node]) -> list[_Node]:
    out: list[_Node] = []
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.children))
    return out
