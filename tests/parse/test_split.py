"""shared/parse/split.py: the parts of an export, each read on its own, give exactly the records
the whole file gives, with the same positions; and a cut that is not a record start is caught."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.parse import readers, split
from shared.parse.normalize import RawRecord
from tests.helpers import write_json_array, write_json_lines, write_purview_export
from tests.records_factory import folder, folder_item, mail_items_accessed

pytestmark = pytest.mark.unit

# Cell text with what makes CSV hard to cut: quotes, commas and line breaks inside quoted fields.
CELL_TEXT = st.lists(st.sampled_from(['"', ",", "\n", "\r\n", "a", "é", " ", "{", "}"]), max_size=12).map(
    "".join
)


def record(number: int, subject: str) -> dict[str, object]:
    return mail_items_accessed(
        Id=f"record-{number:05d}",
        Folders=[folder("\\Inbox", folder_item(f"<m{number}@contoso.com>", subject=subject))],
    )


def positions(records: list[RawRecord]) -> list[tuple[str, object, str | None]]:
    return [(r.position, r.value, r.error) for r in records]


def whole_records(path: Path) -> list[RawRecord]:
    with path.open("rb") as handle:
        return list(readers.read_stream(handle))


def part_records(parts: list[split.Part]) -> tuple[list[RawRecord], list[int | None]]:
    """Every part's records in order, and where each part's reading stopped."""
    found: list[RawRecord] = []
    stops: list[int | None] = []
    for part in parts:
        with split.opened(part) as stream:
            records = split.PartRecords(part, stream)
            found.extend(records)
            stops.append(records.stopped_at)
    return found, stops


def assert_proved(parts: list[split.Part], stops: list[int | None]) -> None:
    assert stops[:-1] == [part.start for part in parts[1:]]
    assert stops[-1] is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cells=st.lists(st.tuples(CELL_TEXT, CELL_TEXT, st.booleans()), min_size=1, max_size=30),
    count=st.integers(min_value=2, max_value=7),
    min_bytes=st.integers(min_value=1, max_value=400),
)
def test_csv_parts_read_on_their_own_give_the_whole_files_records_and_positions(
    tmp_path: Path, cells: list[tuple[str, str, bool]], count: int, min_bytes: int
) -> None:
    path = tmp_path / "export.csv"
    write_purview_export(
        path, [(record(n, subject), extra, indented) for n, (subject, extra, indented) in enumerate(cells)]
    )

    parts = split.cut(path, count, min_bytes)
    found, stops = part_records(parts)

    assert positions(found) == positions(whole_records(path))
    assert_proved(parts, stops)
    assert all(part.format == readers.CSV_AUDITDATA for part in parts)


def test_a_large_csv_is_cut_into_as_many_parts_as_asked(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    write_purview_export(path, [(record(n, f"subject {n}\nline two"), "x", n % 3 == 0) for n in range(300)])

    parts = split.cut(path, 3, 1024)
    found, stops = part_records(parts)

    assert len(parts) == 3
    assert parts[1].lines > 0
    assert parts[1].head > 0
    assert positions(found) == positions(whole_records(path))
    assert_proved(parts, stops)


def test_json_lines_are_cut_at_line_starts(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    write_json_lines(path, [record(n, f"s{n}") for n in range(200)])

    parts = split.cut(path, 4, 512)
    found, stops = part_records(parts)

    assert len(parts) == 4
    assert positions(found) == positions(whole_records(path))
    assert_proved(parts, stops)


def test_a_blank_line_is_never_a_parts_start(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(record(n, "s")) + "\n\n\n" for n in range(100)), encoding="utf-8")

    parts = split.cut(path, 5, 256)

    data = path.read_bytes()
    assert len(parts) == 5
    assert all(data[part.start : part.start + 1] == b"{" for part in parts[1:])
    found, stops = part_records(parts)
    assert positions(found) == positions(whole_records(path))
    assert_proved(parts, stops)


def test_small_files_json_arrays_and_utf16_text_are_one_part(tmp_path: Path) -> None:
    small = tmp_path / "small.jsonl"
    write_json_lines(small, [record(n, "s") for n in range(3)])
    array = tmp_path / "blob.json"
    write_json_array(array, [record(n, "s") for n in range(300)])
    utf16 = tmp_path / "export-utf16.csv"
    write_purview_export(utf16, [(record(n, "s"), "", False) for n in range(300)])
    utf16.write_bytes(codecs.BOM_UTF16_LE + utf16.read_bytes()[3:].decode("utf-8").encode("utf-16-le"))

    assert [len(split.cut(path, 4, 64)) for path in (array, utf16)] == [1, 1]
    assert len(split.cut(small, 4, 1024 * 1024)) == 1
    assert split.cut(array, 4, 64)[0] == split.whole(array, readers.MANAGEMENT_API)
    assert split.cut(utf16, 4, 64)[0] == split.whole(utf16, readers.CSV_AUDITDATA)


def test_a_cut_inside_a_record_is_not_proved(tmp_path: Path) -> None:
    # A stray quote in an unquoted cell (the csv module reads it as text) turns the quote count
    # around: the cut lands on a line break inside a later row's quoted, indented AuditData.
    path = tmp_path / "export.csv"
    write_purview_export(path, [(record(n, "s"), "", True) for n in range(60)])
    data = path.read_bytes()
    header_end = data.index(b"\r\n") + 2
    path.write_bytes(data[:header_end] + b'stray"quote,,,,,,,\r\n' + data[header_end:])

    parts = split.cut(path, 3, 1024)
    starts = {0, *(whole.start for whole in _record_starts(path))}
    _, stops = part_records(parts)

    assert len(parts) == 3
    assert any(part.start not in starts for part in parts)
    assert stops[:-1] != [part.start for part in parts[1:]]


def _record_starts(path: Path) -> list[split.Part]:
    """Each record's start, found by reading the whole file."""
    starts = []
    with path.open("rb") as handle:
        records = readers.read_stream(handle)
        for _ in records:
            starts.append(split.Part(path, records.format, 0, records.cursor.start, None, 0))
    return starts
