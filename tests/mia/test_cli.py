"""The `mia` command line: help, import errors, report argument errors, and the installed script."""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from mia import cli
from shared.ingest import pipeline
from shared.model.event import PROVENANCE_COLUMNS
from shared.reports.assemble import WORKBOOK_VIEWS
from shared.reports.views import VIEWS
from shared.storage import Storage
from simulator import FaultConfig, Simulator, SimulatorConfig
from tests.helpers import ROOT, SAMPLE, blob_names, full_scan, parse_csv, records_for
from tests.ipcontext.mmdb_files import write_mmdb
from tests.reports.xlsx import assert_sheet_matches, assert_workbook_is_safe

pytestmark = pytest.mark.integration

MIA = Path(sys.executable).with_name("mia")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as exit_:  # argparse: --help and usage errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_mia_help_exits_0_and_names_the_commands_and_storage_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "--help")

    assert code == 0
    for word in ("import", "process", "report", "--input", "AzureWebJobsStorage", "--format json"):
        assert word in out


def test_mia_report_help_exits_0_and_lists_views_formats_and_scopes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "report", "--help")

    assert code == 0
    views = "{events,messages,sessions,exposure,mailboxes}"
    words = (views, "{csv,json,xlsx,html}", "{mailbox,actor}", "--from", "--to")
    for word in (*words, "--input", "--ip", "--session", "--exclude-ip", "UTC"):
        assert word in out


def test_mia_import_help_lists_every_accepted_export_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "import", "--help")

    assert code == 0
    flat = " ".join(out.split())
    formats = (
        "Management Activity API",
        "JSON Lines",
        "Purview",
        "Search-UnifiedAuditLog",
        "Graph",
        "Sentinel",
    )
    for name in formats:
        assert name in flat


def test_mia_import_of_a_non_export_file_exits_1_with_a_clear_message(
    function_env: Storage, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes, not an audit export\n", encoding="utf-8")

    code, out, err = _run(capsys, "import", str(notes))

    assert code == 1
    assert out == "imported 0 of 1 files (0 records): 0 newly stored, 0 already stored, 1 failed\n"
    assert err.startswith(f"{notes}: not a recognised audit export: expected a Management Activity API")
    assert "Traceback" not in err
    assert blob_names(function_env) == []


def test_mia_import_stores_the_good_files_and_reports_the_bad_one(
    function_env: Storage, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    binary = tmp_path / "image.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))

    code, out, err = _run(capsys, "import", str(binary), str(SAMPLE), str(tmp_path / "absent.csv"))

    assert code == 1
    assert out.startswith(f"{SAMPLE}: csv-auditdata, 67 records, stored as audit-raw/import/")
    assert f"{binary}: not a recognised audit export" in err
    assert f"{tmp_path / 'absent.csv'}: " in err
    assert len(blob_names(function_env)) == 1


def test_mia_import_then_process_then_report_from_storage(
    function_env: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "import", str(SAMPLE))[0] == 0
    code, out, _ = _run(capsys, "process")
    assert code == 0
    assert out.splitlines()[-1].startswith(
        "processed 1 blobs: 67 records, 57 MailItemsAccessed (56 new rows;"
    )
    assert len(full_scan(function_env.mailbox_access)) == 56

    code, out, _ = _run(capsys, "report", "dave@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20")

    assert code == 0
    rows = parse_csv(out)
    assert len(rows) == 2
    assert rows[1][rows[0].index("RecordId")] == records_for("dave@contoso.com")[0]["Id"]


SENTINEL = ROOT / "tests" / "parse" / "fixtures" / "sentinel"


def test_mia_import_then_process_of_sentinel_exports_adds_no_row_for_a_record_already_stored(
    function_env: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(capsys, "import", str(SENTINEL / "officeactivity-export.csv"))
    assert code == 0, err
    assert out.startswith(f"{SENTINEL / 'officeactivity-export.csv'}: sentinel-csv, 3 records, stored as ")
    code, out, _ = _run(capsys, "process")
    assert code == 0
    assert out.splitlines()[-1].startswith("processed 1 blobs: 3 records, 2 MailItemsAccessed (2 new rows;")
    before = full_scan(function_env.mailbox_access)

    for other in ("auditdata-same-records.json", "officeactivity-export.json"):
        assert _run(capsys, "import", str(SENTINEL / other))[0] == 0
    code, out, _ = _run(capsys, "process")

    assert code == 0
    assert out.splitlines()[-1].startswith("processed 2 blobs: 6 records, 4 MailItemsAccessed (0 new rows;")
    assert full_scan(function_env.mailbox_access) == before  # first copy wins, no conflict marked
    assert len(blob_names(function_env)) == 3  # every file kept as evidence
    assert list(function_env.record_conflicts.client.list_entities()) == []
    code, out, err = _run(capsys, "verify")
    assert code == 0, out + err  # each row re-read from its Sentinel export says what the row says


POWERSHELL = ROOT / "tests" / "parse" / "fixtures" / "powershell"


def test_mia_import_of_a_depth_truncated_powershell_export_warns_and_keeps_rows_without_messages(
    function_env: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    shallow = POWERSHELL / "auditdata-depth2.json"
    code, out, err = _run(capsys, "import", str(shallow))
    assert code == 0, err
    assert out.startswith(f"{shallow}: powershell-shallow, 4 records, stored as ")
    assert f"{shallow}: warning: message identifiers were lost" in out
    assert "ConvertTo-Json -Depth 10" in out
    [blob] = blob_names(function_env)
    metadata = function_env.blobs.get_blob_client("audit-raw", blob).get_blob_properties().metadata
    assert metadata["format"] == "powershell-shallow"
    assert "-Depth 10" in metadata["warning"]

    code, out, _ = _run(capsys, "process")

    assert code == 0
    assert out.splitlines()[-1].startswith("processed 1 blobs: 4 records, 3 MailItemsAccessed (3 new rows;")
    assert "warning: 2 records: message identifiers were lost" in out
    rows = {row["RecordId"]: row for row in full_scan(function_env.mailbox_access)}
    bind = rows["7d3c1e0a-5b1f-4a8e-9c2d-3e4f5a6b7c81"]
    assert (bind["Access"], json.loads(bind["Folders"])) == ("Bind", ["Inbox"])
    assert json.loads(bind["Repaired"]) == ["Folders[0].FolderItems"]
    assert function_env.mailbox_access.from_entity(bind).items == ()
    assert list(function_env.message_index.client.list_entities()) == []  # no message id invented

    assert _run(capsys, "import", str(POWERSHELL / "auditdata-full-depth.json"))[0] == 0
    code, out, _ = _run(capsys, "process")  # the same records whole: they say more, not otherwise
    assert code == 0
    assert out.splitlines()[-1].startswith("processed 1 blobs: 4 records, 3 MailItemsAccessed (0 new rows;")
    assert list(function_env.record_conflicts.client.list_entities()) == []


def test_mia_report_from_an_audit_data_export_and_a_sentinel_export_lists_each_record_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    audit_data, exported = SENTINEL / "auditdata-same-records.json", SENTINEL / "officeactivity-export.csv"
    changed = tmp_path / "changed.csv"
    changed.write_bytes(exported.read_bytes().replace(b"203.0.113.77", b"203.0.113.78"))
    args = ["report", "alice@contoso.com", "--format", "json", "--input", str(audit_data)]

    code, out, err = _run(capsys, *args, str(exported), str(SENTINEL / "officeactivity-export.json"))
    assert code == 0, err
    rows = json.loads(out)
    assert [(row["RecordId"], row["SourceBlob"], row["Conflict"]) for row in rows] == [
        ("7d3c1e0a-5b1f-4a8e-9c2d-3e4f5a6b7c81", str(audit_data), False),
        ("a41e9b62-3c7d-4f08-b5e1-92d6c0f3e4a7", str(audit_data), False),
    ]

    code, out, err = _run(capsys, *args, str(changed))  # the same Id saying something else
    assert code == 0, err
    assert [(row["ClientIP"], row["Conflict"]) for row in json.loads(out)] == [
        ("198.51.100.23", False),
        ("203.0.113.77", True),
    ]


def test_a_sentinel_copy_lacking_only_the_operation_count_is_no_conflict(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The Management API's records carry OperationCount; OfficeActivity has no column for it.
    counted = json.loads((SENTINEL / "auditdata-same-records.json").read_text(encoding="utf-8"))
    for record in counted:
        record["OperationCount"] = 1
    collected = tmp_path / "collected.json"
    collected.write_text(json.dumps(counted), encoding="utf-8")
    exported = SENTINEL / "officeactivity-export.csv"

    for files in ([collected, exported], [exported, collected]):
        code, out, err = _run(
            capsys, "report", "alice@contoso.com", "--format", "json", "--input", *map(str, files)
        )
        assert code == 0, err
        rows = json.loads(out)
        assert len(rows) == 2
        assert {row["Conflict"] for row in rows} == {False}
        assert {row["SourceBlob"] for row in rows} == {str(files[0])}  # the first copy wins


def test_mia_report_reads_an_export_the_same_with_or_without_its_byte_order_mark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exported = SAMPLE.read_bytes()
    assert exported.startswith(codecs.BOM_UTF8)  # as Purview writes it
    stripped = tmp_path / "no-bom.csv"
    stripped.write_bytes(exported.removeprefix(codecs.BOM_UTF8))
    args = ["report", "alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20", "--view", "messages"]

    code, with_bom, _ = _run(capsys, *args, "--input", str(SAMPLE))
    assert code == 0
    code, without, _ = _run(capsys, *args, "--input", str(stripped))

    assert code == 0
    assert len(parse_csv(with_bom)) > 2
    assert _without_provenance(parse_csv(without)) == _without_provenance(parse_csv(with_bom))


def _without_provenance(rows: list[list[str]]) -> list[list[str]]:
    """The rows without the columns naming the file read and its SHA-256, which differ by design."""
    header = rows[0]
    kept = [n for n, name in enumerate(header) if name not in PROVENANCE_COLUMNS]
    assert len(kept) < len(header)
    return [[row[n] for n in kept] for row in rows]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "mia: 'from' must be an ISO 8601 date or date-time in UTC"),
        (["--to", "2026-13-45"], "mia: 'to' must be an ISO 8601 date or date-time in UTC"),
        (["--from", "2026-11-20", "--to", "2026-11-16"], "mia: 'from' must be earlier than 'to'"),
        (["--to", "9999-12-31"], "mia: 'from' and 'to' must fall between 2015-01-01 and tomorrow"),
        (["--from", "2014-06-01", "--to", "2014-06-02"], "mia: 'from' must fall between 2015-01-01"),
        (
            ["--from", "2015-01-01", "--to", "2026-11-01"],
            "mia: the range from 'from' to 'to' may span at most",
        ),
    ],
)
def test_mia_report_with_a_bad_date_exits_2_with_the_message(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, "report", "alice@contoso.com", *args, "--input", str(SAMPLE))

    assert code == 2
    assert out == ""
    assert err.startswith(message)
    assert "Traceback" not in err


def test_mia_report_of_an_invalid_mailbox_exits_2_with_the_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = _run(capsys, "report", "alice' or 1 eq 1", "--input", str(SAMPLE))

    assert code == 2
    assert err.startswith("mia: the mailbox must be a user principal name")


def _readme_report_examples() -> list[str]:
    """The `mia report` lines of the README's first shell block under "Using `mia`", in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    using = readme[readme.index("## Using `mia`") :]
    block = re.search(r"```sh\n(.*?)```", using, re.DOTALL)
    assert block is not None
    return [line for line in block.group(1).splitlines() if line.startswith("mia report ")]


def test_the_readmes_first_examples_on_the_bundled_sample_print_non_empty_reports(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    examples = _readme_report_examples()
    on_the_sample = [line for line in examples if "samples/contoso-purview-export.csv" in line]
    assert on_the_sample, "the README's first examples run on the bundled sample"
    assert examples[: len(on_the_sample)] == on_the_sample
    monkeypatch.chdir(ROOT)  # the README's paths are the clone's
    for line in on_the_sample:
        argv = shlex.split(line, comments=True)[1:]
        code, out, err = _run(capsys, *argv)

        assert code == 0, f"{line}: {err}"
        rows = parse_csv(out)
        assert len(rows) > 1, f"{line}: an empty report"


def test_mia_report_without_a_mailbox_or_input_exits_2_saying_storage_needs_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = _run(capsys, "report", "--view", "sessions")

    assert (code, out) == (2, "")
    assert err.startswith("mia: give the mailbox")
    assert "a report from storage is of one mailbox" in err
    assert "--input" in err


def test_mia_report_by_actor_of_files_without_the_user_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "report", "--by", "actor", "--input", str(SAMPLE))

    assert code == 2
    assert err.startswith("mia: with --by actor, give the user")


def test_mia_help_names_the_triage_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "--help")

    assert code == 0
    assert "mia report --input export.csv --view mailboxes" in out


def test_mia_report_with_an_unknown_view_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "report", "alice@contoso.com", "--view", "everything")

    assert code == 2
    assert "invalid choice: 'everything'" in err


def test_the_installed_mia_script_reports_from_a_file_without_storage(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}
    out_file = tmp_path / "alice.csv"

    done = subprocess.run(
        [str(MIA), "report", "alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20",
         "--view", "sessions", "-o", str(out_file), "--input", str(SAMPLE)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert done.stderr == f"5 sessions rows written to {out_file}\n"
    assert len(parse_csv(out_file.read_text(encoding="utf-8"))) == 6
    assert out_file.read_bytes().startswith(codecs.BOM_UTF8 + b'"')


# Excel opens a UTF-8 CSV right only when it starts with a byte-order mark (Microsoft Support,
# "Opening CSV UTF-8 files correctly in Excel":
# https://support.microsoft.com/en-us/office/opening-csv-utf-8-files-correctly-in-excel-8a935af5-3416-4edd-ba7e-3dfd2bc4a032);
# JSON never has one (RFC 8259 section 8.1).
@pytest.mark.parametrize(("fmt", "first_bytes"), [("csv", codecs.BOM_UTF8 + b'"'), ("json", b"[")])
@pytest.mark.parametrize("destination", ["file", "stdout"])
def test_the_installed_mia_script_starts_a_csv_report_with_one_byte_order_mark_and_json_with_none(
    tmp_path: Path, fmt: str, first_bytes: bytes, destination: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}
    out_file = tmp_path / f"alice.{fmt}"
    output = ["-o", str(out_file)] if destination == "file" else []

    done = subprocess.run(
        [str(MIA), "report", "alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20",
         "--view", "messages", "--format", fmt, *output, "--input", str(SAMPLE)],
        env=env, cwd=ROOT, capture_output=True, timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    body = out_file.read_bytes() if destination == "file" else done.stdout
    assert body.startswith(first_bytes)
    assert body.count(codecs.BOM_UTF8) == (fmt == "csv")


def test_the_installed_mia_script_without_storage_settings_exits_2_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AzureWebJobsStorage")}

    done = subprocess.run(
        [str(MIA), "import", str(SAMPLE)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.startswith("mia: configuration: ")
    assert "AzureWebJobsStorage" in done.stderr


def test_mia_report_adds_the_ip_columns_from_the_file_ip_database_path_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    asn = write_mmdb(tmp_path / "ipinfo_lite.mmdb", "ipinfo_lite", {"185.220.101.0/24": {"asn": "AS208294"}})
    monkeypatch.setenv("IP_DATABASE_PATH", str(asn))
    args = ["alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20", "--format", "json"]
    code, out, err = _run(capsys, "report", *args, "--input", str(SAMPLE))
    assert code == 0, err
    rows = json.loads(out)
    attacker = [row for row in rows if row["ClientIP"] == "185.220.101.45"]
    assert attacker
    assert {(row["ClientASN"], row["ClientCountry"], row["ClientNetwork"]) for row in attacker} == {
        ("AS208294", "DE", "public")
    }
    # The owner's addresses in the sample are documentation ranges (RFC 5737, RFC 3849).
    others = {(row["ClientIP"], row["ClientASN"], row["ClientNetwork"]) for row in rows} - {
        ("185.220.101.45", "AS208294", "public")
    }
    assert others == {
        ("203.0.113.10", "", "reserved"),
        ("203.0.113.22", "", "reserved"),
        ("2001:db8:10::5", "", "reserved"),
    }


def test_mia_report_with_an_ip_database_path_that_is_missing_exits_2_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("IP_DATABASE_PATH", str(tmp_path / "GeoLite2-ASN.mmdb"))
    code, _, err = _run(capsys, "report", "alice@contoso.com", "--input", str(SAMPLE))
    assert code == 2
    assert "IP_DATABASE_PATH" in err


def test_mia_report_writes_every_view_of_an_export_to_one_workbook(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scope = ["alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20", "--input", str(SAMPLE)]
    out = tmp_path / "alice.xlsx"

    code, stdout, stderr = _run(capsys, "report", *scope, "--format", "xlsx", "-o", str(out))

    assert (code, stdout) == (0, "")
    assert stderr.startswith(f"workbook written to {out}: ")
    book = load_workbook(out)
    assert book.sheetnames == list(WORKBOOK_VIEWS)
    for view in WORKBOOK_VIEWS:
        code, text, _ = _run(capsys, "report", *scope, "--view", view, "--format", "json")
        assert code == 0
        expected = json.loads(text)
        assert expected, view
        assert_sheet_matches(book[view], VIEWS[view][0], expected)
    assert_workbook_is_safe(out.read_bytes())


def test_mia_report_refuses_a_workbook_to_standard_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = _run(
        capsys, "report", "alice@contoso.com", "--input", str(SAMPLE), "--format", "xlsx"
    )

    assert (code, stdout) == (2, "")
    assert "--format xlsx writes a binary workbook: name the file with -o FILE.xlsx" in stderr


def test_mia_report_workbook_carries_the_ip_columns_of_the_file_ip_database_path_names(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    lite = {"185.220.101.0/24": {"asn": "AS208294", "as_name": "=cmd|' /C calc'!A0"}}
    monkeypatch.setenv("IP_DATABASE_PATH", str(write_mmdb(tmp_path / "lite.mmdb", "ipinfo_lite", lite)))
    out = tmp_path / "alice.xlsx"
    scope = ["alice@contoso.com", "--from", "2026-11-16", "--to", "2026-11-20", "--input", str(SAMPLE)]
    code, _, err = _run(capsys, "report", *scope, "--format", "xlsx", "-o", str(out))
    assert code == 0, err
    sessions = load_workbook(out)["sessions"]
    header = [cell.value for cell in sessions[1]]
    values = [
        dict(zip(header, (cell.value for cell in row), strict=True)) for row in sessions.iter_rows(min_row=2)
    ]
    attacker = [row for row in values if row["ClientIPs"] == "185.220.101.45"]
    assert attacker
    assert {(row["ClientCountry"], row["ClientASN"], row["ClientNetwork"]) for row in attacker} == {
        ("DE", "AS208294", "public")
    }
    assert_workbook_is_safe(out.read_bytes())  # the organisation name from the file is not a formula


def test_mia_report_writes_the_html_page_to_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "alice.html"
    args = [
        "report",
        "alice@contoso.com",
        "--from",
        "2026-11-16",
        "--to",
        "2026-11-20",
        "--input",
        str(SAMPLE),
    ]

    code, _, err = _run(capsys, *args, "--format", "html", "-o", str(target))

    assert code == 0
    assert err.strip() == f"43 records in the HTML report written to {target}"
    page = target.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<g class="lane') == len(parse_csv(_run(capsys, *args, "--view", "sessions")[1])) - 1


def test_mia_detect_input_prints_the_attackers_new_context_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.detect import scenario

    export = tmp_path / "export.json"
    export.write_bytes(scenario.blob(scenario.routine() + scenario.attack()))
    code, out, _ = _run(capsys, "detect", "--input", str(export), "--format", "json")
    assert code == 0
    [found] = json.loads(out)
    assert found["type"] == "mailbox.new_context"
    assert (found["mailbox"], found["SessionId"], found["severity"]) == (scenario.ALICE, "s-evil", "high")
    assert found["new"][:4] == ["app", "client", "ip", "network"]
    assert (found["firstSeen"], found["records"]) == ("2026-11-20T10:00:00Z", 5)
    code, out, _ = _run(capsys, "detect", "--input", str(export), "--from", "2026-11-21")
    assert (code, json.loads(out)) == (0, [])


def test_mia_detect_csv_neutralises_attacker_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.detect import scenario

    hostile = [{**record, "SessionId": '=HYPERLINK("http://x")'} for record in scenario.attack()]
    export = tmp_path / "export.json"
    export.write_bytes(scenario.blob(scenario.routine() + hostile))
    code, out, _ = _run(capsys, "detect", "--input", str(export), "--format", "csv")
    assert code == 0
    header, row = parse_csv(out)
    assert row[header.index("SessionId")] == '\'=HYPERLINK("http://x")'
    assert row[header.index("new")].startswith("app; client; ip; network")


def _without_source_blob(body: str) -> list[dict[str, object]]:
    return [{k: v for k, v in row.items() if k != "SourceBlob"} for row in json.loads(body)]


def test_mia_scope_answers_the_same_from_storage_and_from_the_export_file(
    function_env: Storage, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(capsys, "import", str(SAMPLE))[0] == 0
    assert _run(capsys, "process")[0] == 0
    days = ("--from", "2026-11-01", "--to", "2026-11-30", "--format", "json")

    for context in (("--ip", "185.220.101.45"), ("--network", "185.220.101.0/24"), ("--view", "mailboxes")):
        code, stored, _ = _run(capsys, "scope", *context, *days)
        assert code == 0
        code, from_file, _ = _run(capsys, "scope", *context, *days, "--input", str(SAMPLE))
        assert code == 0
        # The same rows; only SourceBlob names where each copy was read (raw blob, or the file).
        assert _without_source_blob(stored) == _without_source_blob(from_file)
        assert json.loads(stored)  # the sample's attacker address touched mailboxes
    rows = json.loads(_run(capsys, "scope", "--ip", "185.220.101.45", *days)[1])
    assert sum(row["Records"] for row in rows) == sum(
        1 for row in full_scan(function_env.mailbox_access) if row.get("ClientIP") == "185.220.101.45"
    )


def test_mia_scope_with_two_contexts_or_a_bad_day_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(
        capsys, "scope", "--ip", "203.0.113.1", "--from", "2026-11-01T08:00", "--input", str(SAMPLE)
    )
    assert code == 2
    assert "'from' must be an ISO date" in err
    assert _run(capsys, "scope", "--ip", "203.0.113.1", "--app", "x", "--input", str(SAMPLE))[0] == 2


# -- mia backfill ------------------------------------------------------------------------------


def test_mia_backfill_killed_part_way_and_run_again_stores_every_record_once(
    azurite: str, storage: Storage, tmp_path: Path
) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    config = SimulatorConfig(
        seed=3,
        mailboxes=1,
        days=2,
        history_days=3,
        now=now,
        faults=FaultConfig.none(),
        audit_query_page_size=50,
    )
    with Simulator(config) as sim:
        env = {**os.environ, **sim.settings_env(), "AzureWebJobsStorage": azurite}
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            env.pop(name, None)
        # The history only (older than the Management API window), a few pages of it.
        command = [str(MIA), "backfill", "--from", "2026-11-14", "--to", "2026-11-17"]
        killed = subprocess.Popen(
            command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        assert killed.stderr is not None
        for line in killed.stderr:
            if "page 1 stored" in line:
                killed.kill()
                break
        killed.wait(timeout=60)
        assert killed.returncode != 0
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert " done: " in done.stdout

        pipeline.drain(storage)
        ids = [row["RecordId"] for row in storage.mailbox_access.client.list_entities(select=["RecordId"])]
        assert len(ids) == len(set(ids))
        assert sorted(ids) == sim.audit_log_ids(
            datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)
        )


def test_mia_backfill_from_a_workspace_stores_its_history_and_without_one_says_what_is_missing(
    azurite: str, storage: Storage
) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    config = SimulatorConfig(seed=3, mailboxes=1, days=2, history_days=3, now=now, faults=FaultConfig.none())
    with Simulator(config) as sim:
        env = {
            **os.environ,
            **sim.settings_env(),
            "AzureWebJobsStorage": azurite,
            "LOG_ANALYTICS_ENDPOINT": sim.base_url,
        }
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            env.pop(name, None)
        command = [str(MIA), "backfill", "--from", "2026-11-14", "--to", "2026-11-17", "--source", "sentinel"]
        missing = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        done = subprocess.run(
            [*command, "--workspace", sim.log_analytics_workspace_id],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert missing.returncode != 0
    assert "--workspace" in missing.stderr
    assert done.returncode == 0, done.stderr
    assert " done: " in done.stdout
    assert "audit-raw/backfill/sentinel/" in done.stdout
    pipeline.drain(storage)
    ids = [row["RecordId"] for row in storage.mailbox_access.client.list_entities(select=["RecordId"])]
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sim.audit_log_ids(
        datetime(2026, 11, 14, tzinfo=UTC), datetime(2026, 11, 18, tzinfo=UTC)
    )
