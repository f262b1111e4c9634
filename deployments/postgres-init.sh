#!/bin/sh
# docker-compose's PostgreSQL runs this once, on an empty data volume: one database for the
# Prefect server and one for MLflow (runs, registry and basic-auth users), owned by POSTGRES_USER.
# The native stack creates its own two on the machine's PostgreSQL, named after its home and
# recording which stack owns them (flavor_ml/stack/databases.py).
set -eu
for database in "${FLAVOR_PREFECT_DB:-flavor_prefect}" "${FLAVOR_MLFLOW_DB:-flavor_mlflow}"; do
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --set=db="$database" --set=owner="$POSTGRES_USER" <<'SQL'
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SQL
done
