"""Which message was read: InternetMessageIds resolved to subject, sender and received time through
the chain audit record -> MessageIndex -> Graph -> message trace, the first answer winning; the
lookup queue that gathers ids across blobs; the trace windows and their budget."""
