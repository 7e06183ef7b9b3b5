"""The pure core: the click contract, windows, shards, top-k, batching. No I/O.

Nothing here imports a database, broker or Redis client, or reads the clock: time
is an argument. ``tests/unit/test_layers.py`` enforces it.
"""
