"""How often does a kernel leave the first request after a new connection unanswered?

This is the platform check behind docs/kernel-versions.md ("ipykernel 7.0–7.3: a request can go
unread"). It does, many times over, what jupyter_server does each time a page connects to a
kernel: open a transient shell and control channel, send ``kernel_info_request`` on both
("the nudge"), close both as soon as control answers (so the kernel's shell reply goes to a peer
that has gone), then send an ``execute_request`` on the page's own long-lived channel and wait
for its reply.

ipykernel 7.0–7.3 send shell replies with a raw ``send_multipart`` on the ROUTER socket that a
``ZMQStream`` reads requests from; the raw send can consume the stream's edge-triggered wake-up,
so a request that arrives meanwhile is not read until something else wakes the socket (the
next connection). Upstream: ipython/ipykernel#1554; replies go through the stream since 7.4.0
(ipython/ipykernel#1529). ipykernel 6 sent replies through the stream.

Usage (``--python`` picks the kernel's interpreter, e.g. one of ``.venv-kernels/``)::

    .venv/bin/python scripts/kernel_first_request.py            # this interpreter's ipykernel
    .venv/bin/python scripts/kernel_first_request.py \
        --python .venv-kernels/ipykernel-7.3.0/bin/python

It prints how many of the attempts got no reply within ``--wait`` seconds, and whether the
next connection's nudge then released the request.
"""

from __future__ import annotations

import argparse
import queue
import sys
import time
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import KernelManager


def _reply(channel: Any, msg_id: str, timeout: float) -> dict[str, Any] | None:
    """The reply to ``msg_id`` on ``channel`` within ``timeout`` seconds, or None."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = channel.get_msg(timeout=left)
        except queue.Empty:
            return None
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg
    return None


def _kernel_version(page: Any) -> str:
    """The kernel's ``ipykernel.__version__`` (``kernel_info`` reports IPython's version)."""
    msg_id = page.execute(
        "import ipykernel", silent=False, user_expressions={"v": "ipykernel.__version__"}
    )
    reply = _reply(page.shell_channel, msg_id, 30)
    return (
        reply["content"]["user_expressions"]["v"]["data"]["text/plain"].strip("'") if reply else "?"
    )


def _nudge(km: KernelManager) -> None:
    """jupyter_server's nudge for a new connection: transient shell and control sockets with
    their own (random) identities, closed once control answers."""
    shell, control = km.connect_shell(), km.connect_control()
    try:
        km.session.send(shell, "kernel_info_request")
        km.session.send(control, "kernel_info_request")
        if not control.poll(30_000):
            raise RuntimeError("the kernel did not answer kernel_info on control")
        control.recv_multipart()
    finally:
        shell.close(linger=0)  # before the shell reply arrives: it goes nowhere
        control.close(linger=0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="the kernel's interpreter")
    parser.add_argument("--attempts", type=int, default=200)
    parser.add_argument("--wait", type=float, default=3.0, help="seconds to wait for a reply")
    args = parser.parse_args()

    km = KernelManager()
    km._kernel_spec = KernelSpec(
        argv=[args.python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="probe",
        language="python",
    )
    km.start_kernel()
    page = km.client()  # the page's own channels, open for the whole run
    page.start_channels(iopub=False, stdin=False, hb=False)
    try:
        page.wait_for_ready(timeout=60)
        version = _kernel_version(page)
        unanswered = released = 0
        started = time.monotonic()
        for _ in range(args.attempts):
            _nudge(km)
            msg_id = page.execute("1", silent=True, store_history=False)
            if _reply(page.shell_channel, msg_id, args.wait) is not None:
                continue
            unanswered += 1
            _nudge(km)  # the next page connecting: does it wake the kernel's shell socket?
            if _reply(page.shell_channel, msg_id, args.wait) is not None:
                released += 1
        elapsed = time.monotonic() - started
        print(
            f"ipykernel {version}: {unanswered} of {args.attempts} requests sent right after a "
            f"connection's nudge got no reply within {args.wait:g} s; the next nudge released "
            f"{released} of them ({elapsed:.0f} s)"
        )
    finally:
        page.stop_channels()
        km.shutdown_kernel(now=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
