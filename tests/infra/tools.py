"""Locating the infrastructure tools (checkov, shellcheck) that live in .venv-infra."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

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
    message = f"{name} is not installed: run `make setup` (requirements-infra.txt into .venv-infra)"
    if os.environ.get("REQUIRE_INFRA_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)
