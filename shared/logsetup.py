"""The one logging setup, for the CLI and the function host: no personal data in the logs.

azure-core's HttpLoggingPolicy logs every request URL at INFO. It redacts query values, but a
Table entity URL carries the PartitionKey, a mailbox UPN, in its path:
`/MailboxAccess(PartitionKey='alice%40contoso.com',RowKey=...)`. urllib3 logs each request line
at DEBUG. Both stay at WARNING unless request logging is asked for explicitly
(https://learn.microsoft.com/azure/developer/python/sdk/azure-sdk-logging).
"""

from __future__ import annotations

import logging

QUIET_LOGGERS = (
    "azure.core.pipeline.policies.http_logging_policy",
    "azure.identity",  # token acquisition chatter at INFO
    "urllib3",
)


def quiet_sdk_loggers(*, http_debug: bool = False) -> None:
    """Keep SDK request URLs out of the logs; `http_debug` lets them through (personal data)."""
    level = logging.DEBUG if http_debug else logging.WARNING
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)


def configure_cli(*, verbose: bool, http_debug: bool = False) -> None:
    """Log to stderr: warnings, or progress too with `verbose`; SDK request URLs never by default."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet_sdk_loggers(http_debug=http_debug)
