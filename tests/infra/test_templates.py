"""Facts the templates must share with the code: resource names, runtime version, no registry modules."""

from __future__ import annotations

import json
import re
import sys

import pytest

from shared import storage
from tests.infra.tools import INFRA, ROOT

pytestmark = pytest.mark.infra

MAIN = (INFRA / "main.bicep").read_text()
API = (INFRA / "app" / "api.bicep").read_text()
STORAGE = (INFRA / "app" / "storage.bicep").read_text()


def bicep_list(name: str) -> list[str]:
    block = re.search(rf"var {name} = \[(.*?)\]", MAIN, re.S)
    assert block, f"var {name} not found in main.bicep"
    return re.findall(r"'([^']+)'", block.group(1))


def test_storage_names_match_the_code() -> None:
    assert set(storage.TABLES) <= set(bicep_list("tableNames"))
    # The tables of docs/architecture.md#storage-model; MailboxDaily is provisioned, not written yet.
    assert set(bicep_list("tableNames")) >= {
        "MailboxAccess",
        "ActorAccess",
        "CollectionState",
        "MessageIndex",
        "AlertOutbox",
        "ReportAccess",
    }
    assert bicep_list("queueNames") == list(storage.QUEUES)
    assert f"var rawContainerName = '{storage.RAW_CONTAINER}'" in MAIN


def test_runtime_is_the_python_ci_tests() -> None:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert f"param pythonVersion string = '{version}'" in MAIN


def test_storage_is_identity_only_and_evidence_is_immutable() -> None:
    for setting in (
        "allowSharedKeyAccess: false",
        "allowBlobPublicAccess: false",
        "minimumTlsVersion: 'TLS1_2'",
        "supportsHttpsTrafficOnly: true",
        "immutabilityPeriodSinceCreationInDays: immutabilityDays",
        "deleteRetentionPolicy",
    ):
        assert setting in STORAGE, setting
    for setting in ("httpsOnly: true", "ftpsState: 'Disabled'", "minTlsVersion: '1.2'", "name: 'FC1'"):
        assert setting in API, setting


def test_no_registry_modules_and_azd_wiring() -> None:
    for path in INFRA.rglob("*.bicep"):
        assert "br/public:" not in path.read_text(), path
        assert "br:" not in path.read_text(), path
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    azure_yaml = (ROOT / "azure.yaml").read_text()
    for line in ("api:", "project: .", "language: python", "host: function"):
        assert line in azure_yaml
