"""`mia doctor`: a pre-flight of a deployment or a laptop. Each check asks the real service what the
code will ask it (settings, storage, tokens, the Management Activity API subscription, Microsoft
Graph, the webhook) and says ok or what to fix; a check whose prerequisite failed is skipped."""
