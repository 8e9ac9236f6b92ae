"""The Storage clients built from the settings, against a real Azurite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.requests import RequestTally, counted_storage
from shared.storage import CONTENT_QUEUE, RAW_CONTAINER, Storage

pytestmark = pytest.mark.integration


def test_each_service_sends_every_request_through_the_transport_given_for_it(
    azurite: str, storage: Storage
) -> None:
    tally = RequestTally()
    counted = counted_storage(azurite, tally)  # Storage.from_settings(..., transports=...)
    counted.blobs.get_container_client(RAW_CONTAINER).get_container_properties()
    counted.queues.get_queue_client(CONTENT_QUEUE).get_queue_properties()
    list(counted.message_index.client.list_entities())
    assert tally.by_service() == {"blob": 1, "queue": 1, "table": 1}


def test_each_table_has_one_client_however_many_threads_use_it(storage: Storage) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        clients = list(pool.map(lambda _: storage.detection_baseline.client, range(64)))
    assert all(client is clients[0] for client in clients)
    assert storage.mailbox_access.client is not storage.actor_access.client
    assert list(storage.detection_baseline.client.list_entities()) == []
