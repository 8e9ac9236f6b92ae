"""Settings, storage clients and the subject resolver for the function host, built once per
worker process."""

from __future__ import annotations

from functools import cache

from shared import logsetup
from shared.clients.auth import token_provider
from shared.clients.graph_api import GraphClient
from shared.settings.config import ResolutionSettings, Settings, load_settings, load_storage_settings
from shared.storage import Storage
from shared.subjects.resolver import SubjectResolver


@cache
def settings() -> Settings:
    # Every Graph client is built from these settings (storage from storage()), so with the call
    # in storage() the loggers are quiet before any request.
    logsetup.quiet_sdk_loggers()
    return load_settings()


@cache
def storage() -> Storage:
    # Storage settings alone: a bad TENANT_ID, say, must still be alerted and shown by health.
    logsetup.quiet_sdk_loggers()
    return Storage.from_settings(load_storage_settings())


def build_resolver(storage: Storage, settings: ResolutionSettings) -> SubjectResolver:
    """MessageIndex always; Microsoft Graph when a tenant is configured."""
    graph = None
    if settings.graph is not None:
        graph = GraphClient(settings.graph, token_provider(settings.graph.auth))
    return SubjectResolver(storage.message_index, settings, graph)


@cache
def resolver() -> SubjectResolver:
    return build_resolver(storage(), settings().resolution)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    settings.cache_clear()
    storage.cache_clear()
    resolver.cache_clear()
