"""Backfill: audit history as evidence, from the Graph audit-log query API."""
