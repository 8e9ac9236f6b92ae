"""`mia`: the MailItemsAccessed investigation tool, for a responder's own machine.

The same code as the Azure Functions: import an export, process it into tables, report.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mia.output import EXIT_CODES_HELP, ExitCode, Run, add_json_flag, discard_stdout, stdout_reader_gone
from shared import logsetup
from shared.backfill import AUDIT_QUERY_SOURCE, SENTINEL_SOURCE
from shared.ipcontext.context import IpContext, open_context
from shared.model.message_info import Lookup, MessageObserver
from shared.parse import readers
from shared.parse.normalize import ParseStats
from shared.reports import terminal
from shared.reports.assemble import (
    EventSource,
    audit_lookup,
    events_from_table,
    render_report,
    render_workbook,
    within_the_files,
)
from shared.reports.file_events import FileEvents
from shared.reports.render import write_rows
from shared.reports.request import (
    CLI_VIEWS,
    FORMATS,
    STORAGE_NEEDS_SUBJECT,
    ReportQuery,
    RequestError,
    parse_end,
    parse_file_report_request,
    parse_report_request,
    parse_time,
    validate_subject,
)
from shared.reports.scope_request import PARAMETERS as SCOPE_PARAMETERS
from shared.reports.scope_request import parse_scope_request
from shared.settings import (
    SettingsError,
    load_backfill_settings,
    load_collection_settings,
    load_detection_settings,
    load_report_settings,
    load_resolution_settings,
    load_sentinel_settings,
    load_settings,
)

# Each command imports what only it needs in its own body: `mia report --input` and the other
# commands that need no storage start without the Azure SDKs (about 0.6 s of imports).
if TYPE_CHECKING:
    from shared.storage import Storage

EXAMPLES = (
    """\
examples:
  mia doctor                                      pre-flight: is every part configured and reachable?
  mia collect                                     pull new audit content from the tenant
  mia backfill --from 2026-06-01 --to 2026-11-30  history the Management API no longer has
  mia import purview-export.csv audit-*.json      store exports as evidence and queue them
  mia process                                     turn queued evidence into rows (and alerts)
  mia verify --mailbox alice@contoso.com          check her rows against the raw evidence
  mia replay-poison                               retry messages parked on the poison queue
  mia detect --input export.csv --format json     the new-context and mass-access detections
  mia report alice@contoso.com --view sessions    who read Alice's mail, session by session
  mia report alice@contoso.com --from 2026-11-01 --to 2026-11-07 -o alice.csv
  mia report bob@contoso.com --by actor --format json   what Bob's account read, anywhere
  mia report alice@contoso.com --format xlsx -o alice.xlsx   every view, one Excel workbook
  mia report alice@contoso.com --input export.csv   straight from a file, no storage at all
  mia report --input export.csv --view mailboxes    triage: every mailbox in the file, worst first
  mia report alice@contoso.com --view exposure --ip 185.220.101.45   what that address read
  mia report alice@contoso.com --format html -o alice.html   summary, timeline, tables: one page
  mia scope --ip 185.220.101.45 --from 2026-11-01   who else? every mailbox that address touched
  mia scope --app 00000003-0000-0000-c000-000000000000 --input export.csv   the same, from a file

storage: set AzureWebJobsStorage (a connection string; Azurite locally). Reports with --input
need no storage.

output: import, collect, process, verify and replay-poison show progress on standard error when it
is a terminal, and end with one summary line on standard output (--json: one JSON object); retries
of API calls are counted and summarised on standard error.

"""
    + EXIT_CODES_HELP
)


def _storage() -> Storage:
    from shared.storage import Storage

    storage = Storage.from_settings(load_settings().storage)
    storage.ensure_resources()
    return storage


def cmd_import(args: argparse.Namespace) -> int:
    from shared.ingest import pipeline

    run = Run.start("import", args)
    storage = _storage()
    files: list[dict[str, object]] = []
    failed: list[dict[str, str]] = []
    with run.progress("importing", unit="file") as progress:
        progress.expect(len(args.files))
        for path in args.files:
            try:
                result = pipeline.import_file(storage, path)
            except (OSError, readers.UnknownFormat) as problem:
                run.problem(f"{_shown(path)}: {_shown(problem)}")
                failed.append({"file": str(path), "error": str(problem)})
                continue
            finally:
                progress.advance()
            state = "stored" if result.stored else "already stored"
            run.detail(
                f"{_shown(path)}: {result.format}, {result.records} records, {state} as "
                f"audit-raw/{_shown(result.blob)}, queued"
                + (f" as {result.pieces} pieces" if result.pieces > 1 else "")
            )
            if result.warning:
                run.detail(f"{_shown(path)}: warning: {result.warning}")
            files.append(
                {
                    "file": str(path),
                    "format": result.format,
                    "records": result.records,
                    "stored": result.stored,
                    "blob": result.blob,
                    "pieces": result.pieces,
                    "warning": result.warning,
                },
            )
    stored = sum(1 for file in files if file["stored"] is True)
    records = sum(int(file["records"]) for file in files if isinstance(file["records"], int))
    summary = (
        f"imported {len(files)} of {len(args.files)} files ({records} records): {stored} newly stored, "
        f"{len(files) - stored} already stored, {len(failed)} failed"
    )
    code = ExitCode.FAILED if failed else ExitCode.OK
    return run.finish(code, summary, {"imported": len(files), "stored": stored, "records": records,
                                      "files": files, "failed": failed})  # fmt: skip


def cmd_process(args: argparse.Namespace) -> int:
    from shared.ingest import pipeline
    from shared.runtime import build_resolver
    from shared.subjects import lookup_queue

    run = Run.start("process", args)
    settings = load_settings()
    storage = _storage()
    resolver = build_resolver(storage, settings.resolution)
    with run.progress("processing", unit="blob") as progress:
        drained = pipeline.drain(
            storage, args.max, alert_settings=settings.alerts, resolver=resolver, progress=progress
        )
    results = drained.results
    totals = ParseStats()
    for result in results:
        for name, value in result.stats.as_dict().items():
            setattr(totals, name, getattr(totals, name) + value)
    inserted = sum(result.inserted for result in results)
    conflicts = sum(result.conflicts for result in results)
    queued = sum(result.lookups_queued for result in results)
    lookups = lookup_queue.drain(storage, resolver, settings.alerts.tenant)
    found = lookups.stats
    run.detail(
        f"subjects: {queued} message ids queued for Graph (RESOLVE_SUBJECTS={settings.resolution.policy}); "
        f"resolved now: {found.graph} by Graph, {found.trace} by message trace, {found.unresolved} "
        f"unresolved, {found.cached} already known; {lookups.left_queued} queue messages left for later"
    )
    if totals.truncated:
        run.detail(f"warning: {totals.truncated} records: {readers.WARNINGS[readers.POWERSHELL_SHALLOW]}")
    raised = [alert for result in results for alert in result.alerts]
    for alert in raised:
        run.detail(f"alert {alert.type}: {_shown(alert.mailbox or '-')} ({alert.id})")
    poisoned = drained.poisoned
    for failure in poisoned:
        run.problem(f"FAILED {_shown(failure.blob or failure.message_id)}: {_shown(failure.error)}")
    if poisoned:
        run.problem(
            f"{len(poisoned)} queue messages could not be processed and were moved to "
            "audit-content-poison (fix the cause, then `mia replay-poison` and `mia process`)"
        )
    summary = (
        f"processed {len(results)} blobs: {totals.records} records, {totals.events} "
        f"MailItemsAccessed ({inserted} new rows; the rest were stored before), {conflicts} "
        f"conflicting copies kept aside (see mia verify), {totals.other_operations} other "
        f"operations skipped, {totals.malformed} unreadable (logged), {len(raised)} alerts, "
        f"{len(poisoned)} poisoned"
    )
    data = {
        "blobs": len(results),
        **totals.as_dict(),
        "new_rows": inserted,
        "conflicts": conflicts,
        "alerts": [{"type": alert.type, "mailbox": alert.mailbox, "id": alert.id} for alert in raised],
        "poisoned": [{"blob": f.blob, "message_id": f.message_id, "error": f.error} for f in poisoned],
        "subjects": {
            "queued": queued,
            "graph": found.graph,
            "trace": found.trace,
            "unresolved": found.unresolved,
            "cached": found.cached,
            "left_queued": lookups.left_queued,
        },
    }
    return run.finish(ExitCode.POISONED if poisoned else ExitCode.OK, summary, data)


def _shown(text: object) -> str:
    """Attacker-controlled text (record ids, blob names) made visible, never executed, on a terminal."""
    return terminal.visible(str(text))


def cmd_verify(args: argparse.Namespace) -> int:
    from shared.ingest.verify import verify

    start = parse_time("from", args.from_, end_of_day=False) if args.from_ else None
    end = parse_end(args.to) if args.to else None
    mailbox = validate_subject(args.mailbox, "mailbox") if args.mailbox else None
    run = Run.start("verify", args)
    storage = _storage()
    with run.progress("verifying", unit="blob") as progress:
        result = verify(storage, mailbox, start, end, progress=progress)
    for mismatch in result.mismatches:
        run.detail(
            f"MISMATCH {mismatch.table} {_shown(mismatch.partition_key)} {_shown(mismatch.row_key)}: "
            f"{_shown(mismatch.problem)} (source {_shown(mismatch.source_blob)} #{mismatch.source_index})"
        )
    for conflict in result.conflicts:
        run.detail(
            f"conflict: record {_shown(conflict['RecordId'])} of {_shown(conflict['PartitionKey'])}: "
            f"first copy from {_shown(conflict['FirstSourceBlob'])} kept; a copy from "
            f"{_shown(conflict['SourceBlob'])} says something else"
        )
    summary = result.summary()
    line = (
        f"verified {summary['rows_checked']} rows against {summary['blobs_verified']} raw blobs: "
        f"{summary['mismatches']} mismatches, {summary['conflicts']} conflicting copies recorded"
    )
    return run.finish(ExitCode.OK if result.ok else ExitCode.MISMATCH, line, result.as_dict())


def cmd_replay_poison(args: argparse.Namespace) -> int:
    from shared.alerts.checks import replay_poison

    run = Run.start("replay-poison", args)
    moved = replay_poison(_storage(), args.max)
    line = f"moved {moved} messages from audit-content-poison back to audit-content; run `mia process`"
    return run.finish(ExitCode.OK, line, {"moved": moved})


def cmd_collect(args: argparse.Namespace) -> int:
    from shared.clients.errors import ApiError
    from shared.collect import collector

    run = Run.start("collect", args)
    settings = load_collection_settings()
    storage, alerts = _storage(), load_settings().alerts
    try:
        with run.progress("collecting", unit="blob") as progress:
            result = collector.collect(storage, settings, alerts, progress=progress)
    except ApiError as problem:  # AuthFailed, a refused token, is one too
        run.problem(f"mia collect: {_shown(problem)}")
        return run.finish(ExitCode.FAILED, f"collect failed: {_shown(problem)}", {"error": str(problem)})
    summary = result.as_dict()
    if result.gap:
        run.problem(f"GAP: content created {result.gap[0]} .. {result.gap[1]} is past the API's 7 days")
    line = (
        f"collected {summary['stored']} new content blobs ({summary['records']} records) in "
        f"{summary['windows']} windows; {summary['already_stored']} already stored; "
        f"{summary['gone']} expired or missing; checkpoint {summary['checkpoint']}"
        + ("" if result.caught_up else " (not caught up: run again to resume)")
    )
    return run.finish(ExitCode.OK if result.caught_up else ExitCode.NOT_CAUGHT_UP, line, summary)


def _progress(line: str) -> None:
    print(f"backfill: {_shown(line)}", file=sys.stderr, flush=True)


def cmd_backfill(args: argparse.Namespace) -> int:
    from shared.backfill import auditquery as backfill
    from shared.backfill import sentinel
    from shared.clients.errors import ApiError

    start = parse_time("from", args.start, end_of_day=False)
    end = parse_end(args.end)
    if end <= start:
        raise RequestError(400, "invalid_range", "--to must be after --from")
    if args.source == sentinel.SOURCE:
        if not args.workspace:
            raise RequestError(
                400, "missing_workspace", "--source sentinel needs --workspace (its Workspace ID)"
            )
        settings_la = load_sentinel_settings()
        job, progress = sentinel.run_backfill(
            _storage(), settings_la, args.workspace, start, end, args.mailbox or (), _progress
        )
        prefix = sentinel.RAW_PREFIX
    else:
        settings = load_backfill_settings()
        try:
            job, progress = backfill.run_backfill(
                _storage(), settings, start, end, args.mailbox or (), _progress
            )
        except ApiError as problem:  # a refused token or a missing AuditLogsQuery-Exchange.Read.All
            print(f"mia backfill: {problem}", file=sys.stderr)
            return 1
        prefix = backfill.RAW_PREFIX
    summary = job.as_dict()
    print(
        f"backfill {_shown(job.id)} {summary['state']}: {summary['pagesStored']} pages stored "
        f"({summary['records']} records, {summary['mailboxRecords']} of the mailboxes asked for) under "
        f"audit-raw/{prefix}/{_shown(job.id)}/ and queued; {len(summary['queryIds'])} queries, "
        f"{summary['windowsSplit']} windows split at the record-count limit, {summary['errorCount']} errors"
    )
    for error in job.errors[-10:]:
        print(f"  error: {_shown(error)}")
    if progress.stopped:
        print(f"stopped: {progress.stopped} (run the same command again to resume)")
        return 3
    if job.state == "failed":
        print("some windows failed (see the errors); `mia process` turns what was stored into rows")
        return 4
    print("next: `mia process` turns the stored pages into rows, alerts and subjects")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from shared.doctor import checks as doctor

    results = doctor.run(mailbox=args.mailbox)
    if args.json:
        print(json.dumps([result.as_dict() for result in results], indent=2))
    else:
        for result in results:
            state = {True: "ok", False: "FAIL", None: "skip"}[result.ok]
            fix = f" -> fix: {result.fix}" if result.fix else ""
            print(f"{state:<4}  {result.check}: {terminal.visible(result.detail + fix)}")
        states = [result.ok for result in results]
        print(f"doctor: {states.count(True)} ok, {states.count(False)} failed, {states.count(None)} skipped")
    return ExitCode.CHECK_FAILED if any(result.ok is False for result in results) else ExitCode.OK


SUBJECT_VIEWS = frozenset({"messages", "exposure"})  # the views that show what a message's subject is


def _report_query(args: argparse.Namespace, params: dict[str, str]) -> ReportQuery:
    """The report's query: of the --input files (any mailbox, their whole range by default), or
    of one mailbox (or actor) in storage."""
    settings, now = load_report_settings(), datetime.now(UTC)
    if args.input:
        return parse_file_report_request(args.mailbox, params, settings, now)
    if not args.mailbox:
        raise RequestError(400, "missing_mailbox", STORAGE_NEEDS_SUBJECT)
    return parse_report_request(args.mailbox, params, settings, now, views=CLI_VIEWS)


def cmd_report(args: argparse.Namespace) -> int:
    params = {
        "view": args.view,
        "format": args.format,
        "by": args.by,
        "from": args.from_ or "",
        "to": args.to or "",
        "ip": ",".join(args.ip),
        "session": ",".join(args.session),
        "exclude_ip": ",".join(args.exclude_ip),
    }
    query = _report_query(args, params)
    if query.fmt == "xlsx" and not args.output:
        print(
            "mia: --format xlsx writes a binary workbook: name the file with -o FILE.xlsx "
            "(it is never written to a terminal or standard output)",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    ip_context = open_context(load_report_settings().ip_databases)
    stats = ParseStats()
    source: EventSource
    if args.input:
        # Only these name messages' subjects; the others need not remember every message.
        observer = MessageObserver() if query.fmt in ("html", "xlsx") or query.view in SUBJECT_VIEWS else None
        chosen = FileEvents(args.input, query, stats, observer, workers=args.workers)
        query = within_the_files(query, chosen)
        source = lambda: iter(chosen)  # noqa: E731
        lookup = audit_lookup(observer) if observer is not None else None
    else:
        from shared.runtime import build_resolver  # storage and its SDKs: not for reports from files

        storage = _storage()
        table = storage.access_table(query.by)
        source = lambda: events_from_table(table, query)  # noqa: E731
        lookup = build_resolver(storage, load_resolution_settings()).report_lookup()
    if query.fmt == "xlsx":
        _write_workbook(query, source, args.output, lookup, ip_context)
    elif args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            count = render_report(query, source(), out, lookup, ip_context=ip_context)
        what = "records in the HTML report" if query.fmt == "html" else f"{query.view} rows"
        print(f"{count} {what} written to {args.output}", file=sys.stderr)
    else:
        sink = terminal.for_stdout(sys.stdout, query.fmt)
        render_report(query, source(), sink, lookup, ip_context=ip_context)
    if stats.malformed:
        print(f"warning: {stats.malformed} unreadable records skipped (see log)", file=sys.stderr)
    return 0


DETECTION_COLUMNS = (
    "type",
    "mailbox",
    "SessionId",
    "new",
    "severity",
    "reasons",
    "firstSeen",
    "firstRecordId",
    "records",
    "messages",
    "folders",
    "mailboxes",
    "context",
)


def _csv_detection(row: dict[str, object]) -> dict[str, object]:
    """Lists joined with "; " and the context as name=value pairs, one cell each."""
    flat = dict(row)
    for name, value in row.items():
        if isinstance(value, list):
            flat[name] = "; ".join(str(item) for item in value)
        elif isinstance(value, dict):
            flat[name] = "; ".join(f"{key}={item}" for key, item in value.items())
    return flat


def cmd_detect(args: argparse.Namespace) -> int:
    from shared.detect import engine as detection

    start = (
        parse_time("from", args.from_, end_of_day=False) if args.from_ else datetime.min.replace(tzinfo=UTC)
    )
    end = parse_end(args.to) if args.to else datetime.max.replace(tzinfo=UTC)
    stats = ParseStats()
    if args.input:
        found = detection.detect_files(args.input, load_detection_settings(), stats, start, end)
    else:
        found = detection.stored_detections(_storage(), start, end)
    rows = [detected.row() for detected in found]
    if args.format == "csv":
        rows = [_csv_detection(row) for row in rows]
    sink = terminal.for_stdout(sys.stdout, args.format)
    write_rows(args.format, rows, DETECTION_COLUMNS, sink)
    if args.format == "json":
        sys.stdout.write("\n")
    if stats.malformed:
        print(f"warning: {stats.malformed} unreadable records skipped (see log)", file=sys.stderr)
    return 0


def cmd_scope(args: argparse.Namespace) -> int:
    from shared.reports import scope

    params = {name: getattr(args, name) or "" for name in SCOPE_PARAMETERS}
    params.update({"view": args.view, "format": args.format, "from": args.from_ or "", "to": args.to or ""})
    settings = load_report_settings()
    query = parse_scope_request(params, settings, datetime.now(UTC), open_ended=bool(args.input))
    stats = ParseStats()
    if args.input:
        tallies = scope.file_tallies(args.input, query, stats, workers=args.workers)
    else:
        tallies = list(scope.stored_tallies(_storage(), query))
    columns, rows = scope.scope_table(query, tallies, open_context(settings.ip_databases))
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            scope.write_answer(query, columns, rows, out)
        print(f"{len(rows)} mailboxes written to {args.output}", file=sys.stderr)
    else:
        scope.write_answer(query, columns, rows, terminal.for_stdout(sys.stdout, query.fmt))
    if stats.malformed:
        print(f"warning: {stats.malformed} unreadable records skipped (see log)", file=sys.stderr)
    return 0


def _write_workbook(
    query: ReportQuery, source: EventSource, output: Path, lookup: Lookup | None, ip_context: IpContext
) -> None:
    """The workbook of every view, written to `output`; no file is left behind when it fails."""
    try:
        written = render_workbook(query, source, output, lookup, ip_context=ip_context)
    except BaseException:
        output.unlink(missing_ok=True)
        raise
    shown = ", ".join(f"{rows} {sheet}" for sheet, rows in written.items())
    print(f"workbook written to {output}: {shown} rows", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mia",
        description="Find out which mail was read in a Microsoft 365 mailbox, from "
        "MailItemsAccessed audit records.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and skipped records")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    imp = commands.add_parser(
        "import",
        help="store audit exports as raw evidence and queue them for processing",
        description="Accepts Management Activity API content (JSON arrays), JSON Lines, Purview "
        "audit search CSV exports, Search-UnifiedAuditLog | Export-Csv files, Graph audit-query "
        "records and Microsoft Sentinel / Log Analytics OfficeActivity exports (CSV or JSON). "
        "Each file is kept untouched (gzip, SHA-256) in audit-raw. Re-importing changes nothing.",
    )
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    add_json_flag(imp)
    imp.set_defaults(handler=cmd_import)

    proc = commands.add_parser(
        "process",
        help="turn queued evidence into report rows (what enrich_trace does in Azure)",
    )
    proc.description = (
        "Exit code 4: some queue messages could not be processed after repeated attempts and were "
        "moved to audit-content-poison (each is named on standard error)."
    )
    proc.add_argument("--max", type=int, default=None, help="stop after this many blobs")
    add_json_flag(proc)
    proc.set_defaults(handler=cmd_process)

    ver = commands.add_parser(
        "verify",
        help="check every stored row against the raw evidence it names",
        description="Re-reads the raw blobs in audit-raw, re-hashes them (SHA-256), and checks that "
        "each MailboxAccess (and, without --mailbox, ActorAccess) row is whole and matches the record "
        "at its SourceIndex. Lists conflicting copies of records kept aside in RecordConflicts. "
        "Exit code 5: at least one row does not match.",
    )
    ver.add_argument("--mailbox", help="only this mailbox's rows")
    ver.add_argument("--from", dest="from_", metavar="WHEN", help="rows from (ISO date or date-time, UTC)")
    ver.add_argument("--to", metavar="WHEN", help="rows up to (a date includes that whole day)")
    add_json_flag(ver)
    ver.set_defaults(handler=cmd_verify)

    replay = commands.add_parser(
        "replay-poison",
        help="put messages parked on audit-content-poison back on audit-content (after a fix)",
        description="Moves each poison message, body unchanged, back to the work queue so "
        "`mia process` (or enrich_trace) tries it again. Run it once the cause is fixed.",
    )
    replay.add_argument("--max", type=int, default=None, help="move at most this many messages")
    add_json_flag(replay)
    replay.set_defaults(handler=cmd_replay_poison)

    col = commands.add_parser(
        "collect",
        help="pull new audit content from the Management Activity API (what fetch_audit does)",
        description="Starts the Audit.Exchange subscription when needed, stores every new content "
        "blob untouched in audit-raw and queues it; resumes from its checkpoint. Needs TENANT_ID and "
        "credentials (CLIENT_ID with CLIENT_SECRET or a certificate, or a managed identity). "
        "Exit code 3: stopped by the time budget before catching up; run again.",
    )
    add_json_flag(col)
    col.set_defaults(handler=cmd_collect)

    back = commands.add_parser(
        "backfill",
        help="store audit history from the Microsoft Graph audit-log query API (180 days and more)",
        description="Creates Graph audit-log queries for MailItemsAccessed over the range (a day "
        "each, split when a query hits its record-count limit), stores every records page untouched "
        "in audit-raw under backfill/auditquery/ and queues it like collected content. The same "
        "command resumes a stopped or killed backfill. Needs the Graph application permission "
        "AuditLogsQuery-Exchange.Read.All; worldwide (and GCC) only, not GCC High or DoD. Exit code 3: "
        "stopped before the end (run again); 4: some windows failed.",
    )
    back.add_argument("--from", dest="start", required=True, help="start, ISO date or date-time (UTC)")
    back.add_argument("--to", dest="end", required=True, help="end, ISO date (that whole day) or date-time")
    back.add_argument(
        "--mailbox",
        action="append",
        help="count these mailboxes' records (repeatable); the query itself is not narrowed: its user "
        "filter matches who acted, not the mailbox, and would miss delegates, admins and apps",
    )
    back.add_argument(
        "--source",
        choices=[AUDIT_QUERY_SOURCE, SENTINEL_SOURCE],
        default=AUDIT_QUERY_SOURCE,
        help="where history comes from: the Graph audit-log query API, or a Log Analytics workspace's "
        "OfficeActivity table (Microsoft Sentinel; every cloud; needs Log Analytics Reader on it)",
    )
    back.add_argument("--workspace", help="with --source sentinel: the workspace's Workspace ID (a GUID)")
    back.set_defaults(handler=cmd_backfill)

    doc = commands.add_parser(
        "doctor",
        help="pre-flight: settings, storage, tokens, subscription, Graph permissions, webhook",
        description="Checks, in order, that the settings are valid; storage answers and holds the "
        "container, queues and tables; tokens are issued for the Management Activity API (and Graph "
        "when subjects are on); the Audit.Exchange subscription is enabled and lists content; Graph "
        "answers a message lookup (and message trace when RESOLVE_MESSAGE_TRACE is on); the webhook "
        "accepts a signed test delivery (an alert of type doctor.test). Creates and starts nothing. "
        "A check whose prerequisite failed is skipped. Exit code 6: at least one check failed.",
    )
    doc.add_argument(
        "--mailbox", help="mailbox for the Graph message lookup (default: first of RESOLVE_WATCHLIST)"
    )
    doc.add_argument(
        "--json", action="store_true", help="a JSON array of {check, ok, detail, fix}; ok null: skipped"
    )
    doc.set_defaults(handler=cmd_doctor)

    det = commands.add_parser(
        "detect",
        help="list the new-context and mass-access detections, from storage or export files",
        description='With --input, runs the detection rules (README "Detection") over the files\' '
        "records in time order, as enrich_trace does as records are stored; without it, lists "
        "the detections stored by processing. --from/--to select detections by their first "
        "record (UTC; a date as --to includes that whole day); with --input the records before "
        "--from still form the baseline.",
    )
    det.add_argument("--input", nargs="+", type=Path, metavar="FILE", help="read these export files")
    det.add_argument("--from", dest="from_", metavar="WHEN", help="first record at or after (ISO, UTC)")
    det.add_argument("--to", metavar="WHEN", help="first record before the end of (ISO, UTC)")
    det.add_argument("--format", choices=("json", "csv"), default="json")
    det.set_defaults(handler=cmd_detect)

    rep = commands.add_parser(
        "report",
        help="write a report of one mailbox (or one actor), or of every mailbox in export files",
        description="Views: events (one row per audit record), messages (one row per record and "
        "message), sessions (one row per SessionId), exposure (one row per message read, per "
        "synced folder and per throttled, unaudited 24 hours) and mailboxes (one row per mailbox, "
        "the most suspicious first: non-owner accesses, then synced folders, then throttled "
        "windows, then records). Times are UTC; a date as --to includes that whole day. --ip, "
        "--session and --exclude-ip narrow every view. With --input the mailbox may be left out "
        "(every mailbox in the files) and the range defaults to the whole of the files.",
    )
    rep.add_argument(
        "mailbox",
        nargs="?",
        help="mailbox UPN or GUID (or, with --by actor, the accessing user); optional with "
        "--input: without it, every mailbox in the files",
    )
    rep.add_argument(
        "--from",
        dest="from_",
        metavar="WHEN",
        help="start (ISO date or date-time, UTC); default: 7 days before --to (with --input: the "
        "first record of the files)",
    )
    rep.add_argument(
        "--to",
        metavar="WHEN",
        help="end (ISO date or date-time, UTC); default: now (with --input: the last record of the files)",
    )
    rep.add_argument("--view", choices=CLI_VIEWS, default="events")
    rep.add_argument(
        "--format",
        choices=FORMATS,
        default="csv",
        help="xlsx: one workbook with a sheet per view (needs -o FILE); html: one self-contained "
        "page with the summary, a timeline and every view (--view is ignored for both)",
    )
    rep.add_argument(
        "--by",
        choices=("mailbox", "actor"),
        default="mailbox",
        help="mailbox: access to this mailbox; actor: access by this user anywhere",
    )
    rep.add_argument(
        "--ip",
        action="append",
        default=[],
        metavar="IP",
        help="only records from this client IP or CIDR range (repeatable or comma-separated)",
    )
    rep.add_argument(
        "--session",
        action="append",
        default=[],
        metavar="ID",
        help="only records of this SessionId (repeatable or comma-separated)",
    )
    rep.add_argument(
        "--exclude-ip",
        action="append",
        default=[],
        metavar="IP",
        help="leave out records from this client IP or CIDR range, e.g. the owner's office "
        "(repeatable or comma-separated)",
    )
    rep.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    rep.add_argument(
        "--input",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="read these export files directly instead of storage",
    )
    _add_workers(rep)
    rep.set_defaults(handler=cmd_report)
    _add_scope(commands)
    return parser


def _add_scope(commands: Any) -> None:
    sco = commands.add_parser(
        "scope",
        help="who else? every mailbox one IP, network, app, session or actor touched",
        description="One row per mailbox: Mailbox, FirstAccess, LastAccess, Records, Messages (the sum "
        "of the records' MessageCount: a message read in two records counts twice), SyncedFolders, "
        "Sessions. From the ContextIndex in storage (one partition query), or with --input from export "
        "files. --view mailboxes (no context) is the triage view of every mailbox. Days are UTC.",
    )
    context = sco.add_mutually_exclusive_group()
    context.add_argument("--ip", metavar="IP", help="one client address")
    context.add_argument("--network", metavar="NET", help="a /24 (IPv4) or /48 (IPv6), or an address in it")
    context.add_argument("--app", metavar="ID", help="an application id (ClientAppId, else AppId)")
    context.add_argument("--session", metavar="ID", help="a SessionId")
    context.add_argument("--actor", metavar="UPN", help="the accessing user")
    sco.add_argument("--view", choices=("scope", "mailboxes"), default="scope")
    sco.add_argument("--from", dest="from_", metavar="DAY", help="first day (ISO date, UTC); default: 7 days "
                     "before --to (with --input: the first record of the files)")  # fmt: skip
    sco.add_argument(
        "--to", metavar="DAY", help="last day, included; default: today (with --input: the last record)"
    )
    sco.add_argument("--format", choices=("csv", "json", "html"), default="csv")
    sco.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    sco.add_argument(
        "--input", nargs="+", type=Path, metavar="FILE", help="read these export files instead of storage"
    )
    _add_workers(sco)
    sco.set_defaults(handler=cmd_scope)


def _workers(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of processes, at least 1, got {text!r}")
    return int(text)


def _add_workers(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="with --input: processes that read the files at once (default: one per core); "
        "a file smaller than 32 MiB is read by one",
    )


def _stdout_as_a_file() -> None:
    """stdout written as `report -o` writes its file, on every platform: UTF-8, line ends untouched.

    Left as it is, Windows encodes a redirected stdout in the ANSI code page, so a subject in
    Cyrillic or CJK, or a repaired U+FFFD, would stop a report with UnicodeEncodeError
    (https://docs.python.org/3/library/sys.html#sys.stdout), and text mode would turn each CR LF
    row end of a CSV report into CR CR LF (https://docs.python.org/3/library/csv.html#csv.writer).
    """
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8", newline="")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _stdout_as_a_file()
    args = build_parser().parse_args(argv)
    logsetup.configure_cli(verbose=args.verbose)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # here, not at exit: a reader gone by now is answered below
        return code
    except RequestError as problem:
        print(f"mia: {problem.message}", file=sys.stderr)
        return ExitCode.USAGE
    except SettingsError as problem:
        print(f"mia: configuration: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    except (OSError, readers.UnknownFormat) as problem:
        if isinstance(problem, BrokenPipeError) and stdout_reader_gone():
            discard_stdout()
            return ExitCode.OUTPUT_CLOSED
        print(f"mia: {problem}", file=sys.stderr)
        return ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
