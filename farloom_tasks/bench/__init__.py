"""Benchmarks (``farloom bench ...``). Only their command line (``cli/bench.py``) imports them.

What benchmarks and tests both need (emptying a throw-away environment, picking a
Redis db for one) lives in ``stores/throwaway.py``, not here.
"""
