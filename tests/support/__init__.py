"""Test helpers shared by tests/integration and tests/chaos: one copy of each.

- ``stack``: an isolated stack per pytest process (own database, Redis db, vhost).
- ``celery_worker``: a real Celery worker and beat as subprocesses, and their fixtures.
- ``minute_checks``: write clicks, drive the closer, read agg and raw back, and the
  hour and day rollups the counts must give.
- ``waiting``: bounded polling that fails saying what never happened.
- ``broker``: publish with confirms, queue counts and depths, dead letters, closing a
  vhost's connections from the broker side.
- ``database``: one-off SQL against the stack, raw row and outbox counts.
- ``redis_view``: every per-minute count in Redis, found by scanning.
- ``ports``: a free loopback port for a server a test starts.
- ``rabbitmq_node``: a RabbitMQ node of a test's own, for a scenario that restarts its broker.
- ``rabbitmq_cluster``: a three-node RabbitMQ cluster of a test's own (quorum queues).

Stopping a child process is ``farloom_tasks.processes.stop``, for tests as for benchmarks.
"""
