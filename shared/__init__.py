"""The library behind the function folders and the `mia` CLI, one package per capability.

From the bottom up (the layers are enforced by import-linter, see docs/architecture.md#layers):
`model` and `settings` (the vocabulary and the configuration), `parse` (bytes to events, pure),
`storage` and `clients` (Azure Storage and the Microsoft APIs), then the capabilities `alerts`,
`subjects`, and on top `collect`, `ingest` (the write side) and `reports` (the read side).
`runtime` composes them for the function host; `logsetup` is the one logging setup.
"""
