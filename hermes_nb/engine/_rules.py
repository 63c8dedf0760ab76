"""The project's rules: an ``AGENTS.md`` (or ``HERMES.md``) the system prompt carries.

Coding agents read a Markdown file of project rules from the folder they work in (``AGENTS.md``
is the common name; ``HERMES.md`` is ours). A notebook's turn looks for one in the notebook's
folder, then in each parent up to the repository's root (the folder holding ``.git``) or the
home folder, whichever comes first; the nearest wins, ``AGENTS.md`` before ``HERMES.md`` in one
folder. Its text joins the system prompt after the profile's own, cut at :data:`RULES_LIMIT`
bytes with a note saying so, and the view's head names it.

A rules file that cannot be read (not UTF-8, unreadable) is one sentence in the view and the
turn runs without it. A profile's ``rules = false``, ``%hermes --no-rules`` and a call without a
folder (``chat()`` from a script) send none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.profiles import Profile

__all__ = ["RULES_FILES", "RULES_LIMIT", "Rules", "find_rules", "rules_prompt", "turn_rules"]

#: The file names looked for, in order of preference within one folder.
RULES_FILES = ("AGENTS.md", "HERMES.md")
#: The most of a rules file the system prompt carries, in bytes of UTF-8.
RULES_LIMIT = 16 * 1024


@dataclass(frozen=True)
class Rules:
    """A rules file found for a turn: where, its text (cut to :data:`RULES_LIMIT`), and why it
    was skipped (``problem``, one sentence; the text is then empty)."""

    path: Path
    text: str = ""
    #: bytes left out beyond the limit (0: the whole file)
    cut: int = 0
    problem: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """What the view's head says: ``rules: AGENTS.md`` (and that it was cut or skipped)."""
        if self.problem:
            return f"rules: {self.name} skipped — {self.problem}"
        cut = f" (cut to {RULES_LIMIT // 1024} KB)" if self.cut else ""
        return f"rules: {self.name}{cut}"


def _stops(folder: Path) -> bool:
    """The search ends here: a repository's root, or the home folder."""
    try:
        return (folder / ".git").exists() or folder == Path.home().resolve()
    except OSError:
        return True


def find_rules(folder: str | os.PathLike[str]) -> Rules | None:
    """The rules for a notebook in ``folder``: the nearest ``AGENTS.md`` / ``HERMES.md`` in it
    or a parent, up to the repository root or home; None when there is none."""
    try:
        start = Path(folder).expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    for where in (start, *start.parents):
        for name in RULES_FILES:
            path = where / name
            if path.is_file():
                return _read(path)
        if _stops(where):
            return None
    return None


def _read(path: Path) -> Rules:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Rules(path, problem=f"it cannot be read ({exc.strerror or exc}).")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Rules(
            path, problem="it is not UTF-8 text; save it as UTF-8 to have the model read it."
        )
    if len(raw) <= RULES_LIMIT:
        return Rules(path, text.strip())
    kept = raw[:RULES_LIMIT].decode("utf-8", errors="ignore")
    return Rules(path, kept.strip(), cut=len(raw) - len(kept.encode("utf-8")))


def turn_rules(profile: Profile, folder: str | os.PathLike[str] | None) -> Rules | None:
    """The rules a turn of ``profile`` carries for a notebook in ``folder`` (None: no folder
    given, or the profile's ``rules`` is false)."""
    if folder is None or not profile.rules:
        return None
    return find_rules(folder)


def rules_prompt(rules: Rules | None) -> str:
    """The rules as the system prompt carries them ("" when there are none to send)."""
    if rules is None or not rules.text:
        return ""
    note = (
        f"\n\n[The rest of {rules.name} ({rules.cut:,} bytes) was cut: the system prompt takes "
        f"the first {RULES_LIMIT // 1024} KB.]"
        if rules.cut
        else ""
    )
    return (
        f"The project's rules, from {rules.name} in {rules.path.parent}; follow them:\n\n"
        f"{rules.text}{note}"
    )
