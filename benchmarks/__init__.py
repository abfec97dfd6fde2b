"""Load benchmarks for llmux: a fake upstream, a bare reference proxy and the harness (run.py)."""
