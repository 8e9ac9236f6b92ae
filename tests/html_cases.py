"""Events for the HTML report's tests: an owner's ordinary days, an attacker's session whose every
attacker-controlled field carries markup, a synced folder and a throttled record; and a parser that
lists what a page really contains (elements, attributes, text)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from shared.model.event import AccessEvent, MessageRef
from shared.reports.assemble import render_report
from shared.reports.request import ReportQuery
from tests.helpers import make_event

MAILBOX = "alice@contoso.com"
START = datetime(2026, 11, 16, tzinfo=UTC)
END = datetime(2026, 11, 21, tzinfo=UTC)
ATTACKER_IP = "185.220.101.45"
# Markup in every attacker-controlled field: a subject, a folder, a client string, an app name, a
# session id and a message id. Each must stay text.
HOSTILE_SUBJECT = "<img src=x onerror=alert(1)>"
HOSTILE_FOLDER = '\\Inbox"><script>alert(2)</script>'
HOSTILE_CLIENT = "Client=REST;<svg onload=alert(3)>"
HOSTILE_APP = "</title><iframe src=//evil.example></iframe>"
HOSTILE_SESSION = "<b onmouseover=alert(4)>s</b>"
HOSTILE_MESSAGE_ID = "<x@evil.example><img src=x onerror=alert(5)>"
HOSTILE = (HOSTILE_SUBJECT, HOSTILE_FOLDER, HOSTILE_CLIENT, HOSTILE_APP, HOSTILE_SESSION, HOSTILE_MESSAGE_ID)


def owner_day(day: int, session: str) -> list[AccessEvent]:
    """Alice on Outlook desktop from the office, three reads on day `day` of the range."""
    return [
        make_event(
            timestamp=START + timedelta(days=day, hours=9 + hour),
            session_id=session,
            record_id=f"owner-{day}-{hour}",
            items=(MessageRef(f"<owner-{day}-{hour}@contoso.com>", "Inbox", f"status {day}.{hour}", 900),),
        )
        for hour in range(3)
    ]


def hostile_session() -> list[AccessEvent]:
    """The attacker: alice's token from elsewhere, a Bind of hostile markup, a Sync, a throttle."""
    base = {
        "client_ip": ATTACKER_IP,
        "client_info": HOSTILE_CLIENT,
        "client_family": "",
        "app_name": HOSTILE_APP,
        "app_id": "6a1b9f3e-2c4d-4e5f-8a7b-9c0d1e2f3a4b",
        "session_id": HOSTILE_SESSION,
        "folders": (HOSTILE_FOLDER,),
    }
    moment = START + timedelta(days=2, hours=3)
    return [
        make_event(
            timestamp=moment,
            record_id="attacker-bind",
            items=(
                MessageRef(HOSTILE_MESSAGE_ID, HOSTILE_FOLDER, HOSTILE_SUBJECT, 4096),
                MessageRef("<plain@contoso.com>", HOSTILE_FOLDER, "Payroll changes", 2048),
            ),
            **base,
        ),
        make_event(
            timestamp=moment + timedelta(minutes=5),
            record_id="attacker-sync",
            access="Sync",
            items=(),
            **base,
        ),
        make_event(
            timestamp=moment + timedelta(minutes=9),
            record_id="attacker-throttled",
            throttled=True,
            items=(MessageRef("<late@contoso.com>", HOSTILE_FOLDER, "Board pack", 1024),),
            **base,
        ),
    ]


def story() -> list[AccessEvent]:
    """Three owner sessions on three days and the attacker's session, in time order."""
    events = [
        *owner_day(0, "owner-a"),
        *owner_day(1, "owner-b"),
        *owner_day(3, "owner-c"),
        *hostile_session(),
    ]
    return sorted(events, key=lambda event: (event.timestamp, event.record_id))


def query(**changes: object) -> ReportQuery:
    fields: dict[str, object] = {
        "subject": MAILBOX, "by": "mailbox", "view": "exposure", "fmt": "html", "start": START, "end": END,
    }  # fmt: skip
    fields.update(changes)
    return ReportQuery(**fields)  # type: ignore[arg-type]


def page_of(events: list[AccessEvent], **changes: object) -> str:
    sink = io.StringIO()
    render_report(query(**changes), events, sink)
    return sink.getvalue()


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""


VOID = frozenset({"meta", "input", "br", "hr", "img", "link", "col", "wbr"})


class PageParts(HTMLParser):
    """Every element of a page with its attributes and its own text, as a browser's parser sees it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.texts: list[str] = []
        self._open: list[Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in VOID:
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {name: value or "" for name, value in attrs}))

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1].tag == tag:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        if self._open:
            self._open[-1].text += data

    def of(self, tag: str) -> list[Element]:
        return [element for element in self.elements if element.tag == tag]


def parts(page: str) -> PageParts:
    parser = PageParts()
    parser.feed(page)
    parser.close()
    return parser
