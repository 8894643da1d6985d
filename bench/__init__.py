"""Benchmarks: pizzaq and peer queues side by side (see bench/README.md)."""
