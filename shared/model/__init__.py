"""The vocabulary every capability shares: the normalized access event, the message references it
carries, what is known about one message, and the time and key helpers. Pure: no I/O, no SDKs."""
