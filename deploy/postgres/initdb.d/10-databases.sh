#!/bin/sh
# Runs once, when the postgres volume is empty (the image runs /docker-entrypoint-initdb.d/*):
# a role and a database each for Airflow and Prefect beside dagwatch's own (POSTGRES_DB), so
# no service can read another's tables. Passwords come from the postgres service's environment.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v airflow_password="$AIRFLOW_DB_PASSWORD" -v prefect_password="$PREFECT_DB_PASSWORD" <<'SQL'
CREATE ROLE airflow LOGIN PASSWORD :'airflow_password';
CREATE DATABASE airflow OWNER airflow;
CREATE ROLE prefect LOGIN PASSWORD :'prefect_password';
CREATE DATABASE prefect OWNER prefect;
\connect prefect
-- Prefect's migrations use trigram indexes; created here by the superuser.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
SQL
