"""Saved answers look right in JupyterLab and Notebook 7, trusted or not, light or dark.

* A shipped example opened as a new user opens it — untrusted, so JupyterLab drops every
  output's inline ``<style>`` — still shows its saved answers styled: the extension carries the
  chat view's stylesheet and code colours (``labextension/style/index.css``).
* A settled answer's code block has the theme's editor background edge to edge and reaches the
  view's right edge, as the prompt's and a code cell's, in the light and the dark theme; the
  extension's Copy / Insert below buttons follow the theme and stay readable.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from chat_dom import ChatView, set_theme
from jupyter_harness import NotebookPage

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

BOTH_UIS = pytest.mark.parametrize("ui", ["lab", "notebook7"], indirect=True)
EXAMPLE = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"

# The first saved answer of a notebook, as its styles show it.
_SAVED_STYLE_JS = """
() => {
  const chat = document.querySelector('.hnb-chat.hnb-static');
  if (!chat) { return null; }
  const style = (el) => getComputedStyle(el);
  const box = (el) => el.getBoundingClientRect();
  const bot = chat.querySelector('.hnb-bot'), model = chat.querySelector('.hnb-model');
  const status = chat.querySelector('.hnb-status'), reply = chat.querySelector('.hnb-reply');
  return {
    inlineStyles: document.querySelectorAll('.jp-OutputArea-output style').length,
    border: style(chat).borderTopStyle,
    headDisplay: style(chat.querySelector('.hnb-head')).display,
    gap: box(model).left - box(bot).right,
    sameLine: Math.abs(box(model).top - box(bot).top) < 8,
    statusBlock: style(status).display,
    statusSmaller: parseFloat(style(status).fontSize) < parseFloat(style(reply).fontSize),
  };
}
"""

# A settled answer's code: the <pre> and <code> grounds, the theme's editor ground, the prompt's
# <pre>, and the extension's first button (text and ground colours, contrast ratio).
_CODE_STYLE_JS = """
(cell) => {
  const style = (el) => getComputedStyle(el);
  const probe = document.createElement('div');
  probe.style.background = 'var(--jp-cell-editor-background)';
  cell.appendChild(probe);
  const editor = style(probe).backgroundColor;
  probe.remove();
  const pre = cell.querySelector('.hnb-static .hnb-reply pre');
  const button = cell.querySelector('.hnb-static button.hnb-ext-action');
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ends = [lum(style(button).color), lum(style(button).backgroundColor)];
  const [hi, lo] = ends.sort((a, b) => b - a);
  return {
    editor,
    pre: style(pre).backgroundColor,
    code: style(pre.querySelector('code')).backgroundColor,
    prompt: style(cell.querySelector('.hnb-static .hnb-prompt pre')).backgroundColor,
    button: [style(button).color, style(button).backgroundColor],
    rightEdges: [pre, cell.querySelector('.hnb-static .hnb-prompt')].map(
      (el) => Math.round(el.getBoundingClientRect().right)),
    contrast: (hi + 0.05) / (lo + 0.05),
  };
}
"""

RUN = "%%hermes -o delay=0 --wait\nWhy?\n\n```python\nprint('prompt code')\n```\n"


@BOTH_UIS
def test_a_shipped_example_opened_untrusted_shows_its_answers_styled(
    ui, server, page, screenshot
) -> None:
    shutil.copyfile(EXAMPLE, server.root_dir / EXAMPLE.name)  # unsigned: untrusted
    nb = NotebookPage(page, server, EXAMPLE.name).open()
    try:
        page.wait_for_function("() => !!document.querySelector('.hnb-chat.hnb-static .hnb-bot')")
        shown = page.evaluate(_SAVED_STYLE_JS)
        nb.page.locator(".hnb-chat.hnb-static").first.scroll_into_view_if_needed()
        screenshot(
            f"saved-answer-untrusted-{ui}", nb.page.locator(".jp-Cell:has(.hnb-static)").first
        )
    finally:
        server.shutdown_kernels()
    assert shown["inlineStyles"] == 0, "the notebook was trusted: its inline <style> applied"
    assert shown["border"] == "solid"
    assert shown["headDisplay"] == "flex" and shown["sameLine"]
    assert shown["gap"] >= 4, "the bot's name and the model run together"
    assert shown["statusBlock"] != "inline" and shown["statusSmaller"]


@BOTH_UIS
def test_a_settled_code_block_and_its_buttons_follow_the_theme(
    ui, open_notebook, page, screenshot
) -> None:
    nb = open_notebook(["%load_ext hermes_nb", RUN])
    nb.run(0)
    nb.run(1)
    ChatView(nb, 1).wait_settled(timeout=60_000, static=True)
    cell = nb.cell(1)
    cell.locator(".hnb-static button.hnb-ext-action").first.wait_for()
    seen = {}
    try:
        for theme in ("JupyterLab Light", "JupyterLab Dark"):
            set_theme(page, theme)
            seen[theme] = cell.evaluate(_CODE_STYLE_JS)
            screenshot(f"settled-code-{theme.split()[-1].lower()}-{ui}", cell)
    finally:
        set_theme(page, "JupyterLab Light")
    for theme, shown in seen.items():
        assert shown["pre"] == shown["editor"] == shown["prompt"], (theme, shown)
        assert shown["code"] == "rgba(0, 0, 0, 0)", (theme, shown)  # the <pre>'s ground
        assert shown["contrast"] >= 4.5, (theme, shown)
        reply_edge, prompt_edge = shown["rightEdges"]
        assert abs(reply_edge - prompt_edge) <= 1, "the code block stops short of the edge"
    light, dark = seen.values()
    assert light["button"] != dark["button"] and light["pre"] != dark["pre"]
