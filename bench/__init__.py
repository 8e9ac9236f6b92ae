"""Benchmarks run by `make bench` (`python -m bench.run`): ratios measured in one run, written to
bench/results.json. Never imported by the function app; tests/bench tests the helpers."""
