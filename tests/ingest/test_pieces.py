"""shared/ingest/pieces.py: the pieces of a file, read each on its own, give exactly the records
the whole file gives, with the same positions, and each piece's hash is of exactly its bytes."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.ingest import pieces
from shared.parse import readers
from shared.parse.normalize import RawRecord
from shared.storage.raw_store import Piece
from tests.helpers import SAMPLE, sample_records, write_json_array, write_json_lines
from tests.records_factory import graph_record

pytestmark = pytest.mark.unit


def piece_bytes(data: bytes, piece: Piece) -> bytes:
    return data[: piece.prefix] + data[piece.start : piece.end]


def records_of_pieces(data: bytes, layout: pieces.Plan) -> list[RawRecord]:
    found: list[RawRecord] = []
    for piece in layout.pieces:
        resume = readers.Resume(piece.start, piece.lines, piece.index)
        records = list(readers.read_stream(io.BytesIO(piece_bytes(data, piece)), layout.format, resume))
        assert len(records) == piece.records
        found.extend(records)
    return found


def whole(data: bytes) -> list[RawRecord]:
    return list(readers.read_records(data)[1])


def plan_of(path: Path, max_records: int) -> pieces.Plan:
    return pieces.plan(lambda: path.open("rb"), max_records=max_records)


def export_files(tmp_path: Path) -> dict[str, Path]:
    records = sample_records()
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps([graph_record(r) for r in records], indent=2))
    return {
        "csv-auditdata": SAMPLE,
        "management-api": write_json_array(tmp_path / "blob.json", records),
        "jsonl": write_json_lines(tmp_path / "lines.jsonl", records),
        "graph-audit-query": graph,
    }


@pytest.mark.parametrize("fmt", ["csv-auditdata", "management-api", "jsonl", "graph-audit-query"])
@pytest.mark.parametrize("max_records", [1, 4, 10])
def test_the_pieces_of_a_file_give_exactly_the_whole_files_records(
    tmp_path: Path, fmt: str, max_records: int
) -> None:
    path = export_files(tmp_path)[fmt]
    data = path.read_bytes()
    layout = plan_of(path, max_records)

    assert layout.format == fmt
    assert layout.sha256 == hashlib.sha256(data).hexdigest()
    assert layout.size == len(data)
    assert layout.records == len(whole(data)) == 67
    assert len(layout.pieces) == -(-67 // max_records)
    assert all(p.records <= max_records for p in layout.pieces)
    assert records_of_pieces(data, layout) == whole(data)


def test_pieces_are_contiguous_and_each_hash_is_of_its_prefix_and_range(tmp_path: Path) -> None:
    data = SAMPLE.read_bytes()
    layout = plan_of(SAMPLE, 7)

    assert layout.pieces[-1].end == len(data)
    for earlier, later in zip(layout.pieces, layout.pieces[1:], strict=False):
        assert earlier.end == later.start
        assert later.index == earlier.index + earlier.records
    for piece in layout.pieces:
        assert piece.prefix == layout.pieces[0].prefix == data.index(b"\n") + 1  # the header line
        assert piece.sha256 == hashlib.sha256(piece_bytes(data, piece)).hexdigest()


def test_a_piece_also_ends_before_the_record_that_would_take_it_past_the_byte_bound(tmp_path: Path) -> None:
    path = write_json_array(tmp_path / "blob.json", sample_records())
    size = path.stat().st_size
    layout = pieces.plan(lambda: path.open("rb"), max_records=1000, max_bytes=size // 5)

    assert 5 <= len(layout.pieces) <= 7
    assert records_of_pieces(path.read_bytes(), layout) == whole(path.read_bytes())


def test_a_file_that_fits_one_piece_or_cannot_be_cut_is_announced_whole(tmp_path: Path) -> None:
    page = tmp_path / "page.json"
    page.write_bytes(orjson.dumps({"value": [graph_record(r) for r in sample_records()]}))
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(SAMPLE.read_text(encoding="utf-8-sig").encode("utf-16"))

    assert plan_of(SAMPLE, 100).pieces == []
    assert plan_of(page, 1).pieces == []  # one JSON document
    assert plan_of(utf16, 1).pieces == []  # read transcoded: its offsets are not the file's
    assert plan_of(page, 1).records == plan_of(utf16, 1).records == 67


@settings(max_examples=40, deadline=None)
@given(
    blanks=st.lists(st.sampled_from(["", " ", "\r"]), max_size=5),
    max_records=st.integers(min_value=1, max_value=6),
)
def test_blank_lines_between_json_lines_never_move_a_record_or_its_line_number(
    blanks: list[str], max_records: int
) -> None:
    lines = [json.dumps(r) for r in sample_records()[:12]]
    for n, blank in enumerate(blanks):
        lines.insert(2 * n + 1, blank)
    data = ("\n".join(lines) + "\n").encode()
    layout = pieces.plan(lambda: io.BytesIO(data), max_records=max_records)

    pieced = records_of_pieces(data, layout) if layout.pieces else whole(data)
    assert pieced == whole(data)
