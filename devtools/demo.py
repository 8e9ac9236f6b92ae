"""`make demo`: the whole story against a local tenant, in under two minutes.

Starts a private Azurite and the tenant simulator (HTTPS on 127.0.0.1, faults on at a moderate
rate, a week of history older than the Management API's window), then runs the installed `mia`
exactly as a responder would: `mia backfill` of that history from the simulated Graph audit-log
query API (one day into the collection window, so both bring some records), `mia collect` until caught up
(then once more after the simulator releases late content), `mia process` (rows, then subjects
through the simulator's Microsoft Graph), and `mia report` for the attacker's mailbox, including
the exposure of what the attacker's IP read. A webhook receiver on 127.0.0.1 takes the alerts,
verifying each signature (over its timestamp and the body, within five minutes) with the secret
the demo set; the alert types it accepted are listed in out/demo-summary.json `alerts_delivered`.
Writes the reports (CSV, JSON and the HTML page) and out/demo-summary.json.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from azure.data.tables import TableServiceClient

from devtools.azurite import ROOT, running_azurite
from devtools.receiver import WebhookReceiver
from shared.storage.backfill_jobs import BackfillJobsTable
from shared.storage.tables import MailboxAccessTable
from simulator import FaultConfig, Simulator, SimulatorConfig

OUT = ROOT / "out"
MIA = Path(sys.executable).with_name("mia")
SUMMARY = OUT / "demo-summary.json"
DETECTION_TYPES = ("mailbox.new_context", "tenant.mass_access")
HISTORY_DAYS = 7


def mia(*args: str, env: dict[str, str], check: bool = True) -> int:
    print(f"$ mia {' '.join(args)}", flush=True)
    return subprocess.run([str(MIA), *args], env=env, check=check).returncode


def collect_until_caught_up(env: dict[str, str], attempts: int = 6) -> None:
    for _ in range(attempts):
        if mia("collect", env=env, check=False) == 0:
            return
    raise SystemExit("collection did not catch up")


def scan_rows(connection_string: str) -> tuple[int, int]:
    """(distinct record Ids, rows beyond one per record Id) in MailboxAccess (overflow rows, which
    carry the rest of a long record's message list, are not rows of their own)."""
    table = MailboxAccessTable.of(TableServiceClient.from_connection_string(connection_string))
    counts = Counter(table.record_ids())
    return len(counts), sum(counts.values()) - len(counts)


def backfill_range(sim: Simulator) -> tuple[datetime, datetime]:
    """From the first day of the simulated history to one day into the collection window."""
    window_start = datetime.now(UTC) - timedelta(days=sim.config.days)
    first_day = window_start.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
    return first_day, (window_start + timedelta(days=1)).replace(microsecond=0)


def backfill_summary(
    connection_string: str, start: datetime, end: datetime, served: set[str]
) -> dict[str, Any]:
    """The demo-summary `backfill` block: what the job says it did, and what the rows say of the
    records the simulator served through the audit-log query API (`served`)."""
    service = TableServiceClient.from_connection_string(connection_string)
    jobs = BackfillJobsTable.of(service)
    [job] = (jobs.job(job_id) for job_id in jobs.job_ids(("pending", "running", "done", "failed")))
    assert job is not None
    state = job.as_dict()
    table = MailboxAccessTable.of(service)
    rows = table.client.list_entities(select=["PartitionKey", "RowKey", "RecordId", "EventTime"])
    times = Counter[str]()
    oldest = ""
    for row in rows:
        if table.is_overflow_row(row) or row["RecordId"] not in served:
            continue
        times[row["RecordId"]] += 1
        oldest = min(oldest or row["EventTime"], row["EventTime"])  # the event's TimeStamp
    return {
        "source": job.source,
        "from": state["from"],
        "to": state["to"],
        "state": job.state,
        "queries": len(state["queryIds"]),
        "pages": state["pagesStored"],
        "records_served": len(served),
        "rows_stored": len(times),
        "duplicate_rows": sum(times.values()) - len(times),
        "oldest_record": oldest,
    }


def verify_evidence(env: dict[str, str]) -> dict[str, int]:
    """`mia verify`: every row against the raw blob and position it names."""
    print("$ mia verify --json", flush=True)
    done = subprocess.run(
        [str(MIA), "verify", "--json"], env=env, capture_output=True, text=True, check=False
    )
    result = json.loads(done.stdout)
    print(
        f"verified {result['rows_checked']} rows against {result['blobs_verified']} raw blobs: "
        f"{result['mismatches']} mismatches"
    )
    keys = ("rows_checked", "mismatches", "blobs_verified", "conflicts")
    return {key: int(result[key]) for key in keys}


def print_sessions(path: Path) -> None:
    with path.open(encoding="utf-8-sig") as sessions:  # the CSV starts with a byte-order mark
        for row in csv.DictReader(sessions):
            print(
                f"  {row['FirstSeen']} .. {row['LastSeen']}  {row['Users'][:24]:<24} {row['LogonTypes']:<9} "
                f"{row['ClientIPs'][:18]:<18} {row['ClientFamilies'][:26]:<26} "
                f"{row['DistinctMessages']:>4} msgs  {row['Apps']}"
            )


def print_exposure(path: Path) -> None:
    with path.open(encoding="utf-8-sig") as exposure:
        for row in csv.DictReader(exposure):
            subject = row["Subject"].lstrip("'")  # CSV cells starting with = + - @ carry a quote
            print(
                f"  {row['Kind']:<9} {row['FirstAccess']}  {subject[:44]:<44} "
                f"{row['Sender'][:28]:<28} {row['SubjectSource']}"
            )


def main() -> int:
    OUT.mkdir(exist_ok=True)
    # The first audit-log query fails, as queries sometimes do: the backfill creates it again.
    config = SimulatorConfig(
        seed=2026, faults=FaultConfig.moderate(), history_days=HISTORY_DAYS, audit_query_failures=1
    )
    secret = secrets.token_hex(32)
    with running_azurite() as connection_string, Simulator(config) as sim, WebhookReceiver(secret) as hook:
        env = {
            **os.environ,
            **sim.settings_env("secret"),
            "AzureWebJobsStorage": connection_string,
            "COLLECT_INITIAL_LOOKBACK_HOURS": "167",
            "COLLECT_MAX_BACKOFF_SECONDS": "2",
            "COLLECT_REQUEST_TIMEOUT_SECONDS": "5",
            "ALERT_WEBHOOK_URL": hook.url,
            "ALERT_WEBHOOK_SECRET": secret,
            "ALERT_WEBHOOK_FORMAT": "json",
        }
        print(f"alert webhook receiver at {hook.url} (signatures checked)")
        print(f"simulated tenant {sim.tenant_id} at {sim.base_url} (faults: moderate)")
        start, end = backfill_range(sim)
        mia("backfill", "--from", start.isoformat(), "--to", end.isoformat(), env=env)
        collect_until_caught_up(env)
        print("the simulator now announces content late, in windows already collected")
        sim.release_late_content()
        collect_until_caught_up(env)
        mia("process", env=env)
        mailbox = sim.attacker_mailbox
        since = start.date().isoformat()  # the backfilled history and all the API still holds
        reports = []
        for view in ("events", "sessions", "exposure"):
            for fmt in ("csv", "json"):
                path = OUT / f"{mailbox}-{view}.{fmt}"
                mia("report", mailbox, "--from", since, "--view", view, "--format", fmt,
                    "-o", str(path), env=env)  # fmt: skip
                reports.append(str(path.relative_to(ROOT)))
        # The summary, timeline and every view in one page; every view in one workbook.
        for fmt in ("html", "xlsx"):
            whole = OUT / f"{mailbox}-exposure.{fmt}"
            mia("report", mailbox, "--from", since, "--format", fmt, "-o", str(whole), env=env)
            reports.append(str(whole.relative_to(ROOT)))
        attacker_only = OUT / f"{mailbox}-exposure-attacker-ip.csv"
        mia("report", mailbox, "--from", since, "--view", "exposure", "--ip", sim.attacker_ip,
            "-o", str(attacker_only), env=env)  # fmt: skip
        reports.append(str(attacker_only.relative_to(ROOT)))
        # Who else did the attacker's address read? From the context index, beside the truth.
        scope_path = OUT / "scope-attacker-ip.json"
        mia("scope", "--ip", sim.attacker_ip, "--from", since, "--format", "json",
            "-o", str(scope_path), env=env)  # fmt: skip
        reports.append(str(scope_path.relative_to(ROOT)))
        scope_rows = json.loads(scope_path.read_text(encoding="utf-8"))
        scope = {
            "ip": sim.attacker_ip,
            "mailboxes": {row["Mailbox"]: row["Records"] for row in scope_rows},
            "ground_truth": sim.mailboxes_read_from(sim.attacker_ip),
        }
        exposure = json.loads((OUT / f"{mailbox}-exposure.json").read_text(encoding="utf-8"))
        sources = Counter(row["SubjectSource"] for row in exposure if row["Kind"] == "Message")
        truth = sim.ground_truth()
        backfill = backfill_summary(connection_string, start, end, set(truth["audit_query_served"]))
        rows, duplicates = scan_rows(connection_string)
        evidence = verify_evidence(env)
        delivered = sorted({r.json()["type"] for r in hook.accepted()})
        rejected = sum(1 for r in hook.received if r.signature_ok is False)
        detected = [r.json() for r in hook.accepted() if r.json()["type"] in DETECTION_TYPES]
        summary = {
            # Distinct records served through any source: the Management API and the audit-log query API.
            "mailitemsaccessed_served": len(set(truth["served"]) | set(truth["audit_query_served"])),
            "rows_stored": rows,
            "duplicate_rows": duplicates,
            "backfill": backfill,
            "evidence": evidence,
            "alerts_delivered": delivered,
            "alert_signatures_rejected": rejected,
            # The detection alerts delivered, by type and severity (README "Detection").
            "detections": dict(
                sorted(Counter(f"{d['type']} {d['details']['severity']}" for d in detected).items())
            ),
            "attacker_detected": any(
                d["mailbox"] == mailbox and d["details"]["context"].get("ip") == sim.attacker_ip
                for d in detected
            ),
            "scope": scope,
            "reports": reports,
            "attacker_mailbox": mailbox,
            "attacker_ip": sim.attacker_ip,
            "exposure_subject_sources": dict(sorted(sources.items())),
            "simulator": {k: v for k, v in sim.stats().items() if not isinstance(v, dict)},
        }
    SUMMARY.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"\nSessions in {mailbox}:")
    print_sessions(OUT / f"{mailbox}-sessions.csv")
    print(
        f"\nrecords served {summary['mailitemsaccessed_served']}, rows stored {rows}, duplicates {duplicates}"
    )
    print(
        f"backfill {backfill['from']} .. {backfill['to']}: {backfill['queries']} queries, "
        f"{backfill['pages']} pages, records served {backfill['records_served']}, "
        f"rows stored {backfill['rows_stored']}, duplicates {backfill['duplicate_rows']}, "
        f"oldest record {backfill['oldest_record']}"
    )
    print(f"alerts delivered (signature verified): {', '.join(delivered) or 'none'}")
    print(f"\nWhat the attacker's IP read in {mailbox} (exposure, --ip {summary['attacker_ip']}):")
    print_exposure(attacker_only)
    print(f"subjects of the exposed messages by source: {summary['exposure_subject_sources']}")
    print(
        f"mailboxes the attacker's IP read (mia scope): {scope['mailboxes']}; "
        f"ground truth: {scope['ground_truth']}"
    )
    print("written:\n  " + "\n  ".join([*reports, str(SUMMARY.relative_to(ROOT))]))
    alerts_ok = "mailbox.throttled" in delivered and not rejected
    # Every exposed message has an answer: a subject (audit, graph, trace) or a final reason.
    subjects_ok = not {"unresolved:not-looked-up", "unresolved:deferred"} & set(sources)
    collected_ok = rows == summary["mailitemsaccessed_served"] and duplicates == 0
    evidence_ok = evidence["mismatches"] == 0 and evidence["rows_checked"] > 0
    scope_ok = scope["mailboxes"] == scope["ground_truth"] and bool(scope["mailboxes"])
    week_ago = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    backfill_ok = (
        backfill["state"] == "done"
        and backfill["rows_stored"] == backfill["records_served"] > 0
        and backfill["duplicate_rows"] == 0
        and str(backfill["oldest_record"]) < week_ago
    )
    checks = (collected_ok, alerts_ok, subjects_ok, evidence_ok, scope_ok, backfill_ok)
    return 0 if all(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
