"""Where hermes_nb keeps things, and ``config.toml``.

``$HERMES_NB_HOME`` (default: the per-user data directory from platformdirs) holds
``config.toml`` and the session store. With no file, built-in profiles are used and the default
is the offline ``echo`` model — unless a well-known key variable (``OPENAI_API_KEY``,
``OPENROUTER_API_KEY``) is set, in which case the matching real provider is the default: one
environment variable is all it takes to get a real answer.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ._command_line import command_line
from .exceptions import ConfigError
from .mcp_config import McpServer, parse_servers
from .profiles import PROVIDERS, Profile

__all__ = ["BUILTIN_PROFILES", "Config", "config_path", "home", "load_config", "resolve_profile"]

_ENV_HOME = "HERMES_NB_HOME"
_ENV_PROFILE = "HERMES_NB_PROFILE"

#: Profiles that exist without any configuration.
BUILTIN_PROFILES: dict[str, Profile] = {
    "echo": Profile(name="echo", provider="echo", model="echo"),
    "openai": Profile(
        name="openai",
        provider="openai",
        base_url="https://api.openai.com/v1",
        model="gpt-4o-mini",
        api_key_env="OPENAI_API_KEY",
        context_window=128_000,
    ),
    "openrouter": Profile(
        name="openrouter",
        provider="openai",
        base_url="https://openrouter.ai/api/v1",
        model="openrouter/auto",
        api_key_env="OPENROUTER_API_KEY",
        context_window=128_000,
    ),
    "ollama": Profile(
        name="ollama",
        provider="openai",
        base_url="http://127.0.0.1:11434/v1",
        model="llama3.2",
        context_window=8192,
    ),
}


def _builtin_profiles() -> dict[str, Profile]:
    """The built-ins as the environment adjusts them: ``OPENAI_BASE_URL`` (the OpenAI SDK's own
    variable) points the ``openai`` profile at any compatible server, key and all."""
    profiles = dict(BUILTIN_PROFILES)
    base_url = os.environ.get("OPENAI_BASE_URL", "").strip()
    if base_url:
        profiles["openai"] = profiles["openai"].with_overrides(base_url=base_url.rstrip("/"))
    return profiles


# Which built-in profile a set key variable selects when no default is configured.
_KEY_DEFAULTS = (("OPENAI_API_KEY", "openai"), ("OPENROUTER_API_KEY", "openrouter"))

_TOP_KEYS = {"default_profile", "bot_name", "profiles", "mcp_servers"}
_PROFILE_KEYS = {f.name for f in fields(Profile)} - {"name"}
_FLOAT_KEYS = {
    "compress_at",
    "temperature",
    "connect_timeout",
    "read_timeout",
    "prompt_timeout",
    "price_in",
    "price_out",
}
_INT_KEYS = {"context_window", "max_tokens", "max_steps", "tool_result_limit"}
_LIST_KEYS = {"tools"}
_BOOL_KEYS = {"titles", "vision", "rules", "auto_compress"}
_TABLE_KEYS = {"headers", "env", "options"}


def home() -> Path:
    """The hermes_nb data directory: ``$HERMES_NB_HOME`` or the per-user data dir."""
    explicit = os.environ.get(_ENV_HOME)
    if explicit:
        return Path(explicit).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("hermes_nb", appauthor=False))


def config_path() -> Path:
    """``config.toml`` inside :func:`home`."""
    return home() / "config.toml"


@dataclass(frozen=True)
class Config:
    """The effective configuration: profiles by name and which one is the default."""

    profiles: dict[str, Profile] = field(default_factory=lambda: dict(BUILTIN_PROFILES))
    default_profile: str = "echo"
    bot_name: str = "Hermes"
    path: Path | None = None
    #: The ``[mcp_servers.NAME]`` tables, every profile's (already in each configured profile's
    #: ``mcp_servers``; a profile made in code gets them from here).
    mcp_servers: dict[str, McpServer] = field(default_factory=dict)

    def profile(self, name: str | None = None) -> Profile:
        """The named profile (or the default); a clear :class:`ConfigError` if unknown."""
        key = name or self.default_profile
        try:
            return self.profiles[key]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise ConfigError(
                f"Unknown profile {key!r}.",
                hint=f"Known profiles: {known}; "
                f"add [profiles.{key}] to {self.path or config_path()}.",
            ) from None

    @property
    def is_offline_default(self) -> bool:
        """True when the default profile is the offline echo model."""
        return self.profile().provider == "echo"


def _where(path: Path, key: str) -> str:
    return f"{path}: {key}"


def _profile_from_table(path: Path, name: str, table: Any, bot_name: str) -> Profile:
    if not isinstance(table, dict):
        raise ConfigError(f"{_where(path, 'profiles.' + name)} must be a table.")
    unknown = sorted(set(table) - _PROFILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{_where(path, f'profiles.{name}.{unknown[0]}')} is not a known profile key.",
            hint=f"Known keys: {', '.join(sorted(_PROFILE_KEYS))}.",
        )
    if "api_key" in table:  # pragma: no cover - guarded by the unknown-key check
        raise ConfigError("Keys never go in config.toml; name the variable with api_key_env.")
    values: dict[str, Any] = {"name": name, "bot_name": bot_name}
    base = _builtin_profiles().get(name)
    if base is not None:
        values = {f.name: getattr(base, f.name) for f in fields(Profile)} | {"bot_name": bot_name}
    for key, value in table.items():
        where = _where(path, f"profiles.{name}.{key}")
        if key in _TABLE_KEYS:
            if not isinstance(value, dict) or (
                key != "options" and not all(isinstance(v, str) for v in value.values())
            ):
                raise ConfigError(f"{where} must be a table of strings.")
            values[key] = dict(value)
        elif key in _FLOAT_KEYS:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"{where} must be a number, not {value!r}.")
            if key == "prompt_timeout" and value < 0:
                raise ConfigError(f"{where} must be 0 (wait for ever) or more seconds.")
            if key in ("price_in", "price_out") and not 0 <= value < float("inf"):
                raise ConfigError(
                    f"{where} must be a price per million tokens (0 or more), not {value!r}."
                )
            values[key] = float(value)
        elif key in _BOOL_KEYS:
            if not isinstance(value, bool):
                raise ConfigError(f"{where} must be true or false, not {value!r}.")
            values[key] = value
        elif key == "command":
            values[key] = command_line(
                where, value, example='the agent\'s program, e.g. ["hermes", "acp"]'
            )
        elif key == "mcp_servers":
            values[key] = parse_servers(path, f"profiles.{name}.mcp_servers", value)
        elif key in _LIST_KEYS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} must be a list of strings, not {value!r}.")
            values[key] = tuple(value)
        elif key in _INT_KEYS:
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where} must be a positive whole number, not {value!r}.")
            values[key] = value
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, not {value!r}.")
            values[key] = value
    default = "acp" if "command" in table else "openai" if "base_url" in table else "echo"
    provider = values.get("provider", default)
    if provider not in PROVIDERS:
        raise ConfigError(
            f"{_where(path, f'profiles.{name}.provider')} is {provider!r}, "
            f"which is not one of {', '.join(PROVIDERS)}."
        )
    values["provider"] = provider
    if provider == "acp" and "titles" not in table:
        values["titles"] = False  # a title would be one more agent turn, tools and all
    if provider == "acp" and "auto_compress" not in table:
        # A summary would be one more agent turn, and the continuation a new conversation to
        # the agent, its own memory of this one left behind: the agent compacts its own context.
        values["auto_compress"] = False
    if provider == "acp" and "connect_timeout" not in table:
        values["connect_timeout"] = 60.0  # an agent's start and handshake, not a TCP connect
    if provider == "acp" and not values.get("command"):
        raise ConfigError(
            f"{_where(path, f'profiles.{name}.command')} is required for acp: the agent's command "
            'line, e.g. command = ["hermes", "acp"].'
        )
    if provider == "openai" and not values.get("base_url"):
        raise ConfigError(f"{_where(path, f'profiles.{name}.base_url')} is required for openai.")
    if provider == "acp" and "model" not in values:
        # What the view's head names: the agent (its program and arguments), not a model.
        command = values["command"]
        values["model"] = " ".join([os.path.basename(command[0]), *command[1:]])
    values.setdefault("model", "echo" if provider == "echo" else "default")
    return Profile(**values)


def _with_servers(profile: Profile, servers: dict[str, McpServer]) -> Profile:
    """The profile with every profile's MCP servers, its own winning a shared name."""
    if not servers:
        return profile
    return replace(profile, mcp_servers={**servers, **profile.mcp_servers})


def _default_name(profiles: dict[str, Profile], configured: str | None) -> str:
    chosen = os.environ.get(_ENV_PROFILE) or configured
    if chosen:
        return chosen
    for variable, name in _KEY_DEFAULTS:
        if os.environ.get(variable) and name in profiles:
            return name
    return "echo"


def load_config(path: Path | None = None) -> Config:
    """Read ``config.toml`` (or built-in defaults when it does not exist).

    Every problem raises :class:`ConfigError` naming the file and the key.
    """
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        builtins = _builtin_profiles()
        return Config(profiles=builtins, default_profile=_default_name(builtins, None), path=path)
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is not valid TOML ({exc}).", hint="Fix the file or move it aside."
        ) from exc
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(
            f"{_where(path, unknown[0])} is not a known setting.",
            hint=f"Known settings: {', '.join(sorted(_TOP_KEYS))}.",
        )
    bot_name = data.get("bot_name", "Hermes")
    if not isinstance(bot_name, str) or not bot_name.strip():
        raise ConfigError(f"{_where(path, 'bot_name')} must be a non-empty string.")
    tables = data.get("profiles", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{_where(path, 'profiles')} must be a table of profiles.")
    servers = parse_servers(path, "mcp_servers", data.get("mcp_servers", {}))
    profiles = {
        name: p.with_overrides(bot_name=bot_name) if p.bot_name == "Hermes" else p
        for name, p in _builtin_profiles().items()
    }
    for name, table in tables.items():
        profiles[name] = _profile_from_table(path, name, table, bot_name)
    profiles = {name: _with_servers(p, servers) for name, p in profiles.items()}
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"{_where(path, 'default_profile')} must be a string.")
    config = Config(
        profiles=profiles,
        default_profile=_default_name(profiles, default),
        bot_name=bot_name,
        path=path,
        mcp_servers=servers,
    )
    config.profile()  # an unknown default_profile is an error now, not at the first turn
    return config


# Fields a caller may override per turn; the rest (name, env overlay, options, headers) belong to
# the profile as configured.
_PROFILE_FIELDS = {f.name for f in fields(Profile)} - {
    "name",
    "env",
    "options",
    "headers",
    "tools",
    "mcp_servers",
}


def resolve_profile(
    profile: str | Profile | None = None, **overrides: Any
) -> tuple[Profile, dict[str, Any]]:
    """The profile to use (by name, as given, or the configured default) with ``overrides``
    applied. Returns it and the leftover overrides (per-request provider options).

    It lives here, beside the configuration it reads, because both the public
    :func:`hermes_nb.chat` and the store's sessions resolve profiles the same way, and the
    store must not import the public API above it.
    """
    base = profile if isinstance(profile, Profile) else load_config().profile(profile)
    changes = {k: v for k, v in overrides.items() if k in _PROFILE_FIELDS}
    extra = {k: v for k, v in overrides.items() if k not in _PROFILE_FIELDS}
    return base.with_overrides(**changes), extra
