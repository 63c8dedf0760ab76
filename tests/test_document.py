"""The notebook as text for the model, and a card's diff: hermes_nb.notebook._document and
hermes_nb.view._diff, without a kernel or a page (the kernel and the page: test_document_kernel.py
and browser/test_document_view.py); and how long the edit tools remember "Accept all"."""

from __future__ import annotations

import base64
import difflib
import struct

import pytest

from hermes_nb.notebook import _document_tools
from hermes_nb.notebook._document import cells_from_json, image_marker, outline, output_text
from hermes_nb.view._blocks import ask_html
from hermes_nb.view._diff import detail_html, is_unified_diff


def unified(old: str, new: str) -> str:
    return "\n".join(
        difflib.unified_diff(old.splitlines(), new.splitlines(), "a", "b", lineterm="")
    )


def png_head(width: int, height: int) -> str:
    raw = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
    return base64.b64encode(raw + b"\x08\x02\x00\x00\x00").decode()


# -- the diff on a card ---------------------------------------------------------------------------


def test_a_unified_diff_is_shown_line_by_line_with_its_marks_as_text() -> None:
    html = detail_html(unified("x = 1\ny = 2\n", "x = 1\ny = 3\nz = <b>\n"))
    mark = '<span class="hnb-ask-diff-mark">'
    assert f'<ins class="hnb-ask-diff-line" data-op="add">{mark}+</span>y = 3</ins>' in html
    assert f'<del class="hnb-ask-diff-line" data-op="del">{mark}−</span>y = 2</del>' in html
    assert "z = &lt;b&gt;" in html and "<b>" not in html  # the model's text, escaped
    assert "Changes: 1 line removed, 2 lines added" in html
    assert "--- a" not in html  # the file header is the card's text's job


def test_other_details_stay_plain_code() -> None:
    assert not is_unified_diff("delete(path='/tmp/x')")
    assert not is_unified_diff("--- a\n+++ b\nno hunk")
    html = detail_html("rm -rf <x>")
    assert html == '<pre class="hnb-ask-detail"><code>rm -rf &lt;x&gt;</code></pre>'


def test_an_approval_card_with_a_diff_and_its_own_options() -> None:
    prompt = {
        "id": "p1-abcdef",
        "kind": "approval",
        "text": "Edit cell 2 (id c2)?",
        "detail": unified("a\n", "b\n"),
        "choices": [],
        "deadline": None,
        "options": [
            {"value": "accept", "label": "Accept", "allows": True},
            {"value": "accept_all", "label": "Accept all from this run", "allows": True},
            {"value": "reject", "label": "Reject", "allows": False},
        ],
    }
    html = ask_html(prompt)
    assert "hnb-ask-diff-line" in html
    assert (
        html.index(">Accept<") < html.index(">Accept all from this run<") < html.index(">Reject<")
    )
    decided = ask_html({**prompt, "value": "reject", "by": "view"})
    assert "Reject — by you" in decided and 'data-verdict="denied"' in decided


# -- the notebook as text ------------------------------------------------------------------------


def test_image_markers_give_the_pixel_size_and_bytes() -> None:
    assert image_marker("image/png", png_head(640, 480), full_length=40_000) == (
        "[image: 640×480 PNG, 29 KB]"
    )
    gif = base64.b64encode(b"GIF89a" + struct.pack("<HH", 16, 9) + b"\x00" * 8).decode()
    assert image_marker("image/gif", gif).startswith("[image: 16×9 GIF, ")
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 30).decode()
    assert image_marker("image/jpeg", jpeg, {"width": 320, "height": 200}) == (
        "[image: 320×200 JPEG, 34 bytes]"
    )
    assert image_marker("image/svg+xml", "<svg/>") == "[image: SVG, 6 bytes]"


def test_outputs_as_text_errors_as_name_and_message_long_text_cut() -> None:
    assert output_text({"output_type": "error", "ename": "KeyError", "evalue": "'x'"}) == (
        "error: KeyError: 'x'"
    )
    long = output_text({"output_type": "stream", "name": "stdout", "text": "y" * 5000})
    assert "[… cut: 3,000 more characters]" in long
    widget = {
        "output_type": "display_data",
        "data": {"text/plain": "Slider(...)", "application/vnd.jupyter.widget-view+json": {}},
    }
    assert "(an interactive widget)" in output_text(widget)


def test_an_outline_names_each_cell_and_redacts_keys() -> None:
    cells = cells_from_json(
        [
            {"id": "m1", "cell_type": "markdown", "source": ["# Title\n", "text"]},
            {
                "id": "c1",
                "cell_type": "code",
                "source": "key = 'sk-abcdefghijklmnopqrstuvwxyz012345'",
                "execution_count": 4,
                "outputs": [{"output_type": "execute_result", "data": {"text/plain": "3"}}],
            },
            {"cell_type": "code", "source": "", "execution_count": None, "outputs": []},
            "not a cell",
        ]
    )
    text = outline(cells, "The notebook x.ipynb as it is on the page:")
    assert text.startswith("The notebook x.ipynb as it is on the page: 3 cells, in order.")
    assert "### Cell 1 · id m1 · markdown\n```markdown\n# Title\ntext\n```" in text
    assert "### Cell 2 · id c1 · code, In[4]" in text
    assert "sk-abcdefghijklmnopqrstuvwxyz012345" not in text
    assert "- result (text/plain):\n    3" in text
    assert "### Cell 3 · no id (nbformat < 4.5) · code, not run\n(empty)" in text


def test_a_diff_is_read_by_its_hunk_counts_and_names_its_files_when_several() -> None:
    # A removed line "-- note" and an added "++ x" look like a file header; the counts say not.
    one = "--- a\n+++ b\n@@ -1,2 +1,2 @@\n--- note\n++++ x\n keep\n"
    html = detail_html(one)
    assert 'data-op="del"><span class="hnb-ask-diff-mark">−</span>-- note</del>' in html
    assert 'data-op="add"><span class="hnb-ask-diff-mark">+</span>+++ x</ins>' in html
    assert 'data-op="file"' not in html
    two = (
        "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n\\ No newline at end of file\n"
        "--- /dev/null\n+++ b/y.py\n@@ -0,0 +1 @@\n+new\n"
    )
    html = detail_html(two)
    files = [part.split("</span>")[0] for part in html.split('data-op="file">')[1:]]
    assert files == ["b/x.py", "b/y.py"]
    assert 'data-op="note">\\ No newline at end of file' in html
    assert "Changes: 1 line removed, 2 lines added" in html


# -- "Accept all from this run" ------------------------------------------------------------------


def test_accept_all_is_kept_for_the_last_runs_that_chose_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_document_tools, "_accept_all", {})
    last = _document_tools._ACCEPT_ALL_RUNS
    for n in range(last + 1):
        _document_tools._accept_all_from(f"run-{n}")
    assert not _document_tools._accepts_all("run-0"), "a kernel does not keep every run id"
    assert _document_tools._accepts_all("run-1")
    assert _document_tools._accepts_all(f"run-{last}")
    # Chosen again, a run is the newest: the next one to go is the oldest other.
    _document_tools._accept_all_from("run-1")
    _document_tools._accept_all_from("run-new")
    assert _document_tools._accepts_all("run-1")
    assert not _document_tools._accepts_all("run-2")
