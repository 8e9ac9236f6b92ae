"""Which events a report query selects: its mailbox or actor and time range, then its ip /
session / exclude_ip filters (applied in Python, never in OData)."""

from __future__ import annotations

import functools
import ipaddress

from shared.model.event import AccessEvent
from shared.reports.request import IPNetwork, ReportQuery


def in_scope(event: AccessEvent, query: ReportQuery) -> bool:
    """The query's mailbox (or actor) and time range."""
    who = event.user if query.by == "actor" else event.mailbox
    return (query.subject is None or who == query.subject) and query.start <= event.timestamp < query.end


@functools.lru_cache(maxsize=4096)
def _address(client_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(client_ip)
    except ValueError:  # empty, or a value the source gave that is not an address
        return None


def _in_any(client_ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    address = _address(client_ip)
    return address is not None and any(address in network for network in networks)


def passes_filters(event: AccessEvent, query: ReportQuery) -> bool:
    """The query's ip / session / exclude_ip filters."""
    if query.ips and not _in_any(event.client_ip, query.ips):
        return False
    if query.sessions and event.session_id not in query.sessions:
        return False
    return not (query.exclude_ips and _in_any(event.client_ip, query.exclude_ips))


def matches(event: AccessEvent, query: ReportQuery) -> bool:
    """Both: the event belongs in the query's report."""
    return in_scope(event, query) and passes_filters(event, query)
