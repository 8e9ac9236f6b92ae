"""The events of export files for a report with no storage (`mia report --input`, `mia scope
--input`): each record once, in time order, in bounded memory, read on every core.

Each file is cut into parts where records start (shared/parse/split.py) and the parts are read by
a pool of processes. A part's reader normalizes its records, keeps the query's, and writes them in
sorted runs of at most SPILL_EVENTS (shared among the readers) to a private temporary directory;
it returns, in file order, each kept event's record Id, a 128-bit digest of its content, its
index in the part and its time. From those the first copy of every record Id is chosen, in the
order of the files and of the records in them, exactly as one reader going through the files
would. Iterating merges the runs, leaving out the later copies. Only a later copy that says
something else than the first is read back (they are rare): it may mark the first `Conflict`.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import os
import pickle
import tempfile
from array import array
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Any

from shared.model.event import AccessEvent, AccessEventDraft, MessageRef, message_refs, sealed
from shared.model.message_info import MessageObserver, Observed
from shared.parse import split
from shared.parse.events import file_sha256
from shared.parse.normalize import ParseStats, normalize_records
from shared.reports.request import ReportQuery
from shared.reports.selection import matches

SPILL_EVENTS = 20_000  # events held, by all the readers together, before each writes a sorted run
PART_BYTES = 16 * 1024 * 1024  # a file is cut into parts of at least this size
_DIGEST_BYTES = 16  # AccessEvent.content_digest: enough to tell a repeat from a different copy
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_BATCH = 64  # events pickled together in a run (a batch of each run is held as they are merged)


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# A run holds events as plain tuples, which pickle an order of magnitude faster than dataclasses
# do: (timestamp, record Id, part, index in the part, the fields before `items`, the items'
# fields, the fields after). The first four order the runs and tell the copies of a record apart.
_NAMES: tuple[str, ...] = AccessEvent.__slots__
_ITEMS = _NAMES.index("items")
_before = attrgetter(*_NAMES[:_ITEMS])
_after = attrgetter(*_NAMES[_ITEMS + 1 :])
_item_fields = attrgetter(*MessageRef.__slots__)
# The draft takes a run's fields positionally, and the provenance is filled in before sealing.
_EVENT_DRAFT: Any = AccessEventDraft
Flat = tuple[datetime, str, int, int, tuple[Any, ...], tuple[tuple[Any, ...], ...], tuple[Any, ...]]


def _flat(event: AccessEvent, part: int) -> Flat:
    items = tuple(map(_item_fields, event.items))
    index = event.source_index if event.source_index is not None else -1
    return event.timestamp, event.record_id, part, index, _before(event), items, _after(event)


@dataclass(frozen=True)
class _Task:
    number: int
    file: int  # the position of the part's file among the files given (a file may be given twice)
    part: split.Part
    query: ReportQuery
    observe: bool
    directory: str
    spill_events: int


@dataclass
class _PartRead:
    """What reading one part gave: its kept events' keys, in the part's order, and their runs."""

    number: int
    stats: ParseStats = field(default_factory=ParseStats)
    record_ids: list[str] = field(default_factory=list)
    digests: bytearray = field(default_factory=bytearray)  # _DIGEST_BYTES each
    indices: array[int] = field(default_factory=lambda: array("q"))
    times: array[int] = field(default_factory=lambda: array("q"))  # microseconds since the epoch
    runs: list[str] = field(default_factory=list)
    # Where the first record past the part's end starts; None if the reading ended before it.
    stopped_at: int | None = None
    observed: dict[str, dict[str, Observed]] | None = None


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """The cyclic garbage collector paused. Reading a part or a run makes millions of objects and
    no reference cycles (what it frees, reference counting frees), while each collector pass walks
    every event held: with it on, the bench's report from a 150 MiB export took a tenth longer."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _read_part(task: _Task) -> _PartRead:
    """Read one part: normalize, keep the query's events and write them in sorted runs."""
    with _no_cycle_collection():
        return _read_part_records(task)


def _read_part_records(task: _Task) -> _PartRead:
    read = _PartRead(task.number)
    observer = MessageObserver() if task.observe else None
    held: list[AccessEvent] = []
    with split.opened(task.part) as stream:
        records = split.PartRecords(task.part, stream)
        for event in normalize_records(records, str(task.part.path), read.stats):
            if observer is not None:
                observer.add(event)
            if not matches(event, task.query):
                continue
            read.record_ids.append(event.record_id)
            read.digests += event.content_digest()
            read.indices.append(event.source_index if event.source_index is not None else -1)
            read.times.append((event.timestamp - _EPOCH) // _MICROSECOND)
            held.append(event)
            if len(held) >= task.spill_events:
                read.runs.append(_write_run(held, task))
                held = []
    if held:
        read.runs.append(_write_run(held, task))
    read.stopped_at = records.stopped_at
    read.observed = observer.messages if observer is not None else None
    return read


def _write_run(events: list[AccessEvent], task: _Task) -> str:
    flats = sorted(_flat(event, task.number) for event in events)
    handle, name = tempfile.mkstemp(prefix=f"part-{task.number:05d}-", suffix=".pickle", dir=task.directory)
    with os.fdopen(handle, "wb") as out:
        for start in range(0, len(flats), _BATCH):
            pickle.dump(flats[start : start + _BATCH], out, protocol=pickle.HIGHEST_PROTOCOL)
    return name


def _flats(run: str) -> Iterator[Flat]:
    # Only ever a run _write_run wrote for this report, in a directory mkdtemp made for this user
    # alone (mode 0700): never a file from outside.
    with open(run, "rb") as handle:
        while True:
            try:
                with _no_cycle_collection():
                    batch: list[Flat] = pickle.load(handle)  # noqa: S301
            except EOFError:
                return
            yield from batch


class FileEvents:
    """The query's events from export files, each record once (by record Id), in time order, in
    memory bounded by SPILL_EVENTS events rather than by the files, read by `workers` processes.

    The first copy wins, as in storage; a later copy that says something else (not only less:
    AccessEvent.agrees_with) marks it `Conflict`. What is held meanwhile is a 128-bit content
    digest per record Id, and the differing later copies, which are rare. `observer` is shown
    every record of the files, in the query or not (see assemble.audit_lookup)."""

    def __init__(
        self,
        paths: Sequence[Path],
        query: ReportQuery,
        stats: ParseStats,
        observer: MessageObserver | None = None,
        workers: int | None = None,
        part_bytes: int | None = None,
    ) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="mia-report-")
        workers = max(workers or available_cores(), 1)
        parts = [
            (file, part)
            for file, path in enumerate(paths)
            for part in split.cut(path, workers, part_bytes or PART_BYTES)
        ]
        held = max(SPILL_EVENTS // min(workers, len(parts) or 1), 1)  # by each reader at once
        tasks = [
            _Task(number, file, part, query, observer is not None, self._directory.name, held)
            for number, (file, part) in enumerate(parts)
        ]
        try:
            self._reads, sha256 = _read_all(tasks, workers)
        except BaseException:
            self._directory.cleanup()
            raise
        self._sources = [(str(task.part.path), sha256[task.part.path]) for task in tasks]
        self._bases = _record_bases(tasks, self._reads)
        self.count = 0
        self.first_seen: datetime | None = None
        self.last_seen: datetime | None = None
        self._later: dict[str, list[AccessEvent]] = {}
        self._dropped: set[tuple[int, int]] = set()
        for read in self._reads:
            stats.absorb(read.stats)
            if observer is not None and read.observed is not None:
                observer.absorb(read.observed)
        self._choose_first_copies()

    def _choose_first_copies(self) -> None:
        contents: dict[str, bytes] = {}
        differing: dict[tuple[int, int], str] = {}
        first = last = None
        for read in self._reads:
            for position, record_id in enumerate(read.record_ids):
                digest = bytes(read.digests[position * _DIGEST_BYTES : (position + 1) * _DIGEST_BYTES])
                kept = contents.get(record_id)
                if kept is None:
                    contents[record_id] = digest
                    self.count += 1
                    moment = read.times[position]
                    first = moment if first is None else min(first, moment)
                    last = moment if last is None else max(last, moment)
                    continue
                self._dropped.add((read.number, read.indices[position]))
                if kept != digest:
                    differing[(read.number, read.indices[position])] = record_id
            read.record_ids, read.digests, read.indices, read.times = [], bytearray(), array("q"), array("q")
        if first is not None and last is not None:
            self.first_seen, self.last_seen = _EPOCH + first * _MICROSECOND, _EPOCH + last * _MICROSECOND
        for flat in self._flats_of({number for number, _ in differing}):
            copy_of = differing.get((flat[2], flat[3]))
            if copy_of is not None:
                self._later.setdefault(copy_of, []).append(self._event(flat))

    def _flats_of(self, parts: set[int]) -> Iterator[Flat]:
        for read in self._reads:
            if read.number in parts:
                for run in read.runs:
                    yield from _flats(run)

    def _event(self, flat: Flat) -> AccessEvent:
        _, _, part, index, before, items, after = flat
        draft = _EVENT_DRAFT(*before, message_refs(items), *after)
        draft.source_blob, draft.source_sha256 = self._sources[part]
        draft.source_index = index + self._bases[part] if index >= 0 else None
        event: AccessEvent = sealed(draft)
        return event

    def __iter__(self) -> Iterator[AccessEvent]:
        runs = [_flats(run) for read in self._reads for run in read.runs]
        dropped = self._dropped
        for flat in heapq.merge(*runs):
            if dropped and (flat[2], flat[3]) in dropped:
                continue
            event = self._event(flat)
            copies = self._later.get(event.record_id)
            if copies and not all(event.agrees_with(copy) for copy in copies):
                event = replace(event, conflict=True)
            yield event

    def __len__(self) -> int:
        return self.count

    def close(self) -> None:
        self._directory.cleanup()


def _read_all(tasks: list[_Task], workers: int) -> tuple[list[_PartRead], dict[Path, str]]:
    """Every part read (on a pool of `workers` processes when there is more than one part), each
    file's SHA-256 (taken meanwhile), and any file whose cuts are not proved read again whole."""
    paths = list(dict.fromkeys(task.part.path for task in tasks))
    if workers < 2 or len(tasks) < 2:
        return [_read_part(task) for task in tasks], {path: file_sha256(path) for path in paths}
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
        pending = [pool.submit(_read_part, task) for task in tasks]
        sha256 = {path: file_sha256(path) for path in paths}
        reads = [future.result() for future in pending]
        return _proved(tasks, reads, pool), sha256


def _by_file(tasks: list[_Task], reads: list[_PartRead]) -> Iterator[list[tuple[_Task, _PartRead]]]:
    """The parts and what reading them gave, a file (as given: a file given twice is two) at a time."""
    for _, group in itertools.groupby(zip(tasks, reads, strict=True), key=lambda pair: pair[0].file):
        yield list(group)


def _proved(tasks: list[_Task], reads: list[_PartRead], pool: Executor) -> list[_PartRead]:
    """`reads`, with each file whose parts do not meet exactly read again as one part."""
    proved: list[_PartRead] = []
    for pairs in _by_file(tasks, reads):
        if all(read.stopped_at == later.part.start for (_, read), (later, _) in itertools.pairwise(pairs)):
            proved.extend(read for _, read in pairs)
            continue
        for _, read in pairs:
            for run in read.runs:
                os.remove(run)
        first = pairs[0][0]
        whole = replace(first, part=split.whole(first.part.path, first.part.format))
        redone: Future[_PartRead] = pool.submit(_read_part, whole)
        proved.append(redone.result())
        proved.extend(_PartRead(task.number, stopped_at=None) for task, _ in pairs[1:])
    return proved


def _record_bases(tasks: list[_Task], reads: list[_PartRead]) -> list[int]:
    """Each part's first record index in its file: the records of the file's parts before it."""
    bases: list[int] = []
    for pairs in _by_file(tasks, reads):
        before = 0
        for _, read in pairs:
            bases.append(before)
            before += read.stats.records
    return bases


def events_from_files(
    paths: Sequence[Path], query: ReportQuery, stats: ParseStats, observer: MessageObserver | None = None
) -> list[AccessEvent]:
    """`FileEvents`, as a list."""
    events = FileEvents(paths, query, stats, observer)
    try:
        return list(events)
    finally:
        events.close()
