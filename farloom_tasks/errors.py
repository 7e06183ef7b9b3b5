"""The project's own exceptions. Adapters translate library errors into these."""

from __future__ import annotations


class FarloomError(Exception):
    """Base class of every error Farloom raises on purpose."""


class ConfigError(FarloomError):
    """A setting is missing or malformed; the message names the variable."""


class TransientError(FarloomError):
    """An I/O failure that is worth retrying with backoff (connection lost, timeout).

    Work that raised it has not been acknowledged, so retrying is always safe.
    """


class DatabaseUnavailable(TransientError):
    """PostgreSQL could not be reached or dropped the connection."""


class RedisUnavailable(TransientError):
    """Redis could not be reached or dropped the connection."""


class BrokerUnavailable(TransientError):
    """RabbitMQ could not be reached, dropped the connection or nacked a publish."""


class BenchFailed(FarloomError):
    """A benchmark could not produce trustworthy figures; the message says why.

    For example a child process exited, a wait timed out, the server did not
    answer, or a result was not exact. ``farloom bench`` prints it and exits non-zero.
    """
