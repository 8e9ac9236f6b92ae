"""Detection: new-context and mass-access rules over the records (README "Detection").

`rules.py` holds the rules, pure (`detect_events` runs them in memory, for `mia detect --input` and
the bench); `engine.py` runs them over storage as `enrich_trace` stores records, keeps the
baseline in DetectionBaseline and raises `mailbox.new_context` and `tenant.mass_access` alerts."""
