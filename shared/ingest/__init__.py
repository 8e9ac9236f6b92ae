"""The write side: an export or a collected content blob stored as raw evidence, announced by a
pointer message, and turned into access rows (pointer -> blob -> records -> rows -> subjects ->
alerts); the poison queue; and `verify`, which proves every row against the raw bytes it names."""
