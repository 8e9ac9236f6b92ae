"""The simulator's Microsoft Graph over real HTTPS: message lookup by internetMessageId, $batch, the
Outlook throttling limits and message trace (docs/mailitemsaccessed.md#microsoft-graph-message-lookup,
docs/mailitemsaccessed.md#graph-message-trace)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
import requests

from simulator import FaultConfig, Simulator, SimulatorConfig
from simulator.records import MessageMeta

GRAPH = "https://graph.microsoft.com"
QUIET = FaultConfig.none()
DENIED = "dave@contoso.com"


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("simulator_ca_only")]


def config(**overrides: Any) -> SimulatorConfig:
    values: dict[str, Any] = {"seed": 11, "mailboxes": 2, "days": 2, "faults": QUIET}
    return SimulatorConfig(**{**values, **overrides})


def token_for(sim: Simulator, scope: str = f"{GRAPH}/.default") -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": sim.client_id,
        "client_secret": sim.client_secret,
        "scope": scope,
    }
    response = requests.post(
        f"{sim.base_url}/{sim.tenant_id}/oauth2/v2.0/token", data=form, verify=sim.ca_bundle, timeout=10
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


class Graph:
    """Requests the way our client makes them: `{GRAPH_API_BASE}/v1.0/...` with a Graph token."""

    def __init__(self, sim: Simulator, token: str | None = None) -> None:
        self.sim = sim
        self.root = f"{sim.settings_env()['GRAPH_API_BASE']}/v1.0"
        self.token = token if token is not None else token_for(sim)
        self.session = requests.Session()

    def get(self, url: str, **params: str) -> requests.Response:
        target = url if url.startswith("https://") else f"{self.root}{url}"
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.session.get(target, params=params, headers=headers, verify=self.sim.ca_bundle, timeout=10)

    def lookup(self, mailbox: str, message_id: str, **params: str) -> requests.Response:
        escaped = message_id.replace("'", "''")
        return self.get(
            f"/users/{mailbox}/messages", **{"$filter": f"internetMessageId eq '{escaped}'"}, **params
        )

    def batch(self, payload: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.session.post(
            f"{self.root}/$batch", json=payload, headers=headers, verify=self.sim.ca_bundle, timeout=30
        )

    def traces(self, **params: str) -> requests.Response:
        return self.get("/admin/exchange/tracing/messageTraces", **params)


def lookup_url(mailbox: str, message_id: str) -> str:
    """A $batch item url, relative and fully encoded."""
    expression = quote(f"internetMessageId eq '{message_id}'", safe="")
    return f"/users/{mailbox}/messages?$filter={expression}"


def error_code(response: requests.Response) -> str:
    return str(response.json()["error"]["code"])


def pick(
    sim: Simulator, wanted: Callable[[MessageMeta], bool], mailbox: str | None = None
) -> tuple[str, MessageMeta]:
    """The first (mailbox, message) matching `wanted`, outside the RBAC-denied mailbox."""
    oldest = datetime.now(UTC) - timedelta(days=85)
    for upn, messages in sorted(sim.tenant.messages.items()):
        if upn == DENIED or (mailbox and upn != mailbox):
            continue
        for meta in messages.values():
            if meta.received > oldest and wanted(meta):
                return upn, meta
    raise AssertionError("no such message in the tenant")


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window(start: datetime, end: datetime, *clauses: str) -> str:
    return " and ".join(
        [f"receivedDateTime ge {stamp(start)}", f"receivedDateTime le {stamp(end)}", *clauses]
    )


def around(meta: MessageMeta) -> tuple[datetime, datetime]:
    return meta.received - timedelta(days=2), meta.received + timedelta(days=2)


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(config(graph_denied_mailboxes=(DENIED.upper(),))) as running:
        yield running


@pytest.fixture(scope="module")
def graph(sim: Simulator) -> Graph:
    return Graph(sim)


# -- tokens ------------------------------------------------------------------------------------


def test_a_graph_token_carries_the_graph_roles_and_the_management_token_does_not(sim: Simulator) -> None:
    claims = jwt.decode(token_for(sim), options={"verify_signature": False})
    assert claims["aud"] == GRAPH
    assert sorted(claims["roles"]) == [
        "AuditLogsQuery-Exchange.Read.All",
        "ExchangeMessageTrace.Read.All",
        "Mail.ReadBasic.All",
    ]
    management = jwt.decode(token_for(sim, f"{sim.base_url}/.default"), options={"verify_signature": False})
    assert management["roles"] == ["ActivityFeed.Read"]
    assert sim.settings_env()["GRAPH_API_BASE"] == sim.base_url


def test_a_management_token_a_bad_token_or_none_is_401_on_graph(sim: Simulator, graph: Graph) -> None:
    mailbox, meta = pick(sim, lambda m: not m.purged)
    management = token_for(sim, f"{sim.base_url}/.default")
    bad = {
        management: "Invalid audience",
        "not-a-jwt": "not well formed",
        sim.mint_token(audience=GRAPH, lifetime_s=-60): "expired",
    }
    for token, reason in bad.items():
        refused = Graph(sim, token).lookup(mailbox, meta.internet_message_id)
        assert refused.status_code == 401
        assert error_code(refused) == "InvalidAuthenticationToken"
        assert reason in refused.json()["error"]["message"]
    anonymous = requests.get(f"{graph.root}/users/{mailbox}/messages", verify=sim.ca_bundle, timeout=10)
    assert anonymous.status_code == 401
    feed = f"{sim.base_url}/api/v1.0/{sim.tenant_id}/activity/feed/subscriptions/list"
    on_feed = requests.get(
        feed, headers={"Authorization": f"Bearer {graph.token}"}, verify=sim.ca_bundle, timeout=10
    )
    assert on_feed.status_code == 401


def test_a_token_without_the_role_is_403_for_mail_and_for_trace(sim: Simulator) -> None:
    mailbox, meta = pick(sim, lambda m: not m.purged)
    trace_only = Graph(sim, sim.mint_token(audience=GRAPH, roles=["ExchangeMessageTrace.Read.All"]))
    denied = trace_only.lookup(mailbox, meta.internet_message_id)
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "ErrorAccessDenied",
        "message": "Access is denied. Check credentials and try again.",
    }
    assert trace_only.traces().status_code == 200
    mail_only = Graph(sim, sim.mint_token(audience=GRAPH, roles=["Mail.ReadBasic.All"]))
    forbidden = mail_only.traces()
    assert forbidden.status_code == 403
    assert error_code(forbidden) == "Forbidden"


def test_withheld_graph_roles_are_missing_from_issued_tokens() -> None:
    with Simulator(config(mailboxes=1, graph_roles=("Mail.ReadBasic.All",))) as sim:
        graph = Graph(sim)
        assert jwt.decode(graph.token, options={"verify_signature": False})["roles"] == ["Mail.ReadBasic.All"]
        assert graph.traces().status_code == 403


# -- message lookup ----------------------------------------------------------------------------


def test_an_encoded_lookup_finds_the_message_as_message_meta_describes_it(
    sim: Simulator, graph: Graph
) -> None:
    mailbox, meta = pick(sim, lambda m: "+" in m.internet_message_id and m.copies == 1 and not m.purged)
    assert sim.message_meta(mailbox.upper(), meta.internet_message_id) == meta
    response = graph.lookup(mailbox, meta.internet_message_id)
    assert response.status_code == 200, response.text
    [hit] = response.json()["value"]
    assert hit["internetMessageId"] == meta.internet_message_id
    assert hit["subject"] == meta.subject
    assert hit["sender"]["emailAddress"]["address"] == hit["from"]["emailAddress"]["address"] == meta.sender
    assert hit["receivedDateTime"] == stamp(meta.received)
    assert hit["sentDateTime"] <= hit["receivedDateTime"]
    assert hit["id"]
    assert hit["parentFolderId"]
    assert response.json()["@odata.context"].startswith(f"{sim.base_url}/v1.0/$metadata#users(")


def test_an_unencoded_plus_matches_nothing_like_the_real_service(sim: Simulator, graph: Graph) -> None:
    mailbox, meta = pick(sim, lambda m: "+" in m.internet_message_id and not m.purged)
    raw_filter = quote(f"internetMessageId eq '{meta.internet_message_id}'", safe="+")
    response = graph.get(f"/users/{mailbox}/messages?$filter={raw_filter}")
    assert response.status_code == 200
    assert response.json()["value"] == []


def test_the_user_is_matched_case_insensitively_and_select_keeps_only_what_was_asked(
    sim: Simulator, graph: Graph
) -> None:
    mailbox, meta = pick(sim, lambda m: m.copies == 1 and not m.purged)
    response = graph.lookup(mailbox.upper(), meta.internet_message_id, **{"$select": "subject,sender"})
    assert response.status_code == 200
    [hit] = response.json()["value"]
    assert set(hit) == {"id", "subject", "sender"}


def test_odata_quotes_are_doubled_and_other_filters_or_tops_are_400(sim: Simulator, graph: Graph) -> None:
    mailbox, _ = pick(sim, lambda m: True)
    path = f"/users/{mailbox}/messages"
    escaped = graph.get(path, **{"$filter": "internetMessageId eq '<it''s@example.com>'"})
    assert escaped.status_code == 200
    assert escaped.json()["value"] == []
    for bad in ("internetMessageId eq '<it's@example.com>'", "subject eq 'x'", "internetMessageId eq <x>"):
        response = graph.get(path, **{"$filter": bad})
        assert response.status_code == 400, bad
        assert error_code(response) == "BadRequest"
    for top in ("0", "1001", "ten"):
        assert graph.lookup(mailbox, "<x@y>", **{"$top": top}).status_code == 400
    assert graph.lookup(mailbox, "<x@y>", **{"$top": "1000"}).status_code == 200


def test_a_message_with_two_copies_gives_two_hits_with_their_own_ids_and_folders(
    sim: Simulator, graph: Graph
) -> None:
    mailbox, meta = pick(sim, lambda m: m.copies == 2 and not m.purged)
    hits = graph.lookup(mailbox, meta.internet_message_id).json()["value"]
    assert len(hits) == 2
    assert {h["internetMessageId"] for h in hits} == {meta.internet_message_id}
    assert len({h["id"] for h in hits}) == 2
    assert len({h["parentFolderId"] for h in hits}) == 2
    first = graph.lookup(mailbox, meta.internet_message_id, **{"$top": "1"}).json()
    assert len(first["value"]) == 1
    assert graph.get(first["@odata.nextLink"]).json()["value"][0]["id"] == hits[1]["id"]


def test_a_purged_message_is_not_found_by_graph(sim: Simulator, graph: Graph) -> None:
    mailbox, meta = pick(sim, lambda m: m.purged)
    response = graph.lookup(mailbox, meta.internet_message_id)
    assert response.status_code == 200
    assert response.json()["value"] == []


def test_an_unknown_user_is_404_and_a_mailbox_out_of_rbac_scope_is_403(sim: Simulator, graph: Graph) -> None:
    unknown = graph.lookup("nobody@contoso.com", "<x@y>")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "ErrorInvalidUser",
        "message": "The requested user 'nobody@contoso.com' is invalid.",
    }
    some_id = next(iter(sim.tenant.messages[DENIED]))
    denied = graph.lookup(DENIED, some_id)
    assert denied.status_code == 403
    assert error_code(denied) == "ErrorAccessDenied"


# -- $batch ------------------------------------------------------------------------------------


def test_a_batch_answers_each_item_by_id_with_its_own_status(sim: Simulator, graph: Graph) -> None:
    mailbox, purged = pick(sim, lambda m: m.purged)
    _, found = pick(sim, lambda m: "+" in m.internet_message_id and m.copies == 1 and not m.purged, mailbox)
    url = lookup_url(mailbox, found.internet_message_id)
    items = {
        "found": url,
        "no-slash": url.lstrip("/"),
        "purged": lookup_url(mailbox, purged.internet_message_id),
        "unknown-user": lookup_url("nobody@contoso.com", found.internet_message_id),
        "versioned": f"/v1.0{url}",
        "absolute": f"{graph.root}{url}",
        "other": f"/users/{mailbox}/mailFolders",
    }
    before = sim.stats()
    response = graph.batch({"requests": [{"id": k, "method": "GET", "url": v} for k, v in items.items()]})
    assert response.status_code == 200
    answers = {r["id"]: r for r in response.json()["responses"]}
    assert {k: v["status"] for k, v in answers.items()} == {
        "found": 200,
        "no-slash": 200,
        "purged": 200,
        "unknown-user": 404,
        "versioned": 400,
        "absolute": 400,
        "other": 400,
    }
    assert answers["found"]["body"]["value"][0]["subject"] == found.subject
    assert answers["no-slash"]["body"] == answers["found"]["body"]
    assert answers["purged"]["body"]["value"] == []
    assert answers["unknown-user"]["body"]["error"]["code"] == "ErrorInvalidUser"
    after = sim.stats()
    assert after["graph_batches"] == before["graph_batches"] + 1
    assert after["graph_batch_items"] == before["graph_batch_items"] + len(items)
    assert after["graph_requests"] == before["graph_requests"] + 1


def test_batch_responses_come_back_shuffled(sim: Simulator, graph: Graph) -> None:
    mailbox, meta = pick(sim, lambda m: not m.purged)
    ids = [str(n) for n in range(20)]
    payload = [{"id": i, "method": "GET", "url": lookup_url(mailbox, meta.internet_message_id)} for i in ids]
    answered = [r["id"] for r in graph.batch({"requests": payload}).json()["responses"]]
    assert sorted(answered, key=int) == ids
    assert answered != ids


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (
            {"requests": [{"id": str(n), "method": "GET", "url": "/users/x/messages"} for n in range(21)]},
            "20",
        ),
        ({"requests": [{"id": "1", "method": "GET", "url": "/users/x/messages"}] * 2}, "duplicate"),
        ({"requests": [{"id": "1", "method": "GET"}]}, "url"),
        ({"requests": [{"method": "GET", "url": "/users/x/messages"}]}, "id"),
        ("not json", "JSON"),
    ],
)
def test_a_malformed_batch_is_400_as_a_whole(graph: Graph, payload: Any, fragment: str) -> None:
    if isinstance(payload, str):
        headers = {"Authorization": f"Bearer {graph.token}", "Content-Type": "application/json"}
        response = requests.post(
            f"{graph.root}/$batch", data=payload, headers=headers, verify=graph.sim.ca_bundle, timeout=10
        )
    else:
        response = graph.batch(payload)
    assert response.status_code == 400
    assert error_code(response) == "BadRequest"
    assert fragment in response.json()["error"]["message"]


def test_injected_throttling_answers_429_with_retry_after_per_item_and_directly() -> None:
    faults = replace(QUIET, graph_throttle=1.0)
    with Simulator(config(mailboxes=1, faults=faults, graph_retry_after_s=3)) as sim:
        graph = Graph(sim)
        mailbox, meta = pick(sim, lambda m: not m.purged)
        direct = graph.lookup(mailbox, meta.internet_message_id)
        assert direct.status_code == 429
        assert direct.headers["Retry-After"] == "3"
        assert error_code(direct) == "ApplicationThrottled"
        items = [
            {"id": f"m{n}", "method": "GET", "url": lookup_url(mailbox, meta.internet_message_id)}
            for n in range(3)
        ]
        items.append({"id": "bad", "method": "GET", "url": f"/users/{mailbox}/messages?$top=0"})
        answers = {r["id"]: r for r in graph.batch({"requests": items}).json()["responses"]}
        assert answers.pop("bad")["status"] == 400
        for answer in answers.values():
            assert answer["status"] == 429
            assert answer["headers"]["Retry-After"] == "3"
            assert answer["body"]["error"]["code"] == "ApplicationThrottled"
        assert sim.stats()["faults"]["graph_throttle"] == 4


def test_more_than_four_concurrent_lookups_on_one_mailbox_are_throttled_but_a_batch_is_not() -> None:
    with Simulator(config(mailboxes=1, graph_latency_s=0.2)) as sim:
        mailbox, meta = pick(sim, lambda m: not m.purged)
        clients = [Graph(sim) for _ in range(8)]
        for client in clients:  # connect first, so that the lookups overlap
            assert client.get("/users/nobody@contoso.com/messages").status_code == 404
        start = threading.Barrier(len(clients))
        statuses: list[int] = []
        bodies: list[dict[str, Any]] = []

        def lookup(client: Graph) -> None:
            start.wait()
            response = client.lookup(mailbox, meta.internet_message_id)
            statuses.append(response.status_code)
            bodies.append(response.json())

        threads = [threading.Thread(target=lookup, args=(client,)) for client in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses.count(200) >= 4
        assert statuses.count(429) >= 1
        throttled = next(b for b in bodies if "error" in b)
        assert throttled["error"] == {
            "code": "ApplicationThrottled",
            "message": "Application is over its MailboxConcurrency limit.",
        }
        assert sim.stats()["faults"]["graph_concurrency"] == statuses.count(429)
        items = [
            {"id": str(n), "method": "GET", "url": lookup_url(mailbox, meta.internet_message_id)}
            for n in range(8)
        ]
        answers = clients[0].batch({"requests": items}).json()["responses"]
        assert [a["status"] for a in answers] == [200] * 8


def test_the_per_mailbox_request_budget_answers_429_until_a_slot_frees() -> None:
    with Simulator(config(mailboxes=1, graph_requests_per_window=3, graph_window_s=30)) as sim:
        graph = Graph(sim)
        mailbox, meta = pick(sim, lambda m: not m.purged)
        assert [graph.lookup(mailbox, meta.internet_message_id).status_code for _ in range(3)] == [200] * 3
        over = graph.lookup(mailbox, meta.internet_message_id)
        assert over.status_code == 429
        assert error_code(over) == "ApplicationThrottled"
        assert 1 <= int(over.headers["Retry-After"]) <= 30
        other, other_meta = pick(sim, lambda m: not m.purged, "bob@contoso.com")
        assert graph.lookup(other, other_meta.internet_message_id).status_code == 200
        assert sim.stats()["faults"]["graph_budget"] == 1


# -- message trace -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "fragment"),
    [
        (timedelta(days=-12), timedelta(days=-1), "10 days"),
        (timedelta(days=-91), timedelta(days=-85), "90 days"),
        (timedelta(days=-1), timedelta(hours=1), "future"),
        (timedelta(days=-1), None, "Both"),
        (None, timedelta(days=-1), "Both"),
    ],
)
def test_trace_time_rules_are_400_naming_the_rule(
    graph: Graph, start: timedelta | None, end: timedelta | None, fragment: str
) -> None:
    now = datetime.now(UTC)
    clauses = []
    if start is not None:
        clauses.append(f"receivedDateTime ge {stamp(now + start)}")
    if end is not None:
        clauses.append(f"receivedDateTime le {stamp(now + end)}")
    response = graph.traces(**{"$filter": " and ".join(clauses)})
    assert response.status_code == 400
    assert error_code(response) == "BadRequest"
    assert fragment in response.json()["error"]["message"]


def test_trace_refuses_other_filters_and_tops_out_of_range(graph: Graph) -> None:
    for bad in ("subject eq 'x'", "receivedDateTime gt 2026-01-01T00:00:00Z", "messageId eq '<a>' or 1"):
        assert graph.traces(**{"$filter": bad}).status_code == 400, bad
    for top in ("0", "5001"):
        assert graph.traces(**{"$top": top}).status_code == 400


def test_trace_finds_a_purged_message_by_message_id_only_within_its_window(
    sim: Simulator, graph: Graph
) -> None:
    mailbox, meta = pick(sim, lambda m: m.purged)
    start, end = around(meta)
    clause = f"messageId eq '{meta.internet_message_id}'"
    [row] = graph.traces(**{"$filter": window(start, end, clause)}).json()["value"]
    assert row["recipientAddress"] == mailbox
    assert row["senderAddress"] == meta.sender
    assert row["subject"] == meta.subject
    assert row["receivedDateTime"] == stamp(meta.received)
    assert row["status"] == "delivered"
    assert set(row) >= {"id", "size", "fromIP", "toIP"}
    earlier = graph.traces(**{"$filter": window(start - timedelta(days=3), start, clause)})
    assert earlier.status_code == 200
    assert earlier.json()["value"] == []


def test_trace_cannot_reach_messages_older_than_90_days(sim: Simulator, graph: Graph) -> None:
    now = datetime.now(UTC)
    ancient = next(
        m
        for box in sim.tenant.messages.values()
        for m in box.values()
        if m.received < now - timedelta(days=91)
    )
    clause = f"messageId eq '{ancient.internet_message_id}'"
    assert graph.traces(**{"$filter": clause}).json()["value"] == []
    oldest = window(now - timedelta(days=90), now - timedelta(days=80), clause)
    assert graph.traces(**{"$filter": oldest}).json()["value"] == []


def test_trace_address_filters_use_odata_quoting(sim: Simulator, graph: Graph) -> None:
    mailbox, meta = pick(sim, lambda m: "'" in m.sender)
    start, end = around(meta)
    clauses = ("senderAddress eq 'pat.o''neil@fabrikam.com'", f"recipientAddress eq '{mailbox.upper()}'")
    rows = graph.traces(**{"$filter": window(start, end, *clauses)}).json()["value"]
    assert meta.internet_message_id in {row["messageId"] for row in rows}
    assert {(row["senderAddress"], row["recipientAddress"]) for row in rows} == {(meta.sender, mailbox)}


def test_trace_pages_follow_next_link_until_every_row_is_listed(sim: Simulator, graph: Graph) -> None:
    mailbox = "alice@contoso.com"
    now = datetime.now(UTC)
    start, end = now - timedelta(days=12), now - timedelta(days=2)
    expected = {
        meta.internet_message_id
        for meta in sim.tenant.messages[mailbox].values()
        if start.replace(microsecond=0) <= meta.received <= end.replace(microsecond=0)
    }
    assert len(expected) > 100
    page = graph.traces(**{"$filter": window(start, end, f"recipientAddress eq '{mailbox}'"), "$top": "50"})
    seen: list[str] = []
    while True:
        body = page.json()
        assert len(body["value"]) <= 50
        seen += [row["messageId"] for row in body["value"]]
        if "@odata.nextLink" not in body:
            break
        assert body["@odata.nextLink"].startswith(
            f"{sim.base_url}/v1.0/admin/exchange/tracing/messageTraces?"
        )
        assert "$skiptoken=" in body["@odata.nextLink"]
        page = graph.get(body["@odata.nextLink"])
    assert len(seen) == len(set(seen))
    assert set(seen) == expected
    tampered = graph.traces(**{"$skiptoken": "garbage.x"})
    assert tampered.status_code == 400


def test_trace_answers_429_with_retry_after_once_the_tenant_budget_is_spent() -> None:
    with Simulator(config(mailboxes=1, trace_requests_per_window=3, trace_window_s=30)) as sim:
        graph = Graph(sim)
        assert [graph.traces().status_code for _ in range(3)] == [200] * 3
        over = graph.traces()
        assert over.status_code == 429
        assert 1 <= int(over.headers["Retry-After"]) <= 30
        stats = sim.stats()
        assert stats["trace_requests"] == 4
        assert stats["faults"]["trace_throttle"] == 1


def test_a_missing_service_principal_makes_trace_401_and_leaves_mail_alone() -> None:
    with Simulator(config(mailboxes=1, trace_missing_service_principal=True)) as sim:
        graph = Graph(sim)
        refused = graph.traces()
        assert refused.status_code == 401
        assert refused.json()["error"]["message"].startswith("Service principal-less Authentication failed")
        mailbox, meta = pick(sim, lambda m: not m.purged)
        assert graph.lookup(mailbox, meta.internet_message_id).status_code == 200


# -- counters ----------------------------------------------------------------------------------


def test_stats_count_http_requests_lookups_batches_and_traces() -> None:
    with Simulator(config(mailboxes=1)) as sim:
        graph = Graph(sim)
        mailbox, meta = pick(sim, lambda m: not m.purged)
        url = lookup_url(mailbox, meta.internet_message_id)
        graph.lookup(mailbox, meta.internet_message_id)
        graph.batch({"requests": [{"id": str(n), "method": "GET", "url": url} for n in range(3)]})
        graph.traces()
        stats = sim.stats()
        assert {key: stats[key] for key in ("graph_requests", "graph_batches", "graph_batch_items")} == {
            "graph_requests": 3,
            "graph_batches": 1,
            "graph_batch_items": 3,
        }
        assert stats["graph_message_lookups"] == 4
        assert stats["trace_requests"] == 1
        assert {stats["requests"][r] for r in ("graph_batch", "graph_messages", "message_traces")} == {1}
        assert sim.message_meta(mailbox, "<nothing@example.com>") is None
