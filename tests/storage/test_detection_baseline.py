"""DetectionBaseline: conditional batch writes, and the merge that never loses a concurrent write."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.storage import Storage
from shared.storage.detection_baseline import mailbox_partition, sighting_key

pytestmark = pytest.mark.integration


def union(mine: set[str]) -> Any:
    def merged(stored: Mapping[str, Any] | None) -> dict[str, Any]:
        theirs = set(str(stored["Values"]).split(",")) if stored is not None else set()
        return {"Values": ",".join(sorted(mine | theirs))}

    return merged


def test_a_batch_write_refuses_a_row_changed_since_read_and_the_merge_keeps_both(storage: Storage) -> None:
    table = storage.detection_baseline
    partition, row = mailbox_partition("Alice@Contoso.com"), sighting_key("ip", "203.0.113.10")
    assert table.write_batch(partition, [(row, {"Values": "a"}, None)]) == []
    assert table.write_batch(partition, [(row, {"Values": "b"}, None)]) == [row]  # exists: not overwritten
    stale = table.get(partition, row)
    assert stale is not None
    table.merge(partition, row, {"Values": "c"}, union({"c"}))  # another writer, meanwhile
    assert table.write_batch(partition, [(row, {"Values": "d"}, stale.metadata["etag"])]) == [row]
    table.merge(partition, row, {"Values": "d"}, union({"d"}))
    stored = table.get(partition, row)
    assert stored is not None
    assert stored["Values"] == "a,c,d"
    assert [entity["RowKey"] for entity in table.partition("alice@contoso.com")] == [row]
