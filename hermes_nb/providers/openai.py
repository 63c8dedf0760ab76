"""OpenAI-compatible chat completions over httpx, streamed as server-sent events.

One POST to ``{base_url}/chat/completions`` with ``stream: true`` per turn, on the runtime's
shared ``httpx.AsyncClient``. The reply's SSE lines become events (:mod:`hermes_nb.core.events`):

* ``delta.content`` → ``token``; ``delta.reasoning_content`` or ``delta.reasoning`` →
  ``reasoning``;
* ``delta.tool_calls`` are assembled by ``index``: ``tool_start`` when an index first appears,
  ``tool_delta`` for each fragment of its arguments;
* a ``usage`` object (asked for with ``stream_options.include_usage``) → ``usage``;
* a choice's ``finish_reason`` (``stop``, ``length``, ``tool_calls``, ``content_filter``, …) →
  ``finish``, so the turn can tell a reply cut off at ``max_tokens`` from a finished one.

This is the hot path of every turn, so each network read is decoded and split into lines once
(no per-line async step, unlike ``aiter_lines``) and each ``data:`` line costs one
``JSONDecoder.raw_decode``. Text deltas that arrive in the same read are merged into one event:
a slow model sends one delta per read anyway, so nothing is delayed, while a fast local model
does not pay the journal and fan-out cost per token (a 20,000-chunk reply becomes about a
hundred events).

Every failure becomes a :class:`~hermes_nb.core.exceptions.ProviderError` with a classified
:class:`~hermes_nb.core.exceptions.ErrorKind` and a one-sentence message that never contains the
key. A stream must end with ``data: [DONE]``; a stream that stops without it (and without a
``finish_reason``) is reported as ``malformed_stream`` — the text received so far stays in the run.

Stop cancels the task iterating :meth:`OpenAIProvider.stream`; the ``async with`` around the
response then closes the connection at once (httpcore shields that close from the cancellation),
so the server stops generating (DESIGN.md §3, invariant 6).
"""

from __future__ import annotations

import email.utils
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import anyio
import httpx

from ..core.events import Event
from ..core.exceptions import ErrorKind, ProviderError
from ..core.profiles import Profile
from .base import ProviderEvent, ProviderRequest, classify_status, provider_error

__all__ = ["OpenAIProvider"]

# Plain ``str`` event names: ``Run.put`` calls ``str()`` on each, which is cheapest on a str.
_TOKEN = Event.TOKEN.value
_REASONING = Event.REASONING.value
_TOOL_START = Event.TOOL_START.value
_TOOL_DELTA = Event.TOOL_DELTA.value
_USAGE = Event.USAGE.value
_FINISH = Event.FINISH.value

#: How much of an error body is read (an HTML error page can be large; the reason is near the top).
_MAX_ERROR_BODY = 64 * 1024
#: How much of a server's own error message is quoted in ours.
_MAX_DETAIL = 300
#: After ``[DONE]``, how long to wait for the end of the HTTP body so the connection can be reused.
_DRAIN_SECONDS = 0.5
#: The SSE fields a stream may carry besides ``data`` (all ignored); anything else is not SSE.
_IGNORED_FIELDS = frozenset({"event", "id", "retry", "data"})
#: Error ``type``/``code`` words some servers send mid-stream instead of an HTTP status.
_KIND_WORDS: tuple[tuple[str, ErrorKind], ...] = (
    ("rate", ErrorKind.RATE_LIMIT),
    ("quota", ErrorKind.RATE_LIMIT),
    ("auth", ErrorKind.AUTH),
    ("api_key", ErrorKind.AUTH),
    ("permission", ErrorKind.AUTH),
    ("not_found", ErrorKind.NOT_FOUND),
    ("timeout", ErrorKind.TIMEOUT),
    ("invalid", ErrorKind.BAD_REQUEST),
    ("context_length", ErrorKind.BAD_REQUEST),
)
_SPACES = re.compile(r"\s+")
_decode_json = json.JSONDecoder().raw_decode


class OpenAIProvider:
    """Streams a reply from an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    ``client`` is the runtime's shared ``httpx.AsyncClient``: one connection pool for every turn,
    used only on the runtime's loop thread.
    """

    name = "openai"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"<OpenAIProvider {self.name}>"

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        """Send ``request`` and yield its events; raise :class:`ProviderError` on failure."""
        profile = request.profile
        base = (profile.base_url or "").rstrip("/")
        if not base:
            raise provider_error(
                ErrorKind.NETWORK,
                f"The profile {profile.name!r} has no base_url to send the request to.",
            )
        _check_port(base, request)
        timeout = httpx.Timeout(
            connect=profile.connect_timeout,
            read=profile.read_timeout,
            write=profile.read_timeout,
            pool=profile.read_timeout,
        )
        try:
            async with self._client.stream(
                "POST",
                f"{base}/chat/completions",
                json=_body(request),
                headers=_headers(request),
                timeout=timeout,
            ) as response:
                if response.status_code >= 400:
                    raise await _status_error(response, base, request)
                content_type = response.headers.get("content-type", "")
                if content_type.startswith("application/json"):
                    # The server ignored ``stream: true`` and sent the whole completion.
                    for item in _completion_events(await response.aread(), base, request):
                        yield item
                    return
                async for item in _sse_events(response, base, request):
                    yield item
        except ProviderError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL is no HTTPError
            raise _transport_error(exc, base, profile, request) from exc


def _check_port(base: str, request: ProviderRequest) -> None:
    """Refuse a port outside 1-65535 here: httpx accepts it and the socket layer would fail
    with an ``OverflowError`` that no httpx class describes."""
    try:
        port = httpx.URL(base).port
    except httpx.InvalidURL:
        return  # said by the request itself, through the table below
    if port is not None and not 0 < port < 65536:
        raise provider_error(
            ErrorKind.NETWORK,
            f"The base_url {base!r} is not a usable http(s) URL (port {port} is not 1-65535).",
            secret=request.api_key,
        )


# Each httpx failure class → (kind, message); the first matching row wins, so subclasses
# (ConnectTimeout is a TimeoutException; ConnectError is a TransportError) come first.
_TRANSPORT_ERRORS: tuple[
    tuple[type[Exception] | tuple[type[Exception], ...], ErrorKind, str], ...
] = (
    (httpx.ConnectTimeout, ErrorKind.NETWORK, "Could not connect to {base} within {connect:g} s."),
    (
        httpx.ReadTimeout,
        ErrorKind.TIMEOUT,
        "The endpoint at {base} sent nothing for {read:g} s (the profile's read_timeout).",
    ),
    (
        httpx.TimeoutException,
        ErrorKind.TIMEOUT,
        "The request to {base} timed out after {read:g} s.",
    ),
    (httpx.ConnectError, ErrorKind.NETWORK, "Could not connect to {base} ({reason})."),
    (
        (httpx.UnsupportedProtocol, httpx.InvalidURL),
        ErrorKind.NETWORK,
        "The base_url {base!r} is not a usable http(s) URL ({reason}).",
    ),
    (
        httpx.DecodingError,
        ErrorKind.MALFORMED_STREAM,
        "The reply from {base} could not be decoded ({reason}).",
    ),
    (
        httpx.TransportError,
        ErrorKind.NETWORK,
        "The connection to {base} broke before the reply finished ({reason}).",
    ),
    (httpx.HTTPError, ErrorKind.NETWORK, "The request to {base} failed ({reason})."),  # redirects
)


def _transport_error(
    exc: httpx.HTTPError | httpx.InvalidURL, base: str, profile: Profile, request: ProviderRequest
) -> ProviderError:
    """The classified, one-sentence error for an httpx failure (the key redacted)."""
    for types, kind, template in _TRANSPORT_ERRORS:
        if isinstance(exc, types):
            message = template.format(
                base=base,
                connect=profile.connect_timeout,
                read=profile.read_timeout,
                reason=_reason(exc),
            )
            return provider_error(kind, message, secret=request.api_key)
    raise AssertionError("every httpx failure matches a row")  # pragma: no cover


def _body(request: ProviderRequest) -> dict[str, Any]:
    """The JSON body: model, messages, streaming with usage, profile options, then extras."""
    profile = request.profile
    body: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if profile.temperature is not None:
        body["temperature"] = profile.temperature
    if profile.max_tokens is not None:
        body["max_tokens"] = profile.max_tokens
    if request.tools:  # the turn's tool loop runs what the model calls (engine/turn.py)
        body["tools"] = [dict(t) for t in request.tools]
    body.update(profile.options)
    body.update(request.extra)
    return body


def _headers(request: ProviderRequest) -> dict[str, str]:
    headers = {"Accept": "text/event-stream", **request.profile.headers}
    if request.api_key:
        headers["Authorization"] = f"Bearer {request.api_key.reveal()}"
    return headers


def _reason(exc: BaseException) -> str:
    """A short, one-line reason from a third-party exception (its class name if it says nothing)."""
    text = _SPACES.sub(" ", str(exc)).strip().rstrip(".")
    return text[:_MAX_DETAIL] or type(exc).__name__


async def _sse_events(
    response: httpx.Response, base: str, request: ProviderRequest
) -> AsyncIterator[ProviderEvent]:
    """The events of an SSE body, read by network chunk; ends at ``data: [DONE]``."""
    parser = _StreamParser(base, request)
    chunks = response.aiter_bytes()
    async for chunk in chunks:
        for item in parser.feed(chunk):
            yield item
        if parser.failure is not None:
            raise parser.failure
        if parser.done:
            await _drain(chunks)
            return
    for item in parser.end():
        yield item
    if parser.failure is not None:
        raise parser.failure


class _StreamParser:
    """The state of one SSE reply: a partial last line, tool-call ids, text being merged.

    :meth:`feed` takes one network read and returns its events. Consecutive text deltas of the
    same kind (and tool call) within the read are merged into one event; anything of another
    kind first flushes the merged text, so events keep the stream's order. A failure found in a
    read is kept in :attr:`failure` and raised by the caller after that read's earlier events,
    so the text that came before it still reaches the run.
    """

    def __init__(self, base: str, request: ProviderRequest) -> None:
        self.done = False  # saw ``data: [DONE]``
        self.failure: ProviderError | None = None
        self._base = base
        self._request = request
        self._tail = b""  # an incomplete line waiting for the next read
        self._pending: list[str] = []  # data lines of an event whose JSON spans several lines
        self._tools: dict[Any, str] = {}  # tool-call index -> the id its events carry
        self._last_usage: dict[str, int] | None = None
        self._finished = ""  # the finish_reason a choice reported, once it did
        self._out: list[ProviderEvent] = []
        self._merge_event = ""
        self._merge_id = ""
        self._merged: list[str] = []

    def feed(self, chunk: bytes) -> list[ProviderEvent]:
        """The events in ``chunk`` (plus the incomplete line left from the previous read)."""
        data = self._tail + chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        if cut:
            # Cutting after a newline never splits a UTF-8 sequence, so one decode per read
            # is exact; a stray invalid byte becomes U+FFFD rather than failing the reply.
            try:
                self._lines(data[:cut].decode("utf-8", "replace").split("\n"))
            except ProviderError as exc:
                self.failure = exc
        self._flush()
        out, self._out = self._out, []
        return out

    def _lines(self, lines: list[str]) -> None:
        """Apply complete lines (the last item, after the final newline, is empty)."""
        decode = _decode_json
        pending = self._pending
        for line in itertools.islice(lines, len(lines) - 1):
            if line.startswith("data:"):
                if pending:
                    pending.append(line[5:])
                    continue
                try:
                    # ``raw_decode`` skips json.loads' wrapper and its two whitespace scans.
                    obj, end = decode(line, 6 if line.startswith(" ", 5) else 5)
                    if end != len(line) and line[end:].strip():
                        raise ValueError(line)
                except ValueError:
                    payload = line[5:]
                    if payload.strip() == "[DONE]":
                        self.done = True
                        return
                    pending.append(payload)  # maybe the first line of a multi-line event
                    continue
            elif not line or line == "\r":  # the blank line that ends an event
                if not pending:
                    continue
                obj = self._join_pending()
            elif line.startswith(":") or line.split(":", 1)[0] in _IGNORED_FIELDS:
                continue  # a comment (keep-alive), or event:/id:/retry:
            else:
                raise self._malformed(f"a line that is not server-sent events: {line!r}")
            try:
                self._apply(obj)
            except (AttributeError, TypeError, KeyError, IndexError) as exc:
                # JSON of the wrong shape: ``choices`` not a list, a delta not an object, …
                raise self._malformed(f"an event of an unexpected shape ({exc!r})") from exc

    def end(self) -> list[ProviderEvent]:
        """The body ended: the events of a last line without a newline, and :attr:`failure` set
        unless the reply is complete (``[DONE]`` seen, or at least a ``finish_reason``)."""
        out = self.feed(b"\n") if self._tail.strip() else []
        if self.failure is None and not self.done:
            if self._pending:
                self.failure = self._malformed("it ended in the middle of an event")
            elif not self._finished:
                self.failure = self._malformed(
                    "it ended without data: [DONE]; the reply may be incomplete"
                )
        return out

    def _apply(self, obj: Any) -> None:
        """Turn one decoded ``data:`` object into events."""
        if type(obj) is not dict:
            raise self._malformed(f"a data line that is not a JSON object: {obj!r}")
        choices = obj.get("choices")
        if choices:
            choice = choices[0]
            delta = choice.get("delta")
            if delta:
                text = delta.get("content")
                if text and type(text) is str:
                    self._text(_TOKEN, "", text)
                text = delta.get("reasoning_content") or delta.get("reasoning")
                if text and type(text) is str:
                    self._text(_REASONING, "", text)
                calls = delta.get("tool_calls")
                if calls:
                    self._tool_calls(calls)
            reason = choice.get("finish_reason")
            if reason and str(reason) != self._finished:
                self._finished = str(reason)
                self._emit(_FINISH, {"finish_reason": self._finished})
        usage = obj.get("usage")
        if usage:
            data = _usage(usage)
            if data and data != self._last_usage:
                self._last_usage = data
                self._emit(_USAGE, data)
        error = obj.get("error")
        if error:
            raise _stream_error(error, self._base, self._request)

    def _tool_calls(self, calls: list[Any]) -> None:
        """Tool-call fragments: a new ``index`` starts a call, ``arguments`` extend it."""
        for position, call in enumerate(calls):
            index = call.get("index", position)
            function = call.get("function") or {}
            call_id = self._tools.get(index)
            if call_id is None:
                call_id = self._tools[index] = str(call.get("id") or f"call_{index}")
                name = str(function.get("name") or "")
                self._emit(_TOOL_START, {"id": call_id, "name": name, "arguments": ""})
            arguments = function.get("arguments")
            if arguments:
                self._text(_TOOL_DELTA, call_id, str(arguments))

    def _text(self, event: str, call_id: str, text: str) -> None:
        """Add a text delta to the merge, flushing first if it belongs to something else."""
        if event is not self._merge_event or call_id != self._merge_id:
            self._flush()
            self._merge_event, self._merge_id = event, call_id
        self._merged.append(text)

    def _emit(self, event: str, data: dict[str, Any]) -> None:
        self._flush()
        self._out.append((event, data))

    def _flush(self) -> None:
        merged = self._merged
        if not merged:
            return
        text = merged[0] if len(merged) == 1 else "".join(merged)
        merged.clear()
        event = self._merge_event
        self._merge_event = ""
        if event is _TOOL_DELTA:
            self._out.append((event, {"id": self._merge_id, "text": text}))
        else:
            self._out.append((event, {"text": text}))

    def _join_pending(self) -> Any:
        """Decode an SSE event whose data spans several ``data:`` lines (joined by newlines)."""
        payload = "\n".join(self._pending)
        self._pending.clear()
        try:
            return json.loads(payload)
        except ValueError:
            raise self._malformed(f"a data line that is not JSON: {payload[:80]!r}") from None

    def _malformed(self, what: str) -> ProviderError:
        return _malformed(self._base, self._request, what)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of the body after ``[DONE]`` so the connection goes back to the pool.

    Bounded in time: a server that keeps the stream open after ``[DONE]`` costs a reconnect
    next time, never a hang.
    """
    with anyio.move_on_after(_DRAIN_SECONDS):
        async for _ in chunks:
            pass


def _usage(usage: Any) -> dict[str, int]:
    """The ``usage`` payload: the integer counts, plus ``reasoning_tokens`` when reported."""
    if type(usage) is not dict:
        return {}
    data = {
        key: usage[key]
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
        if type(usage.get(key)) is int
    }
    details = usage.get("completion_tokens_details")
    if type(details) is dict and type(details.get("reasoning_tokens")) is int:
        data["reasoning_tokens"] = details["reasoning_tokens"]
    return data


def _completion_events(raw: bytes, base: str, request: ProviderRequest) -> list[ProviderEvent]:
    """Events for a whole (non-streamed) chat completion body."""
    try:
        obj = json.loads(raw)
        choice = obj["choices"][0] if obj.get("choices") else {}
        message = choice["message"] if choice else {}
        reason = choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise _malformed(base, request, "a JSON body that is not a chat completion") from None
    if obj.get("error"):
        raise _stream_error(obj["error"], base, request)
    events: list[ProviderEvent] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if reasoning and isinstance(reasoning, str):
        events.append((_REASONING, {"text": reasoning}))
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        call_id = str(call.get("id") or f"call_{index}")
        events.append(
            (_TOOL_START, {"id": call_id, "name": str(function.get("name") or ""), "arguments": ""})
        )
        if function.get("arguments"):
            events.append((_TOOL_DELTA, {"id": call_id, "text": str(function["arguments"])}))
    if message.get("content"):
        events.append((_TOKEN, {"text": str(message["content"])}))
    if reason:
        events.append((_FINISH, {"finish_reason": str(reason)}))
    usage = _usage(obj.get("usage"))
    if usage:
        events.append((_USAGE, usage))
    return events


def _malformed(base: str, request: ProviderRequest, what: str) -> ProviderError:
    if len(what) > _MAX_DETAIL:
        what = what[: _MAX_DETAIL - 1] + "…"
    return provider_error(
        ErrorKind.MALFORMED_STREAM,
        f"The stream from {base} was malformed: {what}.",
        secret=request.api_key,
    )


def _detail(value: Any) -> str:
    """A server's error message as one line, without a trailing period, bounded in length."""
    text = _SPACES.sub(" ", str(value)).strip().rstrip(".")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _error_message(body: Any) -> str:
    """The human message in an error body: ``error.message``, ``error``, ``message``, ``detail``."""
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict):
        message = error.get("message") or error.get("msg")
        if message:
            return _detail(message)
    elif isinstance(error, str) and error:
        return _detail(error)
    for key in ("message", "detail"):
        if isinstance(body.get(key), str) and body[key]:
            return _detail(body[key])
    return ""


async def _status_error(
    response: httpx.Response, base: str, request: ProviderRequest
) -> ProviderError:
    """The error for an HTTP error status, quoting the server's own JSON message if any."""
    status = response.status_code
    raw = bytearray()
    async for piece in response.aiter_bytes():
        raw += piece
        if len(raw) >= _MAX_ERROR_BODY:
            break
    try:
        message = _error_message(json.loads(bytes(raw)))
    except ValueError:
        message = ""
    phrase = response.reason_phrase or httpx.codes.get_reason_phrase(status)
    text = f"The endpoint at {base} answered {status} {phrase}".rstrip()
    text = f"{text}: {message}." if message else f"{text}."
    return provider_error(
        classify_status(status),
        text,
        status=status,
        retry_after=_retry_after(response.headers),
        secret=request.api_key,
    )


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _stream_error(error: Any, base: str, request: ProviderRequest) -> ProviderError:
    """The error for an ``{"error": ...}`` object sent inside a 200 stream."""
    message = _error_message({"error": error}) or "no reason given"
    status: int | None = None
    kind = ErrorKind.SERVER
    if isinstance(error, dict):
        for key in ("code", "status"):
            value = error.get(key)
            if isinstance(value, int | str) and str(value).isdigit() and 400 <= int(value) < 600:
                status = int(value)
                break
        if status is not None:
            kind = classify_status(status)
        else:
            words = f"{error.get('type', '')} {error.get('code', '')}".lower()
            kind = next((k for word, k in _KIND_WORDS if word in words), ErrorKind.SERVER)
    return provider_error(
        kind,
        f"The endpoint at {base} reported an error during the reply: {message}.",
        status=status,
        secret=request.api_key,
    )
