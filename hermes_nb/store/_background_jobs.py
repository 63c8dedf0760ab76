"""The background jobs after a reply — titling a new session, compressing a long one — each in
a daemon thread, at most one per key; :func:`join_background` waits for them, and at kernel exit
they get a moment to finish before the stores close.

Apart from :mod:`._session` because this is process-wide state (the running jobs) with its own
lifetime (the ``atexit`` hook), shared by every session of every store.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..core.exceptions import HermesError
from ..core.profiles import Profile
from .database import close_stores

if TYPE_CHECKING:
    from ._session import Session

log = logging.getLogger(__name__)


def _auto_compress(session: Session, profile: Profile) -> None:
    from .compression import NothingToCompress, compress

    try:
        continuation = compress(session, reason="auto", profile=profile)
    except NothingToCompress as exc:  # nothing anyone could act on: a log record at most
        log.debug("Automatic compression of session %s not needed: %s", session.id[:8], exc)
    except HermesError as exc:
        log.warning("Automatic compression of session %s skipped: %s", session.id[:8], exc)
    else:
        log.info("Session %s compressed into %s.", session.id[:8], continuation.id[:8])


# -- background jobs ---------------------------------------------------------------------------

_jobs: dict[str, threading.Thread] = {}
_jobs_lock = threading.Lock()


def _start_job(key: str, func: Callable[..., Any], *args: Any) -> None:
    """Run ``func(*args)`` in a daemon thread unless the same job is already running."""
    with _jobs_lock:
        running = _jobs.get(key)
        if running is not None and running.is_alive():
            return
        thread = threading.Thread(
            target=_run_job, args=(key, func, *args), name=f"hermes-nb-{key}", daemon=True
        )
        _jobs[key] = thread
        thread.start()


def _run_job(key: str, func: Callable[..., Any], *args: Any) -> None:
    try:
        func(*args)
    except Exception:  # a background job must never surface as a crash
        log.exception("Background job %s failed.", key)
    finally:
        with _jobs_lock:
            if _jobs.get(key) is threading.current_thread():
                del _jobs[key]


def join_background(timeout: float | None = 30.0) -> bool:
    """Wait for running title and compression jobs; True if none is left (kernel shutdown)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _jobs_lock:
            threads = [t for t in _jobs.values() if t.is_alive()]
        if not threads:
            return True
        for thread in threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        if deadline is not None and time.monotonic() >= deadline:
            with _jobs_lock:
                return not any(t.is_alive() for t in _jobs.values())


def _at_exit() -> None:
    """Kernel exit: let title and compression jobs finish briefly, then close the stores.

    Registered at import, so it runs after the runtime's own shutdown (atexit is LIFO and the
    runtime starts later), when live turns have already written their outcome.
    """
    join_background(5.0)
    close_stores()


atexit.register(_at_exit)
