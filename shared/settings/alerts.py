"""Alert settings: the rules' thresholds and the webhook alerts are delivered to (no URL: recorded,
not delivered; a URL or signing secret that is an unresolved Key Vault reference: recorded, and
delivery unavailable until it resolves)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

from shared.settings.detection import DetectionSettings, load_detection_settings
from shared.settings.environment import Environment, SettingsError, UnresolvedReference

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class AlertFormat(StrEnum):
    JSON = "json"
    TEAMS = "teams"  # an Adaptive Card for a Teams Workflows webhook
    SLACK = "slack"


@dataclass(frozen=True)
class AlertSettings:
    # The URL can carry a token (Teams Workflows, Slack), the secret signs: neither is ever shown.
    webhook_url: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_format: AlertFormat = AlertFormat.JSON
    tenant: str = ""
    near_throttle_threshold: int = 900
    lag_hours: int = 6
    timeout_seconds: int = 10
    retention_days: int = 30  # delivered alerts are kept this long, then removed
    # Why nothing is sent although a webhook is configured (an unresolved Key Vault reference):
    # webhook_url and webhook_secret are then None, and alerts stay pending in the outbox.
    delivery_problem: str | None = None
    detection: DetectionSettings = field(default_factory=DetectionSettings)


def _webhook_url(env: Environment) -> str | None:
    value = env.optional("ALERT_WEBHOOK_URL")
    if value is None:
        return None
    # The value itself is never echoed: it may hold a token.
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise SettingsError("ALERT_WEBHOOK_URL is not a valid URL") from None
    if not host or parts.scheme not in ("https", "http"):
        raise SettingsError("ALERT_WEBHOOK_URL must be an https:// URL")
    if parts.scheme == "http" and host not in _LOOPBACK:
        raise SettingsError(
            "ALERT_WEBHOOK_URL must use https:// (plain http is accepted only for 127.0.0.1, "
            f"localhost or ::1, not {host!r})"
        )
    return value


def _webhook(env: Environment) -> tuple[str | None, str | None, str | None]:
    """(URL, signing secret, None), or (None, None, the problem) when either is an unresolved Key
    Vault reference: an alert is never sent unsigned, nor signed with the reference's text."""
    try:
        return _webhook_url(env), env.optional("ALERT_WEBHOOK_SECRET"), None
    except UnresolvedReference as problem:
        return None, None, f"{problem}; until then alerts are recorded in the outbox and stay pending"


def load_alert_settings(env: Mapping[str, str] | None = None) -> AlertSettings:
    """Alert settings alone; raises SettingsError naming the bad one, except for a webhook setting
    that is an unresolved Key Vault reference, which is recorded in `delivery_problem`."""
    source = Environment(env)
    webhook_format = source.choice("ALERT_WEBHOOK_FORMAT", AlertFormat)
    url, secret, delivery_problem = _webhook(source)
    return AlertSettings(
        webhook_url=url,
        webhook_secret=secret,
        delivery_problem=delivery_problem,
        webhook_format=webhook_format,
        tenant=source.text("TENANT_ID").lower(),
        near_throttle_threshold=source.integer("ALERT_NEAR_THROTTLE_THRESHOLD", 1, 100_000),
        lag_hours=source.integer("ALERT_LAG_HOURS", 1, 24 * 7),
        timeout_seconds=source.integer("ALERT_WEBHOOK_TIMEOUT_SECONDS", 1, 120),
        retention_days=source.integer("ALERT_RETENTION_DAYS", 1, 3650),
        detection=load_detection_settings(env),
    )
