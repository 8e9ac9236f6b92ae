"""An unresolved Key Vault reference is recognised, never used as the value, and stops only the
feature its setting belongs to.

App Service leaves a reference it cannot resolve as the setting's literal text ("If a reference
isn't resolved properly, the reference string is used instead":
https://learn.microsoft.com/azure/app-service/app-service-key-vault-references#troubleshoot-key-vault-references);
the page gives both forms tested here, `VaultName=...;SecretName=...` and `SecretUri=...`."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError, UnresolvedReference, load_settings
from shared.settings.environment import Environment, SecretReference, key_vault_reference

pytestmark = pytest.mark.unit

TENANT = "4c0e6b1a-9d2f-4e37-8a15-2b7f0c9d3e61"
CLIENT = "0d5c8a52-3f41-4b6e-9a7d-1c2e3f4a5b6c"
BASE = {
    "AzureWebJobsStorage": "UseDevelopmentStorage=true",
    "TENANT_ID": TENANT,
    "ALERT_WEBHOOK_URL": "https://hooks.example.com/alerts",
    "ALERT_WEBHOOK_SECRET": "signing-key",
}
BY_NAME = "@Microsoft.KeyVault(VaultName=kv-mia;SecretName=alert-webhook-secret)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (BY_NAME, SecretReference("kv-mia", "alert-webhook-secret")),
        (
            "@Microsoft.KeyVault(VaultName=kv-mia;SecretName=collector-credential;SecretVersion=ec96f02)",
            SecretReference("kv-mia", "collector-credential"),
        ),
        (
            "@Microsoft.KeyVault(SecretUri=https://kv-mia.vault.azure.net/secrets/alert-webhook-url/)",
            SecretReference("kv-mia", "alert-webhook-url"),
        ),
        (
            "@Microsoft.KeyVault(SecretUri=https://kv-mia.vault.azure.net/secrets/alert-webhook-url/ec96f02)",
            SecretReference("kv-mia", "alert-webhook-url"),
        ),
        (" @microsoft.keyvault(VaultName=kv-mia;SecretName=x) ", SecretReference("kv-mia", "x")),
        ("@Microsoft.KeyVault(nonsense)", SecretReference("", "")),
    ],
)
def test_both_reference_forms_are_recognised_with_the_secret_they_name(
    value: str, expected: SecretReference
) -> None:
    assert key_vault_reference(value) == expected


@pytest.mark.parametrize(
    "value",
    ["signing-key", "", "https://hooks.example.com/a?x=@Microsoft.KeyVault(a)", "@Microsoft.KeyVault"],
)
def test_other_values_are_not_references(value: str) -> None:
    assert key_vault_reference(value) is None


def test_every_reader_refuses_a_reference_naming_the_setting_and_the_secret() -> None:
    env = Environment({"ALERT_WEBHOOK_SECRET": BY_NAME, "REPORT_MAX_DAYS": BY_NAME})

    with pytest.raises(UnresolvedReference) as raised:
        env.optional("ALERT_WEBHOOK_SECRET")
    with pytest.raises(UnresolvedReference, match=r"^REPORT_MAX_DAYS is an unresolved"):
        env.integer("REPORT_MAX_DAYS", 1, 400)

    assert isinstance(raised.value, SettingsError)
    assert raised.value.setting == "ALERT_WEBHOOK_SECRET"
    assert str(raised.value).startswith(
        "ALERT_WEBHOOK_SECRET is an unresolved Key Vault reference to secret 'alert-webhook-secret' "
        "in vault 'kv-mia': "
    )
    assert "@Microsoft.KeyVault" not in str(raised.value)


@pytest.mark.parametrize("setting", ["ALERT_WEBHOOK_URL", "ALERT_WEBHOOK_SECRET"])
def test_an_unresolved_webhook_setting_leaves_nothing_to_send_and_the_rest_loaded(setting: str) -> None:
    settings = load_settings({**BASE, setting: BY_NAME})

    assert settings.alerts.webhook_url is None  # never sent unsigned, nor signed with the text
    assert settings.alerts.webhook_secret is None
    assert settings.alerts.delivery_problem is not None
    assert settings.alerts.delivery_problem.startswith(f"{setting} is an unresolved Key Vault reference")
    assert settings.alerts.delivery_problem.endswith("alerts are recorded in the outbox and stay pending")
    assert settings.alerts.tenant == TENANT
    assert settings.collection is not None
    assert settings.resolution.graph is not None
    assert settings.unavailable() == {"alerts": settings.alerts.delivery_problem}


@pytest.mark.parametrize("setting", ["CLIENT_SECRET", "CLIENT_CERTIFICATE"])
def test_an_unresolved_credential_stops_collection_and_graph_alone(setting: str) -> None:
    settings = load_settings({**BASE, "CLIENT_ID": CLIENT, setting: BY_NAME})

    assert settings.collection is None
    assert settings.collection_problem is not None
    assert settings.collection_problem.startswith(f"{setting} is an unresolved Key Vault reference")
    assert settings.resolution.graph is None
    assert settings.resolution.graph_problem == settings.collection_problem
    assert settings.alerts.webhook_url == BASE["ALERT_WEBHOOK_URL"]
    assert settings.alerts.delivery_problem is None
    assert settings.unavailable() == {
        "collection": settings.collection_problem,
        "subjects": settings.collection_problem,
    }


def test_without_references_nothing_is_unavailable() -> None:
    assert load_settings(BASE).unavailable() == {}
