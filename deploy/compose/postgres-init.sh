#!/bin/sh
# The databases of the compose stack and their owners: Airflow's metadata (and Celery's results), MLflow's tracking
# and registry, Ativo's platform DB. The passwords are the postgres service's environment, from .env
# (deploy/compose/secrets.sh); none is written here.
#
# PostgreSQL's entrypoint runs this once, on an empty data volume. Run it again after rotating a database password
# (docs/deployment.md, "Secrets"): it creates what is missing and sets every password, the superuser's too, to the values the
# container has now:
#   docker compose up -d postgres && docker compose exec postgres sh /docker-entrypoint-initdb.d/ativo.sh
set -eu
# \getenv reads each password from the environment: none is on a command line
psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres <<'SQL'
\getenv postgres_password POSTGRES_PASSWORD
\getenv airflow_password AIRFLOW_DB_PASSWORD
\getenv mlflow_password MLFLOW_DB_PASSWORD
\getenv ativo_password PLATFORM_DB_PASSWORD
SELECT format('CREATE ROLE %I LOGIN', r) FROM unnest(ARRAY['airflow', 'mlflow', 'ativo']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE CURRENT_USER PASSWORD :'postgres_password';
ALTER ROLE airflow PASSWORD :'airflow_password';
ALTER ROLE mlflow PASSWORD :'mlflow_password';
ALTER ROLE ativo PASSWORD :'ativo_password';
SELECT format('CREATE DATABASE %I OWNER %I', d, d) FROM unnest(ARRAY['airflow', 'mlflow', 'ativo']) AS d
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = d) \gexec
SQL
