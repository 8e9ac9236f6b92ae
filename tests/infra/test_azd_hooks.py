"""azd's hooks (azure.yaml) and the scripts they run: infra/wait-for-roles.sh after provisioning,
run against tests/infra/fake_az.py, with the deployer role and output it relies on; infra/smoke.sh
after deployment, only when asked (its checks: tests/functions/test_smoke_script.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.deployment import Deployment, Inputs, Joined, deploy
from tests.infra.tools import INFRA, ROOT, az_log, fake_az_environment, python_with, tool

pytestmark = pytest.mark.infra

WAIT = INFRA / "wait-for-roles.sh"
SMOKE = INFRA / "smoke.sh"
ACCOUNT = "stabc123"
CONTAINER = "app-package-func-abc123-abc123"
DEPLOYER = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"
SITE = "Microsoft.Web/sites"
BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
AZD_ENV = {
    "AZURE_PRINCIPAL_ID": DEPLOYER,
    "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
    "AZURE_STORAGE_DEPLOYMENT_CONTAINER": CONTAINER,
}


def run_wait(
    tmp_path: Path, *args: str, denials: int = 0, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """wait-for-roles.sh with a fake az whose listing is refused `denials` times for want of a role."""
    state = {"deploymentContainer": {"account": ACCOUNT, "container": CONTAINER}, "roleDenials": denials}
    environment = {
        **fake_az_environment(tmp_path, state),
        "ROLE_WAIT_INTERVAL_SECONDS": "0",
        **(AZD_ENV if env is None else env),
    }
    completed = subprocess.run(
        ["bash", str(WAIT), *args], capture_output=True, text=True, timeout=60, check=False, env=environment
    )
    return completed, [call["argv"] for call in az_log(tmp_path)]


LISTING = [
    "storage", "blob", "list", "--account-name", ACCOUNT, "--container-name", CONTAINER,
    "--auth-mode", "login", "--num-results", "1", "--output", "none",
]  # fmt: skip


@pytest.mark.parametrize("script", [WAIT, SMOKE], ids=lambda p: p.name)
def test_the_hook_scripts_are_valid_shellcheck_clean_bash(script: Path) -> None:
    syntax = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert syntax.returncode == 0, syntax.stderr
    lint = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(script)], capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


@pytest.mark.parametrize("script", [WAIT, SMOKE], ids=lambda p: p.name)
def test_the_hook_scripts_use_no_arrays(script: Path) -> None:
    # macOS's bash 3.2 reports "${empty[@]}" as unbound under set -u (see test_grant_permissions.py).
    text = script.read_text()
    assert "set -euo pipefail" in text
    for construct in ("=(", "[@]", "[*]", "read -a", "declare -a", "local -a", "mapfile", "readarray"):
        assert construct not in text, construct


def test_the_wait_ends_once_the_roles_apply(tmp_path: Path) -> None:
    completed, calls = run_wait(tmp_path, denials=3)
    assert completed.returncode == 0, completed.stderr
    assert calls == [LISTING] * 4
    assert completed.stdout.count("role assignments not in effect yet") == 3
    assert "the storage roles have taken effect" in completed.stdout


def test_the_wait_gives_up_after_the_attempts_with_what_to_do(tmp_path: Path) -> None:
    completed, calls = run_wait(tmp_path, "--attempts", "3", denials=10)
    assert completed.returncode == 1
    assert len(calls) == 3
    assert "have not taken effect after 3 attempts" in completed.stderr
    assert "run `azd deploy`" in completed.stderr
    assert "AuthorizationPermissionMismatch" in completed.stderr  # az's own error is shown too


def test_a_failure_that_waiting_cannot_cure_stops_at_once(tmp_path: Path) -> None:
    completed, calls = run_wait(tmp_path, "--container", "no-such-container", denials=0)
    assert completed.returncode == 1
    assert len(calls) == 1
    assert "ContainerNotFound" in completed.stderr
    assert "waiting would not help" in completed.stderr


def test_flags_override_the_azd_environment(tmp_path: Path) -> None:
    completed, calls = run_wait(
        tmp_path, "--deployer", DEPLOYER, "--account", ACCOUNT, "--container", CONTAINER, env={}
    )
    assert completed.returncode == 0, completed.stderr
    assert calls == [LISTING]


def test_without_a_deployer_principal_nothing_is_waited_on(tmp_path: Path) -> None:
    completed, calls = run_wait(tmp_path, env={**AZD_ENV, "AZURE_PRINCIPAL_ID": ""})
    assert completed.returncode == 0
    assert calls == []
    assert "skipping" in completed.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--attempts", "0"], "--attempts is a whole number of at least 1"),
        (["--interval", "soon"], "--interval is a whole number of seconds"),
        (["--account", ""], "no storage account"),
    ],
)
def test_bad_input_is_refused_before_calling_azure(tmp_path: Path, args: list[str], message: str) -> None:
    completed, calls = run_wait(tmp_path, *args)
    assert completed.returncode == 2
    assert message in completed.stderr
    assert calls == []


@pytest.fixture(scope="module")
def with_deployer() -> Deployment:
    return deploy(
        Inputs(
            parameters={
                "environmentName": "mia-test",
                "location": "westeurope",
                "deployerPrincipalId": DEPLOYER,
            }
        )
    )


def package_container(deployment: Deployment) -> str:
    value = deployment.one(SITE).properties["functionAppConfig"]["deployment"]["storage"]["value"]
    assert isinstance(value, Joined)
    container = value.parts[-1]
    assert isinstance(container, str)
    return container


def test_the_deployer_may_read_the_package_container_and_nothing_else(with_deployer: Deployment) -> None:
    container = package_container(with_deployer)
    (granted,) = [
        a for a in with_deployer.of_type(ROLE_ASSIGNMENT) if a.properties["principalId"] == DEPLOYER
    ]
    assert granted.properties["roleDefinitionId"].endswith(f"/roleDefinitions/{BLOB_DATA_READER}")
    scope = with_deployer.get(granted.scope or "")
    assert scope.type == "Microsoft.Storage/storageAccounts/blobServices/containers"
    assert scope.name.rsplit("/", 1)[-1] == container
    # The hook lists the container the outputs name: the one the site deploys from.
    assert with_deployer.outputs["AZURE_STORAGE_DEPLOYMENT_CONTAINER"] == container


def test_without_a_deployer_no_role_is_given_an_empty_principal() -> None:
    deployment = deploy()
    assert all(a.properties["principalId"] != "" for a in deployment.of_type(ROLE_ASSIGNMENT))
    assert deployment.outputs["AZURE_STORAGE_DEPLOYMENT_CONTAINER"] == package_container(deployment)


def test_azd_passes_the_deploying_principal() -> None:
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["deployerPrincipalId"] == {"value": "${AZURE_PRINCIPAL_ID}"}


def azure_yaml() -> dict[str, Any]:
    dumped = subprocess.run(
        [python_with("yaml"), "-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
        input=(ROOT / "azure.yaml").read_text(),
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: dict[str, Any] = json.loads(dumped.stdout)
    return loaded


def run_hook(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The hook's posix command as azd runs it: its shell, from the project folder, azd's values in
    the environment (https://learn.microsoft.com/azure/developer/azure-developer-cli/azd-extensibility)."""
    hook = azure_yaml()["hooks"][name]["posix"]
    assert hook["shell"] == "sh"
    return subprocess.run(
        ["sh", "-c", hook["run"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_postprovision_runs_the_wait_and_stops_azd_when_it_fails() -> None:
    hook = azure_yaml()["hooks"]["postprovision"]["posix"]
    assert hook.get("continueOnError", False) is False
    # A value the script refuses shows that the hook ran it, with azd's environment.
    completed = run_hook("postprovision", {**AZD_ENV, "ROLE_WAIT_ATTEMPTS": "0"})
    assert completed.returncode == 2
    assert "wait-for-roles: --attempts is a whole number" in completed.stderr


@pytest.mark.parametrize("value", [None, "", "false", "no"])
def test_postdeploy_runs_no_smoke_test_unless_asked(value: str | None) -> None:
    env = {} if value is None else {"SMOKE_TEST": value}
    completed = run_hook("postdeploy", env)
    assert completed.returncode == 0, completed.stderr
    assert "smoke" not in completed.stdout + completed.stderr


def test_postdeploy_runs_the_smoke_test_when_asked() -> None:
    # Without SERVICE_API_URI the script stops at once, which shows that the hook ran it.
    completed = run_hook("postdeploy", {"SMOKE_TEST": "true"})
    assert completed.returncode == 2
    assert "smoke: no app URL" in completed.stderr
