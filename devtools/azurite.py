"""Start and stop a private Azurite (the Azure Storage emulator) on free loopback ports.

In memory, telemetry off, bound to 127.0.0.1 only. Used by the tests, `make demo` and `make bench`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from shared.settings import StorageSettings
from shared.storage import QUEUES, RAW_CONTAINER, TABLES, Storage

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's published development account (not a secret; it only opens a local emulator).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connection_string(blob: int, queue: int, table: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue}/{ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table}/{ACCOUNT};"
    )


def _wait_listening(ports: tuple[int, ...], process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending:
        if process.poll() is not None:
            raise RuntimeError(f"Azurite exited early with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Azurite did not listen on {pending} within {timeout} s")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", pending[0])) == 0:
                pending.pop(0)
                continue
        time.sleep(0.05)


@contextlib.contextmanager
def running_azurite(timeout: float = 30.0) -> Iterator[str]:
    """Yield the connection string of a fresh in-memory Azurite; stop it afterwards."""
    if not AZURITE.exists():
        raise FileNotFoundError(f"{AZURITE} is missing: run `make setup` (npm ci installs Azurite)")
    ports = (free_port(), free_port(), free_port())
    command = [
        str(AZURITE),
        "--silent",
        "--inMemoryPersistence",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--blobHost", "127.0.0.1", "--blobPort", str(ports[0]),
        "--queueHost", "127.0.0.1", "--queuePort", str(ports[1]),
        "--tableHost", "127.0.0.1", "--tablePort", str(ports[2]),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _wait_listening(ports, process, timeout)
        yield connection_string(*ports)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def fresh_storage(connection_string: str) -> Storage:
    """The pipeline's container, queues and tables, emptied: deleted and created again."""
    storage = Storage.from_settings(StorageSettings(connection_string=connection_string))
    with contextlib.suppress(ResourceNotFoundError):
        storage.blobs.delete_container(RAW_CONTAINER)
    for queue in QUEUES:
        with contextlib.suppress(ResourceNotFoundError):
            storage.queues.delete_queue(queue)
    for table in TABLES:
        storage.tables.delete_table(table)  # no error when absent
    storage.ensure_resources()
    return storage
