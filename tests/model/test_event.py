"""shared/model/event.py: when two copies of a record say the same, and events built from drafts."""

from __future__ import annotations

import copy
from dataclasses import FrozenInstanceError, asdict, fields, replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.model.event import AccessEvent, AccessEventDraft, MessageRef, MessageRefDraft, sealed
from tests.helpers import make_event

pytestmark = pytest.mark.unit

COLLECTED = make_event(record_id="r1", operation_count=3)


def test_a_copy_with_the_same_content_agrees() -> None:
    assert COLLECTED.agrees_with(replace(COLLECTED, source_blob="import/other.gz", source_index=9))


@pytest.mark.parametrize("direction", ["sparse later", "sparse first"])
def test_a_copy_without_a_field_its_source_has_no_room_for_agrees(direction: str) -> None:
    sparse = replace(COLLECTED, operation_count=None)  # as Sentinel's OfficeActivity gives it
    first, later = (COLLECTED, sparse) if direction == "sparse later" else (sparse, COLLECTED)
    assert first.content_sha256() != later.content_sha256()
    assert first.agrees_with(later)


def test_a_copy_with_another_value_of_that_field_does_not_agree() -> None:
    assert not COLLECTED.agrees_with(replace(COLLECTED, operation_count=4))


def test_a_sparse_copy_that_also_says_something_else_does_not_agree() -> None:
    rewritten = replace(COLLECTED, operation_count=None, client_ip="192.0.2.99")
    assert not COLLECTED.agrees_with(rewritten)
    assert not rewritten.agrees_with(COLLECTED)


def test_only_the_fields_a_source_may_lack_are_filled_in() -> None:
    # An IP missing from one copy is not a field any source lacks: that copy says something else.
    assert not COLLECTED.agrees_with(replace(COLLECTED, client_ip=""))


WITH_MESSAGES = make_event(record_id="r2", operation_count=2, folders=("Inbox",), repaired=())


@pytest.mark.parametrize("direction", ["cut later", "cut first"])
def test_a_copy_whose_messages_powershell_cut_off_agrees_with_the_whole_copy(direction: str) -> None:
    cut = replace(WITH_MESSAGES, items=(), repaired=("Folders[0].FolderItems",))
    first, later = (WITH_MESSAGES, cut) if direction == "cut later" else (cut, WITH_MESSAGES)
    assert WITH_MESSAGES.items  # the whole copy has messages to lose
    assert first.agrees_with(later)


def test_a_cut_copy_that_also_says_something_else_does_not_agree() -> None:
    cut = replace(WITH_MESSAGES, items=(), repaired=("Folders[0].FolderItems",), access="Sync")
    assert not WITH_MESSAGES.agrees_with(cut)
    assert not cut.agrees_with(WITH_MESSAGES)


def test_a_copy_without_messages_that_names_no_cut_does_not_agree() -> None:
    assert not WITH_MESSAGES.agrees_with(replace(WITH_MESSAGES, items=()))


# --- Drafts: the fast way to build many events ----------------------------------------------------

MESSAGE = MessageRef("<m1@contoso.com>", "Inbox", "Hi", 1234)
FULL = make_event(record_id="r3", items=(MESSAGE,), repaired=("Item.Subject",), source_index=4)


def _draft_of(event: AccessEvent) -> AccessEvent:
    return AccessEventDraft(**{f.name: getattr(event, f.name) for f in fields(AccessEvent)})


def test_a_sealed_draft_is_an_access_event_equal_to_one_built_directly() -> None:
    event = sealed(_draft_of(FULL))
    assert type(event) is AccessEvent
    assert event == FULL
    assert hash(event) == hash(FULL)
    assert repr(event) == repr(FULL)
    assert asdict(event) == asdict(FULL)


def test_a_sealed_draft_is_as_immutable_as_any_event() -> None:
    event = sealed(_draft_of(FULL))
    with pytest.raises(FrozenInstanceError):
        event.mailbox = "mallory@evil.example"  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del event.client_ip
    with pytest.raises((FrozenInstanceError, TypeError)):
        event.__class__ = AccessEventDraft  # a sealed event cannot be turned back into a draft


def test_a_sealed_draft_copies_and_replaces_like_any_event() -> None:
    event = sealed(_draft_of(FULL))
    assert type(copy.deepcopy(event)) is AccessEvent
    assert copy.deepcopy(event) == copy.copy(event) == FULL
    assert replace(event, mailbox="bob@contoso.com") == replace(FULL, mailbox="bob@contoso.com")


def test_a_draft_takes_the_same_defaults_as_its_frozen_class() -> None:
    assert sealed(MessageRefDraft("<m2@contoso.com>", "Inbox")) == MessageRef("<m2@contoso.com>", "Inbox")
    required = {f.name: getattr(FULL, f.name) for f in fields(AccessEvent) if f.name not in DEFAULTED}
    assert sealed(AccessEventDraft(**required)) == AccessEvent(**required)


DEFAULTED = ("items", "repaired", "conflict", "source_blob", "source_sha256", "source_index")


def test_only_a_draft_can_be_sealed() -> None:
    with pytest.raises(TypeError, match="not a draft"):
        sealed(MESSAGE)
    once = sealed(MessageRefDraft("<m3@contoso.com>", "Inbox"))
    with pytest.raises(TypeError, match="not a draft"):
        sealed(once)


def _another_value(value: Any) -> Any:
    """A value of the field's kind that differs from `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, datetime):
        return value + timedelta(seconds=1)  # the stored SHA-256 has the time to the second
    if isinstance(value, int) or value is None:
        return (value or 0) + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple) and value and isinstance(value[0], MessageRef):
        return (*value, replace(value[0], internet_message_id="<other@contoso.com>"))
    assert isinstance(value, tuple)
    return (*value, "other")


@pytest.mark.parametrize("name", [f.name for f in fields(AccessEvent)])
def test_the_in_process_digest_covers_exactly_the_facts_the_stored_sha256_covers(name: str) -> None:
    changed = replace(WITH_MESSAGES, **{name: _another_value(getattr(WITH_MESSAGES, name))})
    sha256_differs = changed.content_sha256() != WITH_MESSAGES.content_sha256()
    digest_differs = changed.content_digest() != WITH_MESSAGES.content_digest()
    assert sha256_differs == digest_differs
    assert len(changed.content_digest()) == 16
