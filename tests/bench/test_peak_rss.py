"""bench/peak_rss.py: the launcher reports the measured command's own peak memory (not the
memory of the process that started the launcher), its exit code and its output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024
# Touches every page of 96 MiB, then holds it a while so that sampling sees it too.
ALLOCATE = (
    "import time; block = bytearray(96 * 1024 * 1024); block[::4096] = b'x' * (len(block) // 4096); "
    "time.sleep(0.3)"
)
# The parent of the launcher holds 400 MiB (what a bench that generated an export might hold).
PARENT = """
import subprocess, sys
held = bytearray(400 * 1024 * 1024)
held[::4096] = b'x' * (len(held) // 4096)
print(subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout)
"""


def launch(tmp_path: Path, *command: str, parent: bool = False) -> dict[str, int]:
    launcher = [sys.executable, "-m", "bench.peak_rss", "--stdout", str(tmp_path / "out"),
                "--stderr", str(tmp_path / "err"), "--", *command]  # fmt: skip
    full = [sys.executable, "-c", PARENT, *launcher] if parent else launcher
    done = subprocess.run(full, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    measured: dict[str, int] = json.loads(done.stdout)
    return measured


def test_every_measure_of_the_peak_sees_the_commands_memory(tmp_path: Path) -> None:
    measured = launch(tmp_path, sys.executable, "-c", ALLOCATE)
    assert measured["returncode"] == 0
    assert measured["rss_samples"] > 3
    for key in ("peak_rss_sampled_bytes", "vmhwm_sampled_bytes", "ru_maxrss_bytes"):
        assert 96 * MIB < measured[key] < 200 * MIB, (key, measured)


# Starts a child that touches 96 MiB, and waits for it: the command itself holds little.
WITH_A_CHILD = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {ALLOCATE!r}], check=True)"


def test_the_tree_measures_see_the_memory_of_the_commands_children(tmp_path: Path) -> None:
    measured = launch(tmp_path, sys.executable, "-c", WITH_A_CHILD)
    assert measured["returncode"] == 0
    assert measured["peak_rss_sampled_bytes"] < 96 * MIB
    for key in ("tree_peak_rss_sampled_bytes", "tree_peak_pss_sampled_bytes"):
        assert 96 * MIB < measured[key] < 250 * MIB, (key, measured)


def test_the_kernels_peak_leaves_out_the_memory_of_whoever_started_the_launcher(tmp_path: Path) -> None:
    measured = launch(tmp_path, sys.executable, "-c", "pass", parent=True)
    assert measured["ru_maxrss_bytes"] < 100 * MIB
    assert measured["launcher_peak_rss_bytes"] < 100 * MIB


def test_the_exit_code_and_the_output_of_the_command_are_kept(tmp_path: Path) -> None:
    script = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    measured = launch(tmp_path, sys.executable, "-c", script)
    assert measured["returncode"] == 3
    assert (tmp_path / "out").read_text() == "to stdout\n"
    assert (tmp_path / "err").read_text() == "to stderr\n"
