"""The whole path fuzzed, bytes to report, against a real Azurite.

Arbitrary records shaped like real ones (tests/strategies.py) are written into export files of
every reader format, imported (`shared.pipeline.import_bytes`, or `mia import`), processed
(`shared.pipeline.drain_queue`) and reported for each mailbox in every view and format, through
the real `report_http` handler (following `Link` pages) and from the files (`mia report --input`).

The property, per drawn input, on empty storage:
- every file imports with all its records counted; nothing is unreadable or parked on the poison
  queue, and no exception escapes;
- MailboxAccess holds exactly one row per distinct (mailbox, record Id), ActorAccess one per Id;
- every view and format answers 200, over HTTP and from files: the events view lists each record
  Id once, the messages view each (record, message) once, the sessions view counts every record,
  and the exposure view has every InternetMessageId of the mailbox's records as one `Message` row
  (with SubjectSource `audit` when some record gives its subject), one `Folder` row per synced
  folder and one `Unaudited` row per throttled record.

MIA_FUZZ_EXAMPLES sets the number of inputs (default keeps the test inside the suite's budget).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings

from devtools.azurite import fresh_storage
from mia import cli
from shared import runtime
from shared.ingest import pipeline
from shared.storage import CONTENT_QUEUE, POISON_QUEUE, Storage, raw_store
from tests.helpers import parse_csv
from tests.strategies import FIRST_DAY, TODAY, AuditRecord, ExportFile, FuzzInput, fuzz_inputs

pytestmark = pytest.mark.functions

Handler = Callable[[func.HttpRequest], func.HttpResponse]
Row = dict[str, Any]

VIEWS = ("events", "messages", "sessions", "exposure")
FORMATS = ("csv", "json")
RANGE = {"from": FIRST_DAY.isoformat(), "to": TODAY.isoformat()}
PAGE_ROWS = "100"  # the smallest page the settings allow: large inputs run over several pages
MAX_PAGES = 200
# What the README promises for CSV: a cell starting like a formula gets a leading quote.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
EXTENSIONS = {"purview-csv": "csv", "export-csv": "csv", "jsonl": "jsonl", "graph-jsonl": "jsonl"}

FUZZ_SETTINGS = settings(
    max_examples=int(os.environ.get("MIA_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # storage is emptied by the test body for each input
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def shown(fmt: str, value: str) -> str:
    """A value as the report format writes it."""
    if fmt == "csv" and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


@dataclass
class Expected:
    """What one mailbox's report must hold, from the drawn records alone."""

    record_ids: list[str]
    message_rows: Counter[str]  # (record, distinct message) pairs, by InternetMessageId
    subjects: dict[str, bool]  # InternetMessageId -> some record gives its subject
    synced: set[str]
    throttled: int

    @classmethod
    def of(cls, records: list[AuditRecord]) -> Expected:
        subjects: dict[str, bool] = {}
        rows: Counter[str] = Counter()
        for record in records:
            rows.update(record.message_ids)
            for message in record.messages:
                key = message.internet_message_id
                subjects[key] = subjects.get(key, False) or message.has_subject
        return cls(
            record_ids=[record.record_id for record in records],
            message_rows=rows,
            subjects=subjects,
            synced={
                folder for record in records if record.access == "Sync" for folder in record.synced_folders
            },
            throttled=sum(record.throttled for record in records),
        )


def rows_of(fmt: str, body: str) -> list[Row]:
    if fmt == "json":
        rows = json.loads(body)
        assert isinstance(rows, list)
        return rows
    table = parse_csv(body)
    header = table[0]
    assert all(len(row) == len(header) for row in table[1:]), "a CSV row has the wrong number of cells"
    return [dict(zip(header, row, strict=True)) for row in table[1:]]


def check_view(view: str, fmt: str, rows: list[Row], expected: Expected, where: str) -> None:
    def ids(values: Any) -> Counter[str]:
        return Counter(shown(fmt, value) for value in values)

    if view == "events":
        got = Counter(row["RecordId"] for row in rows)
        assert got == ids(expected.record_ids), f"{where}: events are not each record Id once"
    elif view == "messages":
        got = Counter(row["InternetMessageId"] for row in rows)
        assert got == ids(expected.message_rows.elements()), f"{where}: messages view rows differ"
    elif view == "sessions":
        assert sum(int(row["Records"]) for row in rows) == len(expected.record_ids), f"{where}: sessions"
    else:
        check_exposure(fmt, rows, expected, where)


def check_exposure(fmt: str, rows: list[Row], expected: Expected, where: str) -> None:
    messages = [row for row in rows if row["Kind"] == "Message"]
    got = Counter(row["InternetMessageId"] for row in messages)
    want = Counter(shown(fmt, message_id) for message_id in expected.subjects)
    missing = sorted(set(want) - set(got))
    assert got == want, f"{where}: exposure messages differ; {len(missing)} missing, first {missing[:3]!r}"
    by_id = {row["InternetMessageId"]: row for row in messages}
    for message_id, has_subject in expected.subjects.items():
        if has_subject:
            row = by_id[shown(fmt, message_id)]
            assert row["Subject"] != "", f"{where}: {message_id!r} lost the subject a record gives"
            assert row["SubjectSource"] == "audit", f"{where}: {message_id!r} {row['SubjectSource']}"
    folders = {row["Folder"] for row in rows if row["Kind"] == "Folder"}
    assert folders == {shown(fmt, folder) for folder in expected.synced}, f"{where}: synced folders"
    unaudited = sum(row["Kind"] == "Unaudited" for row in rows)
    assert unaudited == expected.throttled, f"{where}: one Unaudited row per throttled record"


# --- the pipeline -------------------------------------------------------------------------------


def write_files(folder: Path, case: FuzzInput) -> list[tuple[ExportFile, Path]]:
    written = []
    for index, export in enumerate(case.files):
        path = folder / f"export-{index}.{EXTENSIONS.get(export.fmt, 'json')}"
        path.write_bytes(export.to_bytes())
        written.append((export, path))
    return written


def import_files(
    storage: Storage, files: list[tuple[ExportFile, Path]], capsys: pytest.CaptureFixture[str]
) -> None:
    for export, path in files:
        if export.import_with_cli:
            capsys.readouterr()
            code = cli.main(["import", str(path)])
            out, err = capsys.readouterr()
            assert code == 0, f"mia import {export.fmt}: {err}"
            assert f", {len(export.records)} records, " in out, f"records counted on import: {out}"
        else:
            result = pipeline.import_bytes(storage, path.read_bytes(), path.name)
            assert result.records == len(export.records), f"{export.fmt}: records counted on import"


def failures_logged(caplog: pytest.LogCaptureFixture) -> str:
    """The exceptions processing logged: what sent a message toward the poison queue."""
    failed = [r for r in caplog.records if r.name == "shared.ingest.pipeline" and r.exc_info]
    return "; ".join(f"{r.exc_info[1]!r}"[:300] for r in failed[:3] if r.exc_info)


def process(storage: Storage, files: list[tuple[ExportFile, Path]], caplog: pytest.LogCaptureFixture) -> None:
    results = pipeline.drain_queue(storage)
    poisoned = list(raw_store.content_queue(storage.queues, POISON_QUEUE).peek_messages(max_messages=32))
    assert not poisoned, f"{len(poisoned)} blobs on the poison queue: {failures_logged(caplog)}"
    assert not list(raw_store.content_queue(storage.queues, CONTENT_QUEUE).peek_messages()), "left queued"
    unreadable = [p for result in results for p in result.stats.malformed_positions]
    assert not unreadable, f"records counted unreadable at {unreadable[:5]}"
    assert sum(result.stats.records for result in results) == sum(len(e.records) for e, _ in files)


def check_rows(storage: Storage, case: FuzzInput) -> None:
    # The tables' own readers: a whole-table scan would also meet the overflow rows of long rows.
    mailbox_rows = storage.mailbox_access.rows_in(None, None, None)
    got = Counter((row["Mailbox"], row["RecordId"]) for row in mailbox_rows)
    want = Counter((record.mailbox, record.record_id) for record in case.accessed)
    assert got == want, f"MailboxAccess rows: missing {list(want - got)[:3]}, extra {list(got - want)[:3]}"
    actor_ids = storage.actor_access.record_ids()
    assert Counter(actor_ids) == Counter(r.record_id for r in case.accessed)


# --- the reports --------------------------------------------------------------------------------


def request(mailbox: str, params: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest(
        method="GET",
        url=f"http://localhost:7071/api/reports/{quote(mailbox, safe='@')}",
        route_params={"mailbox": mailbox},
        params=params,
        body=b"",
    )


def next_params(response: func.HttpResponse) -> dict[str, str] | None:
    link = response.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'<\?([^>]*)>; rel="next"', link)
    assert match, link
    return dict(parse_qsl(match.group(1), keep_blank_values=True, strict_parsing=True))


def http_pages(report_http: Handler, mailbox: str, params: dict[str, str]) -> Iterator[str]:
    """Every page of one report, following `Link`; each must be a 200."""
    following: dict[str, str] | None = params
    tokens: set[str] = set()
    for _ in range(MAX_PAGES):
        if following is None:
            return
        response = report_http(request(mailbox, following))
        body = response.get_body().decode("utf-8")
        assert response.status_code == 200, (
            f"{params} after {len(tokens)} pages: {response.status_code} {body[:300]}"
        )
        yield body
        following = next_params(response)
        if following is not None:
            assert following["after"] not in tokens, "the continuation token did not move on"
            tokens.add(following["after"])
    raise AssertionError(f"more than {MAX_PAGES} pages")


def check_http_reports(report_http: Handler, mailbox: str, expected: Expected) -> None:
    for view in VIEWS:
        for fmt in FORMATS:
            params = {**RANGE, "view": view, "format": fmt}
            rows = [row for body in http_pages(report_http, mailbox, params) for row in rows_of(fmt, body)]
            check_view(view, fmt, rows, expected, f"HTTP {view}/{fmt}")


def check_file_reports(
    capsys: pytest.CaptureFixture[str], mailbox: str, paths: list[Path], expected: Expected
) -> None:
    for view in VIEWS:
        for fmt in FORMATS:
            capsys.readouterr()
            argv = ["report", mailbox, "--from", RANGE["from"], "--to", RANGE["to"], "--view", view]
            code = cli.main([*argv, "--format", fmt, "--input", *map(str, paths)])
            out, err = capsys.readouterr()
            assert code == 0, f"mia report --input {view}/{fmt}: {err}"
            assert "unreadable" not in err, err
            check_view(view, fmt, rows_of(fmt, out), expected, f"--input {view}/{fmt}")


# pytest-timeout bounds the whole test, every example and the shrinking of a failure included.
@pytest.mark.timeout(max(180, 10 * FUZZ_SETTINGS.max_examples))
@FUZZ_SETTINGS
@given(case=fuzz_inputs())
def test_fuzz_every_record_from_bytes_to_every_report(
    case: FuzzInput,
    azurite: str,
    monkeypatch: pytest.MonkeyPatch,
    report_http: Handler,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", azurite)
    monkeypatch.setenv("REPORT_PAGE_ROWS", PAGE_ROWS)
    for name in ("TENANT_ID", "ALERT_WEBHOOK_URL", "RESOLVE_SUBJECTS"):  # no Graph, no webhook
        monkeypatch.delenv(name, raising=False)
    caplog.clear()
    caplog.set_level(logging.ERROR, logger="shared.ingest.pipeline")
    storage = fresh_storage(azurite)
    runtime.reset()
    files = write_files(tmp_path_factory.mktemp("fuzz"), case)

    import_files(storage, files, capsys)
    process(storage, files, caplog)
    check_rows(storage, case)
    for mailbox in case.mailboxes:
        expected = Expected.of(case.of(mailbox.key))
        check_http_reports(report_http, mailbox.key, expected)
        check_file_reports(capsys, mailbox.key, [path for _, path in files], expected)
