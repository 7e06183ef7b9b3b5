"""The one way Farloom opens Redis: one server, or a Redis Cluster through a seed node.

With ``FARLOOM_REDIS_CLUSTER=1`` the URL names any node of a cluster, and
``connect`` returns a ``redis.RedisCluster``, which reads the slot map from that
node and sends each command to the master holding its key's slot (following
MOVED and ASK when the map changes). Every key of one shard carries the shard's
hash tag (``redis_counts``), so a script, MULTI or RENAME over a shard's keys
stays in one slot, hence on one node.

The rest of Farloom uses the commands both clients share. What differs is
here: a server-wide command (INFO, FLUSHDB) asks every master of a cluster.
redis-py's cluster pipeline refuses a few methods it could not route in general
(``evalsha``, ``rename``, a ``delete`` of several keys); Farloom sends the first two
as raw commands, which it routes by their keys, and deletes key by key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.exceptions import (
    ClusterError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from farloom_tasks.errors import ConfigError, RedisUnavailable
from farloom_tasks.settings import Settings

# What ``connect`` returns; both speak the same key commands and pipelines.
RedisClient = redis.Redis | redis.RedisCluster

_TIMEOUTS: dict[str, Any] = {"socket_timeout": 10, "socket_connect_timeout": 5,
                             "health_check_interval": 30}


# Error replies that mean "not now" rather than "never": out of memory, a replica,
# a busy script, a cluster in flux (a master down, slots moving or not covered).
# Retrying them is right; acking past them is not.
_NOT_NOW = (OutOfMemoryError, ReadOnlyError, TryAgainError, ClusterError)
_NOT_NOW_CODES = frozenset({"MASTERDOWN", "BUSY", "CLUSTERDOWN"})
# The cluster client's own errors that mean the same: no node answers, or no node
# (yet) serves a slot. Its other errors are mistakes in a command, raised as they are.
_CLUSTER_NOT_NOW = ("Redis Cluster cannot be connected", "All slots are not covered",
                    "startup_nodes could not agree")


@contextmanager
def translated_errors() -> Iterator[None]:
    """Redis errors worth retrying become RedisUnavailable; a wrong mode, ConfigError."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError, SlotNotCoveredError) as exc:
        raise RedisUnavailable(f"Redis: {exc}") from exc
    except MovedError as exc:
        # Only a plain client sees MOVED (a cluster client follows it).
        raise ConfigError(f"Redis answered MOVED ({exc}): FARLOOM_REDIS_URL is a node of "
                          "a Redis Cluster; set FARLOOM_REDIS_CLUSTER=1") from exc
    except ResponseError as exc:
        if isinstance(exc, _NOT_NOW) or str(exc).split(" ", 1)[0] in _NOT_NOW_CODES:
            raise RedisUnavailable(f"Redis: {exc}") from exc
        raise
    except ClusterError as exc:
        raise RedisUnavailable(f"Redis Cluster: {exc}") from exc
    except RedisClusterException as exc:
        # (A seed that is no cluster node comes wrapped in "cannot be connected".)
        if "Cluster mode is not enabled" in str(exc):
            raise ConfigError("FARLOOM_REDIS_CLUSTER=1, but FARLOOM_REDIS_URL is a Redis "
                              "that is not a cluster node; unset FARLOOM_REDIS_CLUSTER"
                              ) from exc
        if "can only be 0 in cluster mode" in str(exc):
            raise ConfigError("FARLOOM_REDIS_URL names a db other than 0, but a Redis "
                              "Cluster has db 0 only (FARLOOM_REDIS_CLUSTER=1)") from exc
        if str(exc).startswith(_CLUSTER_NOT_NOW):
            raise RedisUnavailable(f"Redis Cluster: {exc}") from exc
        raise


def connect(settings: Settings) -> RedisClient:
    """A client of ``settings.redis_url``: a cluster client when ``redis_cluster`` is set."""
    return connect_url(settings.redis_url, cluster=settings.redis_cluster)


def connect_url(url: str, *, cluster: bool) -> RedisClient:
    """A plain client connects on its first command; a cluster client here, to read the
    slot map from the seed node: RedisUnavailable if none of the cluster answers."""
    if cluster:
        with translated_errors():
            return redis.RedisCluster.from_url(url, **_TIMEOUTS)
    return redis.Redis.from_url(url, **_TIMEOUTS)


def is_cluster(client: RedisClient) -> bool:
    return isinstance(client, redis.RedisCluster)


def server_info(client: RedisClient, section: str) -> dict[str, dict[str, Any]]:
    """``INFO section`` of every server holding Farloom's data, by ``host:port``.

    One entry for a single Redis; one per master of a cluster.
    """
    with translated_errors():
        if isinstance(client, redis.RedisCluster):
            per_node: Any = client.info(section, target_nodes=redis.RedisCluster.PRIMARIES)
            return {str(name): dict(info) for name, info in per_node.items()}
        info: Any = client.info(section)
    kwargs = client.connection_pool.connection_kwargs
    return {f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}": dict(info)}


def flush_db(client: RedisClient) -> None:
    """Delete every key of Farloom's Redis: its db, or db 0 of every master of a cluster."""
    with translated_errors():
        client.flushdb()  # a cluster client sends it to every master
