"""Locating the infrastructure tools (checkov, shellcheck, the Bicep grammar) that live in .venv-infra."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

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


FAKE_AZ = Path(__file__).with_name("fake_az.py")


def fake_az_environment(tmp_path: Path, state: object) -> dict[str, str]:
    """A script environment whose `az` is tests/infra/fake_az.py over `state` (a JSON tenant):
    only the system's tools beside it, HOME and TMPDIR in `tmp_path`, every call logged to
    `tmp_path/az.jsonl` (read it with `az_log`)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    az = bin_dir / "az"
    az.write_text(f'#!/bin/sh\nexec "{tool("python")}" "{FAKE_AZ}" "$@"\n')
    az.chmod(0o755)
    state_file = tmp_path / "az-state.json"
    state_file.write_text(json.dumps(state))
    log = tmp_path / "az.jsonl"
    log.write_text("")
    return {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_AZ_STATE": str(state_file),
        "FAKE_AZ_LOG": str(log),
    }


def az_log(tmp_path: Path) -> list[dict[str, Any]]:
    """The calls the fake `az` of `fake_az_environment(tmp_path, ...)` answered, in order."""
    return [json.loads(line) for line in (tmp_path / "az.jsonl").read_text().splitlines()]
