"""The client side of ACP as hermes_nb plays it: updates to the turn, permissions to the person.

The SDK's connection calls these methods for what the agent sends:

* ``session/update`` goes to the :class:`~._updates.TurnSink` of the turn running in that ACP
  session; with no turn (a stopped turn's late chunks, the commands an agent lists after
  ``session/new``) it is dropped;
* ``session/request_permission`` becomes an approval card through the turn's ``Asker``: the text
  is the tool call's title, the detail what will run, verbatim (the command, the diff, the raw
  input), and the buttons the agent's own options, by their names (their ids are the answers).
  The four answers are taken too (``%hermes approve``, ``run.answer(prompt_id, "once")``):
  ``once`` picks the agent's ``allow_once`` option; ``session`` an ``allow_always`` option
  that says it is for the session (hermes' ``allow_session``), else ``allow_once``; ``always``
  an ``allow_always`` option that does not, else the session one, else ``allow_once``; ``deny``
  its ``reject_once`` (else ``reject_always``): never more than the person allowed. The broker
  names the options when it refuses any other answer.
  No asker, a deadline or a denial rejects; Stop, shutdown or a turn already over answers
  ``cancelled``, as the protocol asks of a client that cancelled;
* ``fs/read_text_file`` reads inside the agent's folder only; anything outside is refused with a
  JSON-RPC error saying why;
* ``fs/write_text_file`` writes inside the folder after an approval whose detail is the unified
  diff of the file as it is against what the agent wants it to be.

No terminal capability is offered, so the SDK answers terminal requests with "method not found".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acp import RequestError
from acp.schema import (
    AllowedOutcome,
    DeniedOutcome,
    PermissionOption,
    ReadTextFileResponse,
    RequestPermissionResponse,
    WriteTextFileResponse,
)

from ...core.prompts import APPROVAL_VALUES, Option
from ..base import Asker
from ._updates import TurnSink, diff_text, tool_detail

__all__ = ["AgentClient", "TurnState"]

#: The JSON-RPC error code of a request hermes_nb refuses (a path outside the folder, a denial).
_REFUSED = -32602
#: ACP's "resource not found".
_NOT_FOUND = -32002


def _session_scoped(option: PermissionOption) -> bool:
    """An ``allow_always`` option that lasts only for the session (ACP has no kind for it, so
    agents say so in the id or the name: hermes' ``allow_session``)."""
    return "session" in f"{option.option_id} {option.name}".lower()


# For each approval answer, the options that may carry it out, best first: never one that
# allows more than the person did ("session" falls back to once, not to always).
_CHOICES: dict[str, tuple[Callable[[PermissionOption], bool], ...]] = {
    "once": (lambda o: o.kind == "allow_once",),
    "session": (
        lambda o: o.kind == "allow_always" and _session_scoped(o),
        lambda o: o.kind == "allow_once",
    ),
    "always": (
        lambda o: o.kind == "allow_always" and not _session_scoped(o),
        lambda o: o.kind == "allow_always",
        lambda o: o.kind == "allow_once",
    ),
    "deny": (lambda o: o.kind == "reject_once", lambda o: o.kind == "reject_always"),
}


@dataclass
class TurnState:
    """The turn running in one ACP session: where its updates go and whom to ask."""

    sink: TurnSink
    asker: Asker | None


def _cancelled() -> RequestPermissionResponse:
    return RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled"))


def _pick(value: str, options: list[PermissionOption]) -> PermissionOption | None:
    """The agent's option for an approval answer, or the option whose id the answer is."""
    for option in options:
        if option.option_id == value:
            return option
    for fits in _CHOICES.get(value, ()):
        for option in options:
            if fits(option):
                return option
    return None


class AgentClient:
    """What the agent may ask of hermes_nb, for every ACP session of one agent process."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.turns: dict[str, TurnState] = {}

    # -- session/update --------------------------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        turn = self.turns.get(session_id)
        if turn is not None:
            turn.sink.add(update)

    # -- session/request_permission --------------------------------------------------------------

    async def request_permission(
        self, session_id: str, tool_call: Any, options: list[PermissionOption], **kwargs: Any
    ) -> RequestPermissionResponse:
        turn = self.turns.get(session_id)
        if turn is None or turn.sink.closed:
            return _cancelled()
        known = turn.sink.calls.get(str(tool_call.tool_call_id))
        title = tool_call.title or (known or {}).get("title") or "The agent asks for permission"
        detail = tool_detail(tool_call, known) or title
        if turn.asker is None:
            value = "deny"
        else:
            # The agent's own options are the buttons; the four answers are taken as well.
            own = [
                Option(o.option_id, o.name or o.option_id, o.kind.startswith("allow"))
                for o in options
                if o.option_id not in APPROVAL_VALUES
            ]
            answer = await turn.asker.ask("approval", title, detail, options=own)
            if answer.by in ("stop", "shutdown") or turn.sink.closed:
                return _cancelled()
            value = answer.value
        option = _pick(value, options)
        if option is None:
            return _cancelled()
        return RequestPermissionResponse(
            outcome=AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    # -- fs/* ------------------------------------------------------------------------------------

    def _inside(self, path: str, verb: str) -> Path:
        """``path`` resolved, if it is inside the agent's folder; a refusal otherwise."""
        target = Path(path)
        if not target.is_absolute():
            raise RequestError(
                _REFUSED, f"hermes_nb cannot {verb} {path!r}: ACP paths must be absolute."
            )
        resolved = target.resolve()
        if resolved != self.cwd and self.cwd not in resolved.parents:
            raise RequestError(
                _REFUSED,
                f"hermes_nb refused to {verb} {path}: it is outside {self.cwd}, the folder this "
                "agent may use (the profile's cwd).",
            )
        return resolved

    async def read_text_file(
        self,
        session_id: str,
        path: str,
        line: int | None = None,
        limit: int | None = None,
        **kwargs: Any,
    ) -> ReadTextFileResponse:
        target = self._inside(path, "read")
        try:
            text = target.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise RequestError(
                _NOT_FOUND, f"hermes_nb cannot read {path}: there is no such file.", {"uri": path}
            ) from None
        except OSError as exc:
            raise RequestError(_REFUSED, f"hermes_nb cannot read {path}: {exc.strerror}.") from None
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max(0, (line or 1) - 1)
            text = "".join(lines[start : None if limit is None else start + max(0, limit)])
        return ReadTextFileResponse(content=text)

    async def write_text_file(
        self, session_id: str, path: str, content: str, **kwargs: Any
    ) -> WriteTextFileResponse | None:
        target = self._inside(path, "write")
        turn = self.turns.get(session_id)
        if turn is None or turn.sink.closed or turn.asker is None:
            raise RequestError(
                _REFUSED, f"hermes_nb refused to write {path}: nobody can approve it now."
            )
        old: str | None = None
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            old = target.read_text(encoding="utf-8", errors="replace")
        detail = diff_text(str(target), old, content) or f"(no change to {target})"
        answer = await turn.asker.ask("approval", f"Write {target}", detail)
        if answer.value not in ("once", "session", "always") or answer.by in ("stop", "shutdown"):
            raise RequestError(
                _REFUSED, f"The person at the notebook did not allow writing {path}."
            )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise RequestError(
                _REFUSED, f"hermes_nb cannot write {path}: {exc.strerror}."
            ) from None
        return WriteTextFileResponse()
