"""shared/model/event.py: when two copies of a record say the same."""

from __future__ import annotations

from dataclasses import replace

import pytest

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
