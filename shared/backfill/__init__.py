"""Backfill: audit history as evidence, from the Graph audit-log query API."""

# The sources a backfill reads history from (`mia backfill --source`), named here so that listing
# them loads neither source's client.
AUDIT_QUERY_SOURCE = "auditquery"
SENTINEL_SOURCE = "sentinel"
