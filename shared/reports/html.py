"""The HTML report: one self-contained page a person who has never seen an audit record can read.

Nothing leaves the page: the style and the script are inline and the Content-Security-Policy
(https://www.w3.org/TR/CSP3/) allows exactly those two, by their SHA-256 hashes, and nothing else
(default-src 'none'). Every value from the records (subjects, folders, client strings, ids) is
attacker-controlled and goes into the page only through html.escape, as element text or a quoted
attribute value (OWASP XSS Prevention Cheat Sheet, rules 1 and 2); the script holds no data, it
reads the tables' text from the DOM.

The page has a bounded size whatever the mailbox: the timeline is binned (at most MAX_LANES lanes
of TIME_BINS bins) and each table shows at most TABLE_ROWS rows, then says how many more the CSV
and JSON formats hold.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html import escape
from importlib import metadata
from itertools import islice
from typing import Any

from shared.ipcontext.context import IpContext, open_context
from shared.model.event import AccessEvent
from shared.model.message_info import Lookup
from shared.model.times import iso_z
from shared.reports import views
from shared.reports.budget import WorkBudget
from shared.reports.render import TextSink
from shared.reports.request import ReportQuery

TABLE_ROWS = 250
MAX_LANES = 40
TIME_BINS = 96
LISTED = 8  # values named in a summary sentence before "and N more"
MAX_SOURCES = 100
LABEL_CHARS = 56
DISTRIBUTION = "mailitemsaccessed-forensics"

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0}
body{color:#1b1f24;background:#f6f7f9}
header,section{margin:0 auto;max-width:1400px;padding:12px 24px}
header{background:#1f3a5f;color:#fff;max-width:none}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:18px 0 8px;border-bottom:1px solid #ccd}
.sub{color:#dbe4ef;margin:0}
ul.summary{background:#fff;border:1px solid #dde;border-radius:6px;padding:12px 12px 12px 32px;margin:0}
ul.summary li{margin:3px 0}
.warn{color:#8a1c1c;font-weight:600}
.wrap{overflow-x:auto;background:#fff;border:1px solid #dde;border-radius:6px}
svg{display:block;font:11px system-ui,sans-serif}
svg .lanebg{fill:#fff}svg .lanebg.alt{fill:#f3f5f8}
svg .usual .lanebg{fill:#e9f5ec}svg .usual .lanebg.alt{fill:#dff0e3}
svg .group{font-weight:700;fill:#333}
svg .bind{fill:#c0392b;fill-opacity:.75}svg .usual .bind{fill:#2e7d4f}
svg .sync{fill:#6b2fa3}
svg .blind{fill:#f2a900;fill-opacity:.28;stroke:#c98a00;stroke-dasharray:3 2}
svg .axis{stroke:#99a}svg .tick{fill:#556}svg .sep{stroke:#2e7d4f;stroke-width:2}
.legend span{margin-right:16px}
.k{display:inline-block;width:11px;height:11px;border-radius:6px;vertical-align:-1px;margin-right:4px}
.k.b{background:#c0392b}.k.u{background:#2e7d4f}.k.s{background:#6b2fa3;border-radius:0}
.k.w{background:#f7d98a;border:1px dashed #c98a00;border-radius:0}
.tools{margin:6px 0}.tools input{padding:4px 8px;width:320px}.count{margin-left:12px;color:#556}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{border-bottom:1px solid #e3e5ea;padding:3px 6px;text-align:left;vertical-align:top;white-space:nowrap}
td{max-width:420px;overflow:hidden;text-overflow:ellipsis}
th{background:#eef1f5;position:sticky;top:0}
th button{font:inherit;font-weight:600;background:none;border:0;padding:0;cursor:pointer}
th[aria-sort=ascending] button::after{content:" \\25B2"}
th[aria-sort=descending] button::after{content:" \\25BC"}
.more{margin:6px 0;font-weight:600;color:#8a1c1c}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 14px}
dl{background:#fff;padding:10px;border:1px solid #dde}
dt{font-weight:600}dd{margin:0;word-break:break-all}
code{font-size:12px}
"""

# Sorting and filtering of the tables. It reads only the DOM's text, never data of its own.
SCRIPT = """
(function () {
  "use strict";
  function cellValue(row, index) {
    var text = row.cells[index] ? row.cells[index].textContent : "";
    var number = Number(text);
    return text !== "" && !isNaN(number) ? number : text.toLowerCase();
  }
  function showCount(table) {
    var rows = table.tBodies[0].rows, shown = 0;
    for (var i = 0; i < rows.length; i++) { if (!rows[i].hidden) { shown++; } }
    var counter = document.getElementById(table.id + "-count");
    if (counter) { counter.textContent = shown + " of " + rows.length + " rows shown"; }
  }
  function sortBy(table, index, header) {
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function filter(table, query) {
    var words = query.toLowerCase().split(/\\s+/).filter(Boolean);
    var rows = table.tBodies[0].rows;
    for (var i = 0; i < rows.length; i++) {
      var text = rows[i].textContent.toLowerCase();
      rows[i].hidden = !words.every(function (word) { return text.indexOf(word) !== -1; });
    }
    showCount(table);
  }
  document.querySelectorAll("table.data").forEach(function (table) {
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      header.querySelector("button").addEventListener("click", function () { sortBy(table, index, header); });
    });
    var box = document.getElementById(table.id + "-filter");
    if (box) { box.addEventListener("input", function () { filter(table, box.value); }); }
    showCount(table);
  });
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode() + "'"


# img-src data: would be needed only for embedded images; the page has none, so nothing loads.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}; "
    "base-uri 'none'; form-action 'none'"
)
# frame-ancestors is ignored (with a console error) in a <meta> policy, so it is sent only as a
# header (CSP3 section 6.4.2: "not supported inside a meta element").
HEADER_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY + "; frame-ancestors 'none'"


def tool_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _text(value: object) -> str:
    """`value` as HTML text or quoted attribute value: markup in a subject stays characters."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return escape(str(value), quote=True)


def _short(value: str, chars: int = LABEL_CHARS) -> str:
    return value if len(value) <= chars else value[: chars - 1] + "\u2026"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _listed(counts: Counter[str], unit: str = "records") -> str:
    """The most frequent values with their counts, escaped, then how many others."""
    if not counts:
        return "none recorded"
    shown = [f"<b>{_text(value)}</b> ({n:,} {unit})" for value, n in counts.most_common(LISTED)]
    rest = len(counts) - LISTED
    return ", ".join(shown) + (f" and {rest:,} more" if rest > 0 else "")


def _is_owner(event: AccessEvent) -> bool:
    return bool(event.user) and event.user.lower() == event.mailbox.lower()


def _context(event: AccessEvent) -> tuple[str, str]:
    """Where a record came from: its address and its client (family, else app)."""
    return (
        event.client_ip or "(no IP)",
        event.client_family or event.app_name or event.app_id or "(unknown)",
    )


def usual_contexts(events: Iterable[AccessEvent]) -> set[tuple[str, str]]:
    """The owner's usual contexts: the mailbox owner's own records from one address and client on
    two or more distinct days (a stolen token used from elsewhere seldom looks like that)."""
    days: dict[tuple[str, str], set[Any]] = {}
    for event in events:
        if _is_owner(event):
            days.setdefault(_context(event), set()).add(event.timestamp.date())
    return {context for context, seen in days.items() if len(seen) >= 2}


@dataclass
class Lane:
    key: str
    label: str
    usual: bool = True
    clients: dict[str, None] = field(default_factory=dict)  # the client strings, in order
    records: int = 0
    binds: dict[int, int] = field(default_factory=dict)  # bin -> messages read
    syncs: dict[int, list[str]] = field(default_factory=dict)  # bin -> folders synced


@dataclass
class Timeline:
    start: datetime
    end: datetime
    lanes: list[Lane]
    blind: list[tuple[datetime, datetime]]
    by: str  # "session" or "context"

    def bin_of(self, moment: datetime) -> int:
        span = (self.end - self.start).total_seconds()
        offset = (moment - self.start).total_seconds()
        return min(TIME_BINS - 1, max(0, int(offset / span * TIME_BINS)))


def merged_windows(events: Iterable[AccessEvent]) -> list[tuple[datetime, datetime]]:
    """The throttled records' 24-hour unaudited windows, overlapping ones merged. A mailbox past
    the MailItemsAccessed limit is not audited for that action for 24 hours, and the record written
    as throttling begins says IsThrottled=True
    (https://learn.microsoft.com/purview/audit-log-investigate-accounts)."""
    windows: list[tuple[datetime, datetime]] = []
    for start in sorted({event.timestamp for event in events if event.throttled}):
        end = start + views.UNAUDITED_WINDOW
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], max(windows[-1][1], end))
        else:
            windows.append((start, end))
    return windows


def _extent(
    events: Sequence[AccessEvent], blind: list[tuple[datetime, datetime]], query: ReportQuery
) -> tuple[datetime, datetime]:
    first = min(event.timestamp for event in events)
    last = max(event.timestamp for event in events)
    if blind:
        last = max(last, min(blind[-1][1], query.end))
    span = max(last - first, timedelta(hours=1))
    pad = span / 50
    return first - pad, last + pad


def _lane_keys(events: Sequence[AccessEvent]) -> tuple[str, dict[str, str]]:
    """("session", session -> lane) when sessions fit in MAX_LANES lanes, else ("context", ...):
    one lane per address and client, the busiest MAX_LANES - 1 and one for all the others."""
    sessions = {event.session_id or views.NO_SESSION for event in events}
    if len(sessions) <= MAX_LANES:
        return "session", {session: session for session in sessions}
    busiest = Counter(" \u00b7 ".join(_context(event)) for event in events)
    kept = {context for context, _ in busiest.most_common(MAX_LANES - 1)}
    other = f"all other contexts ({len(busiest) - len(kept):,})"
    return "context", {context: (context if context in kept else other) for context in busiest}


def _lane_of(event: AccessEvent, by: str, keys: Mapping[str, str]) -> str:
    if by == "session":
        return keys[event.session_id or views.NO_SESSION]
    return keys[" \u00b7 ".join(_context(event))]


def _session_label(session: str, event: AccessEvent) -> str:
    """The session, who (when not the owner), the address and the client."""
    ip, client = _context(event)
    who = "" if _is_owner(event) else f" \u00b7 {event.user or '(no user)'}"
    return f"{_short(session, 12)}{who} \u00b7 {ip} \u00b7 {client}"


def build_timeline(events: Sequence[AccessEvent], query: ReportQuery) -> Timeline | None:
    if not events:
        return None
    blind = merged_windows(events)
    start, end = _extent(events, blind, query)
    by, keys = _lane_keys(events)
    usual = usual_contexts(events)
    timeline = Timeline(start, end, [], blind, by)
    lanes: dict[str, Lane] = {}
    for event in events:
        key = _lane_of(event, by, keys)
        lane = lanes.get(key)
        if lane is None:
            label = _session_label(key, event) if by == "session" else key
            lane = lanes[key] = Lane(key, label)
        lane.records += 1
        if event.client_info and len(lane.clients) < 3:
            lane.clients[event.client_info] = None
        lane.usual &= _is_owner(event) and _context(event) in usual
        slot = timeline.bin_of(event.timestamp)
        if event.access == "Sync":
            lane.syncs.setdefault(slot, []).extend(event.folders)
        else:
            lane.binds[slot] = lane.binds.get(slot, 0) + max(1, len(event.message_ids))
    # Other access first (that is what a responder looks for), the owner's usual lanes apart below.
    timeline.lanes = sorted(lanes.values(), key=lambda lane: (lane.usual, -lane.records, lane.key))
    return timeline


OTHER_GROUP = "Other access: not the owner's usual address and client"
USUAL_GROUP = "The owner's usual context (own sign-ins, same address and client on 2+ days)"
LEFT, RIGHT, TOP, LANE_HEIGHT, GROUP_HEIGHT, AXIS_HEIGHT = 350, 20, 10, 20, 22, 30
WIDTH = 1300


def _nice_step(span: timedelta) -> timedelta:
    for step in (
        timedelta(minutes=10), timedelta(minutes=30), timedelta(hours=1), timedelta(hours=3),
        timedelta(hours=6), timedelta(hours=12), timedelta(days=1), timedelta(days=2),
        timedelta(days=7), timedelta(days=14), timedelta(days=30), timedelta(days=91),
    ):  # fmt: skip
        if span / step <= 7:
            return step
    return timedelta(days=182)


def _ticks(start: datetime, end: datetime) -> Iterator[datetime]:
    step = _nice_step(end - start)
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    moment = epoch + step * math.ceil((start - epoch) / step)
    while moment <= end:
        yield moment
        moment += step


def _tick_label(moment: datetime, step: timedelta) -> str:
    return moment.strftime("%Y-%m-%d %H:%M" if step < timedelta(days=1) else "%Y-%m-%d")


def render_timeline(timeline: Timeline) -> str:
    """The SVG: lanes (others, then the owner's usual context), Bind circles sized by messages
    read in each time bin, Sync diamonds, throttled windows shaded across every lane."""
    plot = WIDTH - LEFT - RIGHT
    span = (timeline.end - timeline.start).total_seconds()

    def x(moment: datetime) -> float:
        offset = (moment - timeline.start).total_seconds() / span
        return LEFT + plot * min(1.0, max(0.0, offset))

    bin_width = plot / TIME_BINS
    biggest = max((n for lane in timeline.lanes for n in lane.binds.values()), default=1)
    parts: list[str] = []
    y = TOP
    groups = [
        (OTHER_GROUP, [lane for lane in timeline.lanes if not lane.usual]),
        (USUAL_GROUP, [lane for lane in timeline.lanes if lane.usual]),
    ]
    for number, (title, lanes) in enumerate(groups):
        if not lanes:
            continue
        if number == 1 and y > TOP:
            parts.append(f'<line class="sep" x1="0" x2="{WIDTH}" y1="{y + 3}" y2="{y + 3}"/>')
        parts.append(f'<text class="group" x="4" y="{y + 16}">{_text(title)}</text>')
        y += GROUP_HEIGHT
        usual = " usual" if number == 1 else ""
        for index, lane in enumerate(lanes):
            middle = y + LANE_HEIGHT / 2
            marks = [
                f'<circle class="bind" cx="{LEFT + (slot + 0.5) * bin_width:.1f}" cy="{middle:.1f}" '
                f'r="{2.5 + 6 * math.sqrt(count / biggest):.1f}"><title>{_plural(count, "message")} '
                f"read</title></circle>"
                for slot, count in sorted(lane.binds.items())
            ]
            for slot, folders in sorted(lane.syncs.items()):
                cx = LEFT + (slot + 0.5) * bin_width
                names = ", ".join(dict.fromkeys(folders))
                marks.append(
                    f'<path class="sync" d="M{cx:.1f} {middle - 6:.1f}l6 6-6 6-6-6z"><title>Sync of '
                    f"{_text(_short(names, 200))}: every item may have been copied</title></path>"
                )
            alt = " alt" if index % 2 else ""
            parts.append(
                f'<g class="lane{usual}" data-lane="{_text(lane.key)}">'
                f'<rect class="lanebg{alt}" x="0" y="{y}" width="{WIDTH}" height="{LANE_HEIGHT}"/>'
                f'<text x="4" y="{middle + 4:.1f}">{_text(_short(lane.label))}'
                f"<title>{_text(lane.label)}: {_plural(lane.records, 'record')}; client "
                f"{_text(' | '.join(lane.clients) or '(none given)')}</title></text>"
                + "".join(marks)
                + "</g>"
            )
            y += LANE_HEIGHT
    lanes_bottom = y
    for start, end in timeline.blind:
        left, right = x(start), x(end)
        parts.append(
            f'<rect class="blind" x="{left:.1f}" y="{TOP}" width="{max(right - left, 1):.1f}" '
            f'height="{lanes_bottom - TOP}"><title>throttled: nothing audited {iso_z(start)} to '
            f"{iso_z(end)}</title></rect>"
        )
    step = _nice_step(timeline.end - timeline.start)
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y + 2}" y2="{y + 2}"/>')
    for tick in _ticks(timeline.start, timeline.end):
        if x(tick) > WIDTH - RIGHT - 40:  # its label would be cut at the right edge
            continue
        parts.append(
            f'<line class="axis" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{y + 2}" y2="{y + 7}"/>'
            f'<text class="tick" x="{x(tick):.1f}" y="{y + 20}" text-anchor="middle">'
            f"{_tick_label(tick, step)}</text>"
        )
    height = y + AXIS_HEIGHT
    return (
        f'<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="access timeline" '
        f'data-lanes-by="{timeline.by}">' + "".join(parts) + "</svg>"
    )


@dataclass
class Summary:
    records: int = 0
    messages: int = 0
    synced: list[str] = field(default_factory=list)
    users: Counter[str] = field(default_factory=Counter)
    ips: Counter[str] = field(default_factory=Counter)
    apps: Counter[str] = field(default_factory=Counter)
    sessions: set[str] = field(default_factory=set)
    first: datetime | None = None
    last: datetime | None = None
    sources: dict[tuple[str, str], int] = field(default_factory=dict)


def summarise(events: Sequence[AccessEvent]) -> Summary:
    summary = Summary(records=len(events))
    messages: set[tuple[str, str]] = set()
    synced: dict[str, None] = {}
    for event in events:
        messages.update((event.mailbox, mid) for mid in event.message_ids)
        if event.access == "Sync":
            synced.update(dict.fromkeys(event.folders))
        summary.users[event.user or "(no user)"] += 1
        summary.ips[event.client_ip or "(no IP)"] += 1
        summary.apps[event.app_name or event.client_family or event.app_id or "(unknown)"] += 1
        summary.sessions.add(event.session_id or views.NO_SESSION)
        key = (event.source_blob, event.source_sha256)
        summary.sources[key] = summary.sources.get(key, 0) + 1
    summary.messages, summary.synced = len(messages), list(synced)
    if events:
        summary.first, summary.last = events[0].timestamp, events[-1].timestamp
    return summary


def _filters(query: ReportQuery) -> str:
    parts = []
    if query.ips:
        parts.append("only client IPs in " + ", ".join(str(n) for n in query.ips))
    if query.sessions:
        parts.append("only sessions " + ", ".join(query.sessions))
    if query.exclude_ips:
        parts.append("leaving out client IPs in " + ", ".join(str(n) for n in query.exclude_ips))
    return _text("; ".join(parts)) if parts else "none: every record of the range is counted"


EVERY_MAILBOX = "every mailbox in the files"


def _scope(query: ReportQuery) -> str:
    """Whose access the page reports: the mailbox or actor asked for, or (`mia report --input` with
    no mailbox) every mailbox of the files."""
    return query.subject if query.subject is not None else EVERY_MAILBOX


def render_summary(query: ReportQuery, summary: Summary, blind: list[tuple[datetime, datetime]]) -> str:
    if query.subject is None:
        scope = f"Mailbox access of <b>{EVERY_MAILBOX}</b>"
    else:
        whose = "read by" if query.by == "actor" else "of the mailbox"
        scope = f"Mailbox access {whose} <b>{_text(query.subject)}</b>"
    items = [
        f"{scope}, from {iso_z(query.start)} to {iso_z(query.end)} (UTC).",
    ]
    if not summary.records:
        items.append("No MailItemsAccessed record falls in this range with this filter.")
    else:
        assert summary.first is not None
        assert summary.last is not None
        items += [
            f"<b>{_plural(summary.messages, 'distinct message')}</b> named as read in "
            f"{_plural(summary.records, 'audit record')} and {_plural(len(summary.sessions), 'session')}, "
            f"first at {iso_z(summary.first)}, last at {iso_z(summary.last)}.",
            f"Read by: {_listed(summary.users)}.",
            f"From the addresses: {_listed(summary.ips)}.",
            f"With the apps and clients: {_listed(summary.apps)}.",
        ]
    if summary.synced:
        names = ", ".join(f"<b>{_text(name)}</b>" for name in summary.synced[:LISTED])
        more = len(summary.synced) - LISTED
        items.append(
            f'<span class="warn">{_plural(len(summary.synced), "folder")} synced</span> ({names}'
            f"{f' and {more:,} more' if more > 0 else ''}): every item in them may have been copied, "
            "though the records name none of them."
        )
    if blind:
        windows = "; ".join(f"{iso_z(start)} to {iso_z(end)}" for start, end in blind[:LISTED])
        more = len(blind) - LISTED
        items.append(
            f'<span class="warn">Throttled: nothing was audited</span> in {_plural(len(blind), "window")} '
            f"({windows}{f' and {more:,} more' if more > 0 else ''}): reads then left no record."
        )
    items.append(f"Filter in force: {_filters(query)}.")
    return '<ul class="summary">' + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def render_table(
    name: str, title: str, columns: tuple[str, ...], rows: Iterator[dict[str, Any]], total: int | None = None
) -> str:
    """A sortable, filterable table of at most TABLE_ROWS rows of `rows` (all of them counted,
    unless `total` is given)."""
    head = "".join(f'<th scope="col"><button type="button">{_text(c)}</button></th>' for c in columns)
    shown = list(islice(rows, TABLE_ROWS))
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(row.get(column))}</td>" for column in columns) + "</tr>"
        for row in shown
    )
    counted = total if total is not None else len(shown) + sum(1 for _ in rows)
    more = counted - len(shown)
    note = (
        f'<p class="more" id="{name}-more">{more:,} more rows: use CSV or JSON '
        f"(view={name}) for all {counted:,}.</p>"
        if more > 0
        else ""
    )
    return (
        f'<section id="{name}"><h2>{_text(title)} ({counted:,} rows)</h2>'
        f'<div class="tools"><label>Filter: <input type="search" id="{name}-table-filter" '
        f'placeholder="words that every row shown must contain"></label>'
        f'<span class="count" id="{name}-table-count"></span></div>{note}'
        f'<div class="wrap"><table class="data" id="{name}-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div></section>"
    )


def render_ip_data(context: IpContext) -> str:
    """The IP data behind the ClientCountry, ClientASN, ClientOrg and ClientNetwork columns, with
    each source's build date and licence (DB-IP Lite's CC BY 4.0 asks for its attribution)."""
    rows = "".join(
        f"<tr><td>{_text(source['name'])}</td><td>{_text(source['built'])}</td>"
        f"<td>{_text(source['licence'])}</td><td>{_text(source['path'])}</td></tr>"
        for source in context.vintage()
    )
    return (
        "<h2>IP data</h2><p>The IP context columns are looked up when this page is written, in "
        "these sources in order; the audit records do not carry them.</p>"
        '<div class="wrap"><table><thead><tr><th>Source</th><th>Built</th><th>Licence</th>'
        f"<th>Where</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def render_evidence(
    query: ReportQuery, summary: Summary, generated: datetime, context: IpContext | None = None
) -> str:
    sources = sorted(summary.sources.items())
    rows = "".join(
        f"<tr><td>{_text(blob or '(unknown)')}</td><td><code>{_text(sha)}</code></td><td>{n:,}</td></tr>"
        for (blob, sha), n in sources[:MAX_SOURCES]
    )
    more = len(sources) - MAX_SOURCES
    note = (
        f'<p class="more">{more:,} more sources: use CSV or JSON (SourceBlob, SourceSha256).</p>'
        if more > 0
        else ""
    )
    parameters = {
        "subject": _scope(query),
        "by": query.by,
        "from": iso_z(query.start),
        "to (exclusive)": iso_z(query.end),
        "ip": ",".join(str(n) for n in query.ips),
        "session": ",".join(query.sessions),
        "exclude_ip": ",".join(str(n) for n in query.exclude_ips),
    }
    facts = [
        ("Generated", iso_z(generated)),
        ("Tool", f"{DISTRIBUTION} {tool_version()}"),
        *((f"Parameter {name}", value or "(none)") for name, value in parameters.items()),
    ]
    listed = "".join(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>" for name, value in facts)
    return (
        '<section id="evidence"><h2>Evidence</h2>'
        "<p>Every row above comes from these raw audit files (the blob name and the SHA-256 of its "
        "uncompressed bytes; <code>mia verify</code> re-checks them). The SHA-256 of this page is "
        "recorded in ReportAccess when it is served over HTTP.</p>"
        f"<dl>{listed}</dl><h2>Sources ({len(sources):,})</h2>{note}"
        '<div class="wrap"><table><thead><tr><th>Raw blob</th><th>SHA-256</th><th>Records</th></tr>'
        f"</thead><tbody>{rows}</tbody></table></div>"
        f"{render_ip_data(context or open_context())}</section>"
    )


def _holding(
    events: Iterable[AccessEvent], held: list[AccessEvent], budget: WorkBudget | None
) -> Iterator[AccessEvent]:
    """`events`, each also kept in `held` for the page's other views, as one entry of the budget
    (metered, so a refusal names the record it stopped at)."""
    for event in budget.metered(events) if budget is not None else events:
        held.append(event)
        if budget is not None:
            budget.grow(1)
        yield event


def write_page(
    query: ReportQuery,
    events: Iterable[AccessEvent],
    sink: TextSink,
    lookup: Lookup | None = None,
    budget: WorkBudget | None = None,
    now: datetime | None = None,
    ip_context: IpContext | None = None,
) -> int:
    """Write the page for `events` (in time order) to `sink`; returns the records it covers.
    The exposure view reads the events as they come (within `budget`), holding them for the rest.
    `ip_context` gives the IP columns and the IP data the evidence names (None: embedded only)."""
    generated = now or datetime.now(UTC)
    context = ip_context or open_context()
    held: list[AccessEvent] = []
    exposure_columns, _ = views.VIEWS["exposure"]
    exposure = render_table(
        "exposure",
        "Exposure: each message read, folder synced and window not audited",
        exposure_columns,
        views.exposure_rows(_holding(events, held, budget), lookup, budget, ip_context=context),
    )
    summary = summarise(held)
    timeline = build_timeline(held, query)
    blind = timeline.blind if timeline is not None else []
    title = f"Mailbox access report: {_scope(query)}"
    sink.write(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_text(CONTENT_SECURITY_POLICY)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{_text(title)}</h1><p class="sub">MailItemsAccessed audit records, '
        f"{iso_z(query.start)} to {iso_z(query.end)} UTC</p></header>"
        f'<section id="summary"><h2>Summary</h2>{render_summary(query, summary, blind)}</section>'
    )
    if timeline is not None:
        lanes = (
            "session"
            if timeline.by == "session"
            else "address and client (too many sessions for a lane each)"
        )
        sink.write(
            f'<section id="timeline-section"><h2>Timeline: one lane per {lanes}</h2>'
            '<p class="legend"><span><i class="k b"></i>messages read (Bind), sized by count</span>'
            '<span><i class="k u"></i>the same, in the owner\'s usual context</span>'
            '<span><i class="k s"></i>folder synced (Sync)</span>'
            '<span><i class="k w"></i>throttled: 24 hours not audited</span></p>'
            f'<div class="wrap">{render_timeline(timeline)}</div></section>'
        )
    sessions_columns, _ = views.VIEWS["sessions"]
    messages_columns, _ = views.VIEWS["messages"]
    message_total = sum(len(event.message_ids) for event in held)
    sink.write(
        exposure
        + render_table(
            "sessions", "Sessions", sessions_columns,
            views.session_rows(held, None, budget, ip_context=context),
        )
        + render_table(
            "messages", "Messages, record by record", messages_columns,
            views.message_rows(held, lookup, ip_context=context), total=message_total,
        )
        + render_evidence(query, summary, generated, context)
        + f"<script>{SCRIPT}</script></body></html>"
    )  # fmt: skip
    return len(held)


def write_table_page(
    title: str,
    subtitle: str,
    table: tuple[str, str, tuple[str, ...], Iterator[dict[str, Any]]],
    facts: Sequence[tuple[str, str]],
    sink: TextSink,
    note: str = "",
) -> None:
    """A self-contained page of one table (name, title, columns, rows) and the facts that say
    what it covers, with the report page's style, script and Content-Security-Policy; every value
    escaped as element text."""
    name, table_title, columns, rows = table
    listed = "".join(f"<dt>{_text(fact)}</dt><dd>{_text(value)}</dd>" for fact, value in facts)
    sink.write(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_text(CONTENT_SECURITY_POLICY)}">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>{_text(title)}</h1><p class="sub">{_text(subtitle)}</p></header>'
        + (f'<p class="sub">{_text(note)}</p>' if note else "")
        + render_table(name, table_title, columns, rows)
        + f'<section id="evidence"><h2>Parameters</h2><dl>{listed}</dl></section>'
        + f"<script>{SCRIPT}</script></body></html>"
    )
