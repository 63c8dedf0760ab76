"""doctor: the right verdict for a healthy endpoint, a dead port, a bad key and a bad config."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from sse_server import Reply, SSEServer

import hermes_nb
from hermes_nb.doctor import Verdict, doctor_report


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(write_config, base_url: str, model: str = "m", key_env: str = "") -> None:
    key = f'api_key_env = "{key_env}"\n' if key_env else ""
    write_config(
        f'default_profile = "t"\n[profiles.t]\nprovider = "openai"\n'
        f'base_url = "{base_url}"\nmodel = "{model}"\n{key}'
    )


def test_offline_default_is_all_ok() -> None:
    report = doctor_report()
    assert report.ok
    assert report.verdict("endpoint") is Verdict.OK
    assert "offline echo" in report.text()


def test_live_endpoint_is_reachable(sse_server: SSEServer, write_config) -> None:
    _config(write_config, sse_server.url)
    report = doctor_report()
    assert report.verdict("endpoint") is Verdict.OK, report.text()
    assert "2 models listed" in report.text()
    assert any(r.path == "/v1/models" for r in sse_server.requests)


def test_unlisted_model_is_a_warning(sse_server: SSEServer, write_config) -> None:
    _config(write_config, sse_server.url, model="no-such-model")
    report = doctor_report()
    assert report.verdict("endpoint") is Verdict.WARN
    assert "'no-such-model' is not listed" in report.text()


def test_dead_port_is_a_network_failure(write_config) -> None:
    _config(write_config, f"http://127.0.0.1:{_dead_port()}/v1")
    report = doctor_report(timeout=2)
    assert not report.ok
    assert report.verdict("endpoint") is Verdict.FAIL
    assert "network: could not reach" in report.text()


def test_rejected_key_is_auth_and_never_shown(
    sse_server: SSEServer, write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T_KEY", "sk-doctor-secret-42")
    sse_server.models_reply = Reply.error(401, "Invalid key sk-doctor-secret-42")
    _config(write_config, sse_server.url, key_env="T_KEY")
    report = doctor_report()
    assert report.verdict("api key") is Verdict.OK
    assert report.verdict("endpoint") is Verdict.FAIL
    assert "auth:" in report.text()
    assert "sk-doctor-secret" not in report.text() + report.markdown()


def test_missing_key_variable_fails_with_what_to_do(sse_server: SSEServer, write_config) -> None:
    _config(write_config, sse_server.url, key_env="UNSET_KEY_VAR")
    report = doctor_report()
    assert report.verdict("api key") is Verdict.FAIL
    assert "export UNSET_KEY_VAR=" in report.text()


def test_broken_config_is_reported_not_raised(write_config) -> None:
    write_config("default_profile = [")
    report = doctor_report()
    assert report.verdict("config") is Verdict.FAIL
    assert "is not valid TOML" in report.text()


def test_store_that_is_not_a_database_fails(hermes_home) -> None:
    (hermes_home / "sessions.db").write_bytes(b"definitely not sqlite" * 100)
    report = doctor_report()
    assert report.verdict("store") is Verdict.FAIL


def test_command_line_exit_codes(write_config) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "hermes_nb", "doctor"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "endpoint" in ok.stdout
    _config(write_config, f"http://127.0.0.1:{_dead_port()}/v1")
    bad = subprocess.run(
        [sys.executable, "-m", "hermes_nb", "doctor", "--timeout", "2"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1
    assert "FAIL  endpoint" in bad.stdout


@pytest.mark.parametrize(
    ("ipykernel", "verdict", "says"),
    [
        ("6.29.5", Verdict.WARN, "only after a running cell finishes"),
        ("7.3.0", Verdict.WARN, "ipython/ipykernel#1554"),
        ("7.0.1", Verdict.WARN, 'pip install -U "ipykernel>=7.4"'),
        ("7.4.0", Verdict.OK, "ipykernel 7.4.0"),
    ],
)
def test_versions_warn_about_kernels_that_hold_back_or_lose_requests(
    monkeypatch: pytest.MonkeyPatch, ipykernel: str, verdict: Verdict, says: str
) -> None:
    from hermes_nb import doctor

    real = doctor._version
    monkeypatch.setattr(
        doctor, "_version", lambda name: ipykernel if name == "ipykernel" else real(name)
    )
    report = doctor_report()
    assert report.verdict("versions") is verdict
    detail = next(c.detail for c in report.checks if c.name == "versions")
    assert says in detail


def test_without_a_config_it_names_where_one_would_go(hermes_home) -> None:
    report = doctor_report()
    line = next(c.detail for c in report.checks if c.name == "config")
    assert line == f"none: built-in defaults (a config.toml would go at {hermes_home}/config.toml)"


def test_with_a_config_it_names_the_file_it_read(hermes_home, write_config) -> None:
    write_config('bot_name = "Ada"\n')
    report = doctor_report()
    assert next(c.detail for c in report.checks if c.name == "config") == str(
        hermes_home / "config.toml"
    )


def test_the_command_has_a_version_and_plain_help() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "hermes_nb", "--version"], capture_output=True, text=True
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"hermes-nb {hermes_nb.__version__}"
    shown = subprocess.run(
        [sys.executable, "-m", "hermes_nb", "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0
    assert "doctor" in shown.stdout
    assert "``" not in shown.stdout and ":func:" not in shown.stdout  # no raw reST


def test_an_acp_profile_checks_its_agent_command_without_starting_it(write_config, tmp_path):
    script = tmp_path / "my-agent"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)
    write_config(
        f'default_profile = "a"\n[profiles.a]\nprovider = "acp"\ncommand = ["{script}"]\n'
        f'cwd = "{tmp_path}"\n'
    )
    report = doctor_report()
    assert report.verdict("endpoint") is Verdict.OK, report.text()
    assert f"agent command {script} (ACP), in {tmp_path}" in report.text()

    write_config('default_profile = "a"\n[profiles.a]\nprovider = "acp"\ncommand = ["hermes-x"]\n')
    report = doctor_report()
    assert report.verdict("endpoint") is Verdict.FAIL
    assert "the agent command 'hermes-x' is not found on PATH" in report.text()

    empty = tmp_path / "empty"
    empty.mkdir()
    write_config(
        'default_profile = "a"\n[profiles.a]\nprovider = "acp"\ncommand = ["hermes", "acp"]\n'
        f'[profiles.a.env]\nPATH = "{empty}"\n'
    )
    assert 'install it (pipx install "hermes-agent[acp]")' in doctor_report().text()
