"""Locating the infrastructure tools (checkov, shellcheck, the Bicep grammar) that live in .venv-infra."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"


def tool(name: str) -> str:
    """Path of an infra tool; skips (or fails under `make test`) when it is not installed.

    `make setup` installs requirements-infra.txt into .venv-infra (checkov pins packaging<24, which
    pytest 9 cannot share); `make test` sets INFRA_TOOLS to its bin folder and REQUIRE_INFRA_TOOLS=1
    so a missing tool fails the run instead of skipping.
    """
    folders = [os.environ.get("INFRA_TOOLS", ""), str(ROOT / ".venv-infra" / "bin")]
    for folder in filter(None, folders):
        candidate = Path(folder) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    _missing(f"{name} is not installed: run `make setup` (requirements-infra.txt into .venv-infra)")


def python_with(*modules: str) -> str:
    """The infra tools' Python, once it is known to import `modules` (same skip or fail as `tool`)."""
    python = tool("python")
    completed = subprocess.run(
        [python, "-c", f"import {', '.join(modules)}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if completed.returncode != 0:
        _missing(f"{python} cannot import {', '.join(modules)}: run `make setup` (requirements-infra.txt)")
    return python


def _missing(message: str) -> NoReturn:
    if os.environ.get("REQUIRE_INFRA_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
