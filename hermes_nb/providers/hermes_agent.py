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
import json
import logging
import math
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..core.events import Event
from ..core.exceptions import ConfigError, ErrorKind, HermesError, ProviderError
from ..core.profiles import ENV_LOCK, Profile, Secret, profile_env
from ..core.prompts import NO_ANSWER
from .base import Asker, Message, ProviderEvent, ProviderRequest, classify_status, provider_error

__all__ = [
    "MISSING_EXTRA",
    "HermesAgentProvider",
    "agent_available",
    "agent_home",
    "classify_agent_failure",
]

log = logging.getLogger(__name__)

MISSING_EXTRA = 'The hermes-agent provider needs the agent extra: pip install "hermes-nb[agent]".'
_MISSING_HINT = "Install it into the environment the kernel runs in, then restart the kernel."

#: How much of a tool's result the ``tool_end`` event carries.
RESULT_PREVIEW = 2000
#: How much of the agent's own error text is quoted in ours.
_MAX_DETAIL = 300
#: Model names that mean "the model the Hermes home is configured with": config.toml's default
#: for a profile without ``model``, and the :class:`Profile` dataclass default.
_HOME_MODEL = {"", "default", "echo"}
_END = "__end__"
#: The ``approvals`` option's values, the default first.
APPROVAL_MODES = ("ask", "deny", "allow")

_import_lock = threading.Lock()


def agent_available() -> bool:
    """True if hermes-agent can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("run_agent") is not None
    except (ImportError, ValueError):
        return False


def agent_home(profile: Profile) -> Path:
    """The Hermes home a profile's agent uses (the same value :func:`profile_env` applies)."""
    chosen = profile.env.get("HERMES_HOME") or profile.hermes_home or os.environ.get("HERMES_HOME")
    return Path(os.path.expanduser(chosen)) if chosen else Path.home() / ".hermes"


# -- the request, as the agent takes it ------------------------------------------------------


def _flag(options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"The hermes-agent option {key} must be true or false, not {value!r}.")
    return value


def _names(options: Mapping[str, Any], key: str) -> list[str] | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(
            f"The hermes-agent option {key} must be a list of toolset names, not {value!r}."
        )
    return list(value)


@dataclass(frozen=True)
class _Turn:
    """Everything the worker thread needs, checked before it starts."""

    profile: Profile
    home: Path
    prompt: str
    system: str | None
    history: list[Message]
    model: str | None
    base_url: str | None
    api_key: Secret | None
    toolsets: list[str] | None = None
    disabled_toolsets: list[str] | None = None
    max_iterations: int | None = None
    memory: bool = True
    context_files: bool = False
    approvals: str = APPROVAL_MODES[0]
    #: How to ask the person (approvals, clarify); None: nobody can be asked.
    asker: Asker | None = None
    #: The notebook session (None for a plain history): "Allow for this session" lasts as long.
    notebook_session: str | None = None

    @classmethod
    def from_request(cls, profile: Profile, request: ProviderRequest) -> _Turn:
        options = {**profile.options, **request.extra}
        approvals = options.get("approvals", APPROVAL_MODES[0])
        if approvals not in APPROVAL_MODES:
            raise ConfigError(
                'The hermes-agent option approvals must be "ask", "deny" or "allow", '
                f"not {approvals!r}."
            )
        iterations = options.get("max_iterations")
        if iterations is not None and (
            not isinstance(iterations, int) or isinstance(iterations, bool) or iterations < 1
        ):
            raise ConfigError(
                f"The hermes-agent option max_iterations must be a positive whole number, "
                f"not {iterations!r}."
            )
        system, prompt, history = _split_messages(request.messages)
        return cls(
            profile=profile,
            home=agent_home(profile),
            prompt=prompt,
            system=system,
            history=history,
            model=None if (request.model or "").strip() in _HOME_MODEL else request.model,
            base_url=profile.base_url or None,
            api_key=request.api_key or None,
            toolsets=_names(options, "toolsets"),
            disabled_toolsets=_names(options, "disabled_toolsets"),
            max_iterations=iterations,
            memory=_flag(options, "memory", True),
            context_files=_flag(options, "context_files", False),
            approvals=approvals,
            asker=request.asker,
            notebook_session=request.session_id,
        )


def _text(content: Any) -> str:
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _split_messages(messages: list[Message]) -> tuple[str | None, str, list[Message]]:
    """The leading system text, the last user message, and the plain history before it."""
    start = 0
    system: list[str] = []
    while start < len(messages) and messages[start].get("role") == "system":
        system.append(_text(messages[start].get("content") or ""))
        start += 1
    last = max(
        (i for i in range(start, len(messages)) if messages[i].get("role") == "user"), default=-1
    )
    if last < 0:
        raise ConfigError("There is no user message for the Hermes agent to answer.")
    history = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in messages[start:last]
        if m.get("role") in ("user", "assistant") and m.get("content")
    ]
    joined = "\n\n".join(s for s in system if s.strip())
    return joined or None, _text(messages[last].get("content") or ""), history


# -- failures ----------------------------------------------------------------------------------

_STATUS = re.compile(r"\b(?:HTTP|[Ee]rror code:?|status(?: code)?:?)\s*([1-5]\d\d)\b")
_NETWORK = re.compile(
    r"connection (?:error|refused|reset)|could not connect|failed to connect|name resolution"
    r"|nodename nor servname|network is unreachable|connecterror",
    re.IGNORECASE,
)
_REASONS: dict[str, ErrorKind] = {
    "auth": ErrorKind.AUTH,
    "auth_permanent": ErrorKind.AUTH,
    "billing": ErrorKind.RATE_LIMIT,
    "rate_limit": ErrorKind.RATE_LIMIT,
    "upstream_rate_limit": ErrorKind.RATE_LIMIT,
    "overloaded": ErrorKind.SERVER,
    "server_error": ErrorKind.SERVER,
    "timeout": ErrorKind.TIMEOUT,
    "model_not_found": ErrorKind.NOT_FOUND,
    "context_overflow": ErrorKind.BAD_REQUEST,
    "payload_too_large": ErrorKind.BAD_REQUEST,
    "format_error": ErrorKind.BAD_REQUEST,
    "content_policy_blocked": ErrorKind.BAD_REQUEST,
    "provider_policy_blocked": ErrorKind.BAD_REQUEST,
}


def _detail(text: str, secrets: list[Secret]) -> str:
    for secret in secrets:
        text = secret.redact(text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _classified(text: str, reason: str | None = None) -> tuple[ErrorKind, int | None]:
    match = _STATUS.search(text)
    if match:
        status = int(match.group(1))
        return classify_status(status), status
    if _NETWORK.search(text):
        return ErrorKind.NETWORK, None
    if reason in _REASONS:
        return _REASONS[reason], None
    if re.search(r"timed? ?out", text, re.IGNORECASE):
        return ErrorKind.TIMEOUT, None
    return ErrorKind.SERVER, None


def classify_agent_failure(
    result: Mapping[str, Any], secrets: list[Secret] | None = None
) -> ProviderError | None:
    """The :class:`ProviderError` for a failed ``run_conversation`` result, or None if it did not
    fail. The HTTP status in the agent's error text wins (401/403 auth, 429 rate limit, …), then
    a connection failure (network), then the agent's own ``failure_reason``."""
    error = result.get("error")
    if not (result.get("failed") or (error and not result.get("completed"))):
        return None
    text = str(error or result.get("final_response") or "it gave no reason")
    kind, status = _classified(text, result.get("failure_reason"))
    return provider_error(
        kind, f"The Hermes agent failed: {_detail(text, secrets or [])}", status=status
    )


def _startup_failure(exc: BaseException, turn: _Turn, secrets: list[Secret]) -> HermesError:
    """The error for an exception raised while hermes-agent was loaded, built or run."""
    if isinstance(exc, HermesError):
        return exc
    text = f"{exc}" or type(exc).__name__
    if "AuthError" in type(exc).__name__ or "No LLM provider configured" in text:
        kind, status = ErrorKind.AUTH, None
        hint = (
            f"Run `hermes model` with HERMES_HOME={turn.home}, or set base_url, model and "
            "api_key_env in the profile."
        )
    elif isinstance(exc, ValueError):
        kind, status = ErrorKind.BAD_REQUEST, None
        hint = f"Check {turn.home / 'config.yaml'} and the profile's model and base_url."
    else:
        kind, status = _classified(text)
        hint = ""
    error = provider_error(
        kind, f"The Hermes agent could not run: {_detail(text, secrets)}", status=status
    )
    error.hint = hint or error.hint
    return error


# -- the environment ---------------------------------------------------------------------------


def _dotenv(home: Path) -> dict[str, str]:
    """The home's ``.env`` (what the Hermes CLI loads into its environment)."""
    from agent.secret_scope import load_env_file

    return dict(load_env_file(home / ".env"))


def _load_agent(home: Path) -> Any:
    """``run_agent``, imported once per process with ``home`` as the Hermes home.

    The import loads that home's ``.env`` into ``os.environ`` (overriding); those writes are
    undone at once, under ``ENV_LOCK``, so no key outlives the turn that needed it.
    """
    with _import_lock:
        loaded = sys.modules.get("run_agent")
        if loaded is not None:
            return loaded
        try:
            import hermes_constants
        except ImportError as exc:
            raise ConfigError(MISSING_EXTRA, hint=_MISSING_HINT) from exc
        before = _environ()
        token = hermes_constants.set_hermes_home_override(str(home))
        try:
            import run_agent
        except ImportError as exc:
            raise ConfigError(MISSING_EXTRA, hint=_MISSING_HINT) from exc
        finally:
            hermes_constants.reset_hermes_home_override(token)
            _undo(before, _dotenv_quiet(home))
        return run_agent


def _dotenv_quiet(home: Path) -> dict[str, str]:
    try:
        return _dotenv(home)
    except ImportError:
        return {}


def _undo(before: Mapping[str, str], loaded: Mapping[str, str]) -> None:
    """Put back the variables an import set from ``loaded`` (and nothing else)."""
    with ENV_LOCK:
        for key, value in loaded.items():
            if os.environ.get(key) != value or before.get(key) == value:
                continue
            if key in before:
                os.environ[key] = before[key]
            else:
                os.environ.pop(key, None)


def _environ() -> dict[str, str]:
    """A copy of ``os.environ`` (another thread may be writing to it while we copy)."""
    for _ in range(5):
        try:
            return dict(os.environ)
        except RuntimeError:  # changed size during iteration
            continue
    return dict(os.environ)


def _overlay(turn: _Turn, dotenv: Mapping[str, str], session_id: str) -> dict[str, str]:
    """What the agent reads from ``os.environ`` for this turn: the home's ``.env`` (the
    profile's own ``env`` wins), its ``terminal.*`` settings, the home and the session id."""
    from hermes_cli.config import apply_terminal_config_to_env

    overlay = {k: v for k, v in dotenv.items() if k not in turn.profile.env}
    current = _environ()
    terminal = apply_terminal_config_to_env(env=dict(current))
    overlay.update({k: v for k, v in terminal.items() if current.get(k) != v})
    overlay["HERMES_HOME"] = str(turn.home)
    overlay["HERMES_SESSION_ID"] = session_id
    return overlay


# -- the bridge from the agent's threads to the stream --------------------------------------------


def _preview(result: Any) -> str:
    text = result if isinstance(result, str) else json.dumps(result, default=str)
    return text if len(text) <= RESULT_PREVIEW else text[: RESULT_PREVIEW - 1] + "…"


def _looks_failed(result: Any) -> bool:
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except ValueError:
            return bool(result.lstrip().lower().startswith("error"))
    return isinstance(result, dict) and bool(result.get("error"))


class _Bridge:
    """The agent's callbacks, turned into ``(event, data)`` items on the memory stream.

    Callbacks arrive on the agent's threads; each item is handed to the loop with
    ``anyio.from_thread.run_sync`` and the loop's token, so items from one thread keep their
    order. After Stop (or when the loop is gone) items are dropped.
    """

    def __init__(self, send: Any, token: Any) -> None:
        self._send = send
        self._token = token
        self._lock = threading.Lock()
        self._closed = False
        self._started: dict[str, float] = {}
        self._completed: dict[str, deque[tuple[Any, Any]]] = {}
        self.streamed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def put(self, event: str, data: Any) -> None:
        with self._lock:
            if self._closed:
                return
        try:
            anyio.from_thread.run_sync(self._deliver, event, data, token=self._token)
        except Exception:  # the loop has stopped: nobody is listening any more
            self.close()

    def _deliver(self, event: str, data: Any) -> None:
        with self._lock:
            closed = self._closed
        if not closed:
            try:
                self._send.send_nowait((event, data))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                self.close()

    # hermes-agent callbacks ---------------------------------------------------------------

    def on_delta(self, text: Any) -> None:
        if isinstance(text, str) and text:  # None only flushes the agent's own display
            self.streamed = True
            self.put(Event.TOKEN.value, {"text": text})

    def on_reasoning(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self.put(Event.REASONING.value, {"text": text})

    def on_tool_start(self, call_id: Any, name: Any, args: Any) -> None:
        with self._lock:
            self._started[str(call_id)] = time.perf_counter()
        arguments = args if isinstance(args, str) else json.dumps(args, default=str)
        self.put(
            Event.TOOL_START.value, {"id": str(call_id), "name": str(name), "arguments": arguments}
        )

    def on_progress(self, event: Any, name: Any = None, *_: Any, **details: Any) -> None:
        if event == "tool.completed":
            with self._lock:
                self._completed.setdefault(str(name), deque()).append(
                    (details.get("duration"), details.get("is_error"))
                )

    def on_tool_complete(self, call_id: Any, name: Any, args: Any, result: Any) -> None:
        with self._lock:
            started = self._started.pop(str(call_id), None)
            queued = self._completed.get(str(name))
            duration, is_error = queued.popleft() if queued else (None, None)
        if duration is None and started is not None:
            duration = time.perf_counter() - started
        self.put(
            Event.TOOL_END.value,
            {
                "id": str(call_id),
                "name": str(name),
                "result": _preview(result),
                "error": bool(is_error) if is_error is not None else _looks_failed(result),
                "duration_ms": None if duration is None else round(float(duration) * 1000, 1),
            },
        )

    def on_status(self, *args: Any, **_: Any) -> None:
        log.info("hermes-agent: %s", " ".join(str(a) for a in args))

    def on_event(self, name: Any, data: Any = None) -> None:
        log.debug("hermes-agent event %s: %s", name, data)


def _log_print(*args: Any, **_: Any) -> None:
    """Where the agent's console output goes: library code never prints into a cell."""
    log.debug("hermes-agent: %s", " ".join(str(a) for a in args).strip())


def _deny(*_: Any, **__: Any) -> str:
    return "deny"


def _approval_text(description: str) -> str:
    """What is to be approved, in words, from the description hermes-agent hands its callback."""
    description = " ".join(description.split())
    if description.startswith("Save to memory"):  # tools/write_approval.py's memory gate
        return f"Let the agent {description[0].lower()}{description[1:]}?"
    if description:
        return f"Run a command the agent flags as dangerous ({description})?"
    return "Run a command the agent flags as dangerous?"


def _approval_choice(value: str, *, allow_permanent: bool, smart_denied: bool) -> str:
    """The answer hermes-agent gets: it approves on *any* value but ``"deny"``, so only the
    three approving answers pass, narrowed to what hermes-agent offered this time."""
    if value not in ("once", "session", "always"):
        return "deny"
    if smart_denied:  # overriding its smart-approval model's DENY: this operation only
        return "once"
    if value == "always" and not allow_permanent:
        return "session"
    return value


def _approver(asker: Asker, control: _Control) -> Callable[..., str]:
    """hermes-agent's approval callback for one run: ask this run's person, in this thread."""

    def approve(
        command: Any,
        description: Any = "",
        *,
        allow_permanent: bool = True,
        smart_denied: bool = False,
        **_: Any,
    ) -> str:
        if control.stopped:
            return "deny"
        try:
            answer = asker.ask_blocking(
                "approval",
                _approval_text(str(description or "")),
                detail=str(command),  # the exact command (secrets masked by hermes-agent)
                cancelled=control.cancelled,
            )
        except Exception:
            log.warning("Could not ask for approval; the command is refused.", exc_info=True)
            return "deny"
        return _approval_choice(
            answer.value, allow_permanent=allow_permanent, smart_denied=smart_denied
        )

    return approve


def _clarifier(asker: Asker, control: _Control) -> Callable[..., str]:
    """hermes-agent's ``clarify_callback`` for one run: the agent's question to the person."""

    def clarify(question: Any, choices: Any = None) -> str:
        if control.stopped:
            return NO_ANSWER
        offered = [str(c) for c in choices or () if str(c).strip()]
        try:
            answer = asker.ask_blocking(
                "question",
                str(question).strip() or "The agent has a question.",
                choices=offered,
                cancelled=control.cancelled,
            )
        except Exception:
            log.warning("Could not ask the agent's question.", exc_info=True)
            return NO_ANSWER
        return answer.value

    return clarify


class _Control:
    """The running agent, so that Stop (from the loop) can interrupt it (in its thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agent: Any = None
        self.stopped = False
        #: Set by Stop: a prompt the worker waits on is answered for the person at once.
        self.cancelled = threading.Event()
        self.secrets: list[Secret] = []

    def attach(self, agent: Any) -> bool:
        """Register the built agent; False if Stop came first (then do not run it)."""
        with self._lock:
            self._agent = agent
            return not self.stopped

    def detach(self) -> None:
        with self._lock:
            self._agent = None

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            agent = self._agent
        try:
            if agent is not None:
                agent.interrupt("Stopped from the notebook.")
        finally:
            # After interrupt(): an approval released here (deny) or a question (no answer)
            # lets the worker go on, and the agent must already know to end its run.
            self.cancelled.set()


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


def _bind_approvals(turn: _Turn, control: _Control, session_id: str) -> str | None:
    """In the worker thread: how hermes-agent's approvals go for this run (the module
    docstring's ``approvals``); the approval session key it used, if any.

    Everything here is thread- or context-local in hermes-agent (the approval callback is
    thread-local, the interactive flag and the session key are contextvars, and its tool pools
    copy all three), so concurrent runs never see each other's. Only its ``session`` and
    ``always`` approvals are process-wide, keyed by the session key: a key of this run's own
    keeps one run's ``session`` answer from approving another's commands.
    """
    from tools.approval import set_current_session_key, set_hermes_interactive_context
    from tools.terminal_tool import set_approval_callback

    if turn.approvals == "allow":
        # Not interactive (whatever HERMES_INTERACTIVE says) nor gateway: hermes-agent runs them.
        set_hermes_interactive_context(False)
        return None

    # "Allow for this session" lasts for the notebook session (every turn of it); a plain
    # history has none, so there it lasts for this run.
    key = f"hermes-nb:{turn.notebook_session or session_id}"
    set_hermes_interactive_context(True)
    set_current_session_key(key)
    if turn.approvals == "ask" and turn.asker is not None:
        set_approval_callback(_approver(turn.asker, control))
    else:  # "deny", or nobody to ask
        set_approval_callback(_deny)
    return key


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
        agent = run_agent.AIAgent(**arguments)
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


def _resolve(turn: _Turn) -> dict[str, Any]:
    """Provider, endpoint and key as the Hermes CLI would pick them for this home, with the
    profile's ``base_url`` and key (from ``api_key_env``) taking precedence."""
    from hermes_cli.runtime_provider import (
        resolve_runtime_provider,
    )

    return dict(
        resolve_runtime_provider(
            # A base_url in the profile is an OpenAI-compatible endpoint of its own, not one of
            # the providers hermes-agent knows by name (whose catalogues it would fetch).
            requested="custom" if turn.base_url else None,
            explicit_api_key=turn.api_key.reveal() if turn.api_key else None,
            explicit_base_url=turn.base_url,
            target_model=turn.model,
        )
    )


def _home_model() -> str | None:
    from hermes_cli.config import load_config

    model = load_config().get("model")
    if isinstance(model, dict):
        model = model.get("default") or model.get("model")
    return str(model) if model else None


def _home_toolsets() -> list[str] | None:
    """The toolsets the Hermes CLI enables with this home (``hermes tools``), if readable."""
    try:
        from hermes_cli.config import load_config
        from hermes_cli.tools_config import (
            _get_platform_tools,
        )

        return sorted(_get_platform_tools(load_config(), "cli"))
    except Exception:  # an older or newer hermes-agent: let it pick its defaults
        log.debug("Could not read the home's toolsets", exc_info=True)
        return None


def _agent_arguments(
    turn: _Turn, runtime: Mapping[str, Any], session_id: str, bridge: _Bridge
) -> dict[str, Any]:
    model = turn.model or _home_model()
    if not model:
        raise provider_error(
            ErrorKind.NOT_FOUND,
            f"Neither the profile nor the Hermes home {turn.home} names a model.",
        )
    arguments: dict[str, Any] = {
        "base_url": runtime.get("base_url"),
        "api_key": runtime.get("api_key"),
        "provider": runtime.get("provider"),
        "api_mode": runtime.get("api_mode"),
        "acp_command": runtime.get("command"),
        "acp_args": runtime.get("args"),
        "model": model,
        "session_id": session_id,
        "quiet_mode": True,
        "enabled_toolsets": turn.toolsets if turn.toolsets is not None else _home_toolsets(),
        "disabled_toolsets": turn.disabled_toolsets,
        "skip_context_files": not turn.context_files,
        "load_soul_identity": True,
        "skip_memory": not turn.memory,
        "stream_delta_callback": bridge.on_delta,
        "reasoning_callback": bridge.on_reasoning,
        "tool_start_callback": bridge.on_tool_start,
        "tool_complete_callback": bridge.on_tool_complete,
        "tool_progress_callback": bridge.on_progress,
        "status_callback": bridge.on_status,
        "event_callback": bridge.on_event,
    }
    if turn.max_iterations is not None:
        arguments["max_iterations"] = turn.max_iterations
    return arguments
