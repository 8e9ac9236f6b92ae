"""Settings and storage clients for the function host, built once per worker process."""

from __future__ import annotations

from functools import cache

from shared.config import Settings, load_settings
from shared.storage import Storage


@cache
def settings() -> Settings:
    return load_settings()


@cache
def storage() -> Storage:
    return Storage.from_settings(settings().storage)


def reset() -> None:
    """Forget cached settings and clients (tests change the environment between cases)."""
    settings.cache_clear()
    storage.cache_clear()
