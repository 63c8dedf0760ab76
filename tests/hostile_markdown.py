"""Markdown a model (or a prompt injection speaking through one) might produce to attack a view.

``HOSTILE`` is ``(name, markdown)`` pairs: each renders to HTML that must contain nothing
executable (``tests/test_render.py`` parses the output and checks tags, attributes and URLs).
``TRICKY`` is ``(name, markdown)`` documents whose blocks change shape as text arrives: the
streaming renderer must agree with a full render at every step.
"""

from __future__ import annotations

_JS = "javascript:alert(document.domain)"

HOSTILE: list[tuple[str, str]] = [
    # Raw HTML: markdown-it must show it as text.
    ("script tag", "<script>alert(1)</script>"),
    ("script block", "<script>\nalert(1)\n</script>\n\ntext"),
    ("script inline", "hello <script>alert(1)</script> world"),
    ("img onerror", "<img src=x onerror=alert(1)>"),
    ("img onerror quoted", '<img src="x" onerror="alert(1)">'),
    ("svg onload", "<svg onload=alert(1)>"),
    ("svg inline", "a <svg><script>alert(1)</script></svg> b"),
    ("iframe", '<iframe src="javascript:alert(1)"></iframe>'),
    ("iframe srcdoc", '<iframe srcdoc="<script>alert(1)</script>"></iframe>'),
    ("object", '<object data="javascript:alert(1)"></object>'),
    ("embed", '<embed src="data:text/html,<script>alert(1)</script>">'),
    ("style tag", "<style>body{background:url(javascript:alert(1))}</style>"),
    ("style attribute", '<p style="background:url(javascript:alert(1))">x</p>'),
    ("event handlers", '<div onclick="alert(1)" onmouseover=alert(1) ONLOAD=alert(1)>x</div>'),
    ("handler after slash", "<img/src/onerror=alert(1)>"),
    ("details ontoggle", "<details open ontoggle=alert(1)>"),
    ("body onload", "<body onload=alert(1)>"),
    ("math", '<math><mtext><a href="javascript:alert(1)">x</a></mtext></math>'),
    ("form action", '<form action="javascript:alert(1)"><button>go</button></form>'),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">'),
    ("base href", '<base href="javascript:alert(1)//">'),
    ("html comment", "<!-- <script>alert(1)</script> -->"),
    ("cdata", "<![CDATA[<script>alert(1)</script>]]>"),
    ("html in list", "- <img src=x onerror=alert(1)>\n- <script>alert(1)</script>"),
    ("html in quote", "> <iframe src=javascript:alert(1)>"),
    ("html in table", "| a |\n|---|\n| <img src=x onerror=alert(1)> |"),
    ("html in heading", "# <svg onload=alert(1)>"),
    # Links with dangerous schemes, in every disguise.
    ("javascript link", f"[click]({_JS})"),
    ("javascript mixed case", "[click](JaVaScRiPt:alert(1))"),
    ("javascript entity", "[click](&#106;avascript:alert(1))"),
    ("javascript hex entity", "[click](&#x6A;avascript&#x3A;alert(1))"),
    ("javascript named entity colon", "[click](javascript&colon;alert(1))"),
    ("javascript tab", "[click](<java\tscript:alert(1)>)"),
    ("javascript tab entity", "[click](java&#9;script:alert(1))"),
    ("javascript newline entity", "[click](java&#10;script:alert(1))"),
    ("javascript leading space", "[click](< javascript:alert(1)>)"),
    ("javascript control char", "[click](\x01javascript:alert(1))"),
    ("javascript nul", "[click](java\x00script:alert(1))"),
    ("javascript zero width", "[click](java\u200bscript:alert(1))"),
    ("javascript percent", "[click](javascript%3Aalert(1))"),
    ("javascript percent tab", "[click](java%09script:alert(1))"),
    ("javascript with title", f'[click]({_JS} "title")'),
    ("javascript reference", f"[click][x]\n\n[x]: {_JS}"),
    ("javascript reference entity", "[click][x]\n\n[x]: &#106;avascript:alert(1)"),
    ("javascript shortcut reference", f"[x]\n\n[x]: <{_JS}>"),
    ("javascript autolink", f"<{_JS}>"),
    ("javascript autolink mixed case", "<JAVASCRIPT:alert(1)>"),
    ("javascript in image", f"![x]({_JS})"),
    ("vbscript link", "[click](vbscript:msgbox(1))"),
    ("vbscript autolink", "<VBScript:msgbox(1)>"),
    ("data html link", "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"),
    ("data html autolink", "<data:text/html,<script>alert(1)</script>>"),
    ("data image as link", "[click](data:image/png;base64,iVBORw0KGgo=)"),
    ("data html image", "![x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)"),
    ("data svg image", "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)"),
    ("data svg image utf8", "![x](<data:image/svg+xml,<svg onload=alert(1)>>)"),
    ("data svg reference image", "![x][s]\n\n[s]: data:image/svg+xml;base64,PHN2Zz4="),
    ("relative image", "![x](/api/contents?delete=1)"),
    ("file link", "[x](file:///etc/passwd)"),
    ("unknown scheme", "[x](ms-settings:privacy)"),
    ("title breaks out", '[x](https://example.com "a\\" onmouseover=\\"alert(1)")'),
    ("alt breaks out", '![a" onerror="alert(1)](https://example.com/x.png)'),
    ("href breaks out", '[x](https://example.com/"onmouseover="alert(1))'),
    # Code: whatever is inside stays text.
    ("html in code span", '`<a href="javascript:alert(1)">x</a>`'),
    ("html in fence", "```html\n<script>alert(1)</script>\n<img src=x onerror=alert(1)>\n```"),
    ("fence info injection", '```js" onmouseover="alert(1)\nx\n```'),
    ("fence info html", "```<script>alert(1)</script>\nx\n```"),
    ("unclosed fence", "```python\n<script>alert(1)</script>\n# never closed"),
    ("indented code html", "    <script>alert(1)</script>"),
    # Entities and escapes.
    ("entity script", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ("double entity", "&amp;lt;script&amp;gt;"),
    ("numeric entity script", "&#60;script&#62;alert(1)&#60;/script&#62;"),
    ("escaped brackets", "\\<script\\>alert(1)\\</script\\>"),
    ("task list html", "- [ ] <img src=x onerror=alert(1)>\n- [x] <script>alert(1)</script>"),
    ("task list fake checkbox", '- [ ] <input type="checkbox" onclick="alert(1)">'),
    # Things that try to make the parser slow or deep.
    ("emphasis bomb", "*a **a " * 3000),
    ("nested emphasis bomb", "*" * 5000 + "a" + "*" * 5000),
    ("underscore bomb", "_a __a " * 3000),
    ("bracket bomb", "[" * 5000 + "a" + "](" * 2000),
    ("backtick bomb", "`" * 3000 + " a " + "``" * 1000),
    ("nested quotes", ">" * 2000 + " deep"),
    ("nested lists", "".join(" " * (2 * i) + "- x\n" for i in range(300))),
    ("link destination bomb", "[a](" + "(" * 5000 + ")"),
    ("entity bomb", "&#x6A;" * 5000),
    ("table bomb", "|" * 200 + "\n" + "|-" * 100 + "|\n" + "|x\n" * 200),
]

TRICKY: list[tuple[str, str]] = [
    (
        "setext headings",
        "Title line\n===\n\nTwo lines\nof heading\n---\n\nNot a heading\n\n---\n\nend\n",
    ),
    (
        "lists with blank lines",
        "- one\n- two\n\n  still two\n\n- three\n\n1. a\n2. b\n\n3) other list\n\nafter\n",
    ),
    (
        "fences",
        "```python\ndef f():\n    return '```'\n```\n\n````md\n```\ninner\n```\n````\n"
        "~~~\ntilde\n~~~~\n\n    indented\n\n    code\ntext\n```\nunclosed at the end\n",
    ),
    ("nested quotes", "> a\n> > b\n> > > c\nlazy\n\n> again\n\n>> two\n> one\n\nend\n"),
    (
        "table growing row by row",
        "Intro\n\n| name | value |\n|:-----|------:|\n| a | 1 |\n| b | 2 |\n| c | 3 |\n\nafter\n",
    ),
    ("table interrupting a paragraph", "para\n| a | b |\n| - | - |\n| 1 | 2 |\nmore\n\nend\n"),
    ("not quite a table", "para\n| a | b |\n|-x|\n\nnext\n"),
    # "|-" alone is a delimiter row for a one-column table, "|-x" is not: the line after a
    # complete "| a |" line still decides where the paragraph ends.
    ("one-column table that is not one", "para\n| a |\n|-x|\n\nnext\n\nlast\n"),
    (
        "interruptions",
        "para\n# heading\npara\n- item\n\npara\n> quote\npara\n***\npara\n```\ncode\n```\n",
    ),
    ("empty list item after blank", "- a\n\n-\n\n- c\n\n+ other\n\n*\n\n* * *\n"),
    (
        "forward reference",
        "See [the docs] and [b][other].\n\nMiddle paragraph.\n\n"
        '[the docs]: https://example.com/docs "Docs"\n[other]: /relative\n\nUse [the docs].\n',
    ),
    (
        "definition before use",
        "[a]: https://example.com/a\n\nfirst\n\nsecond uses [a]\n\nthird [a]\n\nfourth\n",
    ),
    (
        "reference title on next line",
        'Use [x].\n\n[x]: https://example.com\n"multi\nline title"\n\nafter\n',
    ),
    ("task lists", "- [ ] todo\n- [x] done\n\n1. [ ] ordered\n\n- [ ]\n- [x]not a task\n"),
    ("crlf", "a\r\nb\r\n\r\n# c\r\n- x\r\n- y\r\n\r\n```py\r\nx = 1\r\n```\r\n"),
    ("no trailing newline", "para\n\n# last"),
]
