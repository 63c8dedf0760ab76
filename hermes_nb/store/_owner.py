"""Which process owns a run, and whether it is still alive (DESIGN.md §3, invariant 18).

A run row records the pid and a start token of the process that began it, so a run left
unfinished by a process that died can be marked ``interrupted`` — and a reused pid is not
mistaken for the owner. Kept apart from :mod:`hermes_nb.store.database` because it is about
processes, not SQL: Linux is answered from ``/proc``, Windows through ``OpenProcess``, anything
else with ``os.kill(pid, 0)``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

__all__ = ["PROCESS_TOKEN", "owner_alive"]


def _linux_stat(pid: int) -> tuple[str, str] | None:
    """``(state, start token)`` of a Linux process, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = stat[stat.rindex(")") + 2 :].split()
    return rest[0], f"{_BOOT_ID}:{rest[19]}"  # field 3 is the state, field 22 the start time


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "boot"


_BOOT_ID = _boot_id()
_HAS_PROC = _linux_stat(os.getpid()) is not None
#: Identifies this process even if its pid is reused later (start time on Linux).
PROCESS_TOKEN: str = (
    (_linux_stat(os.getpid()) or ("", ""))[1] if _HAS_PROC else f"t{time.time_ns()}"
)


def _windows_alive(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    code = ctypes.c_ulong()
    kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
    kernel32.CloseHandle(handle)
    return code.value == 259  # STILL_ACTIVE


def owner_alive(pid: int | None, token: str | None) -> bool:
    """Whether the process that started a run is still the one running under ``pid``."""
    if pid is None:
        return False
    if pid == os.getpid():
        return token == PROCESS_TOKEN
    if _HAS_PROC:
        stat = _linux_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return token is None or stat[1] == token
    if sys.platform == "win32":  # pragma: no cover
        return _windows_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
