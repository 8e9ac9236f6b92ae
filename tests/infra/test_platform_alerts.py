"""The platform alerts of infra/app/alerts.bicep: four log search alert rules over Application
Insights, the action group they notify (only when a receiver is given) and the collection-health
workbook, all querying the telemetry names of the issue-16 contract."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.deployment import Deployment, DeploymentError, Inputs, Resource, deploy
from tests.infra.tools import INFRA, ROOT

pytestmark = pytest.mark.infra

RULE = "Microsoft.Insights/scheduledQueryRules"
ACTION_GROUP = "Microsoft.Insights/actionGroups"
WORKBOOK = "Microsoft.Insights/workbooks"
COMPONENT = "Microsoft.Insights/components"
REQUIRED = {"environmentName": "mia-test", "location": "westeurope"}
WEBHOOK = "https://hooks.example.test/azure-monitor?code=abc"

# The OpenTelemetry instruments the app creates (meter `mia`), as they appear in customMetrics.name:
# read from the calls that create them in shared/telemetry/metrics.py, so a renamed instrument fails
# the rule and workbook checks below.
INSTRUMENTS = re.findall(
    r'create_\w+\(\s*"(mia\.[a-z_.]+)"',
    (ROOT / "shared" / "telemetry" / "metrics.py").read_text(encoding="utf-8"),
)
# The Application Insights tables a query may read: the app's metrics and the Functions host's own
# invocation and exception telemetry.
TABLES = {"customMetrics", "requests", "exceptions"}
# Every string literal in a query that looks like a telemetry name.
TELEMETRY_NAME = re.compile(r"""["'](mia\.[A-Za-z0-9_.]+)["']""")
# A table is what a query, or a parenthesized branch of a union, starts with.
TABLE_AT_START = re.compile(r"(?:^|\(|union\s)\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\||$)", re.MULTILINE)


@pytest.fixture(scope="module")
def deployment() -> Deployment:
    return deploy()


def deployed_with(**parameters: Any) -> Deployment:
    return deploy(Inputs(parameters={**REQUIRED, **parameters}))


def rules_by_purpose(deployment: Deployment) -> dict[str, Resource]:
    """The rules by the part of their name that says what they watch (mia-<purpose>-<token>)."""
    rules = {}
    for rule in deployment.of_type(RULE):
        match = re.fullmatch(r"mia-(.+)-[a-z0-9]{13}", rule.name)
        assert match, rule.name
        rules[match.group(1)] = rule
    return rules


def condition(rule: Resource) -> dict[str, Any]:
    (only,) = rule.properties["criteria"]["allOf"]
    assert isinstance(only, dict)
    return only


def names_in(query: str) -> set[str]:
    return set(TELEMETRY_NAME.findall(query))


def tables_in(query: str) -> set[str]:
    return set(TABLE_AT_START.findall(query)) - {"union"}


def workbook_queries(deployment: Deployment) -> dict[str, str]:
    data = json.loads(deployment.one(WORKBOOK).properties["serializedData"])
    return {item["name"]: item["content"]["query"] for item in data["items"] if item["type"] == 3}


def test_the_four_rules_watch_what_the_issue_names(deployment: Deployment) -> None:
    rules = rules_by_purpose(deployment)
    assert sorted(rules) == ["collection-lag", "function-failures", "no-collection", "poison-queue"]

    silence = condition(rules["no-collection"])
    assert names_in(silence["query"]) == {"mia.collection.runs"}
    assert 'tostring(customDimensions.outcome) == "success"' in silence["query"]
    # No success in the window is a total below one: it fires on silence, not on data.
    assert (silence["operator"], silence["threshold"], silence["metricMeasureColumn"]) == (
        "LessThan",
        1,
        "successes",
    )
    assert (
        "summarize successes = countif(value > 0)\n" in silence["query"]
    )  # no `by`: one row, even of nothing

    poison = condition(rules["poison-queue"])
    assert names_in(poison["query"]) == {"mia.queue.depth"}
    assert 'queue endswith "-poison"' in poison["query"]
    assert (poison["operator"], poison["threshold"]) == ("GreaterThan", 0)

    lag = condition(rules["collection-lag"])
    assert names_in(lag["query"]) == {"mia.collection.lag"}
    assert (lag["operator"], lag["threshold"], lag["metricMeasureColumn"]) == (
        "GreaterThan",
        6 * 3600,
        "lag_seconds",
    )

    failures = condition(rules["function-failures"])
    assert names_in(failures["query"]) == set()
    assert tables_in(failures["query"]) == {"requests", "exceptions"}
    assert "success == false" in failures["query"]
    assert (failures["operator"], failures["threshold"]) == ("GreaterThan", 0)

    # One alert per function, queue and content type, each resolving on its own.
    split = {purpose: [d["name"] for d in condition(rule)["dimensions"]] for purpose, rule in rules.items()}
    assert split == {
        "no-collection": [],
        "function-failures": ["function_name"],
        "poison-queue": ["queue"],
        "collection-lag": ["content_type"],
    }


def test_every_rule_query_names_only_contract_instruments_and_tables(deployment: Deployment) -> None:
    for rule in deployment.of_type(RULE):
        query = condition(rule)["query"]
        assert names_in(query) <= set(INSTRUMENTS), rule.name
        assert tables_in(query), rule.name
        assert tables_in(query) <= TABLES, (rule.name, tables_in(query))
        # Every column the rule aggregates is one the query makes.
        assert re.search(rf"\b{condition(rule)['metricMeasureColumn']}\s*=", query), rule.name


def test_the_rules_run_every_five_minutes_over_the_application_insights_component(
    deployment: Deployment,
) -> None:
    component = deployment.one(COMPONENT)
    for rule in deployment.of_type(RULE):
        properties = rule.properties
        assert rule.body["kind"] == "LogAlert"
        assert properties["scopes"] == [component.id]
        assert properties["evaluationFrequency"] == "PT5M"  # the fetchSchedule default
        assert properties["enabled"] is True
        assert properties["autoMitigate"] is True
        assert rule.api_version == "2023-12-01"
    windows = {purpose: r.properties["windowSize"] for purpose, r in rules_by_purpose(deployment).items()}
    assert windows == {
        "no-collection": "PT30M",
        "function-failures": "PT15M",
        "poison-queue": "PT15M",
        "collection-lag": "PT15M",
    }


def test_thresholds_and_windows_follow_the_parameters() -> None:
    deployment = deployed_with(
        platformAlertSilenceMinutes=60,
        platformAlertWindowMinutes=30,
        platformAlertFailureThreshold=3,
        platformAlertPoisonThreshold=10,
        platformAlertLagMinutes=90,
    )
    rules = rules_by_purpose(deployment)
    assert rules["no-collection"].properties["windowSize"] == "PT60M"
    assert {
        rules[p].properties["windowSize"] for p in ("function-failures", "poison-queue", "collection-lag")
    } == {"PT30M"}
    assert condition(rules["function-failures"])["threshold"] == 3
    assert condition(rules["poison-queue"])["threshold"] == 10
    assert condition(rules["collection-lag"])["threshold"] == 90 * 60
    # The lag threshold follows the app's own lag alert unless it is set.
    assert (
        condition(rules_by_purpose(deployed_with(alertLagHours=2))["collection-lag"])["threshold"] == 2 * 3600
    )


@pytest.mark.parametrize(
    ("parameter", "value", "rule"),
    [
        ("platformAlertSilenceMinutes", 7, "@allowed"),
        ("platformAlertWindowMinutes", 90, "@allowed"),
        ("platformAlertFailureThreshold", -1, "@minValue"),
        ("platformAlertLagMinutes", 1, "@minValue"),
    ],
)
def test_windows_and_thresholds_azure_monitor_cannot_use_are_refused(
    parameter: str, value: int, rule: str
) -> None:
    with pytest.raises(DeploymentError, match=re.escape(f"{parameter}={value!r} fails {rule}")):
        deployed_with(**{parameter: value})


def test_without_a_receiver_the_rules_notify_nobody_and_no_action_group_exists(
    deployment: Deployment,
) -> None:
    assert deployment.of_type(ACTION_GROUP) == []
    for rule in deployment.of_type(RULE):
        assert rule.properties["actions"] == {"actionGroups": []}


@pytest.mark.parametrize(
    ("webhook", "email"),
    [(WEBHOOK, ""), ("", "soc@example.test"), (WEBHOOK, "soc@example.test")],
)
def test_the_action_group_has_exactly_the_receivers_given_and_every_rule_notifies_it(
    webhook: str, email: str
) -> None:
    deployment = deployed_with(platformAlertWebhookUrl=webhook, platformAlertEmail=email)
    group = deployment.one(ACTION_GROUP)
    properties = group.properties
    assert group.body["location"] == "Global"
    assert properties["enabled"] is True
    assert len(properties["groupShortName"]) <= 12
    expected_hooks = [
        {"name": "mia-webhook", "serviceUri": webhook, "useCommonAlertSchema": True, "useAadAuth": False}
    ]
    assert properties["webhookReceivers"] == (expected_hooks if webhook else [])
    expected_mail = [{"name": "mia-email", "emailAddress": email, "useCommonAlertSchema": True}]
    assert properties["emailReceivers"] == (expected_mail if email else [])
    for rule in deployment.of_type(RULE):
        assert rule.properties["actions"] == {"actionGroups": [group.id]}


def test_the_webhook_url_is_a_secure_parameter_the_deployment_never_outputs() -> None:
    main = (INFRA / "main.bicep").read_text()
    assert re.search(r"@secure\(\)\n@description\([^\n]*\)\nparam platformAlertWebhookUrl string", main)
    deployment = deployed_with(platformAlertWebhookUrl=WEBHOOK)
    assert WEBHOOK not in json.dumps(deployment.outputs, default=repr)


def test_the_workbook_is_valid_json_over_the_component_and_queries_the_contract_names(
    deployment: Deployment,
) -> None:
    workbook = deployment.one(WORKBOOK)
    properties = workbook.properties
    assert workbook.body["kind"] == "shared"
    assert properties["sourceId"] == deployment.one(COMPONENT).id
    assert properties["category"] == "workbook"
    assert properties["serializedData"] == (INFRA / "app" / "workbook.json").read_text()
    data = json.loads(properties["serializedData"])
    assert data["version"] == "Notebook/1.0"
    queries = workbook_queries(deployment)
    named = set()
    for name, query in queries.items():
        assert tables_in(query), name
        assert tables_in(query) <= TABLES, (name, tables_in(query))
        assert names_in(query) <= set(INSTRUMENTS), name
        named |= names_in(query)
    # It shows collection health, lag, throughput and alerts: the instruments the rules read among them.
    assert {
        "mia.collection.runs",
        "mia.collection.lag",
        "mia.queue.depth",
        "mia.records.collected",
        "mia.records.processed",
        "mia.alerts",
    } <= named
    for rule in deployment.of_type(RULE):
        assert names_in(condition(rule)["query"]) <= named
    assert any("requests" in tables_in(query) for query in queries.values())
    # Every query follows the workbook's one time range parameter.
    (parameters,) = [item for item in data["items"] if item["type"] == 9]
    (time_range,) = parameters["content"]["parameters"]
    for item in data["items"]:
        if item["type"] == 3:
            assert item["content"]["timeContextFromParameter"] == time_range["name"]


def test_the_query_checks_would_catch_a_name_outside_the_contract() -> None:
    # The helpers the tests above rely on, on queries they must refuse.
    assert names_in('customMetrics | where name == "mia.collection.run"') == {"mia.collection.run"}
    assert not names_in('customMetrics | where name == "mia.collection.run"') <= set(INSTRUMENTS)
    assert tables_in("traces\n| where message has 'x'") == {"traces"}
    assert tables_in("union\n    (requests\n    | where x),\n    (exceptions\n    | where y)") == {
        "requests",
        "exceptions",
    }


def test_the_readme_explains_every_rule_the_deployment_creates(deployment: Deployment) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Platform alerts\n") :]
    section = section[: section.index("\n## ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    explained = set()
    for row in rows:
        match = re.match(r"\| \*\*(.+?)\*\*", row)
        assert match, row
        explained.add(match.group(1))
    assert explained == {rule.properties["displayName"] for rule in deployment.of_type(RULE)}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert len(cells) == 3, row
        assert all(cells), row  # what it means and what to do, for each
