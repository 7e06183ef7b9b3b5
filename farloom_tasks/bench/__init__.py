"""Benchmarks (``farloom bench ...``). Nothing outside this package imports it."""
