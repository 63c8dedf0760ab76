"""The core layer: event names and payloads, the run journal, the error tree, configuration and
profiles (with ``ENV_LOCK``).

No Jupyter and no network here; the only I/O is reading ``config.toml``. Every other layer
builds on these names, and this package imports nothing above it (``pyproject.toml``'s
import-linter contracts check both).
"""

from __future__ import annotations

from . import config, events, exceptions, journal, profiles
from ._child_log import log_tail, start_log
from ._recent import remember_newest
from ._text import md_table, money, short

__all__ = [
    "config",
    "events",
    "exceptions",
    "journal",
    "log_tail",
    "md_table",
    "money",
    "profiles",
    "remember_newest",
    "short",
    "start_log",
]
