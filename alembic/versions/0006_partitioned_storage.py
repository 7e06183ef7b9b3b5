"""Time-partitioned raw clicks and per-minute counts; hour and day rollups

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Until now every click went into one raw.ad_clicks whose primary key on click_id
grew with everything ever stored: each insert of a random UUID became a random
read into an index larger than memory. From here on:

- raw.ad_clicks is partitioned by range of ``minute`` (event time). Each
  partition has its own unique index on click_id: deduplication is bounded by
  the partition (docs/design.md, "The dedup window"). A redelivered click carries
  the same clicked_at, so it reaches the same partition and is stored once.
- agg.ad_clicks_per_minute is partitioned by range of ``minute`` too, so that
  minute retention drops whole partitions and never runs a mass DELETE.
- Partitions are made by one function, raw.ensure_partition, which records
  each in raw.partitions (the ledger retention and replay read). There is no
  default partition: one would block attaching a partition later.
- agg.ad_clicks_per_hour / _per_day and agg.hour_totals / day_totals hold exact
  rollups. The aggregated writer changes them in the transaction that changes
  the minute rows, by the difference between the new counts and the old, so at
  every commit each rollup row is the sum of the minute rows it covers.

An install with data is converted in place: its rows are copied into the new
partitions (made for exactly the hours and days they cover) and counted; the
migration fails, changing nothing, unless every row arrived. The rollups are
filled from the existing minute rows. Downgrade copies everything back.
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The lengths of the partitions this migration makes for existing rows. Later
# partitions take the length the settings say (FARLOOM_RAW_PARTITION_HOURS,
# FARLOOM_MINUTE_PARTITION_HOURS); raw.ensure_partition never lets two overlap.
RAW_PARTITION = "1 hour"
MINUTE_PARTITION = "1 day"
PER_AD_FILLFACTOR = 50  # as migration 0005: new revisions update per-ad rows in place
ROLLUP_FILLFACTOR = 70  # rollup rows are updated once per minute of their hour or day

_ENSURE_PARTITION = r"""
CREATE FUNCTION raw.ensure_partition(
    p_parent text, p_at timestamptz, p_length interval,
    p_unique_columns text DEFAULT NULL, p_storage text DEFAULT NULL,
    p_restore boolean DEFAULT false)
RETURNS text LANGUAGE plpgsql AS $fn$
-- The partition of p_parent ('schema.table') that holds p_at, made if missing:
-- [p_at rounded down to p_length since the epoch, + p_length), narrowed so that it
-- never overlaps another partition, live or dropped (the length setting may have
-- changed).
-- Concurrent callers queue on one advisory lock per parent and the later ones find
-- the partition made; making one is cheap (an empty table attached), so callers
-- make it in a short transaction of their own.
-- A range whose partition retention dropped is not made again (an error with
-- SQLSTATE FL001) unless p_restore: `farloom archive restore` puts it back.
DECLARE
    found_name text;
    dropped timestamptz;
    lo timestamptz := date_bin(p_length, p_at, timestamptz '1970-01-01 00:00:00+00');
    hi timestamptz;
    schema_name text := split_part(p_parent, '.', 1);
    table_name text;
BEGIN
    SELECT partition_name INTO found_name FROM raw.partitions
    WHERE parent = p_parent AND dropped_at IS NULL AND range_start <= p_at AND p_at < range_end;
    IF FOUND THEN
        RETURN found_name;
    END IF;
    PERFORM pg_advisory_xact_lock(4607056, hashtext(p_parent));  -- 4607056 = "FLP"
    SELECT partition_name INTO found_name FROM raw.partitions
    WHERE parent = p_parent AND dropped_at IS NULL AND range_start <= p_at AND p_at < range_end;
    IF FOUND THEN
        RETURN found_name;
    END IF;
    SELECT dropped_at INTO dropped FROM raw.partitions
    WHERE parent = p_parent AND dropped_at IS NOT NULL AND range_start <= p_at AND p_at < range_end;
    IF FOUND AND NOT p_restore THEN
        RAISE EXCEPTION 'the partition of % holding % was dropped by retention at %',
            p_parent, p_at, dropped USING ERRCODE = 'FL001';
    END IF;
    hi := lo + p_length;
    -- Narrowed against dropped ranges too: a new, longer partition must not take
    -- clicks for a range retention dropped.
    SELECT greatest(lo, max(range_end)) INTO lo FROM raw.partitions
    WHERE parent = p_parent AND range_end <= p_at AND range_end > lo;
    SELECT least(hi, min(range_start)) INTO hi FROM raw.partitions
    WHERE parent = p_parent AND range_start > p_at AND range_start < hi;
    table_name := split_part(p_parent, '.', 2) || '_p'
        || to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"_"HH24MI');
    -- Made apart and then attached: ATTACH takes SHARE UPDATE EXCLUSIVE on the
    -- parent, which inserts into other partitions do not wait for.
    EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)%s',
                   schema_name, table_name, p_parent,
                   coalesce(' WITH (' || p_storage || ')', ''));
    IF p_unique_columns IS NOT NULL THEN
        EXECUTE format('CREATE UNIQUE INDEX %I ON %I.%I (%s)', table_name || '_dedup_key',
                       schema_name, table_name, p_unique_columns);
    END IF;
    EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   p_parent, schema_name, table_name, lo, hi);
    INSERT INTO raw.partitions AS p (parent, range_start, range_end, partition_name)
    VALUES (p_parent, lo, hi, schema_name || '.' || table_name)
    ON CONFLICT (parent, range_start) DO UPDATE
    SET range_end = excluded.range_end, partition_name = excluded.partition_name,
        created_at = now(), dropped_at = NULL, restored_at = CASE WHEN p_restore THEN now() END;
    RETURN schema_name || '.' || table_name;
END
$fn$
"""


def upgrade() -> None:
    # The ledger of every partition ever made: retention reads what to drop from it,
    # replay and reconciliation what was dropped (and where its archive went).
    op.execute("""
        CREATE TABLE raw.partitions (
            parent          text        NOT NULL,
            range_start     timestamptz NOT NULL,
            range_end       timestamptz NOT NULL,
            partition_name  text        NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            dropped_at      timestamptz,
            archive_file    text,
            archived_rows   bigint,
            archive_sha256  text,
            restored_at     timestamptz,
            PRIMARY KEY (parent, range_start),
            CHECK (range_start < range_end)
        )
    """)
    op.execute(_ENSURE_PARTITION)

    # raw.ad_clicks: the same columns, partitioned by minute.
    op.execute("ALTER TABLE raw.ad_clicks RENAME TO ad_clicks_unpartitioned")
    op.execute("ALTER INDEX raw.ad_clicks_pkey RENAME TO ad_clicks_unpartitioned_pkey")
    op.execute("ALTER INDEX raw.ad_clicks_minute_ad_idx "
               "RENAME TO ad_clicks_unpartitioned_minute_ad_idx")
    op.execute("""
        CREATE TABLE raw.ad_clicks (
            click_id    text        NOT NULL,
            ad_id       text        COLLATE "C" NOT NULL,
            clicked_at  timestamptz NOT NULL,
            minute      timestamptz NOT NULL,
            user_id     text,
            ip          inet,
            country     char(2),
            ingested_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ad_clicks_minute_aligned
                CHECK (minute = date_trunc('minute', clicked_at, 'UTC'))
        ) PARTITION BY RANGE (minute)
    """)
    op.execute("CREATE INDEX ad_clicks_minute_ad_idx ON raw.ad_clicks (minute, ad_id)")
    op.execute(f"""
        SELECT raw.ensure_partition('raw.ad_clicks', start, interval '{RAW_PARTITION}', 'click_id')
        FROM (SELECT DISTINCT date_bin(interval '{RAW_PARTITION}', minute,
                                       timestamptz '1970-01-01 00:00:00+00') AS start
              FROM raw.ad_clicks_unpartitioned) AS covered ORDER BY start
    """)
    _copy_counted("raw.ad_clicks_unpartitioned", "raw.ad_clicks")
    op.execute("DROP TABLE raw.ad_clicks_unpartitioned")

    # agg.ad_clicks_per_minute: the same, partitioned by minute.
    op.execute("ALTER TABLE agg.ad_clicks_per_minute RENAME TO ad_clicks_per_minute_unpartitioned")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_pkey "
               "RENAME TO ad_clicks_per_minute_unpartitioned_pkey")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_ad_idx "
               "RENAME TO ad_clicks_per_minute_unpartitioned_ad_idx")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_window_idx "
               "RENAME TO ad_clicks_per_minute_unpartitioned_window_idx")
    op.execute("""
        CREATE TABLE agg.ad_clicks_per_minute (
            minute   timestamptz NOT NULL,
            ad_id    text        COLLATE "C" NOT NULL,
            clicks   bigint      NOT NULL,
            revision bigint      NOT NULL,
            PRIMARY KEY (minute, ad_id)
        ) PARTITION BY RANGE (minute)
    """)
    op.execute(
        "CREATE INDEX ad_clicks_per_minute_ad_idx ON agg.ad_clicks_per_minute (ad_id, minute)")
    op.execute("CREATE INDEX ad_clicks_per_minute_window_idx "
               "ON agg.ad_clicks_per_minute (minute) INCLUDE (ad_id, clicks)")
    op.execute(f"""
        SELECT raw.ensure_partition('agg.ad_clicks_per_minute', start,
                                    interval '{MINUTE_PARTITION}', NULL,
                                    'fillfactor = {PER_AD_FILLFACTOR}')
        FROM (SELECT DISTINCT date_bin(interval '{MINUTE_PARTITION}', minute,
                                       timestamptz '1970-01-01 00:00:00+00') AS start
              FROM agg.ad_clicks_per_minute_unpartitioned) AS covered ORDER BY start
    """)
    _copy_counted("agg.ad_clicks_per_minute_unpartitioned", "agg.ad_clicks_per_minute")
    op.execute("DROP TABLE agg.ad_clicks_per_minute_unpartitioned")

    # Rollups: what a window of hours or days sums without reading its minutes.
    for grain in ("hour", "day"):
        op.execute(f"""
            CREATE TABLE agg.ad_clicks_per_{grain} (
                {grain}  timestamptz NOT NULL,
                ad_id    text        COLLATE "C" NOT NULL,
                clicks   bigint      NOT NULL,
                PRIMARY KEY ({grain}, ad_id) INCLUDE (clicks)
            ) WITH (fillfactor = {ROLLUP_FILLFACTOR})
        """)
        # Index-only scans: a window's sum per ad through the key (which carries the
        # clicks, so that the writer maintains one index fewer), and one ad's series.
        op.execute(f"CREATE INDEX ad_clicks_per_{grain}_ad_idx "
                   f"ON agg.ad_clicks_per_{grain} (ad_id, {grain}) INCLUDE (clicks)")
        op.execute(f"""
            CREATE TABLE agg.{grain}_totals (
                {grain}  timestamptz NOT NULL PRIMARY KEY,
                clicks   bigint      NOT NULL
            ) WITH (fillfactor = {ROLLUP_FILLFACTOR})
        """)
        op.execute(f"""
            INSERT INTO agg.ad_clicks_per_{grain} ({grain}, ad_id, clicks)
            SELECT date_trunc('{grain}', minute, 'UTC'), ad_id, sum(clicks)
            FROM agg.ad_clicks_per_minute GROUP BY 1, 2
        """)
        op.execute(f"""
            INSERT INTO agg.{grain}_totals ({grain}, clicks)
            SELECT date_trunc('{grain}', minute, 'UTC'), sum(clicks)
            FROM agg.ad_clicks_per_minute GROUP BY 1
        """)


def _copy_counted(source: str, target: str) -> None:
    """Copy every row of ``source`` into ``target``; fail (rolling back) if any is missing."""
    op.execute(f"""
        DO $copy$
        DECLARE
            expected bigint;
            copied bigint;
        BEGIN
            SELECT count(*) INTO expected FROM {source};
            INSERT INTO {target} SELECT * FROM {source};
            GET DIAGNOSTICS copied = ROW_COUNT;
            IF copied <> expected THEN
                RAISE EXCEPTION 'copied % of % rows from {source} into {target}',
                    copied, expected;
            END IF;
        END
        $copy$
    """)


def downgrade() -> None:
    for grain in ("day", "hour"):
        op.execute(f"DROP TABLE agg.{grain}_totals")
        op.execute(f"DROP TABLE agg.ad_clicks_per_{grain}")

    op.execute("ALTER TABLE agg.ad_clicks_per_minute RENAME TO ad_clicks_per_minute_partitioned")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_pkey "
               "RENAME TO ad_clicks_per_minute_partitioned_pkey")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_ad_idx "
               "RENAME TO ad_clicks_per_minute_partitioned_ad_idx")
    op.execute("ALTER INDEX agg.ad_clicks_per_minute_window_idx "
               "RENAME TO ad_clicks_per_minute_partitioned_window_idx")
    op.execute(f"""
        CREATE TABLE agg.ad_clicks_per_minute (
            minute   timestamptz NOT NULL,
            ad_id    text        COLLATE "C" NOT NULL,
            clicks   bigint      NOT NULL,
            revision bigint      NOT NULL,
            PRIMARY KEY (minute, ad_id)
        ) WITH (fillfactor = {PER_AD_FILLFACTOR})
    """)
    op.execute(
        "CREATE INDEX ad_clicks_per_minute_ad_idx ON agg.ad_clicks_per_minute (ad_id, minute)")
    op.execute("CREATE INDEX ad_clicks_per_minute_window_idx "
               "ON agg.ad_clicks_per_minute (minute) INCLUDE (ad_id, clicks)")
    _copy_counted("agg.ad_clicks_per_minute_partitioned", "agg.ad_clicks_per_minute")
    op.execute("DROP TABLE agg.ad_clicks_per_minute_partitioned")

    op.execute("ALTER TABLE raw.ad_clicks RENAME TO ad_clicks_partitioned")
    op.execute("ALTER INDEX raw.ad_clicks_minute_ad_idx "
               "RENAME TO ad_clicks_partitioned_minute_ad_idx")
    op.execute("""
        CREATE TABLE raw.ad_clicks (
            click_id    text        NOT NULL PRIMARY KEY,
            ad_id       text        COLLATE "C" NOT NULL,
            clicked_at  timestamptz NOT NULL,
            minute      timestamptz NOT NULL,
            user_id     text,
            ip          inet,
            country     char(2),
            ingested_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ad_clicks_minute_aligned
                CHECK (minute = date_trunc('minute', clicked_at, 'UTC'))
        )
    """)
    op.execute("CREATE INDEX ad_clicks_minute_ad_idx ON raw.ad_clicks (minute, ad_id)")
    # One table has one dedup key: a click id stored in two partitions (two periods)
    # keeps its earliest click.
    op.execute("""
        INSERT INTO raw.ad_clicks SELECT * FROM raw.ad_clicks_partitioned
        ORDER BY clicked_at ON CONFLICT (click_id) DO NOTHING
    """)
    op.execute("DROP TABLE raw.ad_clicks_partitioned")
    op.execute("DROP FUNCTION raw.ensure_partition")
    op.execute("DROP TABLE raw.partitions")
