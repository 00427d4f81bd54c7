# Ativo image: Airflow 3.3.2 + the ativo package, used by every Airflow and MLflow service in docker-compose.yaml.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/ativo/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=/opt/ativo/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    ATIVO_SPECS_DIR=/opt/ativo/include/specs \
    GX_ANALYTICS_ENABLED=False

RUN apt-get update \
 && apt-get install -y --no-install-recommends git libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 50000 airflow

WORKDIR /opt/ativo
COPY requirements.txt .
RUN pip install --no-cache-dir uv \
 && uv pip install --system --no-cache -r requirements.txt

COPY pyproject.toml README.md ./
COPY include include
# the runbooks the Ativo page serves: the package links ativo/runbook_pages to them
COPY docs/runbooks docs/runbooks
COPY dags dags
COPY plugins plugins
COPY deploy deploy
# (the build leaves a copy of the package's metadata in include/, which is on sys.path: Airflow would load the
# plugin of its entry point twice)
RUN uv pip install --system --no-cache --no-deps -e . \
 && rm -rf include/ativo.egg-info \
 && mkdir -p /opt/airflow/ativo /opt/airflow/logs && chown -R airflow /opt/airflow /opt/ativo

USER airflow
