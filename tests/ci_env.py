"""What a test does when something it needs is not here: skip, saying why; but in CI (``CI=true``),
which installs and builds everything the tests need, fail, so a missing piece never passes as a
skip."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "unavailable"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str, ci: str = "CI must install it") -> NoReturn:
    """Skip with ``reason``; in CI fail with it, and ``ci`` (why CI has no excuse)."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, and {ci}.", pytrace=False)
    pytest.skip(reason)
