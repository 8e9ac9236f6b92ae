"""From the bytes Microsoft (or a responder's export) gives to normalized events: format detection
and readers for every export shape, text repair for what is not valid Unicode, the field decoders
(LogonType, client family, application names) and the normalizer. Pure: no I/O."""
