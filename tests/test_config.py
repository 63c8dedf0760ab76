"""config.toml: defaults, profiles, and one clear sentence for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from hermes_nb.core.config import home, load_config
from hermes_nb.core.exceptions import ConfigError


def test_no_config_means_the_offline_echo_default(hermes_home: Path) -> None:
    config = load_config()
    assert home() == hermes_home
    assert config.default_profile == "echo"
    assert config.is_offline_default
    assert config.profile().provider == "echo"


def test_one_key_variable_selects_a_real_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = load_config()
    assert config.default_profile == "openai"
    assert config.profile().api_key_env == "OPENAI_API_KEY"


def test_profile_env_var_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERMES_NB_PROFILE", "ollama")
    assert load_config().profile().name == "ollama"


def test_design_example_parses(write_config) -> None:
    write_config(
        """
default_profile = "local"
bot_name = "Atlas"

[profiles.local]
provider = "openai"
base_url = "http://127.0.0.1:11434/v1"
model = "llama3.2"
api_key_env = "OLLAMA_API_KEY"
context_window = 8192
temperature = 0.2
[profiles.local.env]
HERMES_HOME = "~/.hermes/profiles/local"
"""
    )
    config = load_config()
    local = config.profile()
    assert (local.name, local.provider, local.model) == ("local", "openai", "llama3.2")
    assert local.bot_name == "Atlas"
    assert local.env == {"HERMES_HOME": "~/.hermes/profiles/local"}
    assert config.profile("echo").bot_name == "Atlas"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_profile = [", "is not valid TOML"),
        ("colour = 'red'", "config.toml: colour is not a known setting"),
        ("default_profile = 'nope'", "Unknown profile 'nope'"),
        ("[profiles.x]\nprovider = 'gemini'", "profiles.x.provider is 'gemini'"),
        ("[profiles.x]\nprovider = 'openai'", "profiles.x.base_url is required"),
        ("[profiles.x]\napi_key = 'sk-live'", "profiles.x.api_key is not a known profile key"),
        ("[profiles.x]\ncontext_window = -3", "profiles.x.context_window must be a positive"),
        ("[profiles.x]\ntemperature = 'hot'", "profiles.x.temperature must be a number"),
        ("[profiles.x]\nenv = { A = 1 }", "profiles.x.env must be a table of strings"),
        ("bot_name = ''", "bot_name must be a non-empty string"),
    ],
)
def test_bad_config_is_one_sentence_naming_file_and_key(write_config, text, message) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        load_config()
    text_of_error = str(info.value)
    assert message in text_of_error
    assert str(path) in text_of_error or "Unknown profile" in text_of_error
    assert "\n" not in text_of_error
    assert "sk-live" not in text_of_error


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"Known profiles: echo, ollama, openai, openrouter"):
        load_config().profile("missing")


def test_openai_base_url_points_the_builtin_profile_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1/")
    profile = load_config().profile()
    assert profile.name == "openai"
    assert profile.base_url == "http://127.0.0.1:8000/v1"


def test_one_variable_pair_gives_a_real_answer(sse_server, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config at all: OPENAI_API_KEY (+ OPENAI_BASE_URL for a local server) → a real reply."""
    import hermes_nb

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")
    monkeypatch.setenv("OPENAI_BASE_URL", sse_server.url)
    run = hermes_nb.chat("Hello?").wait(10)
    assert run.status == "done"
    assert run.text == "Hello from the test server."
    request = sse_server.chat_requests[0]
    assert request.headers["authorization"] == "Bearer sk-local"
