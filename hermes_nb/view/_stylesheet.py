"""The chat view's stylesheet: its files, in cascade order, read once.

Two files by concern, ``static/chat.css`` (the view: reply, tools, status line, the streaming
reply's chunks) and ``static/cards.css`` (the cards that ask the person, and an edit's diff).
Everything that styles a view reads them through here, in this order: the fallback module's
code (:mod:`.widget`), each saved answer's subset (:mod:`._static`), and the extension's style
(``labextension/style/index.css`` imports the same files in the same order, which
``tests/test_labextension_packaging.py`` checks).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

#: The stylesheet's files in ``static/``, in cascade order (a later rule wins a tie).
STYLESHEETS = ("chat.css", "cards.css")

_STATIC = Path(__file__).parent / "static"


@cache
def stylesheet() -> str:
    """The view's whole stylesheet (without the code colours): every file of
    :data:`STYLESHEETS`, in order."""
    return "\n".join((_STATIC / name).read_text(encoding="utf-8") for name in STYLESHEETS)
