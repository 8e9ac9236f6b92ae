"""The readers' memory bound, measured: a child process reads a generated export far larger than
the bound, a record at a time, and its peak resident memory grows by a small constant, not the
stream's size. Linux only (the peak is the kernel's VmHWM, reset after the child's imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STREAM_MB = 128
GROWTH_BOUND_MB = 32  # the buffer (1 MiB chunks), one record, the interpreter's own churn (measured: 6)

CHILD = r"""
import csv, io, json, sys
from pathlib import Path
import orjson
from shared.parse import readers
from tests.records_factory import folder, folder_item, mail_items_accessed

FORMAT, TOTAL = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
ITEMS = [folder_item(f"<m@N@-{i}@x>", subject="s" * 40) for i in range(4)]
TEMPLATE = orjson.dumps(mail_items_accessed(Id="rec-@N@", Folders=[folder("Inbox", *ITEMS)]))

class Generated(io.RawIOBase):
    # An export of TOTAL bytes made as it is read: the child never holds it.
    def __init__(self):
        self.made = 0
        self.records = 0
        self.pending = self.head()
        self.done = False
    def head(self):
        if FORMAT == "csv-auditdata":
            return b'\xef\xbb\xbf"RecordId","CreationDate","Operation","AuditData"\r\n'
        return b"[" if FORMAT == "management-api" else b""
    def record(self, n):
        value = TEMPLATE.replace(b"@N@", b"%010d" % n)
        if FORMAT == "csv-auditdata":
            cell = value.replace(b'"', b'""')
            return b'"rec-%010d","2026-11-18T09:00:00Z","MailItemsAccessed","%s"\r\n' % (n, cell)
        if FORMAT == "management-api":
            return (b"," if n else b"") + value
        return value + b"\n"
    def readable(self):
        return True
    def readinto(self, buffer):
        while len(self.pending) < len(buffer) and not self.done:
            if self.made >= TOTAL:
                self.pending += b"]" if FORMAT == "management-api" else b""
                self.done = True
                break
            piece = self.record(self.records)
            self.records += 1
            self.made += len(piece)
            self.pending += piece
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

def rss(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)

stream = Generated()
baseline = rss("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS, so imports are not counted
records = readers.read_stream(stream, FORMAT)
read = sum(1 for record in records if not record.error)
print(json.dumps({"read": read, "made": stream.records, "bytes": stream.made,
                  "growth": rss("VmHWM") - baseline}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("fmt", ["management-api", "csv-auditdata", "jsonl"])
def test_reading_an_export_far_larger_than_the_bound_keeps_memory_within_it(fmt: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, fmt, str(STREAM_MB)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout.strip().splitlines()[-1])

    assert measured["bytes"] >= STREAM_MB * 1024 * 1024
    assert measured["read"] == measured["made"] > 50_000  # every record, none lost
    assert measured["growth"] < GROWTH_BOUND_MB * 1024 * 1024, measured
