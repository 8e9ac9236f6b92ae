"""What a deployment of infra/main.bicep creates, against what the code needs: the storage names, the
runtime, the security settings, and the azd wiring (tests/infra/deployment.py evaluates the templates)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from shared import storage
from tests.infra.bicep import templates
from tests.infra.deployment import Deployment, DeploymentError, Inputs, Joined, Reference, Resource, deploy
from tests.infra.tools import INFRA, ROOT, tool

pytestmark = pytest.mark.infra

STORAGE_ACCOUNT = "Microsoft.Storage/storageAccounts"
CONTAINER = "Microsoft.Storage/storageAccounts/blobServices/containers"
IMMUTABILITY = "Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies"
QUEUE = "Microsoft.Storage/storageAccounts/queueServices/queues"
TABLE = "Microsoft.Storage/storageAccounts/tableServices/tables"
SITE = "Microsoft.Web/sites"
PLAN = "Microsoft.Web/serverfarms"
IDENTITY = "Microsoft.ManagedIdentity/userAssignedIdentities"
REQUIRED = {"environmentName": "mia-test", "location": "westeurope"}
# `${NAME}` or `${NAME=default}`: what azd replaces with the value of NAME in the azd environment
# (https://learn.microsoft.com/azure/developer/azure-developer-cli/manage-environment-variables).
AZD_REFERENCE = re.compile(r"^\$\{([A-Z][A-Z0-9_]*)(?:=(.*))?\}$")
# The retention periods Application Insights accepts (`--retention-time`,
# https://learn.microsoft.com/cli/azure/monitor/app-insights/component#az-monitor-app-insights-component-update).
APP_INSIGHTS_RETENTION_DAYS = [30, 60, 90, 120, 180, 270, 365, 550, 730]


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return deploy()


def deployed_with(**parameters: Any) -> Deployment:
    return deploy(Inputs(parameters={**REQUIRED, **parameters}))


def short_names(resources: list[Resource]) -> list[str]:
    return sorted(r.name.rsplit("/", 1)[-1] for r in resources)


def app_settings(deployment: Deployment) -> dict[str, Any]:
    site = deployment.one(SITE)
    return {s["name"]: s["value"] for s in site.properties["siteConfig"]["appSettings"]}


def endpoint(account: Resource, service: str) -> Reference:
    return Reference(account.id, ("properties", "primaryEndpoints", service))


def test_the_deployment_creates_exactly_the_storage_the_code_uses(deployment: Deployment) -> None:
    account = deployment.one(STORAGE_ACCOUNT)
    assert short_names(deployment.children(account, TABLE)) == sorted(storage.TABLES)
    assert short_names(deployment.of_type(TABLE)) == sorted(storage.TABLES)  # no other account has one
    assert short_names(deployment.of_type(QUEUE)) == sorted(storage.QUEUES)
    containers = short_names(deployment.children(account, CONTAINER))
    # The only other container is the one the Flex host deploys the app package from.
    package = deployment.one(SITE).properties["functionAppConfig"]["deployment"]["storage"]
    assert package["type"] == "blobContainer"
    assert isinstance(package["value"], Joined)
    blob_endpoint, package_container = package["value"].parts
    assert blob_endpoint == endpoint(account, "blob")
    assert isinstance(package_container, str)
    assert containers == sorted([storage.RAW_CONTAINER, package_container])


def test_the_app_reaches_that_storage_with_its_identity(deployment: Deployment) -> None:
    account = deployment.one(STORAGE_ACCOUNT)
    identity = deployment.one(IDENTITY)
    settings = app_settings(deployment)
    assert settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert settings["AzureWebJobsStorage__clientId"] == Reference(identity.id, ("properties", "clientId"))
    for service in ("blob", "queue", "table"):
        assert settings[f"AzureWebJobsStorage__{service}ServiceUri"] == endpoint(account, service)
    site = deployment.one(SITE)
    assert site.body["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {identity.id: {}}}


def test_runtime_is_the_python_ci_tests(deployment: Deployment) -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    runtime = deployment.one(SITE).properties["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": version}
    # ...and no other version can be deployed.
    with pytest.raises(DeploymentError, match=re.escape("pythonVersion='3.12' fails @allowed")):
        deployed_with(pythonVersion="3.12")


def test_storage_is_identity_only_and_evidence_is_immutable(deployment: Deployment) -> None:
    account = deployment.one(STORAGE_ACCOUNT).properties
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["supportsHttpsTrafficOnly"] is True

    raw = deployment.one(CONTAINER, storage.RAW_CONTAINER)
    (policy,) = deployment.children(raw, IMMUTABILITY)
    assert policy.properties == {
        "immutabilityPeriodSinceCreationInDays": 365,
        "allowProtectedAppendWrites": False,
    }
    longer = deployed_with(immutabilityDays=730)
    (policy,) = longer.children(longer.one(CONTAINER, storage.RAW_CONTAINER), IMMUTABILITY)
    assert policy.properties["immutabilityPeriodSinceCreationInDays"] == 730

    blob_service = deployment.one("Microsoft.Storage/storageAccounts/blobServices").properties
    assert blob_service["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert blob_service["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}


def test_the_immutability_policy_can_be_left_to_the_operator_once_locked() -> None:
    # A locked time-based retention policy can only be extended
    # (https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview):
    # the policy PUT every provision sends is refused ("The only action allowed on a Locked policy is
    # ExtendImmutabilityPolicy action",
    # https://learn.microsoft.com/rest/api/storagerp/blob-containers/lock-immutability-policy), so with
    # manageImmutabilityPolicy=false the deployment leaves it out; the lock and any later extension go
    # through `az storage container immutability-policy lock|extend`
    # (https://learn.microsoft.com/cli/azure/storage/container/immutability-policy).
    managed = deployed_with(manageImmutabilityPolicy=True)
    left_alone = deployed_with(manageImmutabilityPolicy=False)
    (policy,) = managed.children(managed.one(CONTAINER, storage.RAW_CONTAINER), IMMUTABILITY)
    assert policy.properties["immutabilityPeriodSinceCreationInDays"] == 365
    assert left_alone.of_type(IMMUTABILITY) == []
    # Nothing else changes: the raw container, its account and every other resource are deployed
    # exactly as before.
    assert left_alone.resources == [r for r in managed.resources if r.type != IMMUTABILITY]


def test_the_app_is_https_only_on_flex_consumption(deployment: Deployment) -> None:
    site = deployment.one(SITE).properties
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    plan = deployment.one(PLAN)
    assert plan.body["sku"]["name"] == "FC1"
    assert site["serverFarmId"] == plan.id
    # No publishing with user names and passwords, for FTP or the SCM site: on Flex this, not
    # siteConfig.ftpsState (which Flex refuses), is what keeps FTP off.
    policies = deployment.of_type("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {p.name.rsplit("/", 1)[-1]: p.properties for p in policies} == {
        "ftp": {"allow": False},
        "scm": {"allow": False},
    }


# "Flex Consumption plan deprecations" in the app settings reference lists these site properties and
# app settings as deprecated or invalid on Flex Consumption; ARM refuses some of them outright (error
# 51021 for siteConfig.ftpsState):
# https://learn.microsoft.com/azure/azure-functions/functions-app-settings#flex-consumption-plan-deprecations
FLEX_INVALID_SITE_PROPERTIES = {
    "alwaysOn",
    "containerSize",
    "ftpsState",
    "isReserved",
    "isXenon",
    "javaVersion",
    "linuxFxVersion",
    "netFrameworkVersion",
    "powerShellVersion",
    "functionAppScaleLimit",
    "preWarmedInstanceCount",
    "use32BitWorkerProcess",
    "windowsFxVersion",
}
FLEX_INVALID_APP_SETTINGS = {
    "ENABLE_ORYX_BUILD",
    "FUNCTIONS_EXTENSION_VERSION",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY",
    "FUNCTIONS_WORKER_PROCESS_COUNT",
    "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTOVERVNET",
    "WEBSITE_CONTENTSHARE",
    "WEBSITE_DNS_SERVER",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT",
    "WEBSITE_NODE_DEFAULT_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_SKIP_CONTENTSHARE_VALIDATION",
    "WEBSITE_VNET_ROUTE_ALL",
}


def lowered(names: Any) -> set[str]:
    # ARM property names and app setting names are both case-insensitive.
    return {str(name).lower() for name in names}


def test_the_site_uses_nothing_flex_consumption_lists_as_invalid(deployment: Deployment) -> None:
    site = deployment.one(SITE)
    used = lowered(site.properties) | lowered(site.properties["siteConfig"])
    # The same properties and settings can also be sent through sites/config children.
    for config in deployment.children(site, "Microsoft.Web/sites/config"):
        if config.name.rsplit("/", 1)[-1].lower() in {"web", "appsettings"}:
            used |= lowered(config.properties)
    invalid_properties = sorted(n for n in FLEX_INVALID_SITE_PROPERTIES if n.lower() in used)
    assert invalid_properties == [], f"Flex Consumption refuses or ignores {invalid_properties}"
    settings = lowered(app_settings(deployment)) | used
    invalid_settings = sorted(n for n in FLEX_INVALID_APP_SETTINGS if n.lower() in settings)
    assert invalid_settings == [], f"app settings Flex Consumption lists as invalid: {invalid_settings}"
    # What replaces them: the runtime and scale in functionAppConfig, FTP off by policy.
    config = site.properties["functionAppConfig"]
    assert set(config) >= {"runtime", "scaleAndConcurrency", "deployment"}


@pytest.mark.parametrize(
    ("cloud", "trace"), [("commercial", "True"), ("gcc", "True"), ("gcchigh", "False"), ("dod", "False")]
)
def test_message_trace_is_turned_on_only_where_graph_offers_it(cloud: str, trace: str) -> None:
    # ARM's string() writes a bool as True/False; the settings loader reads either case.
    assert app_settings(deployed_with(m365Cloud=cloud))["RESOLVE_MESSAGE_TRACE"] == trace


# A managed identity gets tokens only in its own tenant ("Managed identities don't currently support
# cross-directory scenarios",
# https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/managed-identities-faq#can-i-use-a-managed-identity-to-access-a-resource-in-a-different-directorytenant):
# another tenant than the subscription's (Inputs().tenant_id) needs an app registration.
OTHER_TENANT = "00000000-0000-4000-8000-00000000c001"


def test_a_managed_identity_cannot_be_sent_to_collect_another_tenant() -> None:
    # ARM resolves parameter values, defaults included, before any deployment operation, and a value
    # outside @allowed refuses the deployment (https://learn.microsoft.com/azure/azure-resource-manager/bicep/parameters).
    refusal = "managedIdentityCollectsItsOwnTenant=False fails @allowed([True])"
    with pytest.raises(DeploymentError, match=re.escape(refusal)):
        deployed_with(collectorAuthMode="managedIdentity", tenantId=OTHER_TENANT)
    with pytest.raises(DeploymentError, match=re.escape(refusal)):
        deployed_with(tenantId=OTHER_TENANT)  # managedIdentity is the default


@pytest.mark.parametrize(
    ("mode", "tenant"),
    [
        ("managedIdentity", None),  # the default: the subscription's tenant
        ("managedIdentity", ""),  # what azd passes when TENANT_ID is not set
        ("managedIdentity", Inputs().tenant_id),
        ("managedIdentity", Inputs().tenant_id.upper()),  # tenant IDs are GUIDs: case does not matter
        ("secret", OTHER_TENANT),
        ("certificate", OTHER_TENANT),
    ],
)
def test_the_collector_can_reach_the_tenant_it_is_given(mode: str, tenant: str | None) -> None:
    parameters = {"collectorAuthMode": mode} | ({} if tenant is None else {"tenantId": tenant})
    settings = app_settings(deployed_with(**parameters))
    assert settings["TENANT_ID"] == (tenant or Inputs().tenant_id)
    assert settings["PUBLISHER_ID"] == (tenant or Inputs().tenant_id)


def test_every_template_is_deployed_from_main_and_none_comes_from_a_registry(deployment: Deployment) -> None:
    # deploy() refuses a module that is not a local file (`br:`, `br/public:`, `ts:`).
    assert deployment.templates == set(templates())


AZD_SET = {
    "environmentName": "AZURE_ENV_NAME",
    "location": "AZURE_LOCATION",
    "deployerPrincipalId": "AZURE_PRINCIPAL_ID",
}


def azd_parameters() -> dict[str, str]:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    return {name: entry["value"] for name, entry in parameters.items()}


def parameters_the_readme_names(declared: set[str]) -> set[str]:
    """main.bicep parameters the README names in inline code (`name` or `name=value`)."""
    spans = re.findall(r"`([^`\n]+)`", (ROOT / "README.md").read_text())
    return {m.group(0) for span in spans if (m := re.match(r"[a-z][A-Za-z0-9]*", span))} & declared


def env_name(parameter: str) -> str:
    """immutabilityDays -> IMMUTABILITY_DAYS, the name the README tells operators to `azd env set`."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", parameter).upper()


def as_azd_string(value: Any) -> str:
    # What the template's default looks like as the text of an azd default.
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_every_parameter_the_readme_names_can_be_set_with_azd_env_set(deployment: Deployment) -> None:
    named = parameters_the_readme_names(set(deployment.parameters))
    # A floor, so a broken pattern cannot pass by finding nothing.
    assert {"fetchSchedule", "logRetentionDays", "alertWebhookEnabled", "resolveSubjects"} <= named
    wired = azd_parameters()
    # Those azd sets itself come from its own values (AZURE_PRINCIPAL_ID: whoever runs azd).
    for name, variable in AZD_SET.items():
        assert wired[name] == f"${{{variable}}}", name
    # The same rules hold for every other parameter wired there.
    for name in sorted((named | set(wired)) - set(AZD_SET)):
        assert name in wired, f"the README names {name}, which main.parameters.json does not wire"
        match = AZD_REFERENCE.match(wired[name])
        assert match, f"{name}: {wired[name]!r} is not an azd `${{NAME}}` reference"
        variable, default = match.groups()
        assert variable == env_name(name), f"{name} is set through {variable}, not {env_name(name)}"
        # An azd default that differs from the template's would change a deployment's defaults.
        template_default = deployment.parameters[name]
        assert (default if default is not None else "") == as_azd_string(template_default), (
            f"{name}: azd default {default!r}, template default {template_default!r}"
        )


@pytest.mark.parametrize("days", APP_INSIGHTS_RETENTION_DAYS)
def test_log_retention_reaches_both_stores(days: int) -> None:
    deployment = deployed_with(logRetentionDays=days)
    assert deployment.one("Microsoft.Insights/components").properties["RetentionInDays"] == days
    workspace = deployment.one("Microsoft.OperationalInsights/workspaces")
    assert workspace.properties["retentionInDays"] == days


@pytest.mark.parametrize(
    ("parameter", "value", "rule"),
    [
        ("logRetentionDays", 29, "@allowed"),
        ("logRetentionDays", 45, "@allowed"),
        ("logRetentionDays", 731, "@allowed"),
        # https://learn.microsoft.com/azure/storage/blobs/soft-delete-blob-overview: 1 to 365 days.
        ("softDeleteDays", 0, "@minValue"),
        ("softDeleteDays", 366, "@maxValue"),
        # https://learn.microsoft.com/azure/storage/blobs/immutable-time-based-retention-policy-overview:
        # 1 to 146,000 days.
        ("immutabilityDays", 0, "@minValue"),
        ("immutabilityDays", 146001, "@maxValue"),
        ("resolveSubjects", "some", "@allowed"),
        ("collectorAuthMode", "password", "@allowed"),
    ],
)
def test_values_the_provider_refuses_are_refused_at_deployment(parameter: str, value: Any, rule: str) -> None:
    with pytest.raises(DeploymentError, match=re.escape(f"{parameter}={value!r} fails {rule}")):
        deployed_with(**{parameter: value})


def test_azd_wiring() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert parameters["location"]["value"] == "${AZURE_LOCATION}"
    # ARM refuses a parameter the template does not declare.
    assert set(parameters) <= set(deploy().parameters)
    read_yaml = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))"
    completed = subprocess.run(
        [tool("python"), "-c", read_yaml, str(ROOT / "azure.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    azure_yaml = json.loads(completed.stdout)
    assert azure_yaml["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}


def test_report_sign_in_stays_in_the_subscriptions_tenant_when_another_tenant_is_collected() -> None:
    # The report API's app registration (authClientId) is made where the deployment is; collecting
    # another tenant with an app registration of its own does not move the investigators' sign-in.
    deployment = deployed_with(
        collectorAuthMode="secret", tenantId=OTHER_TENANT, enableAuth=True, authClientId=OTHER_TENANT
    )
    (auth,) = deployment.of_type("Microsoft.Web/sites/config")
    issuer = auth.properties["identityProviders"]["azureActiveDirectory"]["registration"]["openIdIssuer"]
    assert issuer.endswith(f"/{Inputs().tenant_id}/v2.0")
    assert app_settings(deployment)["TENANT_ID"] == OTHER_TENANT
