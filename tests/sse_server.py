"""A real, scriptable OpenAI-style HTTP server on 127.0.0.1 for provider tests and benchmarks.

:class:`SSEServer` answers ``POST /v1/chat/completions`` with a streamed reply (chunked
``text/event-stream``: ``data: {json}`` events, then ``data: [DONE]``) and ``GET /v1/models``
with a model list. Each answer follows a :class:`Reply` — queued per request with
:meth:`SSEServer.enqueue`, else :attr:`SSEServer.default` — that scripts everything a client must
survive: content, reasoning and tool-call deltas, usage, delays, an HTTP error with a JSON body
and headers, a stream cut short, garbage lines, a server that never answers, and a huge
generated stream for benchmarks.

The server records every request (:attr:`SSEServer.requests`) and every *disconnect*: a client
that closed its connection while a reply was still being sent (:attr:`SSEServer.disconnects`).
While it waits between chunks, a handler watches its socket with ``select``, so a closed
connection is seen within microseconds, not at the next write. Times are
``time.perf_counter()`` values, comparable with the same clock in the test process.

Tests use the ``sse_server`` fixture (a fresh server per test); benchmarks import
:class:`SSEServer` after putting ``tests/`` on ``sys.path``.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = [
    "Disconnect",
    "Pause",
    "RecordedRequest",
    "Reply",
    "SSEServer",
    "content",
    "error_event",
    "finish",
    "reasoning",
    "sse_server",
    "together",
    "tool_call",
    "usage",
]

_CHAT_PATH = "/v1/chat/completions"
_MODELS_PATH = "/v1/models"
_BATCH_BYTES = 64 * 1024  # how much of a huge stream goes into one write


# -- chunk builders ------------------------------------------------------------------------------


def _chunk(delta: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """A ``chat.completion.chunk`` as OpenAI sends it, with one choice holding ``delta``."""
    body: dict[str, Any] = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": None}],
    }
    body.update(fields)
    return body


def content(text: str) -> dict[str, Any]:
    """A content delta."""
    return _chunk({"content": text})


def reasoning(text: str, field: str = "reasoning_content") -> dict[str, Any]:
    """A reasoning delta in ``reasoning_content`` (DeepSeek, vLLM) or ``reasoning`` (OpenRouter)."""
    return _chunk({field: text})


def tool_call(
    index: int,
    *,
    id: str | None = None,
    name: str | None = None,
    arguments: str | None = None,
) -> dict[str, Any]:
    """A tool-call fragment: the first for an ``index`` usually has ``id`` and ``name``."""
    call: dict[str, Any] = {"index": index, "function": {}}
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    if name is not None:
        call["function"]["name"] = name
    if arguments is not None:
        call["function"]["arguments"] = arguments
    return _chunk({"tool_calls": [call]})


def finish(reason: str = "stop") -> dict[str, Any]:
    """The chunk that ends a choice."""
    chunk = _chunk({})
    chunk["choices"][0]["finish_reason"] = reason
    return chunk


def usage(
    prompt: int, completion: int, total: int | None = None, reasoning: int | None = None
) -> dict[str, Any]:
    """The usage chunk sent last when ``stream_options.include_usage`` is set (no choices)."""
    counts: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
    }
    if reasoning is not None:
        counts["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return _chunk(choices=[], usage=counts)


def error_event(message: str, *, code: int | str | None = None, type: str = "server_error") -> dict:
    """An ``{"error": {...}}`` object sent as a ``data:`` event inside a 200 stream."""
    error: dict[str, Any] = {"message": message, "type": type}
    if code is not None:
        error["code"] = code
    return {"error": error}


def together(*chunks: Mapping[str, Any] | str | bytes) -> bytes:
    """Several chunks as one write, so the client reads them at once (one network read)."""
    return b"".join(_encode(chunk) for chunk in chunks)


@dataclass(frozen=True)
class Pause:
    """An item in :attr:`Reply.chunks`: wait this long (watching for a disconnect)."""

    seconds: float


#: A chunk: a JSON object sent as ``data: {json}\n\n``, raw ``str``/``bytes`` written verbatim
#: (garbage, comments, ``event:`` lines), or a :class:`Pause`.
Chunk = Mapping[str, Any] | str | bytes | Pause


@dataclass
class Reply:
    """What the server answers to one request.

    ``status`` ≥ 400 (or a ``body``) sends ``body`` with ``headers``: as JSON, or verbatim if it
    is ``str``/``bytes`` (an HTML error page). Otherwise
    ``chunks`` are streamed, ``chunk_delay`` apart, after ``first_byte_delay``, then
    ``data: [DONE]`` unless ``done`` is false. ``abort`` cuts the connection instead of ending the
    body; ``hang`` reads the request and never answers; ``repeat`` appends that many generated
    content chunks of ``repeat_text`` (written in large batches: the huge-stream mode).
    """

    chunks: Sequence[Chunk] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    chunk_delay: float = 0.0
    first_byte_delay: float = 0.0
    done: bool = True
    abort: bool = False
    hang: bool = False
    repeat: int = 0
    repeat_text: str = "tok "
    content_type: str = "text/event-stream"

    @classmethod
    def text(cls, *pieces: str, **options: Any) -> Reply:
        """A plain streamed reply: one content chunk per piece, a finish and a usage chunk."""
        chunks = [content(p) for p in pieces]
        chunks += [finish(), usage(5, len(pieces))]
        return cls(chunks=chunks, **options)

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Reply:
        """An HTTP error with an OpenAI-style JSON body ``{"error": {"message": ...}}``."""
        if body is None and message is not None:
            body = {"error": {"message": message, "type": "error", "code": status}}
        return cls(status=status, headers=dict(headers or {}), body=body)

    @classmethod
    def huge(cls, n: int, text: str = "tok ", **options: Any) -> Reply:
        """``n`` content chunks of ``text``, generated efficiently, then finish and usage."""
        return cls(
            chunks=[_chunk({"role": "assistant", "content": ""})],
            repeat=n,
            repeat_text=text,
            **options,
        )


#: A queued answer: a :class:`Reply`, or a function of the request returning one.
Script = Reply | Callable[["RecordedRequest"], Reply]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it (header names lower-cased)."""

    index: int
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float
    client_port: int  # the same port on several requests: a reused keep-alive connection

    def last_user_text(self) -> str:
        """The last user message of a chat request (JSON if its content is a list of parts):
        what a script answers by when several turns reach the server in any order."""
        users = [m for m in self.body.get("messages", []) if m.get("role") == "user"]
        text = users[-1].get("content", "") if users else ""
        return text if isinstance(text, str) else json.dumps(text)


@dataclass(frozen=True)
class Disconnect:
    """A client closed its connection while a reply was being sent."""

    request: int  # RecordedRequest.index
    at: float  # time.perf_counter()
    sent_chunks: int


class _Aborted(Exception):
    """The client went away (or the server is stopping): stop writing this reply."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked bodies, like a real endpoint
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # tests stay quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Small writes go out at once, as from a real streaming server: with Nagle's algorithm
        # a chunk written right after the headers waits ~40 ms for the client's delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?", 1)[0]
        record = owner._record(
            self.command, path, dict(self.headers.items()), body, raw, self.client_address[1]
        )
        if path == _CHAT_PATH and self.command == "POST":
            reply = owner._next_reply(record)
        elif path == _MODELS_PATH and self.command == "GET":
            reply = owner.models_reply or Reply(
                body={
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "owned_by": "test"} for m in owner.models
                    ],
                }
            )
        else:
            reply = Reply.error(404, f"No route for {self.command} {path}.")
        try:
            self._answer(reply, record)
        except _Aborted:
            self.close_connection = True
        except OSError:  # a write failed: the client is gone
            self.close_connection = True
            owner._disconnected(record, self._sent, stopping=owner._stopping.is_set())

    # -- answering ---------------------------------------------------------------------------

    def _answer(self, reply: Reply, record: RecordedRequest) -> None:
        self._sent = 0
        if reply.hang:
            self._wait(None, record)
            return
        if reply.first_byte_delay:
            self._wait(reply.first_byte_delay, record)
        if reply.body is not None or reply.status >= 400:
            if isinstance(reply.body, str | bytes):  # an HTML error page, say
                data = reply.body.encode() if isinstance(reply.body, str) else reply.body
                kind = "text/html; charset=utf-8"
            else:
                data = json.dumps(reply.body).encode() if reply.body is not None else b""
                kind = "application/json"
            self.send_response(reply.status)
            if not any(name.lower() == "content-type" for name in reply.headers):
                self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        for n, item in enumerate(reply.chunks):
            if n and reply.chunk_delay:
                self._wait(reply.chunk_delay, record)
            if isinstance(item, Pause):
                self._wait(item.seconds, record)
                continue
            self._write(_encode(item))
            self._sent += 1
        if reply.repeat:
            for batch in _batches(reply.repeat, reply.repeat_text):
                self._write(batch)
            self._write(_encode(finish()) + _encode(usage(5, reply.repeat)))
            self._sent += reply.repeat
        if reply.abort:
            self.connection.shutdown(socket.SHUT_RDWR)  # no terminating chunk: a cut stream
            raise _Aborted
        if reply.done:
            self._write(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")

    def _write(self, data: bytes) -> None:
        """One HTTP chunk."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _wait(self, seconds: float | None, record: RecordedRequest) -> None:
        """Sleep ``seconds`` (forever if None) while watching the socket for the client leaving.

        The client sends nothing while it reads a reply, so a readable socket means EOF (or a
        reset): the client closed the connection.
        """
        sock = self.connection
        owner = self.server.owner
        deadline = None if seconds is None else time.perf_counter() + seconds
        while True:
            left = None if deadline is None else deadline - time.perf_counter()
            if left is not None and left <= 0:
                return
            readable, _, _ = select.select([sock], [], [], left)
            if not readable:
                return
            try:
                peek = sock.recv(1, socket.MSG_PEEK)
            except OSError:
                peek = b""
            stopping = owner._stopping.is_set()
            if not peek or stopping:
                owner._disconnected(record, self._sent, stopping=stopping)
                raise _Aborted
            # Bytes from the client (a pipelined request), not a disconnect: sleep instead.
            if left is not None:
                time.sleep(left)
                return
            time.sleep(0.05)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 50+ concurrent connects must not overflow the accept backlog
    owner: SSEServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that vanished mid-request is normal here, not a test failure


def _encode(item: Mapping[str, Any] | str | bytes) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode()
    return b"data: " + json.dumps(item).encode() + b"\n\n"


def _batches(n: int, text: str) -> Iterator[bytes]:
    """``n`` identical content events, joined into writes of about ``_BATCH_BYTES``."""
    line = _encode(content(text))
    per_batch = max(1, _BATCH_BYTES // len(line))
    full = line * per_batch
    for _ in range(n // per_batch):
        yield full
    if n % per_batch:
        yield line * (n % per_batch)


#: What a chat request gets when nothing else was scripted.
_HELLO = Reply.text("Hello", " from", " the", " test", " server.")


class SSEServer:
    """A threaded OpenAI-style server on 127.0.0.1; use as a context manager or start/stop."""

    def __init__(self) -> None:
        self.default: Script = _HELLO
        self.models: list[str] = ["m", "test-model"]
        self.models_reply: Reply | None = None
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []
        self._queue: deque[Script] = deque()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._counter = itertools.count()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> SSEServer:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, wake and close every open connection, join the accept thread."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for sock in connections:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
        thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> SSEServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL a profile uses: ``http://127.0.0.1:<port>/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting ---------------------------------------------------------------------------

    def enqueue(self, *scripts: Script) -> None:
        """Answer the next chat requests with these, in order (then :attr:`default`)."""
        with self._lock:
            self._queue.extend(scripts)

    def reset(self) -> None:
        """Forget queued replies, the scripted default, requests and disconnects."""
        with self._lock:
            self.default = _HELLO
            self._queue.clear()
            self.requests.clear()
            self.disconnects.clear()

    # -- observing ---------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path == _CHAT_PATH]

    def wait_for_disconnect(self, timeout: float = 5.0, count: int = 1) -> list[Disconnect]:
        """Block until ``count`` disconnects were recorded; return them (maybe fewer on timeout)."""
        with self._changed:
            self._changed.wait_for(lambda: len(self.disconnects) >= count, timeout)
            return list(self.disconnects)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.requests) >= count, timeout)
            return list(self.requests)

    # -- called by handlers ------------------------------------------------------------------

    def _track(self, sock: socket.socket, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def _record(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: Any,
        raw: bytes,
        client_port: int,
    ) -> RecordedRequest:
        record = RecordedRequest(
            index=next(self._counter),
            method=method,
            path=path,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            raw=raw,
            at=time.perf_counter(),
            client_port=client_port,
        )
        with self._changed:
            self.requests.append(record)
            self._changed.notify_all()
        return record

    def _next_reply(self, record: RecordedRequest) -> Reply:
        with self._lock:
            script = self._queue.popleft() if self._queue else self.default
        return script(record) if callable(script) else script

    def _disconnected(self, record: RecordedRequest, sent: int, *, stopping: bool) -> None:
        if stopping:
            return  # the server closed it, not the client
        with self._changed:
            self.disconnects.append(Disconnect(record.index, time.perf_counter(), sent))
            self._changed.notify_all()


@pytest.fixture
def sse_server() -> Iterator[SSEServer]:
    """A fresh :class:`SSEServer` for one test, stopped (and its connections closed) after it."""
    with SSEServer() as server:
        yield server
