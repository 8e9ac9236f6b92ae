"""shared/logsetup.py: Azure SDK request URLs name mailboxes (a Table PartitionKey is a UPN), so
neither the function host nor `mia -v` lets them into the logs unless asked for explicitly."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared import logsetup, runtime
from shared.storage import Storage
from tests.helpers import ROOT, SAMPLE

pytestmark = pytest.mark.integration

UPN = "alice@contoso.com"


@pytest.fixture
def sdk_loggers_unset() -> Iterator[None]:
    """SDK loggers as a fresh process has them, so each test proves its own path quiets them."""
    loggers = [logging.getLogger(name) for name in logsetup.QUIET_LOGGERS]
    saved = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
    yield
    for logger, level in zip(loggers, saved, strict=True):
        logger.setLevel(level)


def _read_partition(storage: Storage, upn: str) -> None:
    table = storage.mailbox_access.client
    list(table.query_entities("PartitionKey eq @pk", parameters={"pk": upn}))
    with contextlib.suppress(ResourceNotFoundError):
        table.get_entity(upn, "20261118T091542_x")


def _upn_records(caplog: pytest.LogCaptureFixture, upn: str = UPN) -> list[logging.LogRecord]:
    forms = (upn, quote(upn))  # request URLs carry it percent-encoded: alice%40contoso.com
    return [r for r in caplog.records if any(form in r.getMessage() for form in forms)]


def test_without_the_setup_the_sdk_logs_the_upn_of_a_partition_at_info(
    storage: Storage, caplog: pytest.LogCaptureFixture, sdk_loggers_unset: None
) -> None:
    # The leak this module exists for: proves the checks below can see one.
    caplog.set_level(logging.INFO)

    _read_partition(storage, UPN)

    assert _upn_records(caplog)


def test_after_the_setup_no_upn_reaches_the_log_at_info(
    storage: Storage, caplog: pytest.LogCaptureFixture, sdk_loggers_unset: None
) -> None:
    logsetup.quiet_sdk_loggers()
    caplog.set_level(logging.INFO)

    _read_partition(storage, UPN)

    assert _upn_records(caplog) == []


def test_after_the_setup_no_upn_reaches_the_log_even_at_debug(
    storage: Storage, caplog: pytest.LogCaptureFixture, sdk_loggers_unset: None
) -> None:
    logsetup.quiet_sdk_loggers()
    caplog.set_level(logging.DEBUG)

    _read_partition(storage, UPN)

    assert _upn_records(caplog) == []


def test_the_function_host_settings_apply_the_setup_before_any_request(
    function_env: Storage, caplog: pytest.LogCaptureFixture, sdk_loggers_unset: None
) -> None:
    runtime.reset()
    caplog.set_level(logging.INFO)

    _read_partition(runtime.storage(), UPN)

    assert _upn_records(caplog) == []


def test_request_urls_are_logged_only_when_http_debug_is_asked_for(
    storage: Storage, caplog: pytest.LogCaptureFixture, sdk_loggers_unset: None
) -> None:
    logsetup.quiet_sdk_loggers(http_debug=True)
    caplog.set_level(logging.INFO)

    _read_partition(storage, UPN)

    assert _upn_records(caplog)


def test_mia_verbose_process_prints_no_request_url_naming_a_mailbox(azurite: str, storage: Storage) -> None:
    env = {**os.environ, "AzureWebJobsStorage": azurite}

    def mia(*argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "mia.cli", "-v", *argv], env=env, cwd=ROOT, capture_output=True,
            text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    mia("import", str(SAMPLE))
    done = mia("process")

    assert "INFO shared." in done.stderr  # -v really logs progress
    assert "http_logging_policy" not in done.stderr
    assert "%40" not in done.stderr
