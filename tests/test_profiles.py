"""Profiles and the env lock (DESIGN.md §3, invariants 11–13)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator

import anyio
import pytest

import hermes_nb
from hermes_nb.core.events import RunState
from hermes_nb.core.profiles import ENV_LOCK, Profile, Secret, profile_env
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest

_VAR = "HNB_TEST_OVERLAY"


class _EnvProbe:
    """A provider that records the environment it sees and whether ENV_LOCK is free."""

    name = "env-probe"
    seen: list[tuple[str | None, bool]] = []
    hold = 0.05

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        free = ENV_LOCK.acquire(blocking=False)
        if free:
            ENV_LOCK.release()
        _EnvProbe.seen.append((os.environ.get(_VAR), free))
        await anyio.sleep(self.hold)
        yield "token", {"text": f"saw {os.environ.get(_VAR)}"}


@pytest.fixture
def probe() -> type[_EnvProbe]:
    _EnvProbe.seen = []
    register_provider("env-probe", lambda profile, client: _EnvProbe())
    return _EnvProbe


def _profile(name: str, value: str) -> Profile:
    return Profile(name=name, provider="env-probe", env={_VAR: value})


def test_invariant_11_env_lock_is_not_reentrant() -> None:
    assert type(ENV_LOCK) is type(threading.Lock())
    assert ENV_LOCK.acquire(blocking=False)
    try:
        assert not ENV_LOCK.acquire(blocking=False)
    finally:
        ENV_LOCK.release()


def test_invariant_11_lock_is_free_while_a_run_is_in_flight(probe: type[_EnvProbe]) -> None:
    probe.hold = 0.3
    run = hermes_nb.chat("x", profile=_profile("a", "A"))
    while not probe.seen:
        time.sleep(0.01)
    # the run is inside its profile context right now, yet the lock is free
    assert ENV_LOCK.acquire(timeout=0.1)
    ENV_LOCK.release()
    run.wait(5)
    assert probe.seen == [("A", True)]


def test_invariant_12_three_turns_in_a_row(
    probe: type[_EnvProbe], env_snapshot: dict, current_env
) -> None:
    probe.hold = 0.0
    for value in ("one", "two", "three"):
        run = hermes_nb.chat("x", profile=_profile(value, value)).wait(5)
        assert run.status is RunState.DONE
        assert run.text == f"saw {value}"
    assert current_env() == env_snapshot


def test_invariant_12_fifty_concurrent_runs_restore_env(
    probe: type[_EnvProbe], env_snapshot: dict, current_env
) -> None:
    probe.hold = 0.05
    runs = [hermes_nb.chat("x", profile=_profile(f"p{i % 5}", f"v{i % 5}")) for i in range(50)]
    for run in runs:
        assert run.wait(20).status is RunState.DONE
    assert len(probe.seen) == 50
    assert all(free for _, free in probe.seen)
    assert _VAR not in os.environ
    assert current_env() == env_snapshot


def test_invariant_12_restore_deletes_new_and_restores_old(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HNB_EXISTING", "before")
    monkeypatch.delenv("HNB_NEW", raising=False)
    with profile_env({"HNB_EXISTING": "during", "HNB_NEW": "x"}):
        assert os.environ["HNB_EXISTING"] == "during"
        assert os.environ["HNB_NEW"] == "x"
        assert ENV_LOCK.acquire(blocking=False)
        ENV_LOCK.release()
    assert os.environ["HNB_EXISTING"] == "before"
    assert "HNB_NEW" not in os.environ


def test_invariant_12_overlapping_overlays_end_exactly_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(_VAR, raising=False)
    a, b = profile_env({_VAR: "a"}), profile_env({_VAR: "b"})
    a.__enter__()
    b.__enter__()
    assert os.environ[_VAR] == "b"
    a.__exit__(None, None, None)  # a ends first: b's value stays while b runs
    assert os.environ[_VAR] == "b"
    b.__exit__(None, None, None)
    assert _VAR not in os.environ


def test_invariant_12_restores_even_when_the_body_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_VAR, raising=False)
    with pytest.raises(KeyError), profile_env({_VAR: "x"}):
        raise KeyError
    assert _VAR not in os.environ
    assert ENV_LOCK.acquire(blocking=False)
    ENV_LOCK.release()


def test_hermes_home_and_user_paths_are_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HERMES_HOME", raising=False)
    with profile_env(Profile(hermes_home="~/.hermes/profiles/x")):
        assert os.environ["HERMES_HOME"] == os.path.expanduser("~/.hermes/profiles/x")
    assert "HERMES_HOME" not in os.environ


def test_invariant_13_key_read_at_request_time_and_never_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = Profile(name="k", provider="openai", base_url="http://x", api_key_env="HNB_KEY")
    assert profile.api_key() is None
    monkeypatch.setenv("HNB_KEY", "sk-secret-123456")
    key = profile.api_key()
    assert isinstance(key, Secret) and key.reveal() == "sk-secret-123456"
    assert "sk-secret" not in repr(key) and "sk-secret" not in str(key)
    assert "sk-secret" not in repr(profile) and "sk-secret" not in profile.describe()
    assert key.redact("Bearer sk-secret-123456 rejected") == "Bearer *** rejected"
    monkeypatch.setenv("HNB_KEY", "sk-rotated-654321")
    assert profile.api_key().reveal() == "sk-rotated-654321"
