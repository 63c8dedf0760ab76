"""Providers: where replies come from. ``get_provider(profile)`` picks one by name.

The built-in names are ``echo``, ``openai``, ``hermes-agent`` and ``acp`` (any agent that speaks
the Agent Client Protocol, run as a process of its own); :func:`register_provider`
adds others (a plugin, or a test's recording provider) without touching this package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..core.exceptions import ConfigError
from .base import Provider, ProviderRequest

if TYPE_CHECKING:
    import httpx

    from ..core.profiles import Profile

__all__ = ["Provider", "ProviderRequest", "get_provider", "register_provider"]

ProviderFactory = Callable[["Profile", "httpx.AsyncClient"], Provider]
_registry: dict[str, ProviderFactory] = {}


def register_provider(name: str, factory: ProviderFactory) -> None:
    """Make ``provider = "<name>"`` in a profile build its provider with ``factory``."""
    _registry[name] = factory


def get_provider(profile: Profile, client: httpx.AsyncClient) -> Provider:
    """The provider for ``profile``; ``client`` is the runtime's shared HTTP client."""
    name = profile.provider
    if name in _registry:
        return _registry[name](profile, client)
    if name == "echo":
        from .echo import EchoProvider

        return EchoProvider.from_profile(profile)
    if name == "openai":
        from .openai import OpenAIProvider

        return OpenAIProvider(client)
    if name == "hermes-agent":
        from .hermes_agent import HermesAgentProvider

        return HermesAgentProvider(profile)
    if name == "acp":
        from .acp import ACPProvider

        return ACPProvider(profile)
    raise ConfigError(
        f"Unknown provider {name!r} in profile {profile.name!r}.",
        hint="Use echo, openai, hermes-agent or acp.",
    )
