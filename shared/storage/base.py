"""What every table class shares: its name and the client it reads and writes through."""

from __future__ import annotations

from typing import ClassVar, Self

from azure.data.tables import TableClient, TableServiceClient


class Table:
    """One table behind the class that owns its name, its keys and its entity format.

    `client` is the table's own client, for the class's methods; tests and tools use it to look at
    (or tamper with) the stored entities as the service holds them."""

    NAME: ClassVar[str]

    def __init__(self, client: TableClient) -> None:
        self.client = client

    @classmethod
    def of(cls, service: TableServiceClient) -> Self:
        return cls(service.get_table_client(cls.NAME))

    @property
    def name(self) -> str:
        return self.NAME
