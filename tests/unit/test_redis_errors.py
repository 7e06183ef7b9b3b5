"""How Redis errors reach Farloom: worth a retry (RedisUnavailable), a wrong setting
(ConfigError, a sentence to act on), or a mistake in a command (raised as it is)."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    ClusterDownError,
    ClusterError,
    MovedError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError

from farloom_tasks.errors import ConfigError, RedisUnavailable
from farloom_tasks.stores.redis_client import translated_errors


@pytest.mark.parametrize("error", [
    RedisConnectionError("Connection refused"),
    ClusterDownError("The cluster is down"),
    TryAgainError("Multiple keys request during rehashing of slot"),
    ClusterError("TTL exhausted."),
    SlotNotCoveredError("Slot 4971 is not covered by the cluster."),
    RedisClusterException("Redis Cluster cannot be connected. Please provide at least one "
                          "reachable node: Error 111"),
    ResponseError("BUSY Redis is busy running a script"),
])
def test_a_cluster_in_flux_or_out_of_reach_is_worth_a_retry(error: Exception) -> None:
    with pytest.raises(RedisUnavailable), translated_errors():
        raise error


@pytest.mark.parametrize(("error", "advice"), [
    (MovedError("4971 127.0.0.1:7002"), "set FARLOOM_REDIS_CLUSTER=1"),
    (RedisClusterException("Redis Cluster cannot be connected. Please provide at least one "
                           "reachable node: Cluster mode is not enabled on this node"),
     "unset FARLOOM_REDIS_CLUSTER"),
    (RedisClusterException("A ``db`` querystring option can only be 0 in cluster mode"),
     "a Redis Cluster has db 0 only"),
])
def test_a_client_of_the_wrong_mode_is_a_setting_to_change(error: Exception,
                                                           advice: str) -> None:
    with pytest.raises(ConfigError, match=advice), translated_errors():
        raise error


@pytest.mark.parametrize("error", [
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    RedisClusterException("EVALSHA - all keys must map to the same key slot"),
])
def test_a_mistake_in_a_command_is_raised_as_it_is(error: Exception) -> None:
    with pytest.raises(type(error)), translated_errors():
        raise error
