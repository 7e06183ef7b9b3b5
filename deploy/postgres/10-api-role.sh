#!/bin/sh
# First start of the PostgreSQL container only: create the API's read-only role
# with its password from the environment. Migration 0003 then finds the role and
# grants it SELECT on schema agg (locally, without a container, it creates the
# role itself with no password and trust authentication).
set -eu
: "${FARLOOM_API_DB_PASSWORD:?set FARLOOM_API_DB_PASSWORD (see .env.example)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v password="$FARLOOM_API_DB_PASSWORD" <<'SQL'
CREATE ROLE farloom_api LOGIN PASSWORD :'password';
-- The same session defaults migration 0003 gives the role it creates.
ALTER ROLE farloom_api SET default_transaction_read_only = on;
ALTER ROLE farloom_api SET statement_timeout = '10s';
ALTER ROLE farloom_api SET work_mem = '64MB';
SQL
