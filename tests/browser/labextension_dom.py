"""Checks shared by the tests of hermes_nb's front-end extension (``labextension/``):
``test_labextension_code_actions.py`` and ``test_labextension_display_ids.py``.

Whether the extension is active on a page (its contract on ``<body>``, the view version the
kernel's loader asks for, its command and plugins: the tests fail, not skip, without it), the
notebook's cells as the DOM shows them, a hermes-nb event dispatched from inside an output as the
chat view sends it, what a cell inserted below must look like, and a notebook file rewritten on
disk and reloaded (what a reloaded page shows is what the file holds).
"""

from __future__ import annotations

import re
from typing import Any

import nbformat
import pytest
from jupyter_harness import NotebookPage
from nbformat.sign import NotebookNotary

__all__ = [
    "BOTH_UIS",
    "CODE",
    "PLUGINS",
    "assert_active",
    "assert_inserted_below",
    "cells",
    "dispatch",
    "rewrite_and_reload",
    "sign",
    "source",
]

BOTH_UIS = pytest.mark.parametrize("ui", ["lab", "notebook7"], indirect=True)

PLUGINS = [
    "hermes-nb:chat-view",
    "hermes-nb:insert-cell",
    "hermes-nb:display-ids",
    "hermes-nb:static-code-actions",
]

# Code with everything that could be mangled on the way: quotes, backslashes, braces, tabs,
# a blank line, trailing spaces, non-ASCII, no final newline.
CODE = (
    "import math\n"
    "\n"
    "def f(x):\n"
    "\treturn \"yes\" if x else 'no'  # {braces} \\ back-slash  \n"
    'print(f(1), math.pi, "→ é")'
)

# Who answered: the extension's state, read once the page is up.
_ACTIVE_JS = """
(plugins) => {
  const app = window.jupyterapp;
  return {
    contract: document.body.dataset.hermesNbExtension || null,
    view: (window.__hermes_nb_view__ || {}).version || null,
    command: app.commands.hasCommand('hermes-nb:insert-cell-below'),
    plugins: plugins.filter((id) => app.isPluginActivated(id)),
  };
}
"""

# Dispatch a hermes-nb event from the first node matching `selector` inside cell `index`;
# true if the extension handled it (called preventDefault), as the view would see it.
_DISPATCH_JS = """
([path, index, selector, type, detail]) => {
  const cell = window.__hnb_panel(path).content.widgets[index].node;
  const target = cell.querySelector(selector);
  if (!target) { throw new Error('no ' + selector + ' in cell ' + index); }
  const event = new CustomEvent(type, {bubbles: true, cancelable: true, detail});
  return !target.dispatchEvent(event);
}
"""

# Every cell as the DOM shows it: editor text, active, prompt, how many outputs.
_CELLS_JS = """
(path) => [...window.__hnb_panel(path).content.node.querySelectorAll('.jp-Cell')].map((c) => ({
  code: c.classList.contains('jp-CodeCell'),
  text: (c.querySelector('.cm-content') || {}).innerText || '',
  active: c.classList.contains('jp-mod-active'),
  prompt: ((c.querySelector('.jp-InputArea-prompt') || {}).innerText || '').trim(),
  outputs: c.querySelectorAll('.jp-OutputArea-output').length,
}))
"""


def cells(nb: NotebookPage) -> list[dict[str, Any]]:
    return nb.page.evaluate(_CELLS_JS, nb.path)


def dispatch(nb: NotebookPage, index: int, selector: str, type_: str, detail: Any = None) -> bool:
    return nb.page.evaluate(_DISPATCH_JS, [nb.path, index, selector, type_, detail])


def source(nb: NotebookPage, index: int) -> str:
    """Cell ``index``'s exact source (the editor's DOM text normalises whitespace)."""
    return nb._eval("(p, i) => p.content.widgets[i].model.sharedModel.getSource()", index)


def assert_inserted_below(nb: NotebookPage, index: int, code: str, before: int) -> None:
    """A code cell with exactly ``code`` at ``index + 1``, the active cell, never run."""
    shown = cells(nb)
    assert len(shown) == before + 1, shown
    new = shown[index + 1]
    assert new["code"], new
    assert new["active"], f"the new cell is not the active one: {shown}"
    assert [c["active"] for c in shown].count(True) == 1, shown
    assert new["outputs"] == 0, new
    assert "[ ]" in new["prompt"] or new["prompt"] in ("", "[ ]:"), f"it ran: {new}"
    assert source(nb, index + 1) == code
    assert new["text"].splitlines()[0] == code.splitlines()[0]


def _loader_version() -> int:
    """The view version every run's loader asks for (what the extension must register, or the
    page fetches the kernel's fallback module instead)."""
    from hermes_nb.view.widget import ChatWidget

    found = re.search(r"const V=(\d+);", ChatWidget._esm)
    assert found is not None, ChatWidget._esm[:80]
    return int(found.group(1))


def assert_active(nb: NotebookPage) -> None:
    state = nb.page.evaluate(_ACTIVE_JS, PLUGINS)
    view = _loader_version()
    assert state == {"contract": "1", "view": view, "command": True, "plugins": PLUGINS}, (
        f"the hermes-nb labextension is not active ({state}); ./dev links labextension/build "
        "into the venv (jupyter labextension list)"
    )


def sign(server: Any, path: str) -> None:
    """Trust the notebook file as the server would after saving it (signed outputs)."""
    target = server.root_dir / path
    notebook = nbformat.read(target, as_version=4)
    NotebookNotary(data_dir=str(server.base / "data")).sign(notebook)
    nbformat.write(notebook, target)


def rewrite_and_reload(nb: NotebookPage, server: Any, edit: Any) -> None:
    """Change the notebook file on disk (``edit(notebook)``), sign it, reload the page: what a
    reloaded page shows is what the file holds."""
    target = server.root_dir / nb.path
    notebook = nbformat.read(target, as_version=4)
    edit(notebook)
    nbformat.write(notebook, target)
    sign(server, nb.path)
    nb.reload()
