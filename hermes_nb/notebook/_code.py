"""Code from a reply back into the notebook: ``%hermes code [N]`` and ``--code``.

A reply's code blocks are found by markdown-it-py (the same parser that renders the reply), so
what counts as a code block here is exactly what the view shows as one: fenced blocks of any
language and indented blocks, never inline code. The notebook gets them through IPython's
``set_next_input``, which every front end that speaks the Jupyter protocol honours (JupyterLab,
Notebook 7, VS Code) and terminal IPython puts at the next prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..core.exceptions import HermesError

__all__ = ["CODE_ONLY", "code_blocks", "last_reply", "pick"]

#: What ``--code`` adds to the turn's system prompt (jupyter-ai's ``-f code``, in words).
CODE_ONLY = (
    "Answer with code only: a single fenced code block for a Jupyter notebook cell, in the "
    "notebook's language (Python unless told otherwise), with short comments where needed. "
    "No explanation before or after the block."
)


def code_blocks(markdown: str) -> list[str]:
    """The code blocks of ``markdown``, in order, each without its trailing newline."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(markdown)
    return [t.content.rstrip("\n") for t in tokens if t.type in ("fence", "code_block")]


def last_reply(messages: Sequence[Any]) -> str:
    """The text of the session's last assistant reply that said something (a tool-loop step
    with only calls is skipped). :class:`HermesError` when there is none yet."""
    for message in reversed(messages):
        if message.role == "assistant" and (message.content or "").strip():
            return str(message.content)
    raise HermesError(
        "This session has no reply yet.", hint="Ask something first, then %hermes code."
    )


def pick(blocks: list[str], spec: str) -> tuple[str, str]:
    """The code for ``%hermes code [N]``, and how to say what it is: block ``N`` (1 is the
    first, -1 the last), or every block joined by a blank line."""
    if not blocks:
        raise HermesError(
            "The last reply has no code block.",
            hint="Ask for code (%hermes --code …) or copy it from the chat view.",
        )
    spec = spec.strip()
    if not spec:
        what = "the code block" if len(blocks) == 1 else f"the {len(blocks)} code blocks"
        return "\n\n".join(blocks), what
    try:
        n = int(spec)
    except ValueError:
        raise HermesError(
            f"%hermes code takes a block number, not {spec!r}.",
            hint=f"1 to {len(blocks)}, -1 for the last, or nothing for all of them.",
        ) from None
    if n == 0 or not -len(blocks) <= n <= len(blocks):
        raise HermesError(
            f"The last reply has {len(blocks)} code block{'s' if len(blocks) != 1 else ''}, "
            f"so there is no block {n}.",
            hint=f"Use 1 to {len(blocks)}, or -1 for the last.",
        )
    index = n - 1 if n > 0 else len(blocks) + n
    return blocks[index], f"code block {index + 1} of {len(blocks)}"
