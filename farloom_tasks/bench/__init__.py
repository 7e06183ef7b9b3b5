"""Benchmarks (``farloom bench ...``). In the product, only cli/bench.py imports them.

What benchmarks and tests both need (emptying a throw-away environment, picking a
Redis db for one) lives in ``stores/throwaway.py``, not here.
"""
