"""infra/grant-permissions.sh: valid bash, shellcheck-clean, and refuses bad input before calling Azure."""

from __future__ import annotations

import subprocess

from tests.infra.tools import INFRA, tool

SCRIPT = INFRA / "grant-permissions.sh"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_script_is_valid_bash() -> None:
    completed = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr


def test_script_is_shellcheck_clean() -> None:
    completed = subprocess.run(
        [tool("shellcheck"), "--severity=style", str(SCRIPT)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_help_lists_the_permissions() -> None:
    completed = run("--help")
    assert completed.returncode == 0
    for name in ("ActivityFeed.Read", "Mail.ReadBasic.All", "ExchangeMessageTrace.Read.All", "--dry-run"):
        assert name in completed.stdout


def test_unknown_graph_role_is_refused() -> None:
    completed = run("--principal-id", "00000000-0000-0000-0000-000000000000", "--graph", "Mail.ReadWrite")
    assert completed.returncode == 1
    assert "unknown Graph role Mail.ReadWrite" in completed.stderr
