#!/usr/bin/env bash
# The release check: what a pip user gets, tried as one would.
#
#   scripts/release_check.sh            (./dev test runs it before the test suite)
#
# 1. builds the sdist and the wheel from this checkout (the labextension must already be built:
#    ./dev does that) and checks both with twine;
# 2. installs the wheel -- not the tree -- with its `lab` extra into a fresh virtualenv;
# 3. runs the quickstart notebook (copied out of the installed wheel by `hermes-nb examples`)
#    with nbval in a folder outside the checkout, in an empty
#    HERMES_NB_HOME with no provider keys (the offline model answers, as for a new user);
# 4. checks that `jupyter labextension list` lists the extension, enabled and OK.
# The build tools live in a virtualenv of their own: twine's packaging pin would fight
# hermes-agent's in the project's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
pip_quiet=(--disable-pip-version-check -q)

work=$(mktemp -d -t hermes-nb-test-release-XXXXXX)
trap 'rm -rf "$work"' EXIT
say() { echo "release check: $*"; }
fail() { echo "release check FAILED: $*" >&2; exit 1; }

say "building the sdist and the wheel"
"$PY" -m venv "$work/tools"
"$work/tools/bin/pip" install "${pip_quiet[@]}" build twine
"$work/tools/bin/python" -m build --sdist --wheel --outdir "$work/dist" "$ROOT" \
    >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "the build failed"; }
"$work/tools/bin/twine" check --strict "$work"/dist/* || fail "twine check"
wheel=$(ls "$work"/dist/*.whl)
# The PyPI page (the METADATA body): no link that PyPI cannot resolve, and how to get started.
"$work/tools/bin/python" - "$wheel" <<'PY' || fail "the PyPI page has links PyPI cannot resolve"
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as archive:
    name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    body = archive.read(name).decode().split("\n\n", 1)[1]
relative = re.findall(r"\]\((?!https?://|#)[^)]*\)", body)
assert not relative and 'pip install "hermes-nb[lab]"' in body, relative
PY
say "$(basename "$wheel"): $(du -k "$wheel" | cut -f1) KB; sdist $(du -k "$work"/dist/*.tar.gz | cut -f1) KB"

say "installing the wheel with JupyterLab into a fresh virtualenv"
"$PY" -m venv "$work/venv"
# pandas: the quickstart summarises a DataFrame (a user who has none sees that cell fail alone).
"$work/venv/bin/pip" install "${pip_quiet[@]}" "$wheel[lab]" pandas "nbval>=0.11" "pytest>=8.2"

say "running the quickstart notebook with nbval outside the checkout"
mkdir -p "$work/run" "$work/home"
cp notebooks/sanitize.cfg "$work/run/"
(
    cd "$work/run"
    # A new user's machine: no keys, no configuration, nothing of the checkout on the path.
    unset OPENAI_API_KEY OPENROUTER_API_KEY HERMES_NB_PROFILE HERMES_HOME JPY_SESSION_NAME PYTHONPATH
    export HERMES_NB_HOME="$work/home" TMPDIR="$work/run"
    "$work/venv/bin/python" -c 'import hermes_nb, sys; assert "site-packages" in hermes_nb.__file__, hermes_nb.__file__'
    # The notebook as a pip user gets it: copied out of the installed wheel.
    "$work/venv/bin/hermes-nb" examples . >/dev/null
    cmp quickstart.ipynb "$ROOT/notebooks/quickstart.ipynb"
    "$work/venv/bin/python" -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
        --nbval-sanitize-with sanitize.cfg quickstart.ipynb
) || fail "the quickstart notebook"

say "checking the JupyterLab extension is listed"
listed=$("$work/venv/bin/jupyter" labextension list 2>&1 | sed 's/\x1b\[[0-9;]*m//g')  # no colours
echo "$listed" | grep -E "hermes-nb v[0-9.]+ enabled .*OK" || { echo "$listed" >&2; fail "labextension list"; }
say "ok"
