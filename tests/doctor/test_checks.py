"""`mia doctor` against Azurite and the simulator, each part misconfigured in turn: every failure
message, the all-ok run and `--json`. Nothing here is mocked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from devtools.receiver import WebhookReceiver
from mia import cli
from shared.clients.activity_api import ActivityClient
from shared.clients.auth import token_provider
from shared.doctor.checks import TEST_ALERT_TYPE
from shared.settings import CATALOGUE, load_collection_settings
from shared.storage import Storage
from shared.storage.message_index import MessageIndexTable
from simulator import Simulator, SimulatorConfig

pytestmark = pytest.mark.integration

SECRET = "doctor-webhook-secret"
CHECKS = (
    "settings",
    "storage",
    "management-token",
    "graph-token",
    "subscription",
    "graph-permissions",
    "message-trace",
    "webhook",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CATALOGUE, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def _simulator(**config: object) -> Simulator:
    return Simulator(SimulatorConfig(mailboxes=2, days=1, **config))  # type: ignore[arg-type]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with _simulator() as running:
        yield running


def _configure(monkeypatch: pytest.MonkeyPatch, azurite: str, sim: Simulator, **extra: str) -> None:
    for name, value in {**sim.settings_env(), "AzureWebJobsStorage": azurite, **extra}.items():
        monkeypatch.setenv(name, value)


def _start_subscription(sim: Simulator) -> None:
    settings = load_collection_settings(sim.settings_env())
    ActivityClient(settings, token_provider(settings.auth)).start_subscription("Audit.Exchange")


def _doctor(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, str]]:
    """The exit code and each check's line (without the check's name), by check; the last line
    must count them."""
    capsys.readouterr()
    code = cli.main(["doctor", *argv])
    *lines, summary = capsys.readouterr().out.splitlines()
    states = [line[:4].strip() for line in lines]
    assert summary == (
        f"doctor: {states.count('ok')} ok, {states.count('FAIL')} failed, {states.count('skip')} skipped"
    )
    by_check: dict[str, str] = {}
    for line in lines:
        state, rest = line[:4].strip(), line[6:]  # "ok  ", "FAIL" or "skip", two spaces
        check, _, detail = rest.partition(": ")
        by_check[check] = f"{state} {detail}"
    assert list(by_check) == list(CHECKS), lines
    return code, by_check


def test_a_configured_deployment_passes_every_check_and_the_webhook_gets_a_signed_test_alert(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    with WebhookReceiver(secret=SECRET) as receiver:
        _configure(monkeypatch, azurite, sim, ALERT_WEBHOOK_URL=receiver.url, ALERT_WEBHOOK_SECRET=SECRET)
        code, lines = _doctor(capsys, "--mailbox", sim.attacker_mailbox)

    assert code == 0
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert lines["storage"] == "ok container, 3 queues and 10 tables present"
    assert lines["subscription"].startswith("ok Audit.Exchange enabled; ")
    assert lines["webhook"] == "ok test delivery (signed) answered HTTP 200"
    [delivery] = receiver.accepted()
    assert delivery.signature_ok is True
    assert delivery.json()["type"] == TEST_ALERT_TYPE


def test_json_is_one_object_per_check_and_a_skipped_check_is_ok_null(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    _configure(monkeypatch, azurite, sim)
    capsys.readouterr()

    code = cli.main(["doctor", "--json"])

    results = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [result["check"] for result in results] == list(CHECKS)
    assert all(set(result) == {"check", "ok", "detail", "fix"} for result in results)
    by_check = {result["check"]: result for result in results}
    assert by_check["storage"]["ok"] is True
    assert by_check["graph-permissions"] == {
        "check": "graph-permissions",
        "ok": None,
        "detail": "skipped: no mailbox to look up in: give one with --mailbox UPN",
        "fix": "",
    }
    assert by_check["webhook"]["ok"] is None
    assert (
        by_check["webhook"]["detail"]
        == "skipped: ALERT_WEBHOOK_URL is not set: alerts are recorded, not sent"
    )


def test_a_bad_setting_is_named_and_what_needs_it_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(monkeypatch, azurite, sim, COLLECT_CONCURRENCY="0")

    code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["settings"].startswith(
        "FAIL collection: COLLECT_CONCURRENCY must be between 1 and 64, got 0 -> fix: correct the setting"
    )
    assert lines["storage"].startswith("ok ")
    assert lines["management-token"] == "skip skipped: the collection settings are invalid"
    assert lines["subscription"] == "skip skipped: the collection settings are invalid"


def test_a_missing_table_is_named_and_not_created(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    storage.tables.delete_table(MessageIndexTable.NAME)
    _start_subscription(sim)
    _configure(monkeypatch, azurite, sim)

    code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["storage"].startswith(f"FAIL missing: table {MessageIndexTable.NAME} -> fix: create them")
    names = {table.name for table in storage.tables.list_tables()}
    assert MessageIndexTable.NAME not in names


def test_unreachable_storage_says_so(
    monkeypatch: pytest.MonkeyPatch, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    closed = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;QueueEndpoint=http://127.0.0.1:9/devstoreaccount1;"
        "TableEndpoint=http://127.0.0.1:9/devstoreaccount1"
    )
    _configure(monkeypatch, closed, sim)

    code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["storage"].startswith("FAIL the storage account is unreachable: ")
    assert "-> fix: check the account name or connection string" in lines["storage"]


def test_a_refused_token_names_the_credential_and_skips_the_calls_that_need_it(
    monkeypatch: pytest.MonkeyPatch, azurite: str, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    with _simulator(credential_expired=True) as sim:
        _configure(monkeypatch, azurite, sim)
        code, lines = _doctor(capsys, "--mailbox", sim.attacker_mailbox)

    assert code == 6  # ExitCode.CHECK_FAILED
    for check in ("management-token", "graph-token"):
        assert lines[check].startswith("FAIL token request for ")
        assert "AADSTS7000222" in lines[check]
        assert "-> fix: check CLIENT_ID and TENANT_ID, renew the client secret" in lines[check]
    assert lines["subscription"] == "skip skipped: no Management API token"
    assert lines["graph-permissions"] == "skip skipped: no Graph token"


def test_a_subscription_not_started_is_reported_and_left_alone(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _configure(monkeypatch, azurite, sim)

    code, lines = _doctor(capsys)
    again, lines_again = _doctor(capsys)

    assert code == again == 6  # ExitCode.CHECK_FAILED
    assert lines["subscription"].startswith(
        "FAIL the Audit.Exchange subscription is not started -> fix: run `mia collect`"
    )
    assert lines_again["subscription"] == lines["subscription"]


def test_a_subscription_an_admin_disabled_is_reported(
    monkeypatch: pytest.MonkeyPatch, azurite: str, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    with _simulator(admin_disabled=("Audit.Exchange",)) as sim:
        _start_subscription(sim)
        _configure(monkeypatch, azurite, sim)
        code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["subscription"].startswith("FAIL the Audit.Exchange subscription is disabled -> fix: ")


def test_graph_403_on_the_message_lookup_names_the_role_and_the_grant_flag(
    monkeypatch: pytest.MonkeyPatch, azurite: str, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    with _simulator(graph_roles=("ExchangeMessageTrace.Read.All",)) as sim:
        _start_subscription(sim)
        _configure(monkeypatch, azurite, sim)
        code, lines = _doctor(capsys, "--mailbox", sim.attacker_mailbox)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["graph-permissions"].startswith(
        f"FAIL Graph refused a message lookup in {sim.attacker_mailbox}: HTTP 403 ErrorAccessDenied: "
        "Mail.ReadBasic.All is missing"
    )
    assert "-> fix: infra/grant-permissions.sh --graph Mail.ReadBasic.All" in lines["graph-permissions"]
    assert lines["message-trace"].startswith("ok ")


def test_the_watchlist_names_the_mailbox_for_the_lookup(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    _configure(
        monkeypatch, azurite, sim, RESOLVE_SUBJECTS="watchlist", RESOLVE_WATCHLIST="nobody@contoso.com"
    )

    code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["graph-permissions"].startswith(
        "FAIL Graph found no mailbox nobody@contoso.com: HTTP 404 ErrorInvalidUser -> fix: name a mailbox"
    )


def test_message_trace_without_its_service_principal_names_the_grant(
    monkeypatch: pytest.MonkeyPatch, azurite: str, storage: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    with _simulator(trace_missing_service_principal=True) as sim:
        _start_subscription(sim)
        _configure(monkeypatch, azurite, sim)
        code, lines = _doctor(capsys, "--mailbox", sim.attacker_mailbox)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["message-trace"].startswith("FAIL Graph refused message trace: HTTP 401 ")
    assert (
        "-> fix: infra/grant-permissions.sh --graph ExchangeMessageTrace.Read.All" in lines["message-trace"]
    )
    assert lines["graph-permissions"].startswith("ok ")


def test_message_trace_off_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    _configure(monkeypatch, azurite, sim, RESOLVE_MESSAGE_TRACE="false")

    code, lines = _doctor(capsys)

    assert code == 0
    assert lines["message-trace"] == "skip skipped: RESOLVE_MESSAGE_TRACE is off"


def test_a_webhook_that_rejects_the_signature_says_which_secret_to_set(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    with WebhookReceiver(secret=SECRET) as receiver:
        _configure(
            monkeypatch, azurite, sim, ALERT_WEBHOOK_URL=receiver.url, ALERT_WEBHOOK_SECRET="not-the-secret"
        )
        code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["webhook"] == (
        "FAIL the receiver rejected the signature of the test delivery (HTTP 401) -> fix: set "
        "ALERT_WEBHOOK_SECRET to the secret the receiver verifies X-Signature-256 with"
    )
    assert receiver.accepted() == []


def test_a_webhook_that_is_down_says_so(
    monkeypatch: pytest.MonkeyPatch,
    azurite: str,
    storage: Storage,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _start_subscription(sim)
    with WebhookReceiver(secret=SECRET) as receiver:
        receiver.down = True
        _configure(monkeypatch, azurite, sim, ALERT_WEBHOOK_URL=receiver.url, ALERT_WEBHOOK_SECRET=SECRET)
        code, lines = _doctor(capsys)

    assert code == 6  # ExitCode.CHECK_FAILED
    assert lines["webhook"] == (
        "FAIL test delivery failed: receiver answered HTTP 503 -> fix: check ALERT_WEBHOOK_URL and that "
        "the receiver is up"
    )
