"""Titles: a leading wrapper line is dropped, nothing else; failures never surface."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

import pytest

from hermes_nb.core.profiles import ENV_LOCK, Profile
from hermes_nb.providers import register_provider
from hermes_nb.providers.base import ProviderEvent, ProviderRequest
from hermes_nb.store import NewMessage, get_store
from hermes_nb.store.sessions import Session, join_background
from hermes_nb.store.titles import MAX_TITLE_LENGTH, clean_title, generate_title

pytestmark = pytest.mark.usefixtures("stores_closed")


def _answered(prompt: str = "How do I speed up git merges?") -> Session:
    """An untitled session with one exchange (stored directly: no turn, so no title job)."""
    session = Session.new(profile="echo")
    get_store().append_messages(
        session.id,
        [NewMessage("user", prompt), NewMessage("assistant", "Use a merge strategy that fits.")],
    )
    return session


def _scripted(reply: str) -> Profile:
    return Profile(name="titler", options={"delay": 0, "reply": reply})


@pytest.mark.parametrize(
    "raw",
    [
        "The user is asking about merge speed.\nSlow git merges",
        "the user wants to know how to merge faster\nSlow git merges",
        "Okay, the user is asking for a title.\n\n**Slow git merges**",
        "  User asks: what to call this?\nSlow git merges.",
    ],
)
def test_invariant_17_a_leading_wrapper_line_is_dropped(raw: str) -> None:
    assert clean_title(raw) == "Slow git merges"


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("Why the user is asking matters", "Why the user is asking matters"),
        ("Slow git merges\nThe user is asking about merges.", "Slow git merges"),
        ("Handling when the user asks twice", "Handling when the user asks twice"),
        ("Usernames are case-sensitive", "Usernames are case-sensitive"),
    ],
)
def test_invariant_17_the_same_words_later_are_kept(raw: str, title: str) -> None:
    assert clean_title(raw) == title


def test_a_lone_wrapper_line_keeps_its_topic() -> None:
    assert clean_title("The user is asking about slow git merges.") == "Slow git merges"


def test_titles_lose_quotes_labels_markup_and_excess_length() -> None:
    assert clean_title('"Title: Why **merges** are slow."') == "Why merges are slow"
    assert clean_title("<think>hmm</think>\n'pandas joins'") == "Pandas joins"
    long = clean_title("word " * 40)
    assert len(long) <= MAX_TITLE_LENGTH and long.endswith("…")
    assert clean_title("   \n ") == ""


def test_generate_title_asks_the_model_and_stores_the_clean_title() -> None:
    session = _answered()
    raw = "The user is asking for a title.\nSpeeding up merges"
    assert generate_title(session, _scripted(raw)) == "Speeding up merges"
    assert session.title == "Speeding up merges"
    # A session that already has a title keeps it.
    assert generate_title(session, _scripted("Something else")) is None
    assert session.title == "Speeding up merges"


def test_invariant_17_generated_title_keeps_wrapper_words_that_are_not_leading() -> None:
    session = _answered()
    raw = "Why the user is asking about merges"
    assert generate_title(session, _scripted(raw)) == raw


def test_title_failures_are_logged_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    session = _answered()
    broken = Profile(name="broken", options={"delay": 0, "fail": "auth"})
    with caplog.at_level(logging.WARNING, logger="hermes_nb.store.titles"):
        assert generate_title(session, broken) is None
    assert session.title is None
    assert any("Could not title session" in r.getMessage() for r in caplog.records)


def test_the_first_reply_titles_the_session_in_the_background() -> None:
    session = Session.new(profile="echo")
    failed = session.chat("will fail", delay=0, fail="server").wait(10)
    assert failed.error
    assert join_background(10) and session.title is None  # no reply, no title
    session.chat("## how do I speed up git merges?", delay=0, reply="Like this.").wait(10)
    assert join_background(10)
    assert session.title == "How do I speed up git merges?"
    session.chat("and rebases?", delay=0, reply="Also.").wait(10)
    assert join_background(10)
    assert session.title == "How do I speed up git merges?"  # titled once


def test_the_title_request_runs_outside_the_env_lock() -> None:
    seen: dict[str, object] = {}

    class Probe:
        name = "title-probe"

        async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
            seen["locked"] = ENV_LOCK.locked()
            seen["env"] = os.environ.get("HERMES_NB_TITLE_PROBE")
            yield "token", {"text": "Probed title"}

    register_provider("title-probe", lambda profile, client: Probe())
    session = _answered()
    profile = Profile(name="p", provider="title-probe", env={"HERMES_NB_TITLE_PROBE": "on"})
    assert generate_title(session, profile) == "Probed title"
    assert seen == {"locked": False, "env": "on"}
    assert "HERMES_NB_TITLE_PROBE" not in os.environ


class _Recording:
    """Records the model each request names; answers with a fixed title."""

    name = "recording"
    models: list[str] = []

    async def stream(self, request: ProviderRequest) -> AsyncIterator[ProviderEvent]:
        _Recording.models.append(request.model)
        yield "token", {"text": "Faster merges"}


register_provider("recording", lambda profile, client: _Recording())


def test_titles_false_sends_nothing_and_takes_the_first_prompt_line() -> None:
    _Recording.models.clear()
    session = _answered("Why is git merge slow?\nMore details follow.")
    profile = Profile(name="t", provider="recording", model="big", titles=False)
    assert generate_title(session, profile) == "Why is git merge slow?"
    assert _Recording.models == []


def test_title_model_names_the_model_asked_for_titles() -> None:
    _Recording.models.clear()
    profile = Profile(name="t", provider="recording", model="big", title_model="small")
    assert generate_title(_answered(), profile) == "Faster merges"
    assert _Recording.models == ["small"]


def test_titles_and_title_model_come_from_config_toml(write_config) -> None:
    from hermes_nb.core.config import load_config

    write_config('[profiles.t]\nprovider = "echo"\ntitles = false\ntitle_model = "mini"\n')
    profile = load_config().profile("t")
    assert profile.titles is False and profile.title_model == "mini"
    write_config('[profiles.t]\nprovider = "echo"\ntitles = "no"\n')
    from hermes_nb.core.exceptions import ConfigError

    with pytest.raises(ConfigError, match=r"profiles\.t\.titles must be true or false"):
        load_config()
