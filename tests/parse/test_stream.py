"""shared/parse/stream.py and the streaming readers: every record read forward gives what decoding
the whole document gives, however the bytes arrive, and memory never needs the whole file."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.parse import csvrow, readers
from shared.parse.normalize import RawRecord
from shared.parse.readers import (
    CSV_AUDITDATA,
    GRAPH_AUDIT_QUERY,
    MANAGEMENT_API,
    PURVIEW_COLUMNS,
    SENTINEL_JSON,
    read_records,
    read_stream,
)
from tests.records_factory import folder, folder_item, mail_items_accessed

pytestmark = pytest.mark.unit

# Text that looks like the boundary between two records, inside a record.
BOUNDARY_LOOKALIKES = ['},{"CreationTime":"x"', '}, {"Id": 1}', "],[", '"}', "\\", "]", "},"]


class Trickle(io.RawIOBase):
    """A stream that hands out at most `step` bytes a read, as a slow network would."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._step = step
        self._at = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        wanted = self._step if size < 0 else min(size, self._step)
        chunk = self._data[self._at : self._at + wanted]
        self._at += len(chunk)
        return chunk


def streamed(data: bytes, step: int = 7, fmt: str | None = None, limit: int | None = None) -> list[RawRecord]:
    if limit is None:
        return list(read_stream(Trickle(data, step), fmt))
    return list(read_stream(Trickle(data, step), fmt, limit=limit))


def record(index: int, subject: str = "hello") -> dict[str, Any]:
    items = [folder_item(f"<m{index}-{n}@x>", subject=subject) for n in range(3)]
    return mail_items_accessed(
        Id=f"rec-{index}", Folders=[folder("Inbox", *items), folder("Archive", *items)]
    )


json_text = st.text(alphabet=st.sampled_from(list('ab{}[],:" \\\n\u2028é😀')), max_size=30) | st.sampled_from(
    BOUNDARY_LOOKALIKES
)


@settings(max_examples=60, deadline=None)
@given(
    subjects=st.lists(json_text, min_size=0, max_size=8),
    step=st.integers(min_value=1, max_value=4096),
    pretty=st.booleans(),
)
def test_a_json_array_read_forward_gives_each_element_whole_document_decoding_gives(
    subjects: list[str], step: int, pretty: bool
) -> None:
    values = [record(n, subject) for n, subject in enumerate(subjects)]
    data = json.dumps(values, indent=2).encode() if pretty else orjson.dumps(values)
    found = streamed(data, step)
    assert found == [RawRecord(f"item {n}", value) for n, value in enumerate(values)]


def test_elements_that_do_not_share_a_first_key_are_each_still_found_exactly() -> None:
    values = [{"Id": "a", "Operation": "x"}, {"Operation": "y", "Id": "b"}, [1, {"x": "},{"}], "text", 7]
    assert [r.value for r in streamed(orjson.dumps(values), step=3)] == values


def test_an_element_larger_than_the_first_window_and_a_chunk_is_read_whole() -> None:
    big = record(0, subject="s" * 300_000)
    data = orjson.dumps([big, record(1)])
    assert [r.value for r in streamed(data, step=65_536)] == [big, record(1)]


def test_a_record_larger_than_the_bound_is_reported_and_never_loaded() -> None:
    data = orjson.dumps([record(0), record(1, subject="s" * 200_000), record(2)])
    found = streamed(data, step=4096, limit=100_000)
    assert found[0] == RawRecord("item 0", record(0))
    assert found[1].position == "item 1"
    assert found[1].error == "a record larger than 100000 bytes: not read"
    assert len(found) == 2


def test_a_damaged_element_is_reported_after_the_readable_ones() -> None:
    whole = orjson.dumps([record(0), record(1), record(2)])
    damaged = whole.replace(b'"rec-1"', b'"rec-1', 1)
    found = streamed(damaged, step=100)
    assert found[0] == RawRecord("item 0", record(0))
    assert found[1].position == "item 1"
    assert found[1].error.startswith("invalid JSON from here on")


def test_bytes_that_are_not_utf8_are_repaired_and_named_however_the_chunks_fall() -> None:
    data = orjson.dumps([record(0, subject="caf\u00e9")]).replace("caf\u00e9".encode(), b"caf\xe9")
    for step in (1, 5, 4096):
        [found] = streamed(data, step)
        assert found.repaired == tuple(
            f"Folders[{f}].FolderItems[{i}].Subject" for f in (0, 1) for i in (0, 1, 2)
        )
        assert found.value["Folders"][0]["FolderItems"][0]["Subject"] == "caf\ufffd"  # type: ignore[index]


def purview(cells: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(PURVIEW_COLUMNS)
    for n, cell in enumerate(cells):
        writer.writerow([f"rec-{n}", "2026-11-18T09:00:00Z", "50", "MailItemsAccessed", "a", cell, "", ""])
    return b"\xef\xbb\xbf" + out.getvalue().encode()


def test_a_csv_cell_past_the_csv_modules_field_limit_is_read_without_raising_the_limit() -> None:
    limit = csv.field_size_limit()
    big = record(1, subject="x" * (limit + 10))
    data = purview(
        [orjson.dumps(record(0)).decode(), orjson.dumps(big).decode(), orjson.dumps(record(2)).decode()]
    )
    found = streamed(data, step=8192, fmt=CSV_AUDITDATA)
    assert [r.value for r in found] == [record(0), big, record(2)]
    assert [r.position for r in found] == ["CSV row 2", "CSV row 3", "CSV row 4"]
    assert csv.field_size_limit() == limit


cells = st.text(alphabet=st.sampled_from(list('ab ,"\r\n\u2028é')), max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=4), quote_all=st.booleans()
)
def test_the_long_cell_row_reader_reads_what_the_csv_module_reads(
    rows: list[list[str]], quote_all: bool
) -> None:
    out = io.StringIO()
    csv.writer(
        out, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL, lineterminator="\r\n"
    ).writerows(rows)
    text_lines = [line + "\n" for line in out.getvalue().split("\n")][:-1]  # as the reader feeds lines
    expected = list(csv.reader(text_lines))
    feed = iter(text_lines)
    parsed = [csvrow.parse_row(next(feed), lambda: next(feed, None), 1 << 20) for _ in expected]
    assert parsed == expected


def test_a_large_graph_page_is_read_member_by_member(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [{"id": f"g{n}", "auditData": record(n)} for n in range(20)]
    data = orjson.dumps({"@odata.context": "x", "value": values, "@odata.nextLink": "https://n"})
    whole = [r.value for r in read_records(data, GRAPH_AUDIT_QUERY)[1]]
    monkeypatch.setattr(readers, "WHOLE_DOCUMENT_BYTES", 1000)
    found = streamed(data, step=500, fmt=GRAPH_AUDIT_QUERY)
    assert [r.value for r in found] == whole == [record(n) for n in range(20)]
    assert [r.position for r in found] == [f"item {n}" for n in range(20)]


def test_a_large_log_analytics_response_is_read_row_by_row(monkeypatch: pytest.MonkeyPatch) -> None:
    columns = [{"name": "OfficeId", "type": "string"}, {"name": "Operation", "type": "string"}]
    rows = [[f"id-{n}", "MailItemsAccessed"] for n in range(30)]
    data = orjson.dumps({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})
    whole = list(read_records(data, SENTINEL_JSON)[1])
    monkeypatch.setattr(readers, "WHOLE_DOCUMENT_BYTES", 200)
    assert streamed(data, step=64, fmt=SENTINEL_JSON) == whole
    assert len(whole) == 30


def test_management_api_bytes_and_a_stream_of_them_read_alike() -> None:
    data = orjson.dumps([record(n) for n in range(50)])
    assert list(read_records(data, MANAGEMENT_API)[1]) == streamed(data, step=333)


@settings(max_examples=40, deadline=None)
@given(step=st.integers(min_value=1, max_value=3000), count=st.integers(min_value=1, max_value=30))
def test_csv_and_json_lines_read_the_same_however_the_lines_fall_across_reads(step: int, count: int) -> None:
    values = [record(n, subject=f's{n}\r\n,"x"') for n in range(count)]
    csv_data = purview([orjson.dumps(v).decode() for v in values])
    lines = b"".join(orjson.dumps(v) + b"\r\n" for v in values)
    for data in (csv_data, lines):
        found = streamed(data, step)
        assert found == list(read_records(data)[1])
        assert [r.value for r in found] == values


def test_a_line_across_two_reads_after_many_lines_in_one_read_is_one_line() -> None:
    values = [record(n) for n in range(400)]  # about 0.8 MB: lines straddle many 64 KiB reads
    lines = b"".join(orjson.dumps(v) + b"\n" for v in values)
    assert [r.value for r in streamed(lines, step=65_536)] == values
    csv_data = purview([orjson.dumps(v).decode() for v in values])
    assert [r.value for r in streamed(csv_data, step=65_536)] == values


def test_damage_deep_in_a_large_array_is_named_as_damage_not_as_a_large_record() -> None:
    values = [record(n) for n in range(2000)]  # about 4 MB
    damaged = orjson.dumps(values).replace(b'"rec-1000"', b'"rec-1000', 1)
    found = streamed(damaged, step=1 << 20, limit=200_000)  # the rest is far larger than the bound
    assert [r.value for r in found[:1000]] == values[:1000]
    assert found[1000].error.startswith("invalid JSON from here on: Expecting")
    assert len(found) == 1001
