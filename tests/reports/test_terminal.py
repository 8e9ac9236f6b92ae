"""shared/reports/terminal.py and `mia report` to a terminal: control and bidi characters from audit
fields are shown as visible escapes on a terminal; pipes and files get the exact text."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from shared.reports import terminal
from shared.reports.terminal import TerminalSink, visible
from tests.records_factory import MID_1, folder, folder_item, mail_items_accessed

pytestmark = pytest.mark.unit

ROOT = Path(__file__).parents[2]
OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # OSC 52: put "evil" on the clipboard
HIDE_ROW = "\x1b[2K\x1b[1A"  # erase the line, cursor up one: hides the row above
RLO = "\u202e"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (OSC52, "\\x1b]52;c;ZXZpbA==\\x07"),
        (HIDE_ROW, "\\x1b[2K\\x1b[1A"),
        ("invoice\u202etxt.exe", "invoice\\u202etxt.exe"),
        ("a\u2066b\u2069c", "a\\u2066b\\u2069c"),
        ("\x9b31m", "\\x9b31m"),  # 8-bit CSI
        ("\x00\x7f", "\\x00\\x7f"),
        ("line\nfake row", "line\\x0afake row"),
        ("over\rwrite", "over\\x0dwrite"),
        ("tab\there", "tab\\x09here"),
        ("Grüße, 東京, \\Inbox", "Grüße, 東京, \\Inbox"),
    ],
)
def test_visible_escapes_control_and_bidi_characters_and_keeps_the_rest(text: str, shown: str) -> None:
    assert visible(text) == shown


def test_terminal_sink_keeps_the_row_end_of_a_csv_row_and_escapes_line_breaks_inside_cells() -> None:
    out = io.StringIO()
    sink = TerminalSink(out)

    sink.write('"a\r\nb","c\x1b[1A"\r\n')
    sink.write("[")

    assert out.getvalue() == '"a\\x0d\\x0ab","c\\x1b[1A"\r\n['


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_for_stdout_wraps_only_a_terminal() -> None:
    pipe = _Stream(tty=False)
    tty = _Stream(tty=True)

    assert terminal.for_stdout(pipe, "csv") is pipe
    assert terminal.for_stdout(pipe, "json") is pipe
    assert isinstance(terminal.for_stdout(tty, "csv"), TerminalSink)


def test_json_escapes_keep_the_shown_json_parseable_to_the_exact_text() -> None:
    out = io.StringIO()
    subject = f"a{RLO}b\x9bc\u2066"
    TerminalSink(out, json_escapes=True).write(json.dumps({"Subject": subject}, ensure_ascii=False))

    assert RLO not in out.getvalue()
    assert "\x9b" not in out.getvalue()
    assert json.loads(out.getvalue()) == {"Subject": subject}


# ---------------------------------------------------------------------------------------------
# `mia report` through a real pseudo-terminal and a real pipe


def _export(tmp_path: Path) -> Path:
    record = mail_items_accessed(
        ClientInfoString=f"Client=WebServices;{HIDE_ROW}evil/1.0",
        Folders=[folder("\\Inbox", folder_item(MID_1, subject=f"Payroll {OSC52}{RLO}fdp.exe"))],
        OperationCount=1,
    )
    path = tmp_path / "export.json"
    path.write_text(json.dumps([record]), encoding="utf-8")
    return path


def _argv(export: Path, fmt: str) -> list[str]:
    return [
        sys.executable, "-m", "mia.cli", "report", "alice@contoso.com", "--from", "2026-11-17",
        "--to", "2026-11-19", "--format", fmt, "--input", str(export),
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}


def _run_on_a_terminal(argv: list[str]) -> bytes:
    controller, terminal_end = pty.openpty()
    try:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=terminal_end, stderr=subprocess.PIPE, cwd=ROOT, env=_env()
        )
        os.close(terminal_end)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the child closed the terminal (Linux)
                break
            if not chunk:
                break
            shown += chunk
        _, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        return shown
    finally:
        os.close(controller)


def _assert_no_raw_control_reached(shown: bytes) -> None:
    assert b"\x1b" not in shown
    assert b"\x07" not in shown
    assert RLO.encode() not in shown


def test_mia_report_csv_to_a_terminal_shows_escapes_and_no_raw_control_byte_reaches_it(
    tmp_path: Path,
) -> None:
    shown = _run_on_a_terminal(_argv(_export(tmp_path), "csv"))

    _assert_no_raw_control_reached(shown)
    text = shown.decode("utf-8")
    assert "Payroll \\x1b]52;c;ZXZpbA==\\x07\\u202efdp.exe" in text
    assert "Client=WebServices;\\x1b[2K\\x1b[1Aevil/1.0" in text


def test_mia_report_json_to_a_terminal_shows_escapes_and_still_parses_to_the_exact_text(
    tmp_path: Path,
) -> None:
    shown = _run_on_a_terminal(_argv(_export(tmp_path), "json"))

    _assert_no_raw_control_reached(shown)
    (row,) = json.loads(shown.decode("utf-8"))
    assert f"Payroll {OSC52}{RLO}fdp.exe" in row["Messages"]
    assert row["ClientInfo"] == f"Client=WebServices;{HIDE_ROW}evil/1.0"


def test_mia_report_to_a_pipe_keeps_the_exact_text(tmp_path: Path) -> None:
    done = subprocess.run(
        _argv(_export(tmp_path), "csv"), capture_output=True, cwd=ROOT, env=_env(), timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert f"Payroll {OSC52}{RLO}fdp.exe".encode() in done.stdout
    assert f"Client=WebServices;{HIDE_ROW}evil/1.0".encode() in done.stdout
    assert done.stdout.endswith(b"\r\n")


def test_mia_report_to_a_pipe_is_utf8_whatever_encoding_the_platform_gives_pipes(tmp_path: Path) -> None:
    # Windows gives a redirected stdout the ANSI code page (cp1252 in much of the world), which has
    # no U+FFFD, Cyrillic or CJK; PYTHONIOENCODING=cp1252 makes this Python do the same.
    subject = "Отчёт 東京 \ufffd"
    record = mail_items_accessed(
        Folders=[folder("\\Inbox", folder_item(MID_1, subject=subject))], OperationCount=1
    )
    export = tmp_path / "export.json"
    export.write_text(json.dumps([record]), encoding="utf-8")
    env = {**_env(), "PYTHONIOENCODING": "cp1252"}

    done = subprocess.run(
        _argv(export, "csv"), capture_output=True, cwd=ROOT, env=env, timeout=60, check=False
    )

    assert done.returncode == 0, done.stderr
    assert subject.encode() in done.stdout
    rows = done.stdout.split(b"\r\n")
    assert rows[-1] == b""
    assert not any(b"\r" in row or b"\n" in row for row in rows)  # no \r\r\n or bare \n row ends
