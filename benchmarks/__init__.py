"""Benchmarks of the platform; each module runs with ``python -m benchmarks.<name>``."""
