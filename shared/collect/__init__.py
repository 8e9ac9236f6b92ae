"""Continuous collection from the Management Activity API: content windows, the checkpoint and its
overlap, content that expired before it was fetched (a loss, recorded and alerted)."""
