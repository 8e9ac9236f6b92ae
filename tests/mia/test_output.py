"""How `mia` speaks on a terminal and in a pipe: the installed script run in a subprocess, its
standard error a pseudo-terminal or a pipe, against Azurite and the simulator."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from mia import cli
from mia.output import EXIT_CODE_MEANINGS, ExitCode
from shared.ingest import pipeline
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import ROOT, SAMPLE
from tests.records_factory import mail_items_accessed

pytestmark = pytest.mark.integration

MIA = Path(sys.executable).with_name("mia")


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


def _env(connection_string: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "AzureWebJobsStorage": connection_string, **extra}


def _read_all(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other end is closed
            return
        if not chunk:
            return
        into.extend(chunk)


def mia_on_a_terminal(*args: str, env: dict[str, str]) -> Ran:
    """`mia` with its standard error on a pseudo-terminal (80x24), standard output a pipe."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    seen = bytearray()
    reader = threading.Thread(target=_read_all, args=(master, seen))
    reader.start()
    try:
        done = subprocess.run(
            [str(MIA), *args], env=env, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
            check=False, timeout=120,
        )  # fmt: skip
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return Ran(done.returncode, done.stdout.decode(), seen.decode(errors="replace"))


def mia_in_a_pipe(*args: str, env: dict[str, str]) -> Ran:
    done = subprocess.run(
        [str(MIA), *args], env=env, capture_output=True, text=True, check=False, timeout=120
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def env(azurite: str, storage: Storage) -> dict[str, str]:
    """A fresh, empty storage account for each test, named to the subprocess."""
    return _env(azurite)


def test_import_draws_progress_on_a_terminal_and_ends_with_one_summary_line(env: dict[str, str]) -> None:
    ran = mia_on_a_terminal("import", str(SAMPLE), env=env)

    assert ran.code == 0, ran.err
    assert "importing" in ran.err
    assert "\r" in ran.err  # a tqdm bar, redrawn in place
    lines = ran.out.splitlines()
    assert lines[0].startswith(f"{SAMPLE}: csv-auditdata, 67 records, stored as audit-raw/import/")
    assert lines[-1] == "imported 1 of 1 files (67 records): 1 newly stored, 0 already stored, 0 failed"


def test_in_a_pipe_there_is_no_progress_and_json_is_exactly_one_object(
    env: dict[str, str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an export\n", encoding="utf-8")

    ran = mia_in_a_pipe("import", "--json", str(notes), str(SAMPLE), str(SAMPLE), env=env)

    assert ran.code == ExitCode.FAILED  # one input failed, the others were imported
    assert "\r" not in ran.err  # no bar
    [line] = ran.err.splitlines()  # only what failed
    assert line.startswith(f"{notes}: not a recognised audit export")
    [summary_line] = ran.out.splitlines()
    summary = json.loads(summary_line)
    assert summary["command"] == "import"
    assert summary["exit_code"] == 1
    assert (summary["imported"], summary["stored"], summary["records"]) == (2, 1, 134)
    assert [file["stored"] for file in summary["files"]] == [True, False]
    assert [failed["file"] for failed in summary["failed"]] == [str(notes)]
    assert summary["retries"] == {"retries": 0, "gave_up": 0, "by": []}


def test_process_and_verify_summaries_in_a_pipe_and_as_json(env: dict[str, str], storage: Storage) -> None:
    pipeline.import_file(storage, SAMPLE)

    processed = mia_in_a_pipe("process", env=env)
    verified = mia_on_a_terminal("verify", "--json", env=env)

    assert processed.code == 0
    assert processed.out.splitlines()[-1].startswith("processed 1 blobs: 67 records, 57 MailItemsAccessed")
    assert "\r" not in processed.err  # no bar in a pipe
    assert verified.code == 0
    result = json.loads(verified.out)  # the bar went to the terminal, not into the JSON
    assert result["command"] == "verify"
    assert result["mismatches"] == 0
    assert result["rows_checked"] > 0
    assert "verifying" in verified.err


def test_help_lists_every_exit_code_and_so_does_the_readme(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        cli.main(["import"])
    with pytest.raises(SystemExit) as helped:
        cli.main(["--help"])

    assert usage.value.code == ExitCode.USAGE
    assert helped.value.code == 0
    shown = capsys.readouterr().out
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"  {int(code)}  {meaning}" in shown
        assert f"| {int(code)} | {meaning} |" in readme


def test_a_fault_injected_collection_summarises_its_retries_instead_of_a_warning_each(
    env: dict[str, str],
) -> None:
    """A small tenant whose Management Activity API fails a fifth of the requests with a 5xx."""
    faults = FaultConfig(server_error=0.2, expired_blobs=0, late_blobs=0, duplicate_rate=0.0)
    with Simulator(SimulatorConfig(seed=16, mailboxes=2, days=1, faults=faults)) as sim:
        settings = {
            **sim.settings_env("secret"),
            "COLLECT_INITIAL_LOOKBACK_HOURS": "30",
            "COLLECT_MAX_BACKOFF_SECONDS": "1",
            "COLLECT_WINDOW_HOURS": "23",
        }
        ran = mia_in_a_pipe("collect", env={**env, **settings})
        injected = sim.stats()["faults_injected"]
        host = sim.base_url.removeprefix("https://")

    assert ran.code == 0, ran.err
    assert injected > 1
    assert "retrying" not in ran.err
    assert "WARNING" not in ran.err
    # every injected failure was retried (none given up), and said so once, by host and reason
    [retried] = [line for line in ran.err.splitlines() if line.startswith("retries: ")]
    assert retried.startswith(f"retries: {injected} retries ({host} ")
    [summary_line] = ran.out.splitlines()
    assert summary_line.startswith("collected ")
    assert summary_line.endswith("Z")  # caught up: the line ends with its checkpoint


def test_a_reader_that_closes_the_pipe_early_stops_the_report_quietly(tmp_path: Path) -> None:
    export = tmp_path / "export.jsonl"
    records = (
        mail_items_accessed(
            Id=f"00000000-0000-0000-0000-{number:012d}",
            CreationTime=f"2026-11-18T09:{number // 60 % 60:02d}:{number % 60:02d}",
        )
        for number in range(3000)
    )
    export.write_bytes(b"\n".join(json.dumps(record).encode() for record in records))
    report = subprocess.Popen(
        [str(MIA), "report", "--input", str(export), "--view", "events"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert report.stdout is not None
    assert report.stderr is not None
    header = report.stdout.readline()  # as `| head -1` reads, far less than the report writes
    report.stdout.close()
    errors = report.stderr.read().decode(errors="replace")
    code = report.wait(timeout=120)

    assert header.strip(), "the report wrote nothing before the pipe closed"
    assert code == ExitCode.OUTPUT_CLOSED, errors
    assert "Broken pipe" not in errors
    assert "Traceback" not in errors
    assert "Exception ignored" not in errors
