"""What is known about one accessed message, and what the records themselves say (pure, no I/O).

`SubjectSource` values: `audit` (the record's own FolderItems[].Subject), `graph` (Microsoft Graph
message lookup), `trace` (Graph message trace) or `unresolved:<reason>`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.model.event import AccessEvent

SOURCE_AUDIT = "audit"
SOURCE_GRAPH = "graph"
SOURCE_TRACE = "trace"
UNRESOLVED = "unresolved:"
NOT_LOOKED_UP = UNRESOLVED + "not-looked-up"

Key = tuple[str, str]  # (mailbox, InternetMessageId)


@dataclass(frozen=True)
class MessageInfo:
    subject: str = ""
    sender: str = ""
    received: datetime | None = None
    size: int | None = None
    source: str = NOT_LOOKED_UP
    retry_at: datetime | None = None  # negative answers: when to look again; None = do not
    attempts: int = 0  # lookups that found nothing so far
    copies: int = 0  # Graph hits for the id in the mailbox (the same message in several folders)

    @property
    def resolved(self) -> bool:
        return not self.source.startswith(UNRESOLVED)

    def due(self, now: datetime) -> bool:
        """Should a negative answer be looked up again now?"""
        return not self.resolved and self.retry_at is not None and self.retry_at <= now


@dataclass(frozen=True)
class Observed:
    """What the records say about one message: its subject (if any), size and first access."""

    subject: str = ""
    size: int | None = None
    first_access: datetime | None = None

    def merge(self, subject: str, size: int | None, when: datetime | None) -> Observed:
        """What both say: the first subject and size given, the earlier access."""
        accesses = [moment for moment in (self.first_access, when) if moment is not None]
        return Observed(
            subject=self.subject or subject,
            size=self.size if self.size is not None else size,
            first_access=min(accesses) if accesses else None,
        )


class MessageObserver:
    """Collects what records say about their messages, by mailbox then InternetMessageId."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Observed]] = {}

    def add(self, event: AccessEvent) -> None:
        mailbox = self.messages.setdefault(event.mailbox, {})
        for item in event.items:
            seen = mailbox.get(item.internet_message_id, Observed())
            mailbox[item.internet_message_id] = seen.merge(item.subject, item.size_in_bytes, event.timestamp)

    def absorb(self, messages: Mapping[str, Mapping[str, Observed]]) -> None:
        """Take in what another observer saw of records that come after those this one saw."""
        for mailbox_name, observed in messages.items():
            mailbox = self.messages.setdefault(mailbox_name, {})
            for message_id, later in observed.items():
                seen = mailbox.get(message_id)
                mailbox[message_id] = (
                    later if seen is None else seen.merge(later.subject, later.size, later.first_access)
                )


def observe(events: Iterable[AccessEvent]) -> dict[str, dict[str, Observed]]:
    """The messages of these events, by mailbox then InternetMessageId."""
    observer = MessageObserver()
    for event in events:
        observer.add(event)
    return observer.messages


# Messages by mailbox then InternetMessageId -> what is known of them (the index, Graph).
Lookup = Callable[[Mapping[str, Mapping[str, Observed]]], Mapping[Key, MessageInfo]]
