"""What a settled run leaves in the notebook: the static bundle and the plain-text stream.

Every representation (HTML with only the CSS it uses, Markdown, stable plain text), the notices
of a cut-off or stopped reply, and ``stream_plain``/``show`` outside a kernel.
"""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from widget_support import CUT_LABEL, QUESTION, REPLY

import hermes_nb
from hermes_nb.view import display as view


def test_static_bundle_has_every_representation() -> None:
    run = hermes_nb.chat(REPLY, profile="echo", delay=0).wait(30)
    data, metadata = view.static_bundle(run)
    assert set(data) == {"text/html", "text/markdown", "text/plain"}
    html = data["text/html"]
    assert (
        '<div class="hnb-chat hnb-static mathjax_ignore tex2jax_ignore" data-state="done">' in html
    )
    assert "<style>" in html and ".hnb-chat" in html
    assert 'class="hnb-hl' in html and ".hnb-hl .nb{" in html  # code is highlighted
    for cls in ("hnb-prompt", "hnb-reply", "hnb-status"):
        assert f'class="{cls}' in html
    assert "Last line." in data["text/markdown"]
    plain = data["text/plain"]
    assert plain.startswith("Hermes (echo) · Done")
    assert run.run_id not in plain and not re.search(r"\d+(\.\d+)? ?(ms|s)\b", plain)
    again = view.static_bundle(hermes_nb.chat(REPLY, profile="echo", delay=0).wait(30))
    assert again[0]["text/plain"] == plain
    meta = metadata["hermes_nb"]
    assert meta["run"] == run.run_id and meta["status"] == "done" and meta["model"] == "echo"
    assert meta["usage"]["completion_tokens"] > 0
    json.dumps(metadata)
    # A reply that ran to its end carries no truncation notice anywhere.
    assert 'class="hnb-notice"' not in html and "finish_reason" not in meta
    assert "cut off" not in plain and "cut off" not in data["text/markdown"]


def test_a_saved_answer_carries_only_the_css_it_uses() -> None:
    # Every saved answer holds its own stylesheet: no rules for controls it does not have
    # (Stop, card buttons and fields), no card rules unless a prompt was asked, no comments.
    plain = view.static_bundle(hermes_nb.chat("hi", profile="echo", delay=0).wait(30))[0]
    css = re.search(r"<style>(.*?)</style>", plain["text/html"], re.S).group(1)
    assert ".hnb-chat{" in css and ".hnb-footer{" in css
    assert ".hnb-stop" not in css and ".hnb-ask" not in css and "/*" not in css
    asked = hermes_nb.chat("q", profile="echo", delay=0, tools=["ask_user"], tool_calls=[QUESTION])
    while not asked.pending:
        time.sleep(0.005)
    asked.answer(asked.pending[0].id, "blue")
    html = view.static_bundle(asked.wait(30))[0]["text/html"]
    css = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert ".hnb-ask{" in css and ".hnb-ask-decision" in css
    assert ".hnb-ask-btn" not in css and ".hnb-ask-input" not in css


def test_static_bundle_of_a_reply_cut_off_at_the_token_limit_says_so() -> None:
    run = hermes_nb.chat(REPLY, profile="echo", delay=0, max_tokens=5).wait(30)
    assert run.truncated
    data, metadata = view.static_bundle(run)
    html, markdown, plain = data["text/html"], data["text/markdown"], data["text/plain"]
    assert 'data-state="done"' in html
    assert '<div class="hnb-notice">The reply was cut off at the model&#x27;s output limit' in html
    assert CUT_LABEL in html
    assert plain.startswith(f"Hermes (echo) · {CUT_LABEL}\n")
    assert plain.endswith("\n" + run.notice)
    assert f"*{run.notice}*" in markdown and f"*{CUT_LABEL}*" in markdown
    assert metadata["hermes_nb"]["status"] == "done"
    assert metadata["hermes_nb"]["finish_reason"] == "length"


def test_static_bundle_of_a_stopped_run_shows_the_notice() -> None:
    run = hermes_nb.chat("x", profile="echo", reply="a " * 500, delay=0.01)
    while not run.text:
        time.sleep(0.005)
    run.cancel()
    run.wait(30)
    data, metadata = view.static_bundle(run)
    assert 'data-state="stopped"' in data["text/html"]
    assert 'class="hnb-notice"' in data["text/html"]
    assert "Task cancelled." in data["text/plain"]
    assert metadata["hermes_nb"]["status"] == "stopped"


def test_stream_plain_prints_the_reply_and_the_error() -> None:
    out = io.StringIO()
    view.stream_plain(hermes_nb.chat("x", profile="echo", reply="Hello there."), out)
    assert out.getvalue() == "Hello there.\n"
    out = io.StringIO()
    view.stream_plain(hermes_nb.chat("x", profile="echo", fail="auth"), out)
    assert out.getvalue().startswith("Error: ")
    assert "Hint: " in out.getvalue()


def test_stream_plain_ends_a_cut_off_reply_with_the_notice() -> None:
    out = io.StringIO()
    run = hermes_nb.chat("x", profile="echo", reply="abcdefgh", chunk_size=4, max_tokens=1)
    view.stream_plain(run, out)
    assert out.getvalue() == f"abcd\n{run.notice}\n"
    assert 'finish_reason "length"' in out.getvalue()


def test_show_outside_a_kernel_streams_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    view.show(hermes_nb.chat("x", profile="echo", reply="Plain please."))
    assert capsys.readouterr().out == "Plain please.\n"
