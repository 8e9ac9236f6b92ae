"""A setting App Service could not resolve from Key Vault stops its own feature alone.

App Service leaves an unresolved Key Vault reference as the literal `@Microsoft.KeyVault(...)` text
of the setting ("If a reference isn't resolved properly, the reference string is used instead":
https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#troubleshoot-key-vault-references).
infra/app/api.bicep writes such references for the webhook's URL and secret and the collector's
credential. Driven through the real handlers with real azure.functions objects, against Azurite,
the simulator's tenant and a real webhook receiver."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from devtools.receiver import WebhookReceiver
from shared import runtime
from shared.alerts import outbox
from shared.settings import SettingsError
from shared.storage import LOOKUP_QUEUE, POISON_QUEUE, Storage, raw_store
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.functions.helpers import get_request, health, timer_tick, user_function
from tests.helpers import busiest_blobs, stored_pointer

pytestmark = pytest.mark.functions

SECRET = "kv-test-secret"
VAULT = "kv-mia-test"
MISCONFIGURED = "collection.misconfigured"


def reference(secret_name: str) -> str:
    """The reference exactly as infra/app/api.bicep writes it."""
    return f"@Microsoft.KeyVault(VaultName={VAULT};SecretName={secret_name})"


def _run_all_but_fetch_audit(storage: Storage, blob: Any) -> None:
    """enrich_trace on one stored blob, then the three other timers, as the host would."""
    user_function("enrich_trace")(
        func.QueueMessage(id="m1", body=stored_pointer(storage, blob).encode(), pop_receipt="r1")
    )
    user_function("resolve_subjects")(timer_tick())
    user_function("watch_poison")(timer_tick())
    user_function("deliver_alerts")(timer_tick())


def _report_status(mailbox: str) -> int:
    status: int = user_function("report_http")(
        get_request(f"/api/reports/{mailbox}", {"mailbox": mailbox})
    ).status_code
    return status


def _error_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [line for line in lines if "@Microsoft.KeyVault" in line]
    return lines


def _park_on_poison(storage: Storage) -> None:
    poison = raw_store.content_queue(storage.queues, POISON_QUEUE)
    poison.send_message('{"blob": "import/gone.gz", "sha256": "' + "0" * 64 + '", "format": "jsonl"}')


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(SimulatorConfig(seed=5, mailboxes=3, days=2, faults=FaultConfig.none())) as simulator:
        yield simulator


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as running:
        yield running


def _deployed(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, receiver: WebhookReceiver, **overrides: str
) -> None:
    """A deployed app's settings (the collector with a secret, a signed webhook), then a new worker."""
    values = {
        **sim.settings_env("secret"),
        "COLLECT_INITIAL_LOOKBACK_HOURS": "72",
        "ALERT_WEBHOOK_URL": receiver.url,
        "ALERT_WEBHOOK_SECRET": SECRET,
        **overrides,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    runtime.reset()


@pytest.mark.parametrize("setting", ["ALERT_WEBHOOK_SECRET", "ALERT_WEBHOOK_URL"])
def test_an_unresolved_webhook_setting_keeps_alerts_queued_and_every_function_runs(
    function_env: Storage,
    sim: Simulator,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    setting: str,
) -> None:
    secret_name = setting.lower().replace("_", "-")
    _deployed(monkeypatch, sim, receiver, **{setting: reference(secret_name)})
    caplog.set_level(logging.ERROR, logger="shared.runtime")
    blob = busiest_blobs(sim.tenant, sim.attacker_mailbox, 1)[0]
    _park_on_poison(function_env)

    user_function("fetch_audit")(timer_tick())
    _run_all_but_fetch_audit(function_env, blob)
    assert _report_status(sim.attacker_mailbox) == 200
    body = health()

    assert len(list(function_env.mailbox_access.client.list_entities())) > 0  # enrich_trace wrote rows
    assert [row.checkpoint for row in function_env.collection_state.checkpoints()] != []  # fetch_audit ran
    assert raw_store.content_queue(function_env.queues, LOOKUP_QUEUE).peek_messages() == []  # resolved
    rows = outbox.rows(function_env)
    assert "processing.poison" in {row["Type"] for row in rows}
    assert {row["PartitionKey"] for row in rows} == {"pending"}  # recorded, not lost
    assert {row.get("Attempts", 0) for row in rows} == {0}  # and never sent
    assert receiver.received == []
    problem = body["settings"]["alerts"]
    assert problem.startswith(f"{setting} is an unresolved Key Vault reference to secret '{secret_name}'")
    assert f"vault '{VAULT}'" in problem
    assert f"alert delivery is misconfigured: {problem}" in body["problems"]
    assert body["settings"]["collection"] is None
    assert body["settings"]["subjects"] is None
    assert body["alerts"]["pending"] == len(rows)
    assert "@Microsoft.KeyVault" not in json.dumps(body)
    naming = [line for line in _error_lines(caplog) if secret_name in line]
    assert naming == [f"unavailable (alerts): {problem}"]  # one line per worker names the secret


@pytest.mark.parametrize("setting", ["CLIENT_SECRET", "CLIENT_CERTIFICATE"])
def test_an_unresolved_collector_credential_stops_collection_alone(
    function_env: Storage,
    sim: Simulator,
    receiver: WebhookReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    setting: str,
) -> None:
    overrides = {setting: reference("collector-credential")}
    if setting == "CLIENT_CERTIFICATE":
        overrides["CLIENT_SECRET"] = ""  # the template sets one of the two, the other empty
    _deployed(monkeypatch, sim, receiver, **overrides)
    caplog.set_level(logging.ERROR)
    blob = busiest_blobs(sim.tenant, sim.attacker_mailbox, 1)[0]
    graph_before = int(sim.stats()["graph_requests"])

    _run_all_but_fetch_audit(function_env, blob)
    assert _report_status(sim.attacker_mailbox) == 200
    body = health()
    worker_lines = _error_lines(caplog)  # before fetch_audit, whose every tick logs its own line
    with pytest.raises(SettingsError, match=f"^{setting} is an unresolved Key Vault reference"):
        user_function("fetch_audit")(timer_tick())

    assert len(list(function_env.mailbox_access.client.list_entities())) > 0
    assert int(sim.stats()["graph_requests"]) == graph_before  # Graph shares the credential: not called
    problem = body["settings"]["collection"]
    assert problem.startswith(
        f"{setting} is an unresolved Key Vault reference to secret 'collector-credential'"
    )
    assert f"collection is misconfigured: {problem}" in body["problems"]
    assert body["settings"]["subjects"] == problem
    assert body["settings"]["alerts"] is None
    [request] = receiver.received  # the existing collection.misconfigured path, delivered and signed
    assert request.signature_ok
    assert request.json()["type"] == MISCONFIGURED
    assert request.json()["details"]["error"] == problem
    assert "@Microsoft.KeyVault" not in json.dumps(body) + request.body.decode()
    assert worker_lines == [f"collection is misconfigured: {problem}", f"unavailable (subjects): {problem}"]
