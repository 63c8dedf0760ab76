"""The harness itself: JupyterLab opens a notebook, runs cells, saves, and shows the outputs
again after a page reload. Needs nothing from hermes_nb."""

from __future__ import annotations

import pytest
from jupyter_harness import iter_output_mimetypes

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def test_run_save_reload_keeps_outputs(open_notebook, server, page, screenshot):
    nb = open_notebook(["", ""])

    nb.type_into(0, "1+1")  # the keyboard, as a user types
    nb.set_source(1, 'print("hi")')  # the model (quotes and brackets exactly as written)
    nb.run(0)
    nb.run(1)

    result = nb.output(0, "text/plain")
    stdout = nb.output(1, "application/vnd.jupyter.stdout")
    assert result.inner_text().strip() == "2"
    assert stdout.inner_text().strip() == "hi"

    nb.save()
    saved = list(iter_output_mimetypes(server.read_notebook(nb.path)))
    assert (0, "text/plain") in saved
    assert (1, "stream/stdout") in saved

    nb.reload()
    assert result.inner_text().strip() == "2"
    assert stdout.inner_text().strip() == "hi"
    assert nb.cell(0).locator(".cm-content").inner_text() == "1+1"
    assert nb.xss_hits() == []
    assert page.watch.dialogs == []
    screenshot("smoke-lab")


def test_xss_tripwire_catches_a_payload(open_notebook, page):
    """The instrument itself: trusted HTML output in JupyterLab runs ``onerror`` handlers,
    and the tripwire sees it (so a silent tripwire in other tests means nothing ran)."""
    nb = open_notebook(
        [
            "from IPython.display import HTML\n"
            'HTML(\'<img class="probe" src="x" onerror="top.__hnb_pwn(\\\'control\\\')">\')'
        ]
    )
    nb.run(0)
    nb.cell(0).locator("img.probe").wait_for(state="attached")
    page.wait_for_function("() => window.__hnb_xss > 0", timeout=10_000)
    assert nb.xss_hits() != []
    assert "control" in nb.xss_hits()[0]
    page.evaluate("() => { window.__hnb_xss = 0; window.__hnb_xss_log = []; }")
