"""Validate a report request (HTTP query string or CLI flags) into a ReportQuery.

Every bad input raises RequestError with an HTTP status, a stable code and a message that says
what to fix. Nothing a caller sends is used before it has passed these checks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from shared.access.params import EARLIEST as EARLIEST
from shared.access.params import GUID, UPN
from shared.access.params import MAX_PARAM_CHARS as MAX_PARAM_CHARS
from shared.access.params import RequestError as RequestError
from shared.access.params import parse_end as parse_end
from shared.access.params import parse_time as parse_time
from shared.settings import ReportSettings

VIEWS = ("events", "messages", "sessions", "exposure")  # what the HTTP endpoint serves
# `mia report` also triages: one row per mailbox. Over HTTP a report is of one mailbox, so the
# endpoint refuses it.
CLI_ONLY_VIEWS = ("mailboxes",)
CLI_VIEWS = (*VIEWS, *CLI_ONLY_VIEWS)
# xlsx (shared/reports/workbook.py) and html (shared/reports/html.py) hold every view; `view` does
# not apply to them.
FORMATS = ("csv", "json", "xlsx", "html")
BY = ("mailbox", "actor")

# Mailbox ids of exports whose ids were anonymised (hashes, pseudonyms such as "User_7F3A9C"):
# letters, digits and . _ ~ + = - only (no spaces, quotes, slashes or other punctuation).
_PSEUDONYM = re.compile(r"^[A-Za-z0-9._~+=\-]{1,256}$")
# Non-UPN actors: service accounts ("NT AUTHORITY\SYSTEM (Microsoft.Exchange.ServiceHost)"), SIDs.
_ACTOR = re.compile(r"^[A-Za-z0-9 ._'!#^~+\-@\\():]{1,256}$")
# Continuation tokens: "v1." + base64url (RFC 4648 section 5, unpadded) of the UTF-8 RowKey, so
# any RowKey the table holds (spaces, accents, percent-escapes) travels in a URL unchanged.
AFTER_PREFIX = "v1."
# A Table Storage key is at most 1 KiB; 4 UTF-8 bytes a character bounds the encoded length.
MAX_ROW_KEY_CHARS = 1024
_AFTER_TOKEN = re.compile(r"^v1\.[A-Za-z0-9_-]{23,5500}$")
# What shared.storage.tables writes: a time key, "_", then characters a Table key may hold.
_ROW_KEY = re.compile(r"^\d{8}T\d{6}_[^/\\#?\x00-\x1f\x7f-\x9f]+$")
# SessionId is a GUID in practice; allow what identifiers look like, nothing that could escape.
_SESSION = re.compile(r"^[A-Za-z0-9._:{}\-]{1,128}$")
MAX_FILTER_VALUES = 50
MAX_FILTER_CHARS = 4000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The open ends of a report from export files given no `from` (or no `to`): the whole of the files.
# Only `mia report --input` makes them; it narrows them to the files' own first and last record
# (assemble.within_the_files) before anything is rendered.
WHOLE_START = datetime.min.replace(tzinfo=UTC)
WHOLE_END = datetime.max.replace(microsecond=0, tzinfo=UTC)
STORAGE_NEEDS_SUBJECT = (
    "give the mailbox (or, with --by actor, the user): a report from storage is of one mailbox; "
    "only a report of --input files may leave it out, to cover every mailbox in them"
)


@dataclass(frozen=True)
class ReportQuery:
    # The mailbox (or actor) key; None only for a report of export files that covers every
    # mailbox in them (parse_file_report_request), never for storage or HTTP.
    subject: str | None
    by: str
    view: str
    fmt: str
    start: datetime  # inclusive
    end: datetime  # exclusive
    after: str | None = None
    # Filters, applied to the events before any view: an event passes when its ClientIP is in one
    # of `ips` (if any), its SessionId is one of `sessions` (if any) and its ClientIP is in none of
    # `exclude_ips`.
    ips: tuple[IPNetwork, ...] = ()
    sessions: tuple[str, ...] = ()
    exclude_ips: tuple[IPNetwork, ...] = ()


def _shown(value: str) -> str:
    return value[:MAX_PARAM_CHARS].encode("unicode_escape").decode()


def _filter_values(name: str, raw: str) -> list[str]:
    if len(raw) > MAX_FILTER_CHARS:
        raise RequestError(400, f"invalid_{name}", f"'{name}' is longer than {MAX_FILTER_CHARS} characters")
    values = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if len(values) > MAX_FILTER_VALUES:
        raise RequestError(400, f"invalid_{name}", f"'{name}' may list at most {MAX_FILTER_VALUES} values")
    return values


def parse_ip_filter(name: str, raw: str) -> tuple[IPNetwork, ...]:
    """Comma-separated IP addresses or CIDR ranges (`185.220.101.45`, `2001:db8::/32`)."""
    networks: list[IPNetwork] = []
    for value in _filter_values(name, raw):
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise RequestError(
                400,
                f"invalid_{name}",
                f"'{name}' must be IP addresses or CIDR ranges, comma-separated "
                f"(185.220.101.45,2001:db8::/32); got '{_shown(value)}'",
            ) from None
        if network not in networks:
            networks.append(network)
    return tuple(networks)


def parse_session_filter(raw: str) -> tuple[str, ...]:
    """Comma-separated SessionIds: letters, digits and . _ : { } - only, at most 128 each."""
    values = _filter_values("session", raw)
    for value in values:
        if not _SESSION.fullmatch(value):
            raise RequestError(
                400,
                "invalid_session",
                "'session' must be SessionIds, comma-separated (letters, digits, '.', '_', ':', "
                f"'{{', '}}', '-'; at most 128 characters each); got '{_shown(value)}'",
            )
    return tuple(values)


def stored_subject(query: ReportQuery) -> str:
    """The subject a report from storage reads: the tables are keyed by mailbox (or actor)."""
    if query.subject is None:
        raise RequestError(400, "missing_mailbox", STORAGE_NEEDS_SUBJECT)
    return query.subject


def _view(params: Mapping[str, str], allowed: tuple[str, ...]) -> str:
    view = params.get("view", "")
    if view in CLI_ONLY_VIEWS and view not in allowed:
        raise RequestError(
            400,
            "invalid_view",
            f"view={view} is given by `mia report` only (`mia report --input FILE... --view {view}`): "
            "a report here is of one mailbox; ask for view=sessions or view=exposure",
        )
    return _choice(params, "view", allowed)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "") or allowed[0]
    if value not in allowed:
        raise RequestError(
            400, f"invalid_{name}", f"'{name}' must be one of {', '.join(allowed)}; got '{_shown(value)}'"
        )
    return value


def validate_subject(subject: str, by: str) -> str:
    """The mailbox (or actor) as its stored key, lower-cased when it is a UPN."""
    if not subject:
        raise RequestError(400, "missing_mailbox", "give the mailbox UPN in the path: /api/reports/{mailbox}")
    if len(subject) > 320:
        raise RequestError(400, "mailbox_too_long", "the mailbox is longer than 320 characters")
    if UPN.fullmatch(subject) or GUID.fullmatch(subject):
        return subject.lower()
    if by == "actor" and _ACTOR.fullmatch(subject):
        return subject
    raise RequestError(
        400,
        "invalid_mailbox",
        "the mailbox must be a user principal name (user@contoso.com) or a mailbox GUID; "
        "quotes, spaces, control characters and other punctuation are not allowed",
    )


def validate_file_subject(subject: str, by: str) -> str:
    """The mailbox (or actor) of a report from export files, as the files' events name it.

    A mailbox may also be an identifier that is neither a UPN nor a GUID (an export whose ids were
    anonymised): it is only compared with the records, never sent anywhere. Lower-cased, as
    shared.parse.normalize lower-cases every mailbox it derives."""
    if by == "mailbox" and _PSEUDONYM.fullmatch(subject):
        return subject.lower()
    return validate_subject(subject, by)


def encode_after(row_key: str) -> str:
    """The opaque continuation token of a RowKey (the inverse of decode_after)."""
    return AFTER_PREFIX + base64.urlsafe_b64encode(row_key.encode("utf-8")).rstrip(b"=").decode("ascii")


def decode_after(token: str) -> str:
    """The RowKey a continuation token names; RequestError unless it is exactly what
    encode_after gives for a RowKey shared.storage.tables can have written."""
    invalid = RequestError(400, "invalid_after", "'after' must be the continuation token of a previous page")
    if not _AFTER_TOKEN.fullmatch(token):
        raise invalid
    body = token[len(AFTER_PREFIX) :]
    try:
        row_key = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid from None
    # Re-encoding rejects the other spellings base64 tolerates (stray low bits in the last symbol).
    if len(row_key) > MAX_ROW_KEY_CHARS or not _ROW_KEY.fullmatch(row_key) or encode_after(row_key) != token:
        raise invalid
    return row_key


def _whole_second(moment: datetime) -> datetime:
    """Rounded up to the second. Records carry whole seconds and rows are keyed by the second, so
    for them `t >= bound` and `t < bound` keep their meaning, and storage and files agree."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _checked(moment: datetime, name: str, latest: datetime) -> None:
    if not EARLIEST <= moment <= latest:
        raise RequestError(400, "date_out_of_range", f"'{name}' must fall between 2015-01-01 and tomorrow")


def _range(
    params: Mapping[str, str], settings: ReportSettings, now: datetime, *, open_ended: bool
) -> tuple[datetime, datetime]:
    """[start, end) of `from` and `to`. A bound not given is REPORT_DEFAULT_DAYS before `to` (or
    now), or, when `open_ended`, the whole of the files on that side (WHOLE_START, WHOLE_END)."""
    raw_from, raw_to = params.get("from", ""), params.get("to", "")
    try:  # arithmetic near year 1 or 9999 overflows: out of range, not a server error
        end = parse_end(raw_to) if raw_to else (WHOLE_END if open_ended else now)
        if raw_from:
            start = parse_time("from", raw_from, end_of_day=False)
        else:
            start = WHOLE_START if open_ended else end - timedelta(days=settings.default_days)
        start, end = _whole_second(start), _whole_second(end)
    except OverflowError:
        raise RequestError(
            400, "date_out_of_range", "'from' and 'to' must fall between 2015-01-01 and tomorrow"
        ) from None
    # The end of tomorrow (UTC): `to=<tomorrow's date>` means up to midnight after it.
    latest = datetime.combine(now.astimezone(UTC).date() + timedelta(days=2), time.min, UTC)
    for name, moment, given in (("from", start, raw_from), ("to", end, raw_to)):
        if given or not open_ended:
            _checked(moment, name, latest)
    if start >= end:
        raise RequestError(400, "invalid_range", "'from' must be earlier than 'to'")
    bounded = start != WHOLE_START and end != WHOLE_END
    if bounded and end - start > timedelta(days=settings.max_days):
        raise RequestError(
            400,
            "range_too_large",
            f"the range from 'from' to 'to' may span at most {settings.max_days} days; split it",
        )
    return start, end


def report_range(
    params: Mapping[str, str], settings: ReportSettings, now: datetime, *, open_ended: bool
) -> tuple[datetime, datetime]:
    """[start, end) of `from` and `to`, checked as for a report (REPORT_MAX_DAYS bounds it)."""
    return _range(params, settings, now, open_ended=open_ended)


def _choices(params: Mapping[str, str], views: tuple[str, ...]) -> tuple[str, str, str]:
    """by, view and format, checked in that order."""
    return _choice(params, "by", BY), _view(params, views), _choice(params, "format", FORMATS)


def _query(
    key: str | None,
    choices: tuple[str, str, str],
    params: Mapping[str, str],
    settings: ReportSettings,
    now: datetime,
    *,
    open_ended: bool,
) -> ReportQuery:
    by, view, fmt = choices
    start, end = _range(params, settings, now, open_ended=open_ended)
    raw_after = params.get("after") or None
    if raw_after is not None and fmt in ("xlsx", "html"):
        raise RequestError(
            400,
            "invalid_after",
            "'after' pages CSV and JSON only: a workbook or an HTML page always starts at 'from' "
            "(its tables say how many rows they leave to CSV/JSON paging)",
        )
    after = decode_after(raw_after) if raw_after is not None else None
    return ReportQuery(
        subject=key,
        by=by,
        view=view,
        fmt=fmt,
        start=start,
        end=end,
        after=after,
        ips=parse_ip_filter("ip", params.get("ip", "")),
        sessions=parse_session_filter(params.get("session", "")),
        exclude_ips=parse_ip_filter("exclude_ip", params.get("exclude_ip", "")),
    )


def parse_report_request(
    subject: str,
    params: Mapping[str, str],
    settings: ReportSettings,
    now: datetime | None = None,
    *,
    views: tuple[str, ...] = VIEWS,
) -> ReportQuery:
    """A report of one mailbox (or actor) from storage; `views` are those the caller serves."""
    now = now or datetime.now(UTC)
    choices = _choices(params, views)
    key = validate_subject(subject, choices[0])
    return _query(key, choices, params, settings, now, open_ended=False)


def parse_file_report_request(
    subject: str | None, params: Mapping[str, str], settings: ReportSettings, now: datetime | None = None
) -> ReportQuery:
    """A report of export files (`mia report --input`). Without a subject it covers every mailbox
    in them (subject None; `by` must then be mailbox); a bound not given is the files' own edge
    (WHOLE_START, WHOLE_END), not REPORT_DEFAULT_DAYS."""
    now = now or datetime.now(UTC)
    choices = _choices(params, CLI_VIEWS)
    by = choices[0]
    if subject:
        key: str | None = validate_file_subject(subject, by)
    elif by == "actor":
        raise RequestError(400, "missing_actor", "with --by actor, give the user whose access to report")
    else:
        key = None
    return _query(key, choices, params, settings, now, open_ended=True)
