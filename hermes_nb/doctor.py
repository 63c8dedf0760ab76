"""``%hermes doctor`` / ``python -m hermes_nb doctor``: is everything wired up?

It checks, in order: the configuration file, the effective profile (with the key redacted: only
whether its variable is set), a live call to the endpoint (``GET /models``, or a one-token
completion where that is not served) with the failure classified exactly as a turn would
classify it, the session store, and the versions of the Jupyter pieces with a warning for
combinations known to misbehave.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import metadata
from pathlib import Path

from .core import md_table
from .core.config import config_path, home, load_config
from .core.exceptions import ConfigError, ErrorKind
from .core.profiles import Profile
from .providers.base import HINTS, classify_status
from .store.database import unwritable

__all__ = ["Check", "DoctorReport", "Verdict", "doctor_report"]


class Verdict(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


_MARK = {Verdict.OK: "✅", Verdict.WARN: "⚠️", Verdict.FAIL: "❌"}


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    verdict: Verdict
    detail: str


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, verdict: Verdict, detail: str) -> None:
        self.checks.append(Check(name, verdict, detail))

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return all(c.verdict is not Verdict.FAIL for c in self.checks)

    def verdict(self, name: str) -> Verdict:
        return next(c.verdict for c in self.checks if c.name == name)

    def text(self) -> str:
        width = max(len(c.name) for c in self.checks)
        return "\n".join(
            f"{c.verdict.upper():4}  {c.name:<{width}}  {c.detail}" for c in self.checks
        )

    def markdown(self) -> str:
        return md_table(
            ("", "check", "result"), ((_MARK[c.verdict], c.name, c.detail) for c in self.checks)
        )


def _endpoint_check(profile: Profile, timeout: float) -> tuple[Verdict, str]:
    import httpx

    if profile.provider == "echo":
        return Verdict.OK, "offline echo model: no endpoint to reach"
    if profile.provider == "acp":
        from .providers.acp import check_command

        found, said = check_command(profile)
        return (Verdict.OK if found else Verdict.FAIL), said
    if profile.provider == "hermes-agent":
        # Checked without importing it: importing run_agent loads the home's .env for good.
        from .providers.hermes_agent import agent_available, agent_home, stream_guard_note

        if not agent_available():
            return Verdict.FAIL, 'hermes-agent is not installed: pip install "hermes-nb[agent]"'
        note = stream_guard_note()
        guarded = f"; {note}" if note else ""
        return Verdict.OK, f"hermes-agent is installed; home {agent_home(profile)}{guarded}"
    base = (profile.base_url or "").rstrip("/")
    key = profile.api_key()
    headers = dict(profile.headers)
    if key:
        headers["Authorization"] = f"Bearer {key.reveal()}"
    try:
        with httpx.Client(timeout=timeout, headers=headers) as client:
            response = client.get(f"{base}/models")
            if response.status_code in (404, 405):
                response = client.post(
                    f"{base}/chat/completions",
                    json={
                        "model": profile.model,
                        "messages": [{"role": "user", "content": "ping"}],
                        "max_tokens": 1,
                    },
                )
    except httpx.TimeoutException:
        return Verdict.FAIL, f"timeout: {base} did not answer within {timeout:g} s. " + HINTS[
            ErrorKind.TIMEOUT
        ]
    except httpx.HTTPError as exc:
        reason = type(exc).__name__
        return Verdict.FAIL, f"network: could not reach {base} ({reason}). " + HINTS[
            ErrorKind.NETWORK
        ]
    if response.status_code >= 400:
        kind = classify_status(response.status_code)
        detail = f"{kind}: {base} answered {response.status_code}. {HINTS[kind]}"
        return Verdict.FAIL, key.redact(detail) if key else detail
    models: list[str] = []
    try:
        body = response.json()
        models = [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]
    except (ValueError, AttributeError):
        pass
    if models and profile.model not in models:
        shown = ", ".join(models[:8]) + (" …" if len(models) > 8 else "")
        return Verdict.WARN, f"reachable, but model {profile.model!r} is not listed ({shown})"
    return Verdict.OK, f"{base} is reachable" + (f"; {len(models)} models listed" if models else "")


def _store_check(path: Path) -> tuple[Verdict, str]:
    if not path.exists():
        return Verdict.OK, f"{path} (not created yet: the first turn creates it)"
    try:
        result, sessions = _read_store(path, f"file:{path}?mode=ro")
    except sqlite3.OperationalError:
        # A WAL store needs its -shm beside it even to read; where that cannot be created (a
        # read-only filesystem) read the file alone, as the store itself does.
        try:
            result, sessions = _read_store(path, f"file:{path}?mode=ro&immutable=1")
        except sqlite3.DatabaseError as exc:
            return Verdict.FAIL, f"{path} cannot be read as a session store ({exc})."
    except sqlite3.DatabaseError as exc:
        return Verdict.FAIL, f"{path} cannot be read as a session store ({exc})."
    if result != "ok":
        return Verdict.FAIL, f"{path} failed its integrity check: {result}"
    why = unwritable(path)
    if why:
        return (
            Verdict.WARN,
            f"{path}: healthy, {sessions}, but it is {why}: history, search and export "
            "work; new turns are shown but not saved",
        )
    return Verdict.OK, f"{path}: healthy, {sessions}"


def _read_store(path: Path, uri: str) -> tuple[str, str]:
    """The integrity check's result, and the sessions counted as ``%hermes sessions`` lists
    them: the live ones, then how many compression archived (listed only with their lineage)."""
    conn = sqlite3.connect(uri, uri=True, timeout=2)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        live, archived = conn.execute(
            "SELECT count(*) - coalesce(sum(archived), 0), coalesce(sum(archived), 0) FROM sessions"
        ).fetchone()
    finally:
        conn.close()
    counted = f"{live} session{'s' if live != 1 else ''}"
    if archived:
        counted += f" (and {archived} archived by compression)"
    return str(result), counted


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _parse(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _versions_check() -> tuple[Verdict, str]:
    names = ("jupyterlab", "notebook", "ipykernel", "ipywidgets", "anywidget", "jupyter_server")
    found = {n: _version(n) for n in names}
    shown = ", ".join(f"{n} {v}" for n, v in found.items() if v)
    warnings = []
    kernel = found["ipykernel"]
    if kernel and _parse(kernel) < (7,):
        warnings.append(
            f"ipykernel {kernel} handles Stop and replay only after a running cell finishes "
            "(≥ 7.4 handles them at once)"
        )
    elif kernel and _parse(kernel) < (7, 4):
        warnings.append(
            f"ipykernel {kernel} can leave a request unanswered after a page connects until the "
            'next connection (ipython/ipykernel#1554); pip install -U "ipykernel>=7.4"'
        )
    lab = found["jupyterlab"]
    if lab and _parse(lab) < (4, 4):
        warnings.append(f"JupyterLab {lab} sends Stop behind a running cell (≥ 4.4 does not)")
    widgets = found["ipywidgets"]
    if widgets and _parse(widgets) < (8,):
        return Verdict.FAIL, f"{shown}; ipywidgets {widgets} is too old (need ≥ 8)"
    if warnings:
        return Verdict.WARN, f"{shown}; " + "; ".join(warnings)
    return Verdict.OK, shown


def doctor_report(profile: str | None = None, *, timeout: float = 5.0) -> DoctorReport:
    """Run every check and return the report (never raises for a broken setup)."""
    report = DoctorReport()
    try:
        config = load_config()
    except ConfigError as exc:
        report.add("config", Verdict.FAIL, str(exc))
        return report
    path = config.path or config_path()
    where = (
        str(path)
        if path.exists()
        else f"none: built-in defaults (a config.toml would go at {path})"
    )
    report.add("config", Verdict.OK, where)
    try:
        chosen = config.profile(profile)
    except ConfigError as exc:
        report.add("profile", Verdict.FAIL, str(exc))
        return report
    report.add("profile", Verdict.OK, chosen.describe())
    if chosen.api_key_env:
        is_set = chosen.api_key() is not None
        report.add(
            "api key",
            Verdict.OK if is_set else Verdict.FAIL,
            f"{chosen.api_key_env} is {'set' if is_set else 'not set'}"
            + ("" if is_set else f"; export {chosen.api_key_env}=... before starting Jupyter"),
        )
    else:
        report.add("api key", Verdict.OK, "none needed")
    report.add("endpoint", *_endpoint_check(chosen, timeout))
    report.add("store", *_store_check(home() / "sessions.db"))
    report.add("versions", *_versions_check())
    return report
