"""Evidence integrity end to end against Azurite: nothing lost, nothing overwritten, every row
traceable to the raw bytes (`mia verify`), odd text and numbers never breaking a mailbox."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from mia import cli
from shared.clients.activity_api import Content, ContentItem
from shared.collect import collector
from shared.ingest import pipeline, verify
from shared.model.message_info import SOURCE_GRAPH, MessageInfo
from shared.reports.views import EVENT_VIEW_COLUMNS
from shared.storage import RAW_CONTAINER, Storage, raw_store, tables
from shared.storage.tables import MailboxAccessTable
from tests.helpers import full_scan, mia_record, parse_csv, write_json_array

pytestmark = pytest.mark.integration

FROM, TO = "2026-11-17", "2026-11-19"
LONE_SURROGATE_SUBJECT = "Invoice \\ud83d paid"  # as .NET writes a string cut inside a pair


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Standard output of a command that must succeed."""
    code, out, err = _run(capsys, *argv)
    assert code == 0, err
    return out


def _bind(record_id: str, when: str, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return mia_record(when, record_id, Folders=[{"Path": "\\Inbox", "FolderItems": messages}], **extra)


def _message(n: int, subject: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"InternetMessageId": f"<{n:06d}.bulk@contoso.com>", "SizeInBytes": 10_000 + n}
    if subject:
        item["Subject"] = subject
    return item


def _with_lone_surrogate(path: Path) -> Path:
    records = [
        _bind("odd", "2026-11-18T08:00:00", [_message(1, "@@SUBJECT@@")]),
        mia_record("2026-11-18T09:00:00", "plain"),
    ]
    text = json.dumps(records).replace("@@SUBJECT@@", LONE_SURROGATE_SUBJECT)
    path.write_text(text, encoding="utf-8")
    return path


def _collected(storage: Storage, records: list[dict[str, Any]], content_id: str = "c1") -> str:
    """Store records as collection stores a Management API content blob; returns its blob name."""
    from datetime import UTC, datetime

    item = ContentItem(
        "Audit.Exchange", content_id, "https://x/c1", datetime(2026, 11, 18, 9, tzinfo=UTC), None
    )
    content = Content(json.dumps(records).encode(), len(records))
    return collector.store_content(storage, item, content)[0]


# --- 1. text that is not valid Unicode -------------------------------------------------------------


def test_a_lone_surrogate_subject_is_repaired_and_every_report_of_the_mailbox_works(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = _with_lone_surrogate(tmp_path / "content.json")
    assert _run(capsys, "import", str(export))[0] == 0
    assert _run(capsys, "process")[0] == 0

    for view in ("events", "messages", "sessions", "exposure"):
        for source in ([], ["--input", str(export)]):
            code, out, err = _run(
                capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO, "--view", view,
                "--format", "json", *source,
            )  # fmt: skip
            assert code == 0, err
            rows = json.loads(out)
            assert rows, (view, source)
    out = _ok(capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO, "--format", "json")
    odd = next(row for row in json.loads(out) if row["RecordId"] == "odd")
    assert "Invoice \ufffd paid" in odd["Messages"]
    assert odd["Repaired"] == "Folders[0].FolderItems[0].Subject"
    assert verify.verify(function_env).ok


# --- 2. every message of a huge Bind record ---------------------------------------------------------


def test_every_message_of_a_bind_record_listing_thousands_is_in_every_view(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    count = 12_000  # bulk reading through Graph: past one entity's 1 MiB (OverflowRows below)
    messages = [_message(n, "Payroll" if n % 2 else "") for n in range(count)]
    export = write_json_array(tmp_path / "bulk.json", [_bind("bulk", "2026-11-18T08:00:00", messages)])
    assert _run(capsys, "import", str(export))[0] == 0
    assert _run(capsys, "process")[0] == 0

    wanted = {item["InternetMessageId"] for item in messages}
    for source in ([], ["--input", str(export)]):
        code, out, _ = _run(
            capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO, "--view", "exposure",
            "--format", "json", *source,
        )  # fmt: skip
        assert code == 0
        exposed = {row["InternetMessageId"] for row in json.loads(out) if row["Kind"] == "Message"}
        assert exposed == wanted, source
        out = _ok(
            capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO, "--view", "messages", *source
        )
        assert len(parse_csv(out)) == count + 1
    [row] = [r for r in full_scan(function_env.mailbox_access) if r.get("RecordId") == "bulk"]
    assert row["OverflowRows"] > 0
    assert verify.verify(function_env).ok


# --- 3. numbers past Int32, and a command that poisons ---------------------------------------------


def test_a_size_past_int32_is_stored_and_reported_and_nothing_is_poisoned(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    big = {"InternetMessageId": "<pst@contoso.com>", "Subject": "Archive.pst", "SizeInBytes": 3_000_000_000}
    export = write_json_array(tmp_path / "big.json", [_bind("big", "2026-11-18T08:00:00", [big])])
    assert _run(capsys, "import", str(export))[0] == 0

    code, _, err = _run(capsys, "process")

    assert code == 0, err
    out = _ok(
        capsys,
        "report",
        "alice@contoso.com",
        "--from",
        FROM,
        "--to",
        TO,
        "--view",
        "exposure",
        "--format",
        "json",
    )
    assert [row["SizeInBytes"] for row in json.loads(out) if row["Kind"] == "Message"] == [3_000_000_000]


def test_mia_process_says_so_and_exits_4_when_a_message_ends_on_the_poison_queue(
    function_env: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    pointer = raw_store.RawPointer(blob="import/missing.gz", sha256="0" * 64, format="management-api")
    raw_store.enqueue_pointer(raw_store.content_queue(function_env.queues), pointer)

    code, _, err = _run(capsys, "process")

    assert code == 4
    assert "FAILED import/missing.gz: ResourceNotFoundError" in err
    assert "1 queue messages could not be processed and were moved to audit-content-poison" in err


# --- 4. imports never overwrite collected evidence ---------------------------------------------------


def test_an_import_of_the_same_record_with_other_content_never_replaces_the_collected_row(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    collected = mia_record("2026-11-18T09:00:00", "r1", ClientIPAddress="203.0.113.10")
    blob = _collected(function_env, [collected])
    pipeline.drain_queue(function_env)
    rewritten = {**collected, "ClientIPAddress": "198.51.100.99"}
    repeat = write_json_array(tmp_path / "repeat.json", [collected])
    other = write_json_array(tmp_path / "rewritten.json", [rewritten])
    assert _run(capsys, "import", str(repeat), str(other))[0] == 0
    assert _run(capsys, "process")[0] == 0

    [row] = [r for r in full_scan(function_env.mailbox_access) if r.get("RecordId") == "r1"]
    assert row["ClientIP"] == "203.0.113.10"
    assert row["SourceBlob"] == blob
    assert row["Conflict"] is True
    [conflict] = full_scan(function_env.record_conflicts)
    assert conflict["FirstSourceBlob"] == blob
    assert conflict["SourceBlob"] == raw_store.import_blob_name(raw_store.sha256_hex(other.read_bytes()))

    out = _ok(capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO)
    [header, line] = parse_csv(out)
    assert dict(zip(header, line, strict=True))["Conflict"] == "True"
    code, out, _ = _run(capsys, "verify")
    assert code == 0
    assert "1 conflicting copies recorded" in out
    assert f"first copy from {blob} kept" in out


def test_an_audit_subject_never_replaces_what_graph_found_but_fills_an_unanswered_row(
    storage: Storage,
) -> None:
    index = storage.message_index
    found = MessageInfo(subject="From Graph", sender="ceo@contoso.com", source=SOURCE_GRAPH)
    index.write("alice@contoso.com", {"<a@x>": found})
    index.write("alice@contoso.com", {"<b@x>": MessageInfo(source="unresolved:not-found")})

    index.record_subjects(
        "alice@contoso.com",
        {m: MessageInfo(subject="From audit", source="audit") for m in ("<a@x>", "<b@x>", "<c@x>")},
    )

    known = index.read("alice@contoso.com", ["<a@x>", "<b@x>", "<c@x>"])
    assert (known["<a@x>"].subject, known["<a@x>"].source) == ("From Graph", SOURCE_GRAPH)
    assert (known["<b@x>"].subject, known["<b@x>"].source) == ("From audit", "audit")
    assert (known["<c@x>"].subject, known["<c@x>"].source) == ("From audit", "audit")


# --- 5. provenance and mia verify -----------------------------------------------------------------------


def test_every_report_format_carries_each_rows_source(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = write_json_array(
        tmp_path / "two.json",
        [mia_record("2026-11-18T09:00:00", "a"), mia_record("2026-11-18T10:00:00", "b")],
    )
    result = pipeline.import_file(function_env, export)
    pipeline.drain_queue(function_env)

    out = _ok(capsys, "report", "alice@contoso.com", "--from", FROM, "--to", TO)
    header, *lines = parse_csv(out)
    assert tuple(header[-3:]) == ("SourceBlob", "SourceSha256", "SourceIndex")
    assert [line[-3:] for line in lines] == [
        [result.blob, result.sha256, "0"],
        [result.blob, result.sha256, "1"],
    ]
    for view in ("messages", "sessions", "exposure"):
        out = _ok(
            capsys,
            "report",
            "alice@contoso.com",
            "--from",
            FROM,
            "--to",
            TO,
            "--view",
            view,
            "--format",
            "json",
        )
        assert {row["SourceBlob"] for row in json.loads(out)} == {result.blob}, view
    out = _ok(
        capsys,
        "report",
        "alice@contoso.com",
        "--from",
        FROM,
        "--to",
        TO,
        "--format",
        "json",
        "--input",
        str(export),
    )
    assert [(row["SourceBlob"], row["SourceSha256"], row["SourceIndex"]) for row in json.loads(out)] == [
        (str(export), result.sha256, 0),
        (str(export), result.sha256, 1),
    ]
    assert list(json.loads(out)[0]) == list(EVENT_VIEW_COLUMNS)


def _tamper_blob(storage: Storage, name: str, data: bytes) -> None:
    """What only an attacker with delete rights (no WORM policy on Azurite) could do."""
    blob = storage.blobs.get_blob_client(RAW_CONTAINER, name)
    metadata = blob.get_blob_properties().metadata
    blob.delete_blob()
    blob.upload_blob(gzip.compress(data), metadata=metadata)


def test_mia_verify_finds_a_row_changed_in_storage_and_a_blob_changed_under_it(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [mia_record("2026-11-18T09:00:00", "a"), mia_record("2026-11-18T10:00:00", "b")]
    first = _collected(function_env, records, "c1")
    second = pipeline.import_file(
        function_env, write_json_array(tmp_path / "c.json", [mia_record("2026-11-18T11:00:00", "c")])
    )
    pipeline.drain_queue(function_env)
    code, out, _ = _run(capsys, "verify", "--json")
    assert code == 0
    assert json.loads(out)["rows_checked"] == 6  # three records, in MailboxAccess and ActorAccess
    assert json.loads(out)["blobs_verified"] == 2

    table = function_env.mailbox_access.client
    [row_a] = [r for r in full_scan(function_env.mailbox_access) if r["RecordId"] == "a"]
    table.update_entity(
        {"PartitionKey": row_a["PartitionKey"], "RowKey": row_a["RowKey"], "ClientIP": "10.0.0.1"}
    )
    _tamper_blob(function_env, second.blob, b"[]")

    code, out, _ = _run(capsys, "verify", "--mailbox", "alice@contoso.com", "--json")

    assert code == 5  # ExitCode.MISMATCH
    found = json.loads(out)
    problems = {detail["recordId"]: detail["problem"] for detail in found["mismatchDetails"]}
    assert problems["a"] == "the row does not match its ContentSha256"
    assert problems["c"].startswith("the source blob's content hashes to")
    assert "b" not in problems
    assert found["rows_checked"] == 3
    code, out, _ = _run(
        capsys,
        "verify",
        "--mailbox",
        "alice@contoso.com",
        "--from",
        "2026-11-18T09:30:00",
        "--to",
        "2026-11-18T10:00:00",
    )
    assert code == 0, out  # only b is in that range
    assert out.strip().endswith(
        "verified 1 rows against 1 raw blobs: 0 mismatches, 0 conflicting copies recorded"
    )
    assert first.startswith("Audit.Exchange/")


def test_mia_verify_names_a_row_whose_overflow_rows_are_gone(
    function_env: Storage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = [_message(n, "Payroll") for n in range(12_000)]
    pipeline.import_file(
        function_env,
        write_json_array(tmp_path / "bulk.json", [_bind("bulk", "2026-11-18T08:00:00", messages)]),
    )
    pipeline.drain_queue(function_env)
    table = function_env.mailbox_access.client
    [part, *_] = [r for r in full_scan(function_env.mailbox_access) if MailboxAccessTable.is_overflow_row(r)]
    table.delete_entity(part["PartitionKey"], part["RowKey"])

    result = verify.verify(function_env, "alice@contoso.com")

    assert [m.problem.startswith("the row cannot be read whole") for m in result.mismatches] == [True]


def test_a_report_seeing_a_records_subject_keeps_what_graph_found_in_the_index(storage: Storage) -> None:
    from datetime import UTC, datetime

    from shared.model.message_info import Observed
    from shared.settings import ResolutionSettings
    from shared.subjects.resolver import SubjectResolver

    index = storage.message_index
    found = MessageInfo(subject="From Graph", sender="ceo@contoso.com", source=SOURCE_GRAPH)
    index.write("alice@contoso.com", {"<a@x>": found})
    resolver = SubjectResolver(index, ResolutionSettings(), graph=None)
    seen = Observed("From audit", None, datetime(2026, 11, 18, tzinfo=UTC))

    answer = resolver.resolve({"alice@contoso.com": {"<a@x>": seen, "<b@x>": seen}}, None, lambda _: False)

    assert answer[("alice@contoso.com", "<a@x>")].subject == "From audit"  # what the record says
    known = index.read("alice@contoso.com", ["<a@x>", "<b@x>"])
    assert (known["<a@x>"].subject, known["<a@x>"].source) == ("From Graph", SOURCE_GRAPH)
    assert known["<b@x>"].source == "audit"


def test_a_subject_longer_than_a_table_property_is_cut_visibly_never_silently(storage: Storage) -> None:
    index = storage.message_index
    subject = "Q" * 20_000
    index.write("alice@contoso.com", {"<a@x>": MessageInfo(subject=subject, source=SOURCE_GRAPH)})

    kept = index.read("alice@contoso.com", ["<a@x>"])["<a@x>"].subject

    assert kept == "Q" * 15_960 + " [cut: 4040 more characters not kept]"
    assert len(kept) <= tables.MAX_TEXT
