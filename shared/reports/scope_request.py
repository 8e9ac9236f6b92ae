"""Validate a scope request (`GET /api/scope`, `mia scope`) into a ScopeQuery.

Exactly one context parameter (`ip`, `network`, `app`, `session`, `actor`), or `view=mailboxes`
with none; `from` and `to` are ISO dates (the index is kept per UTC day), bounded as reports are
(REPORT_MAX_DAYS). Every bad input raises RequestError (400, or 422 for a well-formed network the
index does not keep) naming the parameter. Values reach storage only as bound query parameters.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

from shared.model import scope
from shared.model.scope import days_of
from shared.reports.request import (
    WHOLE_END,
    WHOLE_START,
    RequestError,
    parse_session_filter,
    report_range,
    validate_subject,
)
from shared.settings import ReportSettings

# The query parameter of each context kind.
PARAMETERS = {"ip": scope.IP, "network": scope.NETWORK, "app": scope.APP, "session": scope.SESSION,
              "actor": scope.ACTOR}  # fmt: skip
FORMATS = ("csv", "json", "html")
SCOPE_VIEW, MAILBOXES_VIEW = "scope", "mailboxes"
VIEWS = (SCOPE_VIEW, MAILBOXES_VIEW)
MAX_VALUE_CHARS = 320
_APP = re.compile(r"^[A-Za-z0-9._:{}\-]{1,128}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ScopeQuery:
    view: str  # SCOPE_VIEW: one context; MAILBOXES_VIEW: every mailbox (kind ALL)
    kind: str
    value: str
    fmt: str
    first_day: date
    last_day: date  # included

    @property
    def parameter(self) -> str:
        """The context as the caller named it (`ip=198.51.100.23`), for titles and logs."""
        if self.view == MAILBOXES_VIEW:
            return "every mailbox"
        name = next(name for name, kind in PARAMETERS.items() if kind == self.kind)
        return f"{name}={self.value}"


def _invalid(name: str, message: str, status: int = 400) -> RequestError:
    return RequestError(status, f"invalid_{name}", message)


def _ip(raw: str) -> str:
    address = scope.parse_address(raw)
    if address is None:
        raise _invalid("ip", "'ip' must be one IP address (198.51.100.23 or 2001:db8::7)")
    return str(address)


def _network(raw: str) -> str:
    """A /24 (IPv4) or /48 (IPv6) network, or an address standing for its own."""
    if "/" not in raw:
        address = scope.parse_address(raw)
        if address is None:
            raise _invalid(
                "network", "'network' must be a /24 or /48 network (198.51.100.0/24) or an address in it"
            )
        return scope.network_value(raw)
    try:
        network = ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        raise _invalid(
            "network", "'network' must be a /24 or /48 network (198.51.100.0/24) or an address in it"
        ) from None
    wanted = scope.NETWORK_PREFIX[network.version]
    if network.prefixlen != wanted:
        raise _invalid(
            "network",
            f"'network' is indexed as /24 (IPv4) and /48 (IPv6) networks; got a /{network.prefixlen}: "
            "ask for each /24 or /48 in it, or for one address with ip=",
            status=422,
        )
    return str(network)


def _app(raw: str) -> str:
    if not _APP.fullmatch(raw):
        raise _invalid(
            "app", "'app' must be an application id (a GUID: letters, digits, '-'; at most 128 characters)"
        )
    return raw.lower()


def _session(raw: str) -> str:
    values = parse_session_filter(raw)
    if len(values) != 1:
        raise _invalid("session", "'session' must be one SessionId")
    return values[0]


def _actor(raw: str) -> str:
    try:
        return validate_subject(raw, "actor").lower()
    except RequestError:
        raise _invalid(
            "actor", "'actor' must be a user principal name (user@contoso.com) or a service account name"
        ) from None


_VALIDATORS = {
    scope.IP: _ip,
    scope.NETWORK: _network,
    scope.APP: _app,
    scope.SESSION: _session,
    scope.ACTOR: _actor,
}


def _context(params: Mapping[str, str], view: str) -> tuple[str, str]:
    given = [name for name in PARAMETERS if params.get(name, "")]
    if view == MAILBOXES_VIEW:
        if given:
            raise RequestError(
                400, "invalid_view", f"view=mailboxes covers every mailbox: leave out '{given[0]}'"
            )
        return scope.ALL, ""
    if not given:
        raise RequestError(400, "missing_context", "give exactly one of ip, network, app, session, actor")
    if len(given) > 1:
        raise RequestError(
            400,
            "too_many_contexts",
            f"give exactly one of ip, network, app, session, actor; got {', '.join(given)}",
        )
    name = given[0]
    raw = params[name]
    if len(raw) > MAX_VALUE_CHARS:
        raise _invalid(name, f"'{name}' is longer than {MAX_VALUE_CHARS} characters")
    kind = PARAMETERS[name]
    return kind, _VALIDATORS[kind](raw)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(name, "") or allowed[0]
    if value not in allowed:
        shown = value[:64].encode("unicode_escape").decode()
        raise _invalid(name, f"'{name}' must be one of {', '.join(allowed)}; got '{shown}'")
    return value


def _days(
    params: Mapping[str, str], settings: ReportSettings, now: datetime, open_ended: bool
) -> tuple[date, date]:
    for name in ("from", "to"):
        raw = params.get(name, "")
        if raw and not _DATE.fullmatch(raw):
            raise _invalid(
                name, f"'{name}' must be an ISO date (2026-11-20): the scope index is kept per UTC day"
            )
    start, end = report_range(params, settings, now, open_ended=open_ended)
    first = date.min if start == WHOLE_START else start.date()
    last = date.max if end == WHOLE_END else days_of(start, end)[1]
    return first, last


def parse_scope_request(
    params: Mapping[str, str],
    settings: ReportSettings,
    now: datetime | None = None,
    *,
    open_ended: bool = False,
) -> ScopeQuery:
    """The scope request of `params`; `open_ended` (export files only) lets a missing bound be the
    files' own edge instead of REPORT_DEFAULT_DAYS."""
    now = now or datetime.now(UTC)
    view = _choice(params, "view", VIEWS)
    fmt = _choice(params, "format", FORMATS)
    kind, value = _context(params, view)
    first, last = _days(params, settings, now, open_ended)
    return ScopeQuery(view=view, kind=kind, value=value, fmt=fmt, first_day=first, last_day=last)
