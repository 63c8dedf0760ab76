"""The Hermes agent, in process: ``provider = "hermes-agent"`` (the ``agent`` extra).

Each turn builds a fresh ``run_agent.AIAgent`` from the profile's Hermes home and runs
``run_conversation`` in a thread of its own, so the runtime's loop stays free. (Not a thread of
anyio's pool: an agent turn can take minutes, and the pool's 40 slots also carry the store's
writes, which must never wait behind agents.) The agent's
callbacks are carried back to :meth:`HermesAgentProvider.stream` through an anyio memory object
stream (``anyio.from_thread.run_sync`` with the loop's token, because the agent calls them from
threads of its own) and become journal events::

    stream_delta_callback(text)                     → token      {text}
    reasoning_callback(text)                        → reasoning  {text}
    tool_start_callback(id, name, args)             → tool_start {id, name, arguments}
    tool_complete_callback(id, name, args, result)  → tool_end   {id, name, result, error,
                                                                  duration_ms}
    the result's token counts                       → usage

The home is the profile's ``env["HERMES_HOME"]``, else its ``hermes_home``, else
``$HERMES_HOME``, else ``~/.hermes``. Several agent turns of different profiles may run at once
while ``os.environ`` holds only one ``HERMES_HOME``, so the worker thread also binds the home
(and the credentials it resolves) with hermes-agent's own context-local overrides
(``set_hermes_home_override``, ``set_secret_scope``), which its config, SOUL.md, skills, memory
and session code read first. What the agent reads from the process environment (its terminal
settings, its session id, the home's ``.env``) is applied as an overlay with
:func:`~hermes_nb.core.profiles.profile_env` while the agent is built and runs: ``ENV_LOCK`` is held
only to write and to restore, never while the agent runs (DESIGN.md §3, invariants 11–12).
Importing hermes-agent loads the first home's ``.env`` into ``os.environ`` for good; those
values are put back at once.

Stop cancels the task iterating :meth:`~HermesAgentProvider.stream`: it calls
``agent.interrupt()`` and waits up to :attr:`~HermesAgentProvider.stop_grace` seconds for the
worker to return (hermes-agent answers an interrupt within a fraction of a second); turn.py
then keeps the partial and writes the cancel marker as for every provider. A failed agent run
(``failed`` in its result) becomes a classified :class:`~hermes_nb.core.exceptions.ProviderError`.

Options (a profile's ``[profiles.X.options]``, or keyword arguments to :func:`hermes_nb.chat`):

``toolsets``           the toolsets the agent may use (default: the home's configuration)
``disabled_toolsets``  toolsets to leave out
``max_iterations``     tool-calling iterations per turn (default 90)
``memory``             use the home's memory (default true)
``context_files``      read AGENTS.md and the like from the working directory (default false)
``approvals``          what happens when hermes-agent wants approval (a command it flags as
                       dangerous, an ``execute_code`` script, a memory write it gates):
                       ``"ask"`` (default): the run asks the person at the notebook and waits
                       (a ``prompt`` event; at the profile's ``prompt_timeout``, and on Stop,
                       the answer is ``deny``). ``once`` runs this one command; ``session`` also
                       approves its pattern (e.g. "delete in root path") for the rest of this
                       turn; ``always`` does that and, as hermes-agent defines it, adds the
                       pattern to its process-wide allowlist (no agent in the kernel asks for it
                       again) and writes that allowlist to the ``command_allowlist`` of the
                       profile home's ``config.yaml`` (so the Hermes CLI with that home stops
                       asking too). ``"deny"``: refuse them without asking. ``"allow"``: run
                       them without asking, as hermes-agent does in any non-interactive process

hermes-agent's own settings in the home still apply first, whatever ``approvals`` says: its
hardline patterns (``rm -rf /``, ``mkfs``, …) and the config's ``approvals.deny`` rules are always
refused; the config's ``command_allowlist`` and ``approvals.mode: off`` always run. With
``approvals.mode: smart`` (hermes-agent's default) an auxiliary model judges a flagged command
before anyone is asked: what it approves runs, under ``"ask"`` and ``"deny"`` too, and a command
it denies can be allowed only ``once``; ``approvals.mode: manual`` asks about every one.

With an asker (every engine turn) the agent's ``clarify`` tool asks the person its question
(its choices, or free text); unanswered (deadline, Stop) the model is told
:data:`~hermes_nb.core.prompts.NO_ANSWER`. Without one, hermes-agent tells the model the tool is
not available, and ``"ask"`` refuses as ``"deny"`` does.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from ..core.events import Event
from ..core.exceptions import ConfigError
from ..core.profiles import Profile, Secret, profile_env
from ._agent_approvals import _bind_approvals, _clarifier
from ._agent_bridge import RESULT_PREVIEW as RESULT_PREVIEW
from ._agent_bridge import _Bridge, _Control, _log_print
from ._agent_env import (
    _MISSING_HINT,
    MISSING_EXTRA,
    _agent_arguments,
    _dotenv,
    _environ,
    _load_agent,
    _overlay,
    _resolve,
)
from ._agent_failures import _startup_failure, classify_agent_failure
from ._agent_guard import restore_streams
from ._agent_guard import stream_guard_note as stream_guard_note
from ._agent_request import APPROVAL_MODES as APPROVAL_MODES
from ._agent_request import _Turn, agent_home
from .base import ProviderEvent, ProviderRequest

__all__ = [
    "MISSING_EXTRA",
    "HermesAgentProvider",
    "agent_available",
    "agent_home",
    "classify_agent_failure",
]

log = logging.getLogger(__name__)

_END = "__end__"


def agent_available() -> bool:
    """True if hermes-agent can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("run_agent") is not None
    except (ImportError, ValueError):
        return False


# -- the provider ----------------------------------------------------------------------------------


@dataclass
class HermesAgentProvider:
    """Runs a turn through the in-process Hermes agent (see the module docstring)."""

    profile: Profile
    name: str = "hermes-agent"
    #: Seconds to wait for the agent to return after ``interrupt()`` before leaving it behind.
    stop_grace: float = 3.0

    def __post_init__(self) -> None:
        if not agent_available():
            raise ConfigError(MISSING_EXTRA, hint=_MISSING_HINT)

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        turn = _Turn.from_request(self.profile, request)
        send, receive = anyio.create_memory_object_stream[tuple[str, Any]](math.inf)
        bridge = _Bridge(send, anyio.lowlevel.current_token())
        control = _Control()
        if turn.api_key:
            control.secrets.append(turn.api_key)
        worker = threading.Thread(
            target=_work,
            args=(turn, bridge, control),
            name=f"hermes-agent:{self.profile.name}",
            daemon=True,
        )
        outcome: tuple[str, Any] | None = None
        with send, receive:
            worker.start()
            try:
                async for event, data in receive:
                    if event == _END:
                        outcome = data
                        break
                    yield event, data
            finally:
                if outcome is None:  # Stop: interrupt the agent, give it a moment to return
                    bridge.close()
                    with anyio.move_on_after(self.stop_grace, shield=True):
                        await anyio.to_thread.run_sync(control.stop)
                        await anyio.to_thread.run_sync(
                            worker.join, self.stop_grace, abandon_on_cancel=True
                        )
                    if worker.is_alive():
                        log.warning(
                            "The Hermes agent of profile %s did not return within %g s of Stop; "
                            "it finishes in the background.",
                            self.profile.name,
                            self.stop_grace,
                        )
        assert outcome is not None  # a Stop leaves through the finally above
        kind, payload = outcome
        if kind == "error":
            raise payload
        failure = classify_agent_failure(payload, control.secrets)
        if failure is not None:
            raise failure
        final = payload.get("final_response")
        if not bridge.streamed and isinstance(final, str) and final.strip():
            yield Event.TOKEN.value, {"text": final}
        usage = {
            key: payload[key]
            for key in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens")
            if type(payload.get(key)) is int and (key != "reasoning_tokens" or payload[key])
        }
        if usage:
            yield Event.USAGE.value, usage


def _work(turn: _Turn, bridge: _Bridge, control: _Control) -> None:
    """The worker thread: build and run the agent, then hand the outcome to the stream."""
    try:
        outcome: tuple[str, Any] = ("result", _run(turn, bridge, control))
    except BaseException as exc:
        log.debug("The Hermes agent failed", exc_info=True)
        outcome = ("error", _startup_failure(exc, turn, control.secrets))
    bridge.put(_END, outcome)


def _run(turn: _Turn, bridge: _Bridge, control: _Control) -> dict[str, Any]:
    run_agent = _load_agent(turn.home)
    from agent.secret_scope import set_secret_scope
    from hermes_constants import set_hermes_home_override

    # Context-local, so concurrent agents of other homes are not affected; the thread (and its
    # context) ends with the turn, so nothing needs resetting.
    set_hermes_home_override(str(turn.home))
    dotenv = _dotenv(turn.home)
    set_secret_scope({**_environ(), **dotenv, **turn.profile.env})
    session_id = f"hermes-nb-{time.strftime('%Y%m%d_%H%M%S')}-{uuid.uuid4().hex[:6]}"
    approval_key = _bind_approvals(turn, control, session_id)
    try:
        return _converse(run_agent, turn, bridge, control, dotenv, session_id)
    finally:
        if approval_key is not None and turn.notebook_session is None:
            from tools.approval import clear_session

            clear_session(approval_key)  # without a stored session, "session" is this run


def _converse(
    run_agent: Any,
    turn: _Turn,
    bridge: _Bridge,
    control: _Control,
    dotenv: Mapping[str, str],
    session_id: str,
) -> dict[str, Any]:
    with profile_env(_overlay(turn, dotenv, session_id)):
        runtime = _resolve(turn)
        if runtime.get("api_key"):
            control.secrets.append(Secret(str(runtime["api_key"])))
        arguments = _agent_arguments(turn, runtime, session_id, bridge)
        if turn.asker is not None:
            arguments["clarify_callback"] = _clarifier(turn.asker, control)
        try:
            agent = run_agent.AIAgent(**arguments)
        finally:
            restore_streams()
        agent._print_fn = _log_print  # the agent's documented hook for its console output
        agent.suppress_status_output = True
        try:
            if not control.attach(agent):
                return {"final_response": "", "interrupted": True, "completed": False}
            return dict(
                agent.run_conversation(
                    turn.prompt, system_message=turn.system, conversation_history=turn.history
                )
            )
        finally:
            control.detach()
            agent.close()
            restore_streams()
