"""A scripted ACP agent for the tests: raw newline-delimited JSON-RPC on stdin/stdout.

Run as ``python tests/acp_agent.py [options]``. The handshake is shaped by options:

``--init-delay S``     answer ``initialize`` after S seconds
``--exit-at-init N``   write two lines to stderr and exit with status N on ``initialize``
``--protocol N``       answer ``initialize`` with protocol version N (default 1)
``--auth-required``    advertise two auth methods and refuse ``session/new`` (-32000)
``--session-delay S``  answer ``session/new`` after S seconds
``--record FILE``      append ``<time> pid <pid>`` at start, then ``<time> <method>`` for every
                       message received
``--sessions FILE``    keep every session's prompts in FILE (JSON), so a restarted agent knows
                       them; session ids then name the process (``sess-PID-N``)
``--load``             advertise ``loadSession``: ``session/load`` of a session in FILE replays
                       it (each prompt as a user chunk, then a thought, a tool call and the text
                       ``replayed: PROMPT`` in 20 chunks) and answers ``{}``; an unknown one
                       gets error -32002
``--load-error``       with ``--load``: answer every ``session/load`` with an internal error
``--load-null``        with ``--load``: answer every ``session/load`` with ``null`` (as
                       hermes-agent 0.19 does for a session it does not know)

What a prompt does is chosen by its text (first word the command, the rest its argument):

``echo TEXT``          TEXT in three chunks            ``chunks N``   N chunks ``"0,1,2,…"``
``think``              two thought chunks, then text   ``plan``       two plan updates, then text
``tool-diff PATH``     a tool call with a diff of PATH, completed
``permit COMMAND``     asks permission to run COMMAND; says which option was chosen
``read PATH``          ``fs/read_text_file``; replies with the content or the error message
``read-lines P L N``   ``fs/read_text_file`` of N lines from line L
``write PATH TEXT``    ``fs/write_text_file``; replies ``written`` or the error message
``hang``               one chunk, then waits for ``session/cancel`` and answers ``cancelled``
``ignore-cancel``      one chunk, then keeps chunking (``late``) and never answers
``crash``              one chunk, a line on stderr, then exits with status 3
``malformed``          chunk, a line that is not JSON, chunk
``big N``              one chunk of N characters       ``usage``      text and token counts
``remember``           the earlier prompts of this session, one a line
``mcp``                the ``mcpServers`` its ``session/new`` carried, as JSON
``Instructions…`` / ``Earlier…``  (a new session's preamble) the whole prompt, verbatim
``echo-env NAME``      the value of the variable NAME  ``leak NAME``  NAME's value on stderr, exit 4

Threads: one reads stdin, each prompt runs in a thread of its own, writes hold a lock.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from typing import Any

_out_lock = threading.Lock()
_responses: dict[int, Any] = {}
_response_ready = threading.Condition()
_cancelled: set[str] = set()
_cancel_ready = threading.Condition()
_history: dict[str, list[str]] = {}
_mcp: dict[str, list[Any]] = {}  # the mcpServers each session was given
_ids = itertools.count(1000)
_sessions = itertools.count(1)
_store: str | None = None
_store_lock = threading.Lock()


def keep() -> None:
    """Write every session's prompts to the ``--sessions`` file (if any)."""
    if _store is None:
        return
    with _store_lock:
        known: dict[str, list[str]] = {}
        if os.path.exists(_store):
            with open(_store, encoding="utf-8") as handle:
                known = json.load(handle)
        known.update(_history)
        with open(_store + ".tmp", "w", encoding="utf-8") as handle:
            json.dump(known, handle)
        os.replace(_store + ".tmp", _store)


def stored() -> dict[str, list[str]]:
    if _store is None or not os.path.exists(_store):
        return {}
    with _store_lock, open(_store, encoding="utf-8") as handle:
        return dict(json.load(handle))


def replay(session: str, prompts: list[str]) -> None:
    """The conversation of a loaded session, as ``session/update`` notifications."""
    for n, text in enumerate(prompts):
        update(
            session,
            {"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": text}},
        )
        chunk(session, "replayed thought", "agent_thought_chunk")
        update(
            session,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": f"replayed-{n}",
                "title": "Replayed tool",
                "status": "completed",
            },
        )
        reply = f"replayed: {text}"
        for i in range(20):
            chunk(session, reply[i * len(reply) // 20 : (i + 1) * len(reply) // 20])


def send(message: dict[str, Any]) -> None:
    data = json.dumps(message) + "\n"
    with _out_lock:
        sys.stdout.write(data)
        sys.stdout.flush()


def raw(line: str) -> None:
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def update(session: str, body: dict[str, Any]) -> None:
    send(
        {
            "jsonrpc": "2.0",
            "method": "session/update",
            "params": {"sessionId": session, "update": body},
        }
    )


def chunk(session: str, text: str, kind: str = "agent_message_chunk") -> None:
    update(session, {"sessionUpdate": kind, "content": {"type": "text", "text": text}})


def request(method: str, params: dict[str, Any]) -> Any:
    """Send a request to the client and wait for its answer (``{"result"}`` or ``{"error"}``)."""
    rid = next(_ids)
    send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
    with _response_ready:
        _response_ready.wait_for(lambda: rid in _responses)
        return _responses.pop(rid)


def wait_cancel(session: str, timeout: float | None = None) -> bool:
    with _cancel_ready:
        return _cancel_ready.wait_for(lambda: session in _cancelled, timeout)


def prompt(rid: int, session: str, text: str) -> None:
    command, _, arg = text.partition(" ")
    with _cancel_ready:
        _cancelled.discard(session)
    earlier = _history.setdefault(session, [])
    earlier.append(text)
    keep()
    stop = "end_turn"
    result: dict[str, Any] = {}
    if text.startswith(("Instructions for", "Earlier in")):  # a new session told the past
        chunk(session, text)
    elif command == "echo":
        third = max(1, len(arg) // 3)
        for piece in (arg[:third], arg[third : 2 * third], arg[2 * third :]):
            chunk(session, piece)
    elif command == "chunks":
        for i in range(int(arg)):
            chunk(session, f"{i},")
    elif command == "think":
        chunk(session, "Let me ", "agent_thought_chunk")
        chunk(session, "think.", "agent_thought_chunk")
        chunk(session, "Thought about it.")
    elif command == "plan":
        for done in (0, 1):
            entries = [
                {"content": "look", "priority": "high", "status": "completed"},
                {
                    "content": "fix",
                    "priority": "medium",
                    "status": "completed" if done else "pending",
                },
            ]
            update(session, {"sessionUpdate": "plan", "entries": entries})
        chunk(session, "Planned.")
    elif command == "tool-diff":
        update(
            session,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": "edit-1",
                "title": f"Edit {os.path.basename(arg)}",
                "kind": "edit",
                "status": "in_progress",
                "rawInput": {"path": arg},
            },
        )
        update(
            session,
            {
                "sessionUpdate": "tool_call_update",
                "toolCallId": "edit-1",
                "status": "completed",
                "content": [
                    {"type": "diff", "path": arg, "oldText": "one\ntwo\n", "newText": "one\n2\n"}
                ],
            },
        )
        chunk(session, "Edited.")
    elif command == "permit":
        update(
            session,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": "run-1",
                "title": "Run a shell command",
                "kind": "execute",
                "status": "pending",
                "rawInput": {"command": arg},
            },
        )
        answer = request(
            "session/request_permission",
            {
                "sessionId": session,
                "toolCall": {
                    "toolCallId": "run-1",
                    "title": "Run a shell command",
                    "rawInput": {"command": arg},
                },
                "options": [
                    {"optionId": "yes", "name": "Allow", "kind": "allow_once"},
                    {"optionId": "yes-session", "name": "For this session", "kind": "allow_always"},
                    {"optionId": "yes-always", "name": "Always allow", "kind": "allow_always"},
                    {"optionId": "no", "name": "Reject", "kind": "reject_once"},
                ],
            },
        )
        outcome = answer.get("result", {}).get("outcome", {})
        if outcome.get("outcome") == "cancelled":
            stop = "cancelled"
        else:
            chosen = outcome.get("optionId")
            ran = chosen in ("yes", "yes-session", "yes-always")
            status = "completed" if ran else "failed"
            update(
                session,
                {"sessionUpdate": "tool_call_update", "toolCallId": "run-1", "status": status},
            )
            chunk(session, f"option {chosen}: {'ran' if ran else 'not run'}")
    elif command == "read":
        answer = request("fs/read_text_file", {"sessionId": session, "path": arg})
        chunk(
            session,
            answer["result"]["content"]
            if "result" in answer
            else "error: " + answer["error"]["message"],
        )
    elif command == "read-lines":
        path, line, limit = arg.split()
        params = {"sessionId": session, "path": path, "line": int(line), "limit": int(limit)}
        answer = request("fs/read_text_file", params)
        chunk(session, answer["result"]["content"])
    elif command == "write":
        path, _, content = arg.partition(" ")
        answer = request(
            "fs/write_text_file", {"sessionId": session, "path": path, "content": content}
        )
        chunk(session, "written" if "result" in answer else "error: " + answer["error"]["message"])
    elif command == "hang":
        chunk(session, "waiting")
        wait_cancel(session)
        stop = "cancelled"
    elif command == "ignore-cancel":
        chunk(session, "ignoring")
        wait_cancel(session)
        for _ in range(20):
            chunk(session, "late")
            time.sleep(0.02)
        return  # never answers the prompt
    elif command == "crash":
        chunk(session, "about to crash")
        sys.stderr.write("boom: the scripted agent crashed on purpose\n")
        sys.stderr.flush()
        os._exit(3)
    elif command == "echo-env":
        chunk(session, os.environ.get(arg, "(unset)"))
    elif command == "leak":
        sys.stderr.write(f"the token is {os.environ.get(arg)}\n")
        sys.stderr.flush()
        os._exit(4)
    elif command == "malformed":
        chunk(session, "a")
        raw("this is not json")
        raw("[1, 2]")
        chunk(session, "b")
    elif command == "big":
        chunk(session, "x" * int(arg))
    elif command == "usage":
        chunk(session, "counted")
        result["usage"] = {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}
    elif command == "remember":
        chunk(session, "\n".join(earlier[:-1]) or "(nothing)")
    elif command == "mcp":
        chunk(session, json.dumps(_mcp.get(session, [])))
    else:
        chunk(session, f"unknown command {command!r}")
    send({"jsonrpc": "2.0", "id": rid, "result": {"stopReason": stop, **result}})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--init-delay", type=float, default=0.0)
    parser.add_argument("--exit-at-init", type=int, default=None)
    parser.add_argument("--protocol", type=int, default=1)
    parser.add_argument("--auth-required", action="store_true")
    parser.add_argument("--session-delay", type=float, default=0.0)
    parser.add_argument("--record", default=None)
    parser.add_argument("--sessions", default=None)
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--load-error", action="store_true")
    parser.add_argument("--load-null", action="store_true")
    options = parser.parse_args()
    global _store
    _store = options.sessions
    record = open(options.record, "a", encoding="utf-8") if options.record else None  # noqa: SIM115
    if record is not None:
        record.write(f"{time.time():.6f} pid {os.getpid()}\n")
        record.flush()
    for line in sys.stdin:
        message = json.loads(line)
        method = message.get("method")
        if record is not None:
            record.write(f"{time.time():.6f} {method or 'response'}\n")
            record.flush()
        if method is None:
            with _response_ready:
                _responses[message["id"]] = message
                _response_ready.notify_all()
        elif method == "initialize":
            if options.exit_at_init is not None:
                sys.stderr.write("starting up\nfatal: no configuration found\n")
                sys.stderr.flush()
                os._exit(options.exit_at_init)
            time.sleep(options.init_delay)
            methods = (
                [
                    {"id": "login", "name": "Log in with a browser"},
                    {"id": "api-key", "name": "Use an API key"},
                ]
                if options.auth_required
                else []
            )
            send(
                {
                    "jsonrpc": "2.0",
                    "id": message["id"],
                    "result": {
                        "protocolVersion": options.protocol,
                        "agentCapabilities": {"loadSession": options.load},
                        "authMethods": methods,
                    },
                }
            )
        elif method == "session/new":
            if options.auth_required:
                error = {"code": -32000, "message": "Authentication required"}
                send({"jsonrpc": "2.0", "id": message["id"], "error": error})
                continue
            time.sleep(options.session_delay)
            n = next(_sessions)
            session = f"sess-{os.getpid()}-{n}" if _store else f"sess-{n}"
            _history[session] = []
            _mcp[session] = message["params"].get("mcpServers", [])
            keep()
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"sessionId": session}})
        elif method == "session/load" and options.load:
            session = message["params"]["sessionId"]
            known = stored()
            if options.load_error:
                error = {"code": -32603, "message": "Internal error", "data": "disk on fire"}
                send({"jsonrpc": "2.0", "id": message["id"], "error": error})
            elif options.load_null:
                send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif session not in known:
                error = {"code": -32002, "message": "Resource not found", "data": session}
                send({"jsonrpc": "2.0", "id": message["id"], "error": error})
            else:
                _history[session] = list(known[session])
                replay(session, _history[session])
                send({"jsonrpc": "2.0", "id": message["id"], "result": {}})
        elif method == "session/prompt":
            params = message["params"]
            text = "".join(b.get("text", "") for b in params["prompt"])
            threading.Thread(
                target=prompt, args=(message["id"], params["sessionId"], text), daemon=True
            ).start()
        elif method == "session/cancel":
            with _cancel_ready:
                _cancelled.add(message["params"]["sessionId"])
                _cancel_ready.notify_all()
        elif "id" in message:
            error = {"code": -32601, "message": f"Method not found: {method}"}
            send({"jsonrpc": "2.0", "id": message["id"], "error": error})


if __name__ == "__main__":
    main()
