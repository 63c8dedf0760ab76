"""Start a local MCP server so that it never outlives the kernel. Run as a script, not imported.

``python -I -S _launch.py PROGRAM ARG...``: on Linux it asks the kernel for
``PR_SET_PDEATHSIG`` (SIGKILL when the thread that started it ends: the runtime's loop thread,
or the whole kernel, killed or not), then becomes the server with ``exec`` — the same process,
so the SDK's handling of its process group and pipes is unchanged. A server that exits when its
stdin closes needs none of this; one that does not would otherwise live on after a killed
kernel. Elsewhere it only execs. (ACP agents get the same protection from their own
``preexec_fn``; the MCP SDK starts its processes itself, so the protection travels in here.)
"""

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def main() -> None:
    argv = sys.argv[1:]
    parent = os.environ.pop("HERMES_NB_MCP_PARENT", "")
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # a libc without prctl: stdin's end still stops it
            pass
        if parent and str(os.getppid()) != parent:  # the kernel died before prctl took hold
            os._exit(1)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"hermes_nb: cannot run {argv[0]!r}: {exc}\n")
        os._exit(127)


if __name__ == "__main__":
    main()
