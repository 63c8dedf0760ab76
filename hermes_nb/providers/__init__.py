"""Providers: where replies come from. ``get_provider(profile)`` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ConfigError
from .base import Provider, ProviderRequest

if TYPE_CHECKING:
    import httpx

    from ..profiles import Profile

__all__ = ["Provider", "ProviderRequest", "get_provider"]


def get_provider(profile: Profile, client: httpx.AsyncClient | None = None) -> Provider:
    """The provider for ``profile``; ``client`` is the runtime's shared HTTP client."""
    if profile.provider == "echo":
        from .echo import EchoProvider

        return EchoProvider.from_profile(profile)
    if profile.provider == "openai":
        from .openai import OpenAIProvider

        if client is None:
            raise ConfigError("The openai provider needs the runtime's HTTP client.")
        return OpenAIProvider(client)
    if profile.provider == "hermes-agent":
        from .hermes_agent import HermesAgentProvider  # type: ignore[import-not-found]

        return HermesAgentProvider(profile)
    raise ConfigError(f"Unknown provider {profile.provider!r} in profile {profile.name!r}.")
