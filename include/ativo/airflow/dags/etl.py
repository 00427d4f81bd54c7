"""The ETL DAG of one spec: validate the day's landing batch → write its features partition → version the dataset."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import DAG, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from ativo.airflow.dags.common import dag_kwargs, features_asset, schedule
from ativo.airflow.failure import fail
from ativo.config import load_settings
from ativo.spec import ModelSpec


def _partition(context: Any) -> str:
    return str(context["data_interval_start"].date().isoformat())


def build_etl_dag(spec: ModelSpec) -> DAG:
    """Daily ETL of one spec: validate → write features → version dataset (Asset event)."""
    asset = features_asset(spec)

    @dag(schedule=schedule(spec, "etl"), **dag_kwargs(spec, "etl"))
    def etl() -> None:
        @task(retries=3)
        def validate() -> dict[str, Any]:
            """Validate the interval's landing batch; a rejected batch goes to quarantine and fails the run.

            An interval that has not ended yet is refused (its batch may still be arriving), not left running.
            """
            from ativo.data.etl import validate_landing
            from ativo.errors import BatchRejected, IntervalNotOver

            context = get_current_context()
            end = context.get("data_interval_end")
            if end is not None and end > dt.datetime.now(dt.UTC):
                fail(
                    f"the data interval {_partition(context)} ends at {end.isoformat()}, which is later than now: "
                    "it is not validated before it has ended; a backfill can run it once it has ended"
                )
            settings = load_settings()
            try:
                return validate_landing(spec, settings, _partition(context), interval_end=end)
            except BatchRejected as err:  # retrying cannot help: one line (why, the report, what next), page on-call
                from ativo.airflow.notifier import rejected_batch_line

                fail(
                    rejected_batch_line(spec.name, err, settings.link_url, settings.store_uri)
                )  # the internals are in the report
            except IntervalNotOver as err:
                fail(str(err))

        @task
        def write_features(accepted: dict[str, Any]) -> dict[str, Any]:
            """Write the interval's Parquet partition (same bytes on a re-run) and index its subjects."""
            from ativo.data.etl import write_features as write
            from ativo.errors import BatchRejected

            settings = load_settings()
            try:
                return write(spec, settings, _partition(get_current_context()), accepted["sha256"])
            except BatchRejected as err:  # a concurrent run took its record ids: quarantined, retrying cannot help
                from ativo.airflow.notifier import rejected_batch_line

                fail(rejected_batch_line(spec.name, err, settings.link_url, settings.store_uri))

        @task(outlets=[asset])
        def version_dataset(written: dict[str, Any]) -> dict[str, Any]:
            """Snapshot the lake as a DVC dataset version and announce it on the features Asset."""
            from ativo.data.etl import version_dataset as snapshot

            version = snapshot(spec, load_settings())
            if not version.created:
                raise AirflowSkipException(
                    f"no new dataset version: the lake is unchanged since {version.tag} "
                    f"(partition {_partition(get_current_context())} is already in it)"
                )
            extra = version.event_extra()
            get_current_context()["outlet_events"][asset].extra = extra
            return extra

        version_dataset(write_features(validate()))  # type: ignore[arg-type]  # XComArg at parse time

    return etl()
