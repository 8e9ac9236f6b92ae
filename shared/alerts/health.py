"""GET /api/health: is collection keeping up, is anything stuck, are alerts getting out.

Free of the Functions runtime (inputs in, reply out) so `health_http` stays a thin adapter.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core.exceptions import AzureError

from shared.alerts import outbox
from shared.model.times import iso_z, parse_iso_z
from shared.settings import (
    AlertSettings,
    Settings,
    SettingsError,
    load_alert_settings,
    load_collection_settings,
    load_resolution_settings,
)
from shared.storage import CONTENT_QUEUE, LOOKUP_QUEUE, POISON_QUEUE, Storage
from shared.storage.collection_state import Recorded

log = logging.getLogger(__name__)


# What CollectionState records of content that did not simply become rows, by health's name for it.
_RECORDED: tuple[tuple[Recorded, str], ...] = (
    ("gap", "gaps"),
    ("loss", "losses"),
    ("unparseable", "unparseable"),
)


def collection_state(storage: Storage, now: datetime) -> dict[str, Any]:
    """Per content type: checkpoint, lag and last successful fetch; gaps, losses and blobs stored
    unparseable recorded."""
    table = storage.collection_state
    types: dict[str, Any] = {}
    for row in table.checkpoints():
        checkpoint = row.checkpoint
        lag = (now - parse_iso_z(checkpoint)).total_seconds() / 60 if checkpoint else None
        types[row.content_type] = {
            "checkpoint": checkpoint or None,
            "lagMinutes": None if lag is None else round(lag, 1),
            "lastSuccessfulFetch": row.last_success_at or None,
            "gaps": 0,
            "losses": 0,
            "unparseable": 0,
        }
    for kind, key in _RECORDED:
        for content_type, entry in types.items():
            entry[key] = table.count_recorded(kind, content_type)
    return types


def queue_depths(storage: Storage) -> dict[str, int]:
    return {
        name: storage.queues.get_queue_client(name).get_queue_properties().approximate_message_count or 0
        for name in (CONTENT_QUEUE, POISON_QUEUE, LOOKUP_QUEUE)
    }


_AREAS = {
    "collection": "collection",
    "alerts": "alert delivery",
    "subjects": "subject lookups through Microsoft Graph",
}


def settings_problems(loaded: Settings | None) -> tuple[AlertSettings, dict[str, str]]:
    """The alert settings (defaults when they do not validate) and, by area, the settings that do
    not validate or are unresolved Key Vault references; each message names the setting (and the
    secret) and never a secret's value. `loaded` is the host's settings, with collection's problem
    recorded at start-up, or None when another setting kept them from loading: each area is then
    read on its own."""
    if loaded is not None:
        return loaded.alerts, loaded.unavailable()
    problems = {}
    try:
        load_collection_settings()
    except SettingsError as problem:
        problems["collection"] = str(problem)
    try:
        alert_settings = load_alert_settings()
    except SettingsError as problem:
        problems["alerts"] = str(problem)
        alert_settings = AlertSettings()
    if alert_settings.delivery_problem is not None:
        problems["alerts"] = alert_settings.delivery_problem
    try:
        graph_problem = load_resolution_settings().graph_problem
    except SettingsError as problem:
        graph_problem = str(problem)
    if graph_problem is not None:
        problems["subjects"] = graph_problem
    return alert_settings, problems


CONFLICTS_COUNTED = 1000  # counted up to this many; more reads as "at least"


def record_conflicts(storage: Storage) -> dict[str, Any]:
    """How many records have a second copy with different content (kept aside, first copy wins),
    counted up to CONFLICTS_COUNTED, and the latest one's detection time."""
    detected = storage.record_conflicts.detection_times(CONFLICTS_COUNTED)
    count, latest = len(detected), max(detected, default="")
    return {"conflicts": count, "atLeast": count >= CONFLICTS_COUNTED, "latestDetectedAt": latest or None}


def health(
    storage: Storage,
    settings: AlertSettings,
    now: datetime | None = None,
    misconfigured: dict[str, str] | None = None,
) -> dict[str, Any]:
    moment = now or datetime.now(UTC)
    bad_settings = misconfigured or {}
    collection = collection_state(storage, moment)
    depths = queue_depths(storage)
    alerts = outbox.summary(storage)
    alerts["webhookConfigured"] = bool(settings.webhook_url)
    fetches = [entry["lastSuccessfulFetch"] for entry in collection.values() if entry["lastSuccessfulFetch"]]
    lag_limit = settings.lag_hours * 60
    problems = [f"{_AREAS[area]} is misconfigured: {message}" for area, message in bad_settings.items()]
    if not collection:
        problems.append("nothing collected yet")
    problems += [
        f"{name} lagging {entry['lagMinutes']:.0f} minutes"
        for name, entry in collection.items()
        if entry["lagMinutes"] is not None and entry["lagMinutes"] > lag_limit
    ]
    if depths[POISON_QUEUE]:
        problems.append(f"{depths[POISON_QUEUE]} messages in {POISON_QUEUE}")
    evidence = record_conflicts(storage)
    if evidence["conflicts"]:
        more = "or more " if evidence["atLeast"] else ""
        problems.append(
            f"{evidence['conflicts']} {more}records have a second copy with different content "
            "(first copy kept; run `mia verify` to see both sources)"
        )
    return {
        "status": "attention" if problems else "ok",
        "problems": problems,
        "checkedAt": iso_z(moment),
        "settings": {area: bad_settings.get(area) for area in _AREAS},
        "collection": collection,
        "lastSuccessfulFetch": max(fetches) if fetches else None,
        "queues": {
            "depth": depths[CONTENT_QUEUE],
            "poisonDepth": depths[POISON_QUEUE],
            "subjectLookupsDepth": depths[LOOKUP_QUEUE],
        },
        "alerts": alerts,
        "evidence": evidence,
    }


def health_reply(storage: Storage, loaded: Settings | None, now: datetime | None = None) -> tuple[int, str]:
    """(status, JSON body): 200 with the state (settings that do not validate among the problems,
    see settings_problems), or 503 when storage does not answer."""
    settings, misconfigured = settings_problems(loaded)
    try:
        body = health(storage, settings, now, misconfigured)
    except AzureError:
        log.exception("health: storage did not answer")
        error = {"error": {"code": "storage_unavailable", "message": "storage did not answer; try again"}}
        return 503, orjson.dumps(error).decode()
    return 200, orjson.dumps(body).decode()
