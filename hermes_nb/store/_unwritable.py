"""Why a session store cannot be written: SQLite's result codes and the filesystem's word.

Kept apart from the connection (:mod:`hermes_nb.store._connection`) because it only reads
evidence — an sqlite3 error's primary result code, an ``OSError``'s errno, ``statvfs`` and
``os.access`` — and answers in a clause after "is" ("on a read-only filesystem", "on a full
disk", "not writable by this user"). :func:`unwritable` is the same check for a caller that must
not open the store for writing (``%hermes doctor``).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..core.exceptions import StoreError, StoreReadOnlyError

__all__ = ["unwritable"]

# SQLite's primary result codes (sqlite3.h) that mean "this file cannot be written here".
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 3, 8, 10, 13, 14
_UNWRITABLE = frozenset(
    {_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN}
)
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


def _code(exc: BaseException | None) -> int:
    """SQLite's primary result code of ``exc`` (0 if it is not an sqlite3 error)."""
    return (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF


def _cannot_write(exc: StoreError) -> bool:
    """True if opening failed because the file cannot be written here (not for any other
    reason): then the store is opened read-only instead."""
    return isinstance(exc, StoreReadOnlyError) or _code(exc.__cause__) in _UNWRITABLE


def _condition(where: Path, cause: BaseException | None) -> str:
    """Why ``where`` (an existing file or directory) cannot be written, as a clause after "is"."""
    found = _evidence(where, cause)
    if found:
        return found
    detail = cause.strerror if isinstance(cause, OSError) else str(cause or "")
    return f"not writable ({detail})" if detail else "not writable"


def _evidence(where: Path, cause: BaseException | None) -> str | None:
    """What ``cause`` or the filesystem says keeps ``where`` from being written (a clause after
    "is"), or None when neither names a reason."""
    err = cause.errno if isinstance(cause, OSError) else None
    if _code(cause) == _SQLITE_FULL or err in _FULL_ERRNOS:
        return "on a full disk"
    try:
        fs: os.statvfs_result | None = os.statvfs(where)
    except (OSError, AttributeError):  # AttributeError: no statvfs on this platform
        fs = None
    if err == errno.EROFS or (fs is not None and fs.f_flag & os.ST_RDONLY):
        return "on a read-only filesystem"
    if fs is not None and fs.f_blocks and not fs.f_bavail:
        return "on a full disk"
    directory = where if where.is_dir() else where.parent
    if err in (errno.EACCES, errno.EPERM) or not (
        os.access(directory, os.W_OK) and (where.is_dir() or os.access(where, os.W_OK))
    ):
        return "not writable by this user"
    return None


def unwritable(path: Path) -> str | None:
    """Why the existing file ``path`` cannot be written (a clause after "is": "on a read-only
    filesystem", "on a full disk", "not writable by this user"), or None when nothing says so.
    For a check that must not open the store for writing (``%hermes doctor``)."""
    return _evidence(path, None)
