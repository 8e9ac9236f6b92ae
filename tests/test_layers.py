"""The layer contracts of pyproject.toml hold on the tree, and a wrong import breaks them.

Each case copies the packages to a temporary folder (so the checkout is never touched) and runs
import-linter there, as `make lint` does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "shared", "mia", "fetch_audit", "enrich_trace", "report_http", "health_http", "deliver_alerts",
    "watch_poison", "resolve_subjects", "scope_http", "advance_backfills", "backfills_http",
    "simulator", "devtools", "bench",
)  # fmt: skip
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _tree(tmp_path: Path) -> Path:
    for name in PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _add_import(tree: Path, module: str, line: str) -> None:
    path = tree / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        # The read side importing the write side.
        ("shared.reports.views", "from shared.ingest import pipeline",
         "shared.reports is not allowed to import shared.ingest"),
        # A lower layer reaching up.
        ("shared.storage.tables", "from shared.alerts import rules",
         "shared.storage is not allowed to import shared.alerts"),
        # The library depending on development tooling.
        ("shared.subjects.resolver", "import simulator", "shared.subjects.resolver -> simulator"),
        # The pure core doing I/O.
        ("shared.parse.readers", "import requests", "shared.parse.readers -> requests"),
        # The CLI reaching into the simulator.
        ("mia.cli", "import devtools.demo", "mia.cli -> devtools.demo"),
    ],
)  # fmt: skip
def test_a_wrong_import_fails_the_lint(tmp_path: Path, module: str, line: str, message: str) -> None:
    tree = _tree(tmp_path)
    _add_import(tree, module, line)
    result = _lint(tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert message in result.stdout, result.stdout
