"""shared/clients/transport.py against real HTTP servers on 127.0.0.1 (http.server on free ports):
the token and its refresh, the host guard, retries and Retry-After, the deadline, the pause shared
by threads, and the classification of every answer. Time is a fake clock the transport sleeps on,
so waits are asserted exactly and nothing sleeps for real."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import requests

from shared.clients.auth import AuthFailed, TokenUnavailable
from shared.clients.errors import (
    ApiAuthError,
    ApiError,
    DeadlineReached,
    PermanentError,
    Throttled,
    TransientError,
)
from shared.clients.retries import RetryTally
from shared.clients.transport import MIN_REQUEST_SECONDS, Pauses, RateLimiter, RetryPolicy, Transport

pytestmark = pytest.mark.integration

Answer = tuple[int, dict[str, str], bytes]
Script = Answer | Callable[[Mapping[str, str]], Answer]
OK: Answer = (200, {}, b'{"ok": true}')


class Api:
    """An HTTP server answering each path from a script (the last answer repeats, OK by default),
    recording every request's path and Authorization header, in order, into `journal` too."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.journal = journal if journal is not None else []
        self._scripts: dict[str, list[Script]] = {}
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                api._answer(self)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"

    def script(self, path: str, *answers: Script) -> None:
        self._scripts[path] = list(answers)

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        with self._lock:
            self.seen.append((handler.path, headers.get("authorization")))
            self.journal.append(handler.path)
            script = self._scripts.get(handler.path, [OK])
            answer = script.pop(0) if len(script) > 1 else script[0]
        status, extra, body = answer(headers) if callable(answer) else answer
        handler.send_response(status)
        for name, value in {"Content-Type": "application/json", **extra}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def __enter__(self) -> Api:
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Tokens:
    """A TokenProvider handing out a long token per generation; invalidate() moves to the next."""

    def __init__(self) -> None:
        self.generation = 1
        self.invalidated = 0

    def token(self, scope: str) -> str:
        return f"{'s3cr3t-' * 20}{self.generation}"

    def invalidate(self) -> None:
        self.invalidated += 1
        self.generation += 1


class FailingTokens:
    """A TokenProvider whose token endpoint always fails with `problem`."""

    def __init__(self, problem: ApiError) -> None:
        self.problem = problem
        self.asked = 0

    def token(self, scope: str) -> str:
        self.asked += 1
        raise self.problem

    def invalidate(self) -> None:
        pass


class FakeTime:
    """A monotonic clock that moves only when the transport sleeps; every sleep is recorded with
    its thread's name (also into `journal`), and `on_sleep` may hold a thread at its sleep."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.now = 1000.0
        self.sleeps: list[tuple[str, float]] = []
        self.journal = journal if journal is not None else []
        self.on_sleep: Callable[[str], None] | None = None
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        name = threading.current_thread().name
        with self._lock:
            self.sleeps.append((name, seconds))
            self.journal.append(f"{name} sleeps {seconds:g}")
        if self.on_sleep is not None:
            self.on_sleep(name)
        with self._lock:
            self.now += seconds

    def slept(self, name: str = "MainThread") -> list[float]:
        return [seconds for thread, seconds in self.sleeps if thread == name]


def transport(
    api: Api | str,
    time: FakeTime,
    tokens: Any = None,
    attempts: int = 5,
    pauses: Pauses | None = None,
    **options: Any,
) -> Transport:
    return Transport(
        api if isinstance(api, str) else api.base,
        "api://test/.default",
        tokens or Tokens(),
        RetryPolicy(request_timeout_s=5, max_attempts=attempts, max_backoff_s=4),
        requests.Session(),
        api="graph",
        pauses=pauses or Pauses(),
        clock=time.clock,
        sleep=time.sleep,
        **options,
    )


def answer_json(response: requests.Response) -> Any:
    return orjson.loads(response.content)


def error(status: int, code: str = "", headers: dict[str, str] | None = None) -> Answer:
    body = orjson.dumps({"error": {"code": code, "message": f"{status} {code}"}}) if code else b""
    return status, headers or {}, body


@pytest.fixture
def api() -> Iterator[Api]:
    with Api() as server:
        yield server


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


# -- the token --------------------------------------------------------------------------------


def test_a_401_gets_one_fresh_token_and_the_request_then_succeeds(api: Api, time: FakeTime) -> None:
    tokens = Tokens()
    fresh = f"Bearer {'s3cr3t-' * 20}2"
    api.script("/x", lambda headers: OK if headers.get("authorization") == fresh else error(401))

    assert transport(api, time, tokens).request("GET", f"{api.base}/x", answer_json) == {"ok": True}
    assert [auth for _, auth in api.seen] == [f"Bearer {'s3cr3t-' * 20}1", fresh]
    assert tokens.invalidated == 1
    assert time.sleeps == []  # a refresh is not a retry: no backoff


def test_a_401_with_the_fresh_token_too_is_an_auth_error_not_retried(api: Api, time: FakeTime) -> None:
    tokens = Tokens()
    api.script("/x", error(401, "InvalidAuthenticationToken"))

    with pytest.raises(ApiAuthError) as caught:
        transport(api, time, tokens).request("GET", f"{api.base}/x", answer_json)

    assert caught.value.status == 401
    assert len(api.seen) == 2
    assert tokens.invalidated == 1


def test_an_unreachable_token_endpoint_is_transient_and_retried(api: Api, time: FakeTime) -> None:
    tokens = FailingTokens(TokenUnavailable("token endpoint unreachable: ConnectionError"))

    with pytest.raises(TokenUnavailable) as caught:
        transport(api, time, tokens, attempts=3).request("GET", f"{api.base}/x", answer_json)

    assert isinstance(caught.value, TransientError)
    assert tokens.asked == 3
    assert len(time.sleeps) == 2
    assert api.seen == []


def test_a_refused_token_is_permanent_and_not_retried(api: Api, time: FakeTime) -> None:
    tokens = FailingTokens(AuthFailed("token request refused: invalid_client (check CLIENT_ID)"))

    with pytest.raises(AuthFailed) as caught:
        transport(api, time, tokens, attempts=3).request("GET", f"{api.base}/x", answer_json)

    assert isinstance(caught.value, ApiAuthError)
    assert isinstance(caught.value, PermanentError)
    assert str(caught.value) == "token request refused: invalid_client (check CLIENT_ID)"
    assert tokens.asked == 1
    assert time.sleeps == []


def test_the_token_never_appears_in_an_error_even_when_the_service_echoes_it(
    api: Api, time: FakeTime
) -> None:
    def echo_json(headers: Mapping[str, str]) -> Answer:
        message = f"rejected {headers['authorization']}"
        return 400, {}, orjson.dumps({"error": {"code": "BadRequest", "message": message}})

    def echo_text(headers: Mapping[str, str]) -> Answer:  # the token across the 200-character cut
        return 400, {"Content-Type": "text/plain"}, ("x" * 185 + headers["authorization"]).encode()

    api.script("/json", echo_json)
    api.script("/text", echo_text)
    token = Tokens().token("any")
    client = transport(api, time)

    for path in ("/json", "/text"):
        with pytest.raises(PermanentError) as caught:
            client.request("GET", f"{api.base}{path}", answer_json)
        assert token[:7] not in str(caught.value)
        assert token[:7] not in caught.value.message
    assert [auth for _, auth in api.seen] == [f"Bearer {token}"] * 2  # the token was sent


# -- the host guard ---------------------------------------------------------------------------


def test_the_token_is_never_sent_to_another_origin(api: Api, time: FakeTime) -> None:
    with Api() as foreign:
        client = transport(api, time)
        same_host_other_port = f"{foreign.base}/mail/alice@contoso.com"
        other_scheme = api.base.replace("http://", "https://") + "/x"
        user_info = api.base.replace("http://", "http://alice@contoso.com@") + "/x"
        for url in (same_host_other_port, other_scheme, user_info, "http://localhost.evil.example/x"):
            with pytest.raises(PermanentError) as caught:
                client.request("GET", url, answer_json)
            assert caught.value.code == "foreign_host"
            assert "alice" not in str(caught.value)  # no path or user info into a log
        assert foreign.seen == []
        assert api.seen == []


def test_a_redirect_to_another_origin_arrives_there_without_the_token(api: Api, time: FakeTime) -> None:
    with Api() as foreign:
        api.script("/moved", (302, {"Location": f"{foreign.base}/elsewhere"}, b""))

        transport(api, time).request("GET", f"{api.base}/moved", answer_json)

        assert foreign.seen == [("/elsewhere", None)]
        assert api.seen[0][1] is not None


# -- retries and Retry-After ------------------------------------------------------------------


def test_retry_after_in_seconds_is_waited_in_full_even_past_the_longest_backoff(
    api: Api, time: FakeTime
) -> None:
    api.script("/x", error(503, "ServiceUnavailable", {"Retry-After": "7"}), OK)

    assert transport(api, time).request("GET", f"{api.base}/x", answer_json) == {"ok": True}
    assert time.slept() == [7.0]  # max_backoff_s is 4: the service's word wins
    assert len(api.seen) == 2


def test_retry_after_as_an_http_date_is_waited_until_that_time(api: Api, time: FakeTime) -> None:
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    api.script("/x", error(429, "TooManyRequests", {"Retry-After": in_a_minute}), OK)

    transport(api, time).request("GET", f"{api.base}/x", answer_json)

    [waited] = time.slept()
    assert 50 < waited <= 60


def test_without_retry_after_the_backoff_doubles_with_jitter_up_to_its_maximum(
    api: Api, time: FakeTime
) -> None:
    api.script("/x", error(500), error(500), error(500), error(500), OK)

    transport(api, time).request("GET", f"{api.base}/x", answer_json)

    first, second, third, fourth = time.slept()
    assert 0.5 <= first <= 1.5
    assert 1.0 <= second <= 2.0
    assert 2.0 <= third <= 3.0
    assert fourth == 4.0  # 4 + jitter, cut to max_backoff_s


def test_a_body_the_reader_refuses_is_fetched_again(api: Api, time: FakeTime) -> None:
    api.script("/x", (200, {}, b'{"cut'), OK)

    def whole(response: requests.Response) -> Any:
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TransientError(200, "truncated", "cut short") from None

    assert transport(api, time).request("GET", f"{api.base}/x", whole) == {"ok": True}
    assert len(api.seen) == 2


def test_each_retry_is_counted_by_host_and_reason_and_logged_at_debug_only_the_give_up_warns(
    api: Api, time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    tally = RetryTally()
    api.script("/x", error(503), error(500, "AF50000"), OK)
    api.script("/y", error(503))
    calls = transport(api, time, attempts=3, retries=tally)

    with caplog.at_level(logging.DEBUG, logger="shared.clients.transport"):
        calls.request("GET", f"{api.base}/x", answer_json)
        with pytest.raises(TransientError):
            calls.request("GET", f"{api.base}/y", answer_json)

    host = api.base.removeprefix("http://")
    assert tally.as_dict() == {
        "retries": 4,
        "gave_up": 1,
        "by": [
            {"host": host, "reason": "503", "retries": 3, "gave_up": 1},
            {"host": host, "reason": "AF50000", "retries": 1, "gave_up": 0},
        ],
    }
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.DEBUG] * 4 + [logging.WARNING]
    assert caplog.records[-1].getMessage() == f"giving up on {host} after 3 attempts: 503: "


# -- the deadline -----------------------------------------------------------------------------


def test_a_retry_after_that_would_pass_the_deadline_is_not_waited(api: Api, time: FakeTime) -> None:
    api.script("/x", error(429, "TooManyRequests", {"Retry-After": "30"}))

    with pytest.raises(DeadlineReached) as caught:
        transport(api, time).request("GET", f"{api.base}/x", answer_json, deadline=time.now + 10)

    assert isinstance(caught.value, TransientError)
    assert "TooManyRequests" in str(caught.value)
    assert time.sleeps == []
    assert len(api.seen) == 1


def test_retries_stop_at_the_deadline_not_at_the_attempts_and_no_sleep_passes_it(
    api: Api, time: FakeTime
) -> None:
    api.script("/x", error(500))
    deadline = time.now + 8

    with pytest.raises(DeadlineReached):
        transport(api, time, attempts=50).request("GET", f"{api.base}/x", answer_json, deadline=deadline)

    assert 3 <= len(api.seen) < 50
    assert len(time.sleeps) == len(api.seen) - 1
    assert time.now + MIN_REQUEST_SECONDS <= deadline  # every request had its second


def test_with_less_than_a_request_left_before_the_deadline_nothing_is_sent(api: Api, time: FakeTime) -> None:
    with pytest.raises(DeadlineReached):
        transport(api, time).request("GET", f"{api.base}/x", answer_json, deadline=time.now + 0.5)

    assert api.seen == []


def test_a_request_budget_with_no_slot_before_the_deadline_sends_nothing(api: Api, time: FakeTime) -> None:
    client = transport(api, time, pacing=RateLimiter(1, 60.0, clock=time.clock, sleep=time.sleep))
    client.request("GET", f"{api.base}/x", answer_json)

    with pytest.raises(DeadlineReached):
        client.request("GET", f"{api.base}/x", answer_json, deadline=time.now + 30)

    assert len(api.seen) == 1
    assert time.sleeps == []


# -- back-pressure shared by threads ----------------------------------------------------------


def run_two_threads(
    first: Callable[[], Any], second: Callable[[], Any], time: FakeTime
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """`first` runs in thread A until it sleeps; there A waits until `second`, in thread B, has run
    to its end (or slept). Returns each thread's result and error."""
    a_sleeps, b_went = threading.Event(), threading.Event()
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def hold(name: str) -> None:
        if name == "A":
            a_sleeps.set()
            assert b_went.wait(10)
        else:
            b_went.set()

    def run(name: str, call: Callable[[], Any]) -> None:
        try:
            results[name] = call()
        except BaseException as problem:
            errors[name] = problem
        finally:
            if name == "B":
                b_went.set()

    time.on_sleep = hold
    a = threading.Thread(target=run, args=("A", first), name="A")
    b = threading.Thread(target=run, args=("B", second), name="B")
    a.start()
    assert a_sleeps.wait(10), "A never got to its retry"
    b.start()
    for thread in (a, b):
        thread.join(10)
    return results, errors


def test_a_429_on_one_thread_pauses_another_thread_on_the_same_host() -> None:
    journal: list[str] = []
    time = FakeTime(journal)
    pauses = Pauses()  # what every transport of the process shares by default
    with Api(journal) as api:
        api.script("/a", error(429, "TooManyRequests", {"Retry-After": "30"}), OK)
        first, second = transport(api, time, pauses=pauses), transport(api, time, pauses=pauses)

        results, errors = run_two_threads(
            lambda: first.request("GET", f"{api.base}/a", answer_json),
            lambda: second.request("GET", f"{api.base}/b", answer_json),
            time,
        )

    assert errors == {}
    assert results == {"A": {"ok": True}, "B": {"ok": True}}
    assert time.slept("B") == [30.0]  # B waited out A's Retry-After before sending anything
    assert journal.index("B sleeps 30") < journal.index("/b")
    assert [path for path, _ in api.seen].count("/b") == 1


def test_an_error_that_is_not_throttling_pauses_no_other_thread() -> None:
    journal: list[str] = []
    time = FakeTime(journal)
    with Api(journal) as api:
        api.script("/a", error(500), OK)
        shared = transport(api, time)

        results, errors = run_two_threads(
            lambda: shared.request("GET", f"{api.base}/a", answer_json),
            lambda: shared.request("GET", f"{api.base}/b", answer_json),
            time,
        )

    assert errors == {}
    assert set(results) == {"A", "B"}
    assert time.slept("B") == []


def test_an_api_with_its_own_throttling_scope_is_not_paused_by_the_rest_of_its_host(
    api: Api, time: FakeTime
) -> None:
    pauses = Pauses()
    api.script("/mail", error(429, "TooManyRequests", {"Retry-After": "30"}), OK)
    mail = transport(api, time, attempts=1, pauses=pauses)
    trace = transport(api, time, pauses=pauses, throttling_scope="message trace")
    with pytest.raises(Throttled):
        mail.request("GET", f"{api.base}/mail", answer_json)

    trace.request("GET", f"{api.base}/trace", answer_json)
    assert time.sleeps == []
    mail.request("GET", f"{api.base}/mail", answer_json)
    assert time.slept() == [30.0]  # the pause holds for the rest of the host
    assert [path for path, _ in api.seen] == ["/mail", "/trace", "/mail"]


# -- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kind", "sent"),
    [
        pytest.param(error(400, "BadRequest"), PermanentError, 1, id="400"),
        pytest.param(error(403, "ErrorAccessDenied"), ApiAuthError, 1, id="403"),
        pytest.param(error(404, "ErrorInvalidUser"), PermanentError, 1, id="404"),
        pytest.param(error(409), PermanentError, 1, id="409"),
        pytest.param(error(408), TransientError, 2, id="408"),
        pytest.param(error(429, "TooManyRequests"), Throttled, 2, id="429"),
        pytest.param(error(500, "InternalServerError"), TransientError, 2, id="500"),
        pytest.param(error(502), TransientError, 2, id="502"),
        pytest.param(error(503), TransientError, 2, id="503"),
        pytest.param(error(503, headers={"Retry-After": "1"}), Throttled, 2, id="503-retry-after"),
        pytest.param(error(504), TransientError, 2, id="504"),
    ],
)
def test_each_status_has_its_class_and_only_transient_ones_are_retried(
    api: Api, time: FakeTime, answer: Answer, kind: type[ApiError], sent: int
) -> None:
    api.script("/x", answer)

    with pytest.raises(ApiError) as caught:
        transport(api, time, attempts=2).request("GET", f"{api.base}/x", answer_json)

    assert type(caught.value) is kind
    assert caught.value.status == answer[0]
    assert len(api.seen) == sent


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_network_failure_is_transient_and_named_by_its_type_only(time: FakeTime) -> None:
    down = f"http://127.0.0.1:{_closed_port()}"

    with pytest.raises(TransientError) as caught:
        transport(down, time, attempts=2).request("GET", f"{down}/users/alice@contoso.com", answer_json)

    assert (caught.value.status, caught.value.code, caught.value.message) == (0, "network", "ConnectionError")
    assert len(time.sleeps) == 1
