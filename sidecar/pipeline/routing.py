"""Chooses the provider for a request: header, model table, ``provider/model`` prefix, default."""

from __future__ import annotations

from collections.abc import Callable

from sidecar.config import Provider, Settings
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next

# (model, provider the client pinned) -> (provider name, provider, model as that provider knows it)
Route = Callable[[str | None, str | None], tuple[str, Provider, str | None]]


class Router:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def provider_for(
        self, model: str | None, pinned: str | None = None
    ) -> tuple[str, Provider, str | None]:
        """(provider name, provider, model as the provider knows it) for a model name.

        The model table and an explicit ``provider/model`` win; then the provider the client
        pinned with ``X-Sidecar-Provider`` (so fallbacks stay where the client asked); then the
        default provider.
        """
        providers = self.settings.providers
        if model is not None:
            route = self.settings.models.get(model)
            if route is not None:
                return route.provider, providers[route.provider], model
            prefix, _, rest = model.partition("/")
            if rest and prefix in providers:
                return prefix, providers[prefix], rest
        name = pinned or self.settings.default_provider
        return name, providers[name], model

    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        named = ex.headers.get("X-Sidecar-Provider")  # known: the identity stage checked it
        if named is not None:
            ex.provider_name, ex.provider = named, self.settings.providers[named]
            ex.pinned_provider = named
            return await call_next(ex)
        ex.provider_name, ex.provider, model = self.provider_for(ex.model)
        if model is not None and model != ex.model:
            ex.set_model(model)
        return await call_next(ex)
