"""ETL benchmark.

1. rows_per_s: the three ETL steps (validate with GX → write the Parquet partition + subject index → DVC dataset
   version) on one partition, outside Airflow, after a warm-up: a real-size daily batch of UCI Adult and a large
   synthetic batch of the same schema.
2. backfill_30d_s: a real Airflow (its four components, LocalExecutor, on the embedded PostgreSQL; isolated home
   and ports)
   backfilling 30 landed days, measured from the first task's start to the last task's end.

Prints a readable summary, then one JSON line.  Usage: .venv/bin/python bench/etl.py [--rows N] [--skip-backfill]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support and ativo_dev, from the repository (neither is installed)


def partition_throughput(rows: int) -> dict:
    from ativo.config import load_settings
    from ativo.data import etl
    from ativo.data.landing import simulate, synthesize, to_csv_bytes
    from ativo.spec import load_spec, parse_spec
    from ativo.store.objects import open_store
    from ativo.store.prefixes import landing_batch

    home = Path(tempfile.mkdtemp(prefix="ativo-bench-etl-"))
    settings = load_settings({**os.environ, "ATIVO_HOME": str(home)})
    spec = load_spec(ROOT / "include" / "specs" / "adult_income.yaml")
    store = open_store(settings)
    day0 = dt.date(2026, 1, 1)
    simulate(spec, store, settings.reference_dir, day0, 30)  # real daily batches of ~1,630 rows
    etl.run_interval(spec, settings, "2026-01-01")  # warm-up: imports, GX context, registry init

    t = time.perf_counter()
    for d in range(1, 6):
        etl.run_interval(spec, settings, str(day0 + dt.timedelta(days=d)))
    real_s = (time.perf_counter() - t) / 5
    real_rows = len(etl.read_partition(spec, settings, "2026-01-02"))

    big_doc = spec.model_dump(mode="json", by_alias=True)
    big_doc["source"]["rows_per_batch_max"] = rows * 2
    big_doc["source"]["max_batch_bytes"] = rows * 400  # ~110 bytes a row: the bound stays, with room
    big = parse_spec(big_doc)
    big_day = dt.date(2026, 3, 1)
    frame = synthesize(big, settings.reference_dir, rows)
    frame[big.data_schema.event_time] = big_day.isoformat()
    store.put_bytes(landing_batch(big.name, big_day), to_csv_bytes(frame))
    steps = {}
    t = time.perf_counter()
    accepted = etl.validate_landing(big, settings, str(big_day))
    steps["validate_s"] = time.perf_counter() - t
    t2 = time.perf_counter()
    etl.write_features(big, settings, str(big_day), accepted["sha256"])
    steps["write_s"] = time.perf_counter() - t2
    t3 = time.perf_counter()
    etl.version_dataset(big, settings)
    steps["version_s"] = time.perf_counter() - t3
    big_s = time.perf_counter() - t
    return {
        "real_partition_rows": real_rows,
        "real_partition_s": round(real_s, 3),
        "real_rows_per_s": round(real_rows / real_s, 1),
        "large_partition_rows": rows,
        "large_partition_s": round(big_s, 3),
        "rows_per_s": round(rows / big_s, 1),
        "large_steps_s": {k: round(v, 3) for k, v in steps.items()},
    }


def backfill_30d() -> dict:
    from ativo import naming
    from ativo_dev import lifecycle, supervisor
    from tests.support.harness import isolated_platform

    root = Path(tempfile.mkdtemp(prefix="ativo-bench-backfill-"))
    root.chmod(0o711)  # the embedded PostgreSQL runs as an unprivileged user when this runs as root (as CI does)
    with isolated_platform(root / "home", database="postgres") as settings:  # free loopback ports, stopped at exit
        try:
            return _backfill(settings, naming, lifecycle, supervisor)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _backfill(settings, naming, lifecycle, supervisor) -> dict:
    t0 = time.perf_counter()
    try:
        api = supervisor.start_services(
            settings,
            spec_names=["adult_income"],
            before_airflow=lambda: lifecycle.prepare_lifecycle(settings, ["adult_income"], 30, 11),
        )
        started = time.perf_counter()
        lifecycle.watch_lifecycle(settings, api, "adult_income", 30)
        wall = time.perf_counter() - t0
        etl_dag = naming.etl_dag_id("adult_income")
        tis = api.get(f"/api/v2/dags/{etl_dag}/dagRuns/~/taskInstances?limit=500")["task_instances"]
        starts = [dt.datetime.fromisoformat(t["start_date"]) for t in tis if t["start_date"]]
        ends = [dt.datetime.fromisoformat(t["end_date"]) for t in tis if t["end_date"]]
        runs = api.runs(etl_dag)
    finally:
        supervisor.stop_services(settings)
    return {
        "backfill_30d_s": round((max(ends) - min(starts)).total_seconds(), 1),
        "backfill_30d_wall_s": round(wall, 1),
        "airflow_startup_s": round(started - t0, 1),
        "etl_runs_ok": sum(r["state"] == "success" for r in runs),
        "etl_runs_failed": sum(r["state"] == "failed" for r in runs),
        "task_instances": len(tis),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows of the large synthetic partition")
    parser.add_argument("--skip-backfill", action="store_true")
    args = parser.parse_args()
    result = {"bench": "etl", "cores": os.cpu_count()}
    result.update(partition_throughput(args.rows))
    print(
        f"one partition, real size ({result['real_partition_rows']} rows): {result['real_partition_s']:.2f} s "
        f"→ {result['real_rows_per_s']:,.0f} rows/s"
    )
    print(
        f"one partition, synthetic ({result['large_partition_rows']:,} rows): {result['large_partition_s']:.2f} s "
        f"→ {result['rows_per_s']:,.0f} rows/s  (steps: {result['large_steps_s']})"
    )
    if not args.skip_backfill:
        result.update(backfill_30d())
        print(
            f"30-day backfill on Airflow (LocalExecutor, embedded PostgreSQL): {result['backfill_30d_s']} s from first "
            f"task start to last task end ({result['etl_runs_ok']} ok, {result['etl_runs_failed']} quarantined; "
            f"{result['backfill_30d_wall_s']} s wall including {result['airflow_startup_s']} s start-up)"
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
