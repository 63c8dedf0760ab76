"""The session side of ``%hermes``: which stored session a turn goes to, and the sub-commands
about sessions.

:class:`_SessionCommands`, mixed into :class:`~.magics.HermesMagics`: the notebook's default
session (named after the notebook's path where the server provides it, ``JPY_SESSION_NAME``),
``--session`` / ``--new``, and ``sessions``, ``session``, ``history``, ``branch``, ``compress``,
``search``, ``export`` and ``profiles``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from IPython.core.error import UsageError

from ..core import md_table, short
from ..core.exceptions import HermesError, SessionNotFound
from ._help import _md
from ._options import _no_args

_NOTEBOOK_SESSION_PREFIX = "notebook:"


def _notebook_session_name() -> str | None:
    """The default session's name: the notebook's path where the server provides it."""
    path = os.environ.get("JPY_SESSION_NAME")
    return f"{_NOTEBOOK_SESSION_PREFIX}{path}" if path else None


#: How much of each message ``%hermes history`` shows.
HISTORY_EXCERPT = 600
_FENCE = re.compile(r"\s{0,3}(`{3,}|~{3,})")


def _excerpt(text: str, limit: int = HISTORY_EXCERPT) -> str:
    """The start of a message with its Markdown whole: cut at a line's end, a code block it
    cuts into closed again, and "…" where it was cut."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    cut = cut[: cut.rindex("\n")] if "\n" in cut else cut
    opened = ""  # the fence of the code block the cut is in, if any
    for match in map(_FENCE.match, cut.splitlines()):
        fence = match.group(1) if match else ""
        if fence and not opened:
            opened = fence
        elif fence and fence[0] == opened[0] and len(fence) >= len(opened):
            opened = ""
    if opened:  # close it, so the rest of the history is not read as code
        cut += "\n" + opened
    return cut + "\n\n…"


def _label(session: Any, *, markdown: bool = False) -> str:
    """A session as a message names it: its name quoted, else its short id — in backticks only
    where the message is rendered as Markdown (a printed line shows them as they are)."""
    if session.name:
        return repr(session.name)
    return f"`{session.id[:12]}`" if markdown else session.id[:12]


class _SessionCommands:
    """The notebook's session and the session sub-commands, mixed into
    :class:`~.magics.HermesMagics` (which sets ``_session`` in its ``__init__``)."""

    _session: Any

    def _session_for(self, args: Any) -> Any:
        from ..store.sessions import Session

        if args.session:
            if args.new:
                raise UsageError("Use either --new or --session, not both.")
            session = Session.open_or_create(args.session, profile=args.profile)
            self._session = session
            return session
        if args.new or self._session is None:
            name = _notebook_session_name()
            if args.new:
                if name is not None:
                    try:
                        Session.open(name).rename(None)
                    except HermesError:
                        pass
                self._session = Session.new(name=name, profile=args.profile)
            elif name is not None:
                self._session = Session.open_or_create(name, profile=args.profile)
            else:
                self._session = Session.new(profile=args.profile)
        return self._session

    def _current_session(self) -> Any:
        if self._session is None:
            from types import SimpleNamespace

            return self._session_for(SimpleNamespace(session=None, new=False, profile=None))
        return self._session

    # -- sub-commands ---------------------------------------------------------------------------

    def _list_sessions(self, arg: str) -> Any:
        from ..store import sessions
        from ..store.database import get_store

        _no_args("sessions", arg)
        current = self._session.id if self._session is not None else None
        rows = [
            (
                f"`{s.id[:12]}`" + (" ◀ current" if s.id == current else ""),
                s.name,
                short(s.title or ""),
                s.source,
                s.profile,
            )
            for s in sessions.list()
        ]
        if not rows:
            return _md("No sessions yet. Ask something with `%hermes` to start one.")
        table = md_table(("id", "name", "title", "source", "profile"), rows)
        _, archived = get_store().count_sessions()
        if archived:  # the same count as %hermes doctor's
            table += f"\n\n{archived} archived by compression: not listed, their continuations are."
        return _md(table)

    def _switch_session(self, arg: str) -> None:
        from ..store.database import get_store
        from ..store.sessions import Session

        if not arg:
            raise UsageError("Usage: %hermes session NAME_OR_ID")
        try:
            self._session = Session.open(arg)
            print(f"hermes: now in session {_label(self._session)}.")
        except SessionNotFound:
            self._session = Session.new(name=arg)
            if self._session.unsaved:  # a read-only or full store: say so now, not at its turn
                store = get_store()
                print(
                    f"hermes: started session {arg!r} for this kernel only: the session store "
                    f"{store.path} {store.read_only or 'cannot be written'}, so it is not saved."
                )
            else:
                print(f"hermes: started new session {arg!r}.")

    def _history(self, arg: str) -> Any:
        _no_args("history", arg)
        session = self._current_session()
        messages = session.messages
        if not messages:
            return _md(f"Session {_label(session, markdown=True)} has no messages yet.")
        parts = [f"**Session {_label(session, markdown=True)}** — {len(messages)} messages"]
        for i, m in enumerate(messages, start=1):
            flag = " *(partial)*" if m.partial else ""
            quoted = "\n".join(f"> {line}".rstrip() for line in _excerpt(m.content).splitlines())
            parts.append(f"**{i}. {m.role}**{flag}\n\n{quoted or '> *(empty)*'}")
        return _md("\n\n".join(parts))

    def _branch(self, arg: str) -> None:
        session = self._current_session()
        count = len(session.messages)
        if arg:
            if not arg.isdigit():
                raise UsageError(f"branch takes a message count, not {arg!r}.")
            k = int(arg)
            if k > count:
                raise UsageError(f"The session has only {count} messages; branch at 0–{count}.")
        else:
            k = count
        self._session = session.branch(k)
        print(f"hermes: branched {_label(session)} at message {k} → {_label(self._session)}.")

    def _compress(self, arg: str) -> None:
        _no_args("compress", arg)
        old = self._current_session()
        self._session = old.compress()
        print(
            f"hermes: compressed {_label(old)} (archived) → continuing in {_label(self._session)}."
        )

    def _search(self, arg: str) -> Any:
        from ..store import sessions

        if not arg:
            raise UsageError("Usage: %hermes search TEXT")
        hits = sessions.search(arg)
        if not hits:
            return _md(f"Nothing found for {arg!r}.")
        rows = [
            (f"`{h.session_id[:12]}`", short(h.title or ""), h.position, short(h.snippet, 120))
            for h in hits
        ]
        return _md(md_table(("session", "title", "message", "match"), rows))

    def _export(self, arg: str) -> Any:
        from IPython.display import JSON

        parts = arg.split()
        fmt = parts[0] if parts else "md"
        if fmt not in ("md", "json") or len(parts) > 2:
            raise UsageError("Usage: %hermes export [md|json] [FILE]")
        text = self._current_session().export(fmt)
        if len(parts) == 2:
            path = os.path.expanduser(parts[1])
            try:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except OSError as exc:
                raise UsageError(f"Cannot write {path}: {exc.strerror}.") from None
            print(f"hermes: exported to {path}.")
            return None
        if fmt == "json":
            import json

            return JSON(json.loads(text))
        return _md(text)

    def _profiles(self, arg: str) -> Any:
        from ..core.config import load_config

        _no_args("profiles", arg)
        config = load_config()
        rows = []
        for name, p in sorted(config.profiles.items()):
            mark = " ◀ default" if name == config.default_profile else ""
            if p.api_key_env:
                key = f"`{p.api_key_env}` {'set' if os.environ.get(p.api_key_env) else 'not set'}"
            else:
                key = "none needed"
            rows.append((f"{name}{mark}", p.provider, p.model, p.base_url or "", key))
        header = ("profile", "provider", "model", "endpoint", "key")
        return _md(f"Config: `{config.path}`\n\n{md_table(header, rows)}")
