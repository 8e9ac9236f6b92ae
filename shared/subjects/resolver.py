"""Resolve InternetMessageIds to subject, sender and received time; the first answer wins.

The chain (docs/architecture.md#subject-resolution), with the source recorded in `SubjectSource`:

1. the record's own `FolderItems[].Subject` (`audit`);
2. the MessageIndex table (any earlier answer, including a negative one not yet due for a retry);
3. Microsoft Graph message lookup in the audited mailbox, 20 to a `$batch` (`graph`);
4. Graph message trace, in windows of at most 10 days within the last 90 (`trace`);
5. otherwise `unresolved:<reason>`, cached with a time to look again.

Every answer goes into MessageIndex, so nothing is looked up twice needlessly: a redelivered
queue message, a record repeated in another blob, or a report asking again all find it there.
Remote lookups spend a `Budget` (requests and seconds); its seconds are a deadline that every
request, retry and wait honours (shared/clients/transport.py). What the budget does not cover is left
unwritten and shows as `unresolved:deferred`, to be looked up by a later run or report: deferring
is not failing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shared.clients.auth import TokenUnavailable
from shared.clients.errors import ApiAuthError, ApiError, DeadlineReached, Throttled
from shared.clients.graph_api import DEFAULT_RETRY_AFTER, MAX_BATCH, GraphClient, ItemReply, MessageQuery
from shared.clients.transport import MIN_REQUEST_SECONDS
from shared.model.message_info import (
    SOURCE_AUDIT,
    SOURCE_GRAPH,
    SOURCE_TRACE,
    UNRESOLVED,
    Key,
    Lookup,
    MessageInfo,
    Observed,
)
from shared.model.times import utc_timestamp, utcnow
from shared.settings import ResolutionSettings
from shared.storage.message_index import MessageIndexTable, is_answer
from shared.subjects.trace_search import TraceSearch

log = logging.getLogger(__name__)

SHORT_RETRY = timedelta(minutes=15)  # throttling, server errors, refused tokens
MAX_NEGATIVE_ATTEMPTS = 3  # "not found" is final after this many lookups
MAX_ITEM_ATTEMPTS = 5  # a throttled batch item is sent again at most this often in one run
RUN_SECONDS = 240.0  # time one resolve_subjects run may spend on lookups
DEFERRED = UNRESOLVED + "deferred"
GRAPH_ERROR = UNRESOLVED + "graph-error"
INVALID = MessageInfo(source=UNRESOLVED + "invalid-id")  # final: no lookup could match it
GRAPH_FIX = (
    "Grant the identity the Microsoft Graph application permission Mail.ReadBasic.All with admin "
    "consent (infra/grant-permissions.sh --graph Mail.ReadBasic.All), include the audited mailboxes "
    "in its Exchange RBAC scope, or narrow RESOLVE_SUBJECTS"
)
TRACE_FIX = (
    "Grant ExchangeMessageTrace.Read.All and create the service principal of the Transport Data "
    "Platform app 8bd644d1-64a1-4d4b-ae52-2e0cbf64e373 (grant-permissions.sh does both), or set "
    "RESOLVE_MESSAGE_TRACE=false"
)
RECENT_SUBJECTS = 100_000  # (mailbox, message) pairs whose audit subject this process wrote
MAX_MESSAGE_ID_CHARS = 998  # RFC 5322 section 2.1.1: a header line is at most 998 characters


@dataclass
class Budget:
    """How much one run may spend on remote lookups: `seconds` is a deadline, not a guideline."""

    max_requests: int
    seconds: float
    used: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        """The `time.monotonic()` instant by which every request must be done."""
        return self.started + self.seconds

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def exhausted(self) -> bool:
        """No request left, or too little time to send one."""
        return self.used >= self.max_requests or self.left() < MIN_REQUEST_SECONDS

    def take(self) -> bool:
        if self.exhausted():
            return False
        self.used += 1
        return True


@dataclass
class ResolveStats:
    messages: int = 0
    audit: int = 0
    cached: int = 0
    graph: int = 0
    trace: int = 0
    unresolved: int = 0
    deferred: int = 0
    graph_requests: int = 0
    trace_requests: int = 0
    denied: int = 0  # lookups Graph answered 403 ErrorAccessDenied
    # What refused the lookups, with the fix, when something did (raises subjects.lookup_failed).
    problem: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, int]:
        return {name: value for name, value in self.__dict__.items() if isinstance(value, int)}


@dataclass
class _Candidate:
    observed: Observed
    previous: MessageInfo | None
    reason: str = ""  # why Graph did not answer (for the trace step and the negative entry)
    attempts: int = 0


class _RecentKeys:
    """The last `size` keys seen (thread-safe): a message read again and again has its subject
    merged into the index once per process, not once per record."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._keys: OrderedDict[Key, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._keys

    def update(self, keys: Iterable[Key]) -> None:
        with self._lock:
            for key in keys:
                self._keys[key] = None
                self._keys.move_to_end(key)
            while len(self._keys) > self._size:
                self._keys.popitem(last=False)


class _Backlog:
    """Keys waiting for a batch. Outlook throttles per app and mailbox
    (docs/mailitemsaccessed.md#outlook-throttling): a mailbox that got a 429 waits out its
    Retry-After while the other mailboxes' keys go on."""

    def __init__(self, keys: list[Key]) -> None:
        self.keys = keys
        self._ready_at: dict[str, float] = {}

    def _ready(self, key: Key, moment: float) -> bool:
        return self._ready_at.get(key[0], 0.0) <= moment

    def next_batch(self) -> list[Key]:
        moment = time.monotonic()
        batch = [key for key in self.keys if self._ready(key, moment)][:MAX_BATCH]
        taken = set(batch)
        self.keys = [key for key in self.keys if key not in taken]
        return batch

    def wait(self) -> float:
        moment = time.monotonic()
        return max(0.0, min(self._ready_at.get(key[0], 0.0) for key in self.keys) - moment)

    def back(self, keys: list[Key], retry_after: float) -> None:
        until = time.monotonic() + retry_after
        for key in keys:
            self._ready_at[key[0]] = max(self._ready_at.get(key[0], 0.0), until)
        self.keys.extend(keys)


@dataclass
class _Triage:
    now: datetime
    result: dict[Key, MessageInfo] = field(default_factory=dict)
    writes: dict[Key, MessageInfo] = field(default_factory=dict)
    candidates: dict[Key, _Candidate] = field(default_factory=dict)


def _parse_time(value: object) -> datetime | None:
    return utc_timestamp(value) if isinstance(value, str) else None


def _address(value: object) -> str:
    email = value.get("emailAddress") if isinstance(value, dict) else None
    if not isinstance(email, dict):
        return ""
    return str(email.get("address") or email.get("name") or "")


def _graph_info(hits: list[dict[str, Any]], observed: Observed) -> MessageInfo:
    """The same message can sit in several folders (microsoft-graph-docs-contrib#6203): every copy
    carries the same subject and sender; the earliest received is reported, the count kept."""
    hits = sorted(hits, key=lambda hit: (str(hit.get("receivedDateTime") or ""), str(hit.get("id") or "")))
    first = hits[0]
    return MessageInfo(
        subject=str(first.get("subject") or ""),
        sender=_address(first.get("from")) or _address(first.get("sender")),
        received=_parse_time(first.get("receivedDateTime")),
        size=observed.size,
        source=SOURCE_GRAPH,
        copies=len(hits),
    )


def _trace_info(rows: list[dict[str, Any]], mailbox: str, observed: Observed) -> MessageInfo:
    mine = [row for row in rows if str(row.get("recipientAddress") or "").lower() == mailbox]
    row = (mine or rows)[0]
    size = row.get("size")
    return MessageInfo(
        subject=str(row.get("subject") or ""),
        sender=str(row.get("senderAddress") or ""),
        received=_parse_time(row.get("receivedDateTime")),
        size=observed.size if observed.size is not None else (size if isinstance(size, int) else None),
        source=SOURCE_TRACE,
    )


class SubjectResolver:
    """The chain above for one tenant. Thread-safe as far as its parts are (one per process)."""

    def __init__(
        self,
        index: MessageIndexTable,
        settings: ResolutionSettings,
        graph: GraphClient | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._index = index
        self.settings = settings
        self._graph = graph
        self._clock = clock
        self._recorded = _RecentKeys(RECENT_SUBJECTS)

    # -- entry points -----------------------------------------------------------------------

    def run_budget(self) -> Budget | None:
        """The bound for one run over the queued lookups; None without Graph."""
        if self._graph is None:
            return None
        return Budget(self.settings.run_max_requests, RUN_SECONDS)

    def on_demand_budget(self) -> Budget | None:
        """The bound for a report asking for messages not resolved yet; None when it may not ask."""
        if self._graph is None or not self.settings.on_demand:
            return None
        return Budget(self.settings.on_demand_max_requests, float(self.settings.on_demand_seconds))

    def report_lookup(self) -> Lookup:
        """For one report: the index for every message, and lookups of what it lacks within one
        on-demand budget for the whole report (none when on-demand resolution is off)."""
        budget = self.on_demand_budget()

        def lookup(observed: Mapping[str, Mapping[str, Observed]]) -> Mapping[Key, MessageInfo]:
            return self.resolve(observed, budget, remote=lambda mailbox: True)

        return lookup

    def record_arrivals(
        self, observed: Mapping[str, Mapping[str, Observed]], stats: ResolveStats
    ) -> dict[str, dict[str, Observed]]:
        """As records arrive: every subject the records give is merged into the index (nothing is
        read: ingestion stays as fast as the writes); returns the other messages of the mailboxes
        the policy covers, for the lookup queue, whose pass checks the index before any lookup."""
        pending: dict[str, dict[str, Observed]] = {}
        covers = self.settings.covers if self._graph is not None else None
        for mailbox, messages in observed.items():
            subjects: dict[str, MessageInfo] = {}
            for message_id, seen in messages.items():
                stats.messages += 1
                if seen.subject:
                    stats.audit += 1
                    if (mailbox, message_id) not in self._recorded:
                        subjects[message_id] = MessageInfo(seen.subject, size=seen.size, source=SOURCE_AUDIT)
                elif covers is not None and covers(mailbox):
                    if len(message_id) > MAX_MESSAGE_ID_CHARS:  # no real header is that long
                        self._index.write(mailbox, {message_id: INVALID})
                        continue
                    pending.setdefault(mailbox, {})[message_id] = seen
            self._index.record_subjects(mailbox, subjects)
            self._recorded.update((mailbox, message_id) for message_id in subjects)  # once written
        return pending

    def resolve(
        self,
        observed: Mapping[str, Mapping[str, Observed]],
        budget: Budget | None,
        remote: Callable[[str], bool],
        stats: ResolveStats | None = None,
    ) -> dict[Key, MessageInfo]:
        """What is known of each observed message; `remote(mailbox)` says whose unknown messages
        may be looked up (within `budget`, None = none)."""
        stats = stats if stats is not None else ResolveStats()
        can_look_up = self._graph is not None and budget is not None
        triage = self._triage(observed, remote if can_look_up else None, stats)
        result, writes, candidates = triage.result, triage.writes, triage.candidates
        if candidates:
            found = self._look_up(candidates, budget, triage.now, stats)
            writes.update(found)
            result.update(found)
            for key in candidates.keys() - found.keys():
                result[key] = MessageInfo(source=DEFERRED, size=candidates[key].observed.size)
                stats.deferred += 1
        self._write(writes)
        return result

    def give_up(self, observed: Mapping[str, Mapping[str, Observed]]) -> int:
        """Ids the lookup queue stops retrying after repeated failures: each that the index has no
        answer for is written `unresolved:graph-error` (a report shows it and may ask again on
        demand), so none disappears unrecorded. Returns how many of them are unresolved."""
        now = self._clock()
        unresolved = 0
        for mailbox, messages in observed.items():
            known = self._index.read(mailbox, messages)
            missing = {
                message_id: MessageInfo(size=seen.size, source=GRAPH_ERROR, retry_at=now + SHORT_RETRY)
                for message_id, seen in messages.items()
                if message_id not in known
            }
            self._index.write(mailbox, missing)
            unresolved += len(missing) + sum(1 for info in known.values() if not info.resolved)
        return unresolved

    def _triage(
        self,
        observed: Mapping[str, Mapping[str, Observed]],
        remote: Callable[[str], bool] | None,
        stats: ResolveStats,
    ) -> _Triage:
        """Steps 1 and 2 of the chain: the records' own subjects, then the index. What neither
        answers becomes a candidate for a remote lookup when `remote(mailbox)` allows it."""
        triage = _Triage(now=self._clock())
        for mailbox, messages in observed.items():
            known = self._index.read(mailbox, messages)
            for message_id, seen in messages.items():
                key = (mailbox, message_id)
                stats.messages += 1
                current = known.get(message_id)
                if seen.subject:
                    info = MessageInfo(subject=seen.subject, size=seen.size, source=SOURCE_AUDIT)
                    stats.audit += 1
                    if current is None or not is_answer(current.source):
                        triage.writes[key] = info  # the first answer stays: never over Graph's
                    triage.result[key] = info
                elif current is not None and not current.due(triage.now):
                    stats.cached += 1
                    triage.result[key] = current
                elif remote is not None and remote(mailbox):
                    if len(message_id) > MAX_MESSAGE_ID_CHARS:
                        triage.writes[key] = triage.result[key] = INVALID
                        continue
                    triage.candidates[key] = _Candidate(seen, current)
                elif current is not None:
                    triage.result[key] = current
        return triage

    def _write(self, writes: Mapping[Key, MessageInfo]) -> None:
        by_mailbox: dict[str, dict[str, MessageInfo]] = {}
        for (mailbox, message_id), info in writes.items():
            by_mailbox.setdefault(mailbox, {})[message_id] = info
        for mailbox, infos in by_mailbox.items():
            self._index.write(mailbox, infos)

    # -- remote lookups ---------------------------------------------------------------------

    def _negative(self, candidate: _Candidate, reason: str, now: datetime, short: bool) -> MessageInfo:
        previous = candidate.previous.attempts if candidate.previous is not None else 0
        retry_at: datetime | None
        if short:
            attempts, retry_at = previous, now + SHORT_RETRY
        else:
            attempts = previous + 1
            hours = self.settings.retry_hours * 2 ** (attempts - 1)
            retry_at = now + timedelta(hours=hours) if attempts < MAX_NEGATIVE_ATTEMPTS else None
        return MessageInfo(
            size=candidate.observed.size, source=UNRESOLVED + reason, retry_at=retry_at, attempts=attempts
        )

    def _look_up(
        self, candidates: dict[Key, _Candidate], budget: Budget | None, now: datetime, stats: ResolveStats
    ) -> dict[Key, MessageInfo]:
        if self._graph is None or budget is None:
            return {}
        found: dict[Key, MessageInfo] = {}
        misses = self._graph_step(self._graph, candidates, budget, now, found, stats)
        if self._graph.settings.message_trace:
            self._trace_step(self._graph, {key: candidates[key] for key in misses}, budget, now, found, stats)
        else:
            for key in misses:
                found[key] = self._negative(candidates[key], candidates[key].reason, now, short=False)
        for info in found.values():
            if info.source == SOURCE_GRAPH:
                stats.graph += 1
            elif info.source == SOURCE_TRACE:
                stats.trace += 1
            else:
                stats.unresolved += 1
        return found

    def _graph_step(
        self,
        graph: GraphClient,
        candidates: dict[Key, _Candidate],
        budget: Budget,
        now: datetime,
        found: dict[Key, MessageInfo],
        stats: ResolveStats,
    ) -> list[Key]:
        """Batches of 20 (across mailboxes); returns the keys Graph had no answer for."""
        backlog = _Backlog(sorted(candidates))
        misses: list[Key] = []
        while backlog.keys:
            batch = backlog.next_batch()
            if not batch:  # only throttled mailboxes are left: wait out the nearest Retry-After
                if backlog.wait() + MIN_REQUEST_SECONDS > budget.left():
                    break  # the wait would leave no time to ask: deferred
                time.sleep(backlog.wait())
                continue
            if not budget.take():
                break
            stats.graph_requests += 1
            queries = [MessageQuery(str(n), mb, mid) for n, (mb, mid) in enumerate(batch)]
            try:
                replies = graph.batch(queries, deadline=budget.deadline)
            except DeadlineReached:
                break  # this batch and the rest are deferred, not failed
            except Throttled as problem:  # still throttled after the transport's retries
                retry_after = problem.retry_after
                backlog.back(batch, DEFAULT_RETRY_AFTER if retry_after is None else retry_after)
                continue
            except ApiError as problem:
                auth = isinstance(problem, ApiAuthError)
                # No token at all (refused, or its endpoint down): every batch would fail the same.
                no_token = auth or isinstance(problem, TokenUnavailable)
                log.error("Graph message lookup failed (%s); retried later", problem)
                if auth:
                    stats.problem = f"Graph refused the message lookups: {problem}. {GRAPH_FIX}"
                reason = "graph-permission" if auth else "graph-error"
                for key in batch + (backlog.keys if no_token else []):
                    found[key] = self._negative(candidates[key], reason, now, short=True)
                if no_token:
                    break
                continue
            for key, retry_after in self._sort_replies(batch, replies, candidates, found, misses, now):
                backlog.back([key], retry_after)
        stats.denied += sum(1 for key in misses if candidates[key].reason == "access-denied")
        if stats.denied and stats.denied == len(candidates):
            stats.problem = stats.problem or (
                f"Graph denied all {stats.denied} message lookups (ErrorAccessDenied). {GRAPH_FIX}"
            )
        return misses

    def _sort_replies(
        self,
        batch: list[Key],
        replies: Mapping[str, ItemReply],
        candidates: dict[Key, _Candidate],
        found: dict[Key, MessageInfo],
        misses: list[Key],
        now: datetime,
    ) -> list[tuple[Key, float]]:
        """File each item's answer; returns the items to send again, each with its wait."""
        retry: list[tuple[Key, float]] = []
        for n, key in enumerate(batch):
            candidate = candidates[key]
            reply = replies.get(str(n), ItemReply(0, None))
            value = reply.body.get("value") if reply.status == 200 and isinstance(reply.body, dict) else None
            hits = [hit for hit in value if isinstance(hit, dict)] if isinstance(value, list) else []
            if hits:
                found[key] = _graph_info(hits, candidate.observed)
            elif reply.status == 200:
                candidate.reason = "not-found"
                misses.append(key)
            elif reply.status == 429 or reply.status >= 500 or reply.status == 0:
                candidate.attempts += 1
                if candidate.attempts >= MAX_ITEM_ATTEMPTS:
                    reason = "throttled" if reply.status == 429 else "graph-error"
                    found[key] = self._negative(candidate, reason, now, short=True)
                    continue
                retry.append((key, reply.retry_after or 2.0 ** min(candidate.attempts, 5)))
            else:
                # 403 ErrorAccessDenied: the mailbox is outside the app's RBAC scope (or the app
                # lacks Mail.ReadBasic.All: Graph says the same); 404: no such mailbox, or not in
                # Exchange Online. The trace may still know the message.
                candidate.reason = {403: "access-denied", 404: "mailbox-not-found"}.get(
                    reply.status, f"graph-{reply.status}-{reply.error_code or 'error'}".lower()
                )
                misses.append(key)
        return retry

    def _trace_step(
        self,
        graph: GraphClient,
        misses: dict[Key, _Candidate],
        budget: Budget,
        now: datetime,
        found: dict[Key, MessageInfo],
        stats: ResolveStats,
    ) -> None:
        """Message trace for what Graph did not find (shared/subjects/trace_search.py). A message every
        window of which was searched is `unresolved:<Graph's reason>`; the budget's leftovers are
        deferred; a refused trace leaves Graph's answer standing."""
        if not misses:
            return
        search = TraceSearch(graph, budget.take, budget.left, budget.deadline)
        result = search.run({key: candidate.observed.first_access for key, candidate in misses.items()}, now)
        stats.trace_requests += result.requests
        for key, rows in result.found.items():
            found[key] = _trace_info(rows, key[0], misses[key].observed)
        for key in result.exhausted:
            found[key] = self._negative(misses[key], misses[key].reason, now, short=False)
        if result.failure is not None:
            log.warning("message trace failed (%s); the Graph answer stands", result.failure)
            if isinstance(result.failure, ApiAuthError):
                stats.problem = stats.problem or f"Message trace refused: {result.failure}. {TRACE_FIX}"
            short = not isinstance(result.failure, ApiAuthError) or result.failure.status == 401
            for key in misses.keys() - found.keys():
                found[key] = self._negative(misses[key], misses[key].reason, now, short=short)
