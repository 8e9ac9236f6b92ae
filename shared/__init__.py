"""The library behind the functions and the `mia` CLI: pure logic and thin I/O modules."""
