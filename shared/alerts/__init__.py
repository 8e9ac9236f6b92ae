"""Alerts: the rules and their payloads (pure), the checks that raise them against storage
(throttling, the poison queue), the outbox that delivers them to the signed webhook at least once,
and the health reply that says whether collection keeps up."""
