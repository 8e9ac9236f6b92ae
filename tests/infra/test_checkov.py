"""checkov over infra/: every template parses, no check fails, and every suppression says why."""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.infra.tools import INFRA, ROOT, tool

pytestmark = pytest.mark.infra

SKIP_COMMENT = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+)(.*)$")


def run_checkov() -> dict[str, Any]:
    completed = subprocess.run(
        [tool("checkov"), "-d", str(INFRA), "--framework", "bicep", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert completed.stdout.strip(), (
        f"checkov printed no report (exit {completed.returncode}):\n{completed.stderr}"
    )
    report = json.loads(completed.stdout)
    # One framework gives one report object; several would give a list.
    assert isinstance(report, dict), f"expected one bicep report, got {type(report).__name__}"
    return report


def suppressions_in_templates() -> list[tuple[str, int, str, str]]:
    found = []
    for path in sorted(INFRA.rglob("*.bicep")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP_COMMENT.search(line)
            if match:
                found.append((str(path.relative_to(ROOT)), number, match.group(1), match.group(2)))
    return found


def test_checkov_parses_everything_and_fails_nothing() -> None:
    # A parse failure still exits 0, so the verdict comes from the JSON summary, not the exit code.
    report = run_checkov()
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]

    assert summary["parsing_errors"] == 0, f"checkov could not parse some templates: {summary}"
    assert failed == [], "failed checks:\n" + "\n".join(failed)
    assert summary["resource_count"] >= 20, summary
    assert summary["passed"] > 0, summary

    # Every suppression carries its reason, and none is stale (each one suppresses a real finding).
    skipped = {(c["check_id"], c["file_path"].lstrip("/")) for c in report["results"]["skipped_checks"]}
    for c in report["results"]["skipped_checks"]:
        reason = c["check_result"].get("suppress_comment", "").strip()
        assert len(reason) >= 20, f"{c['check_id']} on {c['resource']} is suppressed without a reason"
    for path, number, check_id, rest in suppressions_in_templates():
        assert rest.startswith(":"), f"{path}:{number}: `// checkov:skip={check_id}` needs `: <reason>`"
        assert len(rest[1:].strip()) >= 20, f"{path}:{number}: the reason for {check_id} is too short"
        relative = str((ROOT / path).relative_to(INFRA))
        assert (check_id, relative) in skipped, (
            f"{path}:{number}: {check_id} suppresses nothing; remove the stale skip"
        )
