"""`make demo`: the offline investigation path end to end on a bundled sample export.

Starts a private Azurite, imports samples/contoso-purview-export.csv with `mia import`, processes
it with `mia process` (the code enrich_trace runs), and writes the suspicious mailbox's reports to
out/ with `mia report`. Everything goes through the installed `mia` command.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from devtools.azurite import ROOT, running_azurite

SAMPLE = ROOT / "samples" / "contoso-purview-export.csv"
OUT = ROOT / "out"
MIA = Path(sys.executable).with_name("mia")
MAILBOX = "alice@contoso.com"
RANGE = ("--from", "2026-11-16", "--to", "2026-11-20")


def mia(*args: str, env: dict[str, str]) -> None:
    print(f"$ mia {' '.join(args)}", flush=True)
    subprocess.run([str(MIA), *args], env=env, check=True)


def main() -> int:
    OUT.mkdir(exist_ok=True)
    with running_azurite() as connection_string:
        env = dict(os.environ, AzureWebJobsStorage=connection_string)
        mia("import", str(SAMPLE), env=env)
        mia("process", env=env)
        reports = []
        for view in ("events", "sessions"):
            for fmt in ("csv", "json"):
                path = OUT / f"{MAILBOX}-{view}.{fmt}"
                mia("report", MAILBOX, *RANGE, "--view", view, "--format", fmt, "-o", str(path), env=env)
                reports.append(path)
    print(f"\nSessions in {MAILBOX} (16-20 Nov 2026):")
    with (OUT / f"{MAILBOX}-sessions.csv").open(encoding="utf-8") as sessions:
        for row in csv.DictReader(sessions):
            print(
                f"  {row['FirstSeen']} .. {row['LastSeen']}  {row['Users']:<20} {row['LogonTypes']:<9} "
                f"{row['ClientIPs']:<16} {row['ClientFamilies']:<26} {row['DistinctMessages']:>3} messages  "
                f"{row['Apps']}"
            )
    print("\nReports written:")
    for path in reports:
        print(f"  {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
