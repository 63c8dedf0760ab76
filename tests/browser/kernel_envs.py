"""Kernels on other ipykernel versions for the browser tests.

The Jupyter server always runs from the project's virtualenv; only the *kernel* changes. For a
version listed in :data:`EXTRA_KERNELS`, :func:`kernel_env` makes (once, then reuses) a
virtualenv ``.venv-kernels/ipykernel-<version>/`` with ``pip install ipykernel==<version> -e .``,
so hermes_nb and its dependencies are resolved by pip against that ipykernel. The server is given
a kernelspec whose argv starts with that interpreter (``JupyterServer.add_kernel``) and the test's
notebook names it.

A stamp file records what the environment was built from (ipykernel version, Python version,
``pyproject.toml``); when any of them changes the environment is rebuilt. Builds hold a lock file,
so two pytest processes do not build the same environment at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agent_envs import _locked
from agent_envs import _run as _run_logged

__all__ = ["EXTRA_KERNELS", "KERNEL_ENVS", "KernelEnv", "KernelEnvError", "kernel_env"]

ROOT = Path(__file__).resolve().parents[2]
#: Where the per-version virtualenvs live (gitignored).
KERNEL_ENVS = ROOT / ".venv-kernels"

#: Supported ipykernel versions the browser scenarios also run on, besides the project venv's
#: 7.4 (docs/kernel-versions.md): the oldest supported one, 6.29.5 (no subshells: comm messages
#: queue behind a running cell). ``HERMES_NB_BROWSER_KERNELS`` chooses others (comma-separated;
#: empty for none). 7.0-7.3 are not supported (ipython/ipykernel#1554: a request after a new
#: connection can stay unread; scripts/kernel_first_request.py measures it) and pyproject.toml
#: excludes them, so pip refuses to build their environments.
EXTRA_KERNELS = tuple(
    v.strip() for v in os.environ.get("HERMES_NB_BROWSER_KERNELS", "6.29.5").split(",") if v.strip()
)

_STAMP = ".hermes-nb-kernel.json"
_PIP_TIMEOUT = 600


class KernelEnvError(RuntimeError):
    """The environment for a version could not be made (pip could not install it, …)."""


@dataclass(frozen=True)
class KernelEnv:
    """A kernel interpreter with ``ipykernel==version`` and hermes_nb (editable)."""

    version: str
    python: Path

    @property
    def spec_name(self) -> str:
        """The kernelspec name the server knows it by (and the notebook's metadata names)."""
        return f"hnb-ipykernel-{self.version}"

    @property
    def display_name(self) -> str:
        return f"Python 3 (ipykernel {self.version})"


def _wanted(version: str) -> dict[str, str]:
    pyproject = (ROOT / "pyproject.toml").read_bytes()
    return {
        "ipykernel": version,
        "python": ".".join(map(str, sys.version_info[:3])),
        "pyproject": hashlib.sha256(pyproject).hexdigest()[:16],
    }


def _run(argv: list[str], log: Path, what: str) -> None:
    _run_logged(argv, log, what, error=KernelEnvError, timeout=_PIP_TIMEOUT)


def _installed_version(python: Path) -> str | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import ipykernel, hermes_nb; print(ipykernel.__version__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def kernel_env(version: str) -> KernelEnv:
    """The virtualenv for ``ipykernel==version``, built now if missing or stale.

    Raises :class:`KernelEnvError` if the virtualenv cannot be made or pip cannot install that
    version together with hermes_nb's dependencies.
    """
    home = KERNEL_ENVS / f"ipykernel-{version}"
    python = home / "bin" / "python"
    stamp = home / _STAMP
    wanted = _wanted(version)
    with _locked(KERNEL_ENVS / f"ipykernel-{version}.lock"):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(stamp.read_text()) == wanted and _installed_version(python) == version:
                return KernelEnv(version, python)
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        log = KERNEL_ENVS / f"ipykernel-{version}.log"
        log.write_bytes(b"")
        # This interpreter's base Python: the kernel runs the same Python as the server.
        _run([sys.executable, "-m", "venv", str(home)], log, "python -m venv failed")
        _run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                f"ipykernel=={version}",
                "-e",
                str(ROOT),
            ],
            log,
            f"pip cannot install ipykernel=={version} with hermes_nb's dependencies",
        )
        got = _installed_version(python)
        if got != version:
            raise KernelEnvError(f"{python} has ipykernel {got!r} after installing {version}")
        stamp.write_text(json.dumps(wanted), encoding="utf-8")
        return KernelEnv(version, python)
