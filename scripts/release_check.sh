#!/usr/bin/env bash
# The release check: what a pip user gets, tried as one would.
#
#   scripts/release_check.sh            (./dev test runs it before the test suite)
#
# 1. builds the sdist and the wheel from this checkout (the labextension must already be built:
#    ./dev does that) and checks both with twine;
# 2. installs the wheel -- not the tree -- with its `lab` extra, and nothing else, into a fresh
#    virtualenv, as the README tells a new user to, and checks it carries the chat view's
#    fallback module (what VS Code and Colab are sent);
# 3. copies the examples out of the installed wheel (`hermes-nb examples`) into a folder outside
#    the checkout and executes each one headless (`jupyter nbconvert --execute`, as a person's
#    Run All would: any error fails it, but in a cell tagged `raises-exception`, which means to
#    show one), in an empty HERMES_NB_HOME with no provider keys (the offline model answers, as
#    for a new user), and checks every link in them leads to a file that is there;
# 4. then adds nbval and runs the quickstart with it (its saved outputs are what a user gets);
# 5. checks that `jupyter labextension list` lists the extension, enabled and OK.
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

say "installing the wheel with its [lab] extra (nothing else) into a fresh virtualenv"
"$PY" -m venv "$work/venv"
"$work/venv/bin/pip" install "${pip_quiet[@]}" "$wheel[lab]"

say "checking the chat view's fallback module (for pages without the extension) is installed"
"$work/venv/bin/python" - <<'PY' || fail "the wheel lacks the chat view (hermes_nb/view/static/view.js)"
from hermes_nb.view.widget import _code_reply
reply = _code_reply()  # what a page without the extension is sent
assert "js" in reply and "export" in reply["js"] and ".hnb-chat" in reply["css"], reply
PY

say "running every example headless, as Run All would, outside the checkout"
mkdir -p "$work/run" "$work/home" "$work/executed"
(
    cd "$work/run"
    # A new user's machine: no keys, no configuration, nothing of the checkout on the path.
    unset OPENAI_API_KEY OPENROUTER_API_KEY HERMES_NB_PROFILE HERMES_HOME JPY_SESSION_NAME PYTHONPATH
    export HERMES_NB_HOME="$work/home" TMPDIR="$work/run"
    "$work/venv/bin/python" -c 'import hermes_nb, sys; assert "site-packages" in hermes_nb.__file__, hermes_nb.__file__'
    # The notebooks as a pip user gets them: copied out of the installed wheel.
    "$work/venv/bin/hermes-nb" examples . >/dev/null
    for notebook in *.ipynb; do
        "$work/venv/bin/jupyter" nbconvert --to notebook --execute --output-dir "$work/executed" \
            --ExecutePreprocessor.timeout=120 "$notebook" >"$work/nbconvert.log" 2>&1 ||
            { tail -n 30 "$work/nbconvert.log" >&2; echo "$notebook failed" >&2; exit 1; }
    done
    # Every relative link in them leads to something the copy has (the docs come along).
    "$work/venv/bin/python" - *.ipynb <<'PY'
import json, re, sys
from pathlib import Path
broken = []
for name in sys.argv[1:]:
    for cell in json.loads(Path(name).read_text())["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        for target in re.findall(r"\]\(([^)#\s]+)", "".join(cell["source"])):
            if not re.match(r"[a-z]+:", target) and not Path(target).exists():
                broken.append(f"{name}: {target}")
assert not broken, broken
PY
) || fail "the examples"

say "running the quickstart notebook with nbval"
"$work/venv/bin/pip" install "${pip_quiet[@]}" "nbval>=0.11" "pytest>=8.2"
cp notebooks/sanitize.cfg "$work/run/"
(
    cd "$work/run"
    unset OPENAI_API_KEY OPENROUTER_API_KEY HERMES_NB_PROFILE HERMES_HOME JPY_SESSION_NAME PYTHONPATH
    export HERMES_NB_HOME="$work/home" TMPDIR="$work/run"
    "$work/venv/bin/python" -m pytest -q -p no:cacheprovider --nbval --nbval-current-env \
        --nbval-sanitize-with sanitize.cfg quickstart.ipynb
) || fail "the quickstart notebook"

say "checking the JupyterLab extension is listed"
listed=$("$work/venv/bin/jupyter" labextension list 2>&1 | sed 's/\x1b\[[0-9;]*m//g')  # no colours
echo "$listed" | grep -E "hermes-nb v[0-9.]+ enabled .*OK" || { echo "$listed" >&2; fail "labextension list"; }
say "ok"
