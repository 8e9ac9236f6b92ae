"""IP context for reports: the country, autonomous system and organisation of a client address, and
a label for private, reserved and Microsoft 365 service ranges (docs/architecture.md#ip-context).

Looked up when a report is written, never stored: the data's vintage changes, and the stored rows
stay the evidence the records gave."""
