"""Settings.from_env: every type parsed, every bad value rejected naming its variable."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.errors import ConfigError
from farloom_tasks.settings import ENV_PREFIX, Settings, describe


def test_no_variables_gives_the_documented_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_each_type_is_parsed_from_its_variable() -> None:
    settings = Settings.from_env({
        "FARLOOM_SHARD_COUNT": " 16 ",
        "FARLOOM_GRACE_SECONDS": "2.5",
        "FARLOOM_FLUSH_INTERVAL_SECONDS": "1e-1",
        "FARLOOM_REDIS_URL": "redis://cache:6380/3",
        "FARLOOM_LOG_LEVEL": "debug",
        "FARLOOM_METRICS_PORT": "0",
    })
    assert settings.shard_count == 16
    assert settings.grace_seconds == 2.5
    assert settings.flush_interval_seconds == pytest.approx(0.1)
    assert settings.redis_url == "redis://cache:6380/3"
    assert settings.log_level == "DEBUG"
    assert settings.metrics_port == 0


def test_an_empty_variable_means_the_default() -> None:
    assert Settings.from_env({"FARLOOM_TOP_K": "", "FARLOOM_AMQP_URL": ""}) == Settings()


def test_variables_without_the_prefix_are_ignored() -> None:
    assert Settings.from_env({"SHARD_COUNT": "3", "farloom_shard_count": "3"}) == Settings()


@pytest.mark.parametrize(("variable", "value"), [
    ("FARLOOM_SHARD_COUNT", "eight"),
    ("FARLOOM_SHARD_COUNT", "8.0"),
    ("FARLOOM_TOP_K", "1e2"),
    ("FARLOOM_GRACE_SECONDS", "five"),
    ("FARLOOM_BATCH_SIZE", "0x10"),
])
def test_a_value_of_the_wrong_type_is_rejected_naming_the_variable(
        variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable}={value!r} is not a valid"):
        Settings.from_env({variable: value})


@pytest.mark.parametrize(("variable", "value"), [
    ("FARLOOM_SHARD_COUNT", "0"),
    ("FARLOOM_SHARD_COUNT", "1025"),
    ("FARLOOM_TOP_K", "-1"),
    ("FARLOOM_BATCH_SIZE", "0"),
    ("FARLOOM_PREFETCH_COUNT", "-5"),
    ("FARLOOM_MAX_MESSAGE_BYTES", "0"),
    ("FARLOOM_AGGREGATE_CHUNK_ADS", "0"),
    ("FARLOOM_FLUSH_INTERVAL_SECONDS", "0"),
    ("FARLOOM_CLOSE_TICK_SECONDS", "-0.5"),
    ("FARLOOM_GRACE_SECONDS", "-1"),
    ("FARLOOM_MAX_CLOCK_SKEW_SECONDS", "-0.1"),
    ("FARLOOM_REDIS_RETENTION_SECONDS", "60"),
    ("FARLOOM_RECONCILE_INTERVAL_SECONDS", "0"),
    ("FARLOOM_RECONCILE_LOOKBACK_MINUTES", "-1"),
])
def test_an_out_of_range_value_is_rejected_naming_the_variable(
        variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "infinity"])
@pytest.mark.parametrize("variable", ["FARLOOM_GRACE_SECONDS", "FARLOOM_FLUSH_INTERVAL_SECONDS",
                                      "FARLOOM_MAX_CLOCK_SKEW_SECONDS",
                                      "FARLOOM_RECONCILE_INTERVAL_SECONDS"])
def test_a_non_finite_duration_is_rejected_naming_the_variable(
        variable: str, value: str) -> None:
    # float() accepts these; a NaN grace would make every deadline comparison false.
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_the_log_level_is_case_and_space_insensitive() -> None:
    assert Settings.from_env({"FARLOOM_LOG_LEVEL": " warning "}).log_level == "WARNING"


@pytest.mark.parametrize("value", ["loud", "verbose", "20"])
def test_an_unknown_log_level_is_rejected_naming_the_variable(value: str) -> None:
    # Caught here, it is a one-line configuration error instead of a traceback
    # from logging.basicConfig in every worker.
    with pytest.raises(ConfigError, match="FARLOOM_LOG_LEVEL"):
        Settings.from_env({"FARLOOM_LOG_LEVEL": value})


def test_the_retention_must_outlive_a_minute_plus_its_grace() -> None:
    Settings.from_env({"FARLOOM_REDIS_RETENTION_SECONDS": "130", "FARLOOM_GRACE_SECONDS": "10"})
    with pytest.raises(ConfigError, match="FARLOOM_REDIS_RETENTION_SECONDS"):
        Settings.from_env({"FARLOOM_REDIS_RETENTION_SECONDS": "130",
                           "FARLOOM_GRACE_SECONDS": "10.5"})


@given(st.integers(min_value=1, max_value=1024), st.integers(min_value=1, max_value=10**6),
       st.floats(min_value=0, max_value=3600, allow_nan=False))
def test_any_valid_combination_round_trips_through_the_environment(
        shard_count: int, top_k: int, grace: float) -> None:
    env = {"FARLOOM_SHARD_COUNT": str(shard_count), "FARLOOM_TOP_K": str(top_k),
           "FARLOOM_GRACE_SECONDS": repr(grace),
           "FARLOOM_REDIS_RETENTION_SECONDS": str(math.ceil(grace) + 120)}
    settings = Settings.from_env(env)
    assert (settings.shard_count, settings.top_k, settings.grace_seconds) == (
        shard_count, top_k, grace)


def test_every_field_is_described_with_its_variable_and_default() -> None:
    described = dict(describe())
    assert set(described) == {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    assert described["FARLOOM_SHARD_COUNT"] == "8"


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(AttributeError):
        settings.shard_count = 3  # type: ignore[misc]


@pytest.mark.parametrize(("given_url", "used_url"), [
    ("postgresql://app@db:5432/clicks", "postgresql+psycopg2://app@db:5432/clicks"),
    ("postgres://app@db/clicks", "postgresql+psycopg2://app@db/clicks"),
    ("postgresql+psycopg2://app@db/clicks", "postgresql+psycopg2://app@db/clicks"),
])
def test_a_database_url_without_a_driver_uses_psycopg2(given_url: str, used_url: str) -> None:
    # SQLAlchemy 2.1 would pick psycopg 3 for a bare postgresql://, which is not installed.
    settings = Settings.from_env({"FARLOOM_DATABASE_URL": given_url,
                                  "FARLOOM_API_DATABASE_URL": given_url})
    assert settings.database_url == used_url
    assert settings.api_database_url == used_url
