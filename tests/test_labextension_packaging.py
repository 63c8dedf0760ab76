"""The front-end extension's packaging (``labextension/``), without a browser.

* Its declarations agree: the npm package, the pyproject's wheel mapping, ``install.json``, the
  shared-module versions and the committed ``yarn.lock``.
* It is installed and enabled where this interpreter's Jupyter looks (``./dev`` builds it and
  links it into the venv; ``pip install -e`` copies it there).
* A wheel built from this tree ships it prebuilt under ``share/jupyter/labextensions/``, with
  the chat view's fallback module built from the same source (``hermes_nb/view/static/view.js``),
  and ``jupyter labextension list`` finds it once that wheel is installed (slow: builds a wheel).

The browser half (the extension active in JupyterLab and Notebook 7, doing its jobs) is
``tests/browser/test_labextension_code_actions.py`` and ``test_labextension_display_ids.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from hermes_nb.view._stylesheet import STYLESHEETS

ROOT = Path(__file__).resolve().parents[1]
EXT = ROOT / "labextension"
NAME = "hermes-nb"
SHARE = f"share/jupyter/labextensions/{NAME}"
VIEW_JS = "hermes_nb/view/static/view.js"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _package() -> dict:
    return json.loads((EXT / "package.json").read_text(encoding="utf-8"))


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _labextension_list(env_extra: dict[str, str] | None = None) -> str:
    """``jupyter labextension list`` for this interpreter, without the caller's Jupyter
    variables (unless given), colours stripped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "JUPYTERLAB"))}
    env.update(env_extra or {})
    done = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return _ANSI.sub("", done.stdout + done.stderr)


def _listed(report: str, directory: Path) -> str:
    """The line for our extension in ``report``'s section for ``directory``, or ''."""
    section = ""
    for line in report.splitlines():
        if not line.startswith((" ", "\t")):
            section = line.strip()
        elif Path(section) == directory and line.split()[:1] == [NAME]:
            return " ".join(line.split())
    return ""


def test_the_declarations_agree():
    package = _package()
    assert package["name"] == NAME
    assert package["jupyterlab"]["extension"] is True
    out_dir = package["jupyterlab"]["outputDir"]

    pyproject = _pyproject()
    hatch = pyproject["tool"]["hatch"]["build"]
    shared = hatch["targets"]["wheel"]["shared-data"]
    assert shared == {f"labextension/{out_dir}": SHARE}
    assert f"labextension/{out_dir}" in hatch["targets"]["sdist"]["artifacts"]
    kwargs = hatch["hooks"]["jupyter-builder"]["build-kwargs"]
    assert kwargs["path"] == "labextension"
    assert kwargs["build_dir"] == f"labextension/{out_dir}"
    # The chat view's fallback module: built by the same hook (jlpm build:view), ignored by git,
    # so the wheel and the sdist must name it to carry it.
    assert VIEW_JS in hatch["targets"]["wheel"]["artifacts"]
    assert VIEW_JS in hatch["targets"]["sdist"]["artifacts"]
    assert VIEW_JS in hatch["hooks"]["jupyter-builder"]["ensured-targets"]
    for script in ("build", "build:prod"):
        assert "jlpm build:view" in package["scripts"][script], script
    requires = " ".join(pyproject["build-system"]["requires"])
    assert "hatch-jupyter-builder" in requires
    assert "jupyter-builder" in requires

    install = json.loads((EXT / "install.json").read_text(encoding="utf-8"))
    assert install["packageManager"] == "python"
    assert install["packageName"] == pyproject["project"]["name"]

    # The JupyterLab it runs in provides these; each is required at the version the package
    # depends on (the builder would otherwise require the version it was built against).
    sharing = package["jupyterlab"]["sharedPackages"]
    for dep, version in package["dependencies"].items():
        assert sharing[dep] == {"bundled": False, "singleton": True, "requiredVersion": version}
    lab = next(r for r in pyproject["project"]["optional-dependencies"]["lab"] if "jupyterlab" in r)
    floor = re.search(r">=\s*(\d+\.\d+)", lab).group(1)
    assert package["dependencies"]["@jupyterlab/notebook"] == f"^{floor}.0", (
        "the extension should require the oldest JupyterLab the lab extra allows"
    )


def test_the_lockfile_matches_package_json():
    lock = (EXT / "yarn.lock").read_text(encoding="utf-8")
    package = _package()
    wanted = {**package["dependencies"], **package["devDependencies"]}
    for dep, version in wanted.items():
        assert f"{dep}@npm:{version}" in lock, f"yarn.lock lacks {dep}@{version}: run jlpm"
    if (ROOT / ".git").exists():  # not ignored: `git add labextension` takes it along
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", "labextension/yarn.lock"], cwd=ROOT, check=False
        )
        assert ignored.returncode == 1, "labextension/yarn.lock is ignored by git"


def test_the_extension_is_installed_and_enabled_here():
    report = _labextension_list()
    found = [" ".join(line.split()) for line in report.splitlines() if line.split()[:1] == [NAME]]
    assert found, f"{NAME} is not installed (./dev builds and links it):\n{report}"
    version = _package()["version"]
    assert found[0] == f"{NAME} v{version} enabled OK (python, hermes-nb)", report


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_wheel_ships_the_prebuilt_extension(tmp_path):
    """``pip wheel .``: the hook builds the extension if it is stale; the wheel carries it in
    its data directory, and installing the wheel puts it where Jupyter finds it."""
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = tmp_path.glob("hermes_nb-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        prefix = next(
            n[: -len("package.json")] for n in names if n.endswith(f"{SHARE}/package.json")
        )
        assert prefix.endswith(f".data/data/{SHARE}/"), prefix
        shipped = json.loads(archive.read(prefix + "package.json"))
        install = json.loads(archive.read(prefix + "install.json"))
        entry = shipped["jupyterlab"]["_build"]["load"]
        assert prefix + entry in names
        assert prefix + "static/style.js" in names
        assert not [n for n in names if "node_modules" in n or n.endswith(".ts")], names
        # The chat view's fallback module (for pages without the extension), its loader and
        # the stub every run's widget carries.
        static = {VIEW_JS} | {f"hermes_nb/view/static/{n}.js" for n in ("loader", "stub")}
        assert static <= set(names)
        # The example notebooks, for `hermes-nb examples` (tests/test_pip_user.py).
        assert "hermes_nb/examples/quickstart.ipynb" in names
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        assert "hermes-nb examples" in archive.read(metadata).decode()
    assert install["packageName"] == "hermes-nb"
    size = wheel.stat().st_size
    assert size < 2_000_000, f"the wheel is {size} bytes"

    # Installed into a prefix of its own: Jupyter's data path finds it there.
    prefix_dir = tmp_path / "prefix"
    # --ignore-installed: else pip first uninstalls the project from the running venv.
    pip_install = [sys.executable, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q"]
    subprocess.run(
        [*pip_install, "--prefix", str(prefix_dir), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    share = prefix_dir / "share" / "jupyter"
    report = _labextension_list({"JUPYTER_PATH": str(share)})
    line = _listed(report, share / "labextensions")
    assert line == f"{NAME} v{shipped['version']} enabled OK (python, hermes-nb)", report


def test_the_extension_styles_saved_answers_with_the_views_own_rules():
    """The extension's style imports the chat view's stylesheet files, in the kernel's order (one
    source), and carries the kernel's current code colours (``scripts/write_extension_css.py``
    writes them)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from write_extension_css import TARGET, expected
    finally:
        sys.path.pop(0)
    assert TARGET.read_text(encoding="utf-8") == expected(), (
        "labextension/style/highlight.css is out of date: python scripts/write_extension_css.py"
    )
    index = (ROOT / "labextension" / "style" / "index.css").read_text(encoding="utf-8")
    imported = re.findall(r"@import url\('([^']+)'\)", index)
    style = ROOT / "labextension" / "style"
    static = ROOT / "hermes_nb" / "view" / "static"
    assert [(style / path).resolve() for path in imported] == [
        *(static / name for name in STYLESHEETS),
        TARGET,
    ]
