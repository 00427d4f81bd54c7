"""Training beyond one process: single-process XGBoost vs ``compute.engine: dask`` at growing sizes.

Synthetic rows in the Adult schema (the reference rows resampled, their numbers jittered so that no two rows are the
same, fresh record ids) are written as Parquet partitions of ``--partition-rows`` rows, the shape of a dataset
version. At each size both engines train the spec's model with the same parameters and a fixed number of rounds
(no early stopping: the same work) on the same seeded hash split (:func:`ativo.data.split.part_of`):

- **single**: one process reads every partition into one frame and trains with ``ativo.train.trainer.fit`` on all
  cores (``--workers`` threads);
- **dask**: ``ativo.train.distributed.fit_dask`` on a ``LocalCluster`` of ``--workers`` single-threaded workers that
  read the partitions themselves; only the held-out scores come back to the client.

Each run is a child process watched from here: the peak RSS of every process (client, scheduler, nannies, workers)
is sampled from ``/proc``, and a process above ``--budget-gb`` is stopped: that engine "does not fit" at that size.
Reported per size and engine: wall time, the largest peak RSS of any process (and each), test AUC.

Usage: ``python bench/scale.py [--sizes 1000000,10000000,30000000] [--rounds 40]``. The last line is one JSON
object: ``largest_both``, ``auc_gap`` there, and whether dask finished the largest size under the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))
GIB = 1 << 30


def _spec(rounds: int) -> Any:
    from ativo.spec import get_spec

    base = get_spec("adult_income", ROOT / "include" / "specs")
    model = base.model.model_copy(update={"num_boost_round": rounds, "early_stopping_rounds": None})
    return base.model_copy(update={"model": model})


def write_partitions(out: Path, rows: int, partition_rows: int, reference_dir: Path) -> list[Path]:
    """``rows`` synthetic Adult rows as Parquet files of ``partition_rows`` (reused when already written)."""
    import numpy as np

    from ativo.data.features import to_features
    from ativo.data.landing import reference_records

    spec = _spec(1)
    out.mkdir(parents=True, exist_ok=True)
    done = out / "complete.json"
    if done.exists() and json.loads(done.read_text())["rows"] == rows:
        return sorted(out.glob("part-*.parquet"))
    base = reference_records(spec, reference_dir)
    schema = spec.data_schema
    files = []
    for i, start in enumerate(range(0, rows, partition_rows)):
        n = min(partition_rows, rows - start)
        rng = np.random.default_rng(1000 + i)
        chunk = base.iloc[rng.integers(0, len(base), size=n)].reset_index(drop=True)
        for f in schema.features:
            if f.type != "category":
                col = chunk[f.name].astype("float64")
                jitter = rng.normal(0, 0.02 * max(1.0, float(col.std())), n)
                lo, hi = f.min if f.min is not None else -np.inf, f.max if f.max is not None else np.inf
                col = np.clip(col + jitter, lo, hi)
                chunk[f.name] = col.round() if f.type == "int" else col
        chunk[schema.record_id] = [f"scale-{start + j:010d}" for j in range(n)]
        chunk[schema.subject] = [f"subj-scale-{start + j:010d}" for j in range(n)]
        chunk[schema.event_time] = "2026-01-01"
        path = out / f"part-{i:05d}.parquet"
        to_features(chunk, spec).to_parquet(path, index=False)
        files.append(path)
    done.write_text(json.dumps({"rows": rows}))
    return files


# --- the two engines, each run in a child process -----------------------------------------------------------------


def _auc(y: Any, p: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


def run_single(files: list[Path], rounds: int, workers: int) -> dict[str, Any]:
    import pandas as pd

    from ativo.data.split import Split, part_of
    from ativo.train.trainer import fit

    spec = _spec(rounds)
    t0 = time.perf_counter()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    part = part_of(df, spec)
    split = Split(train=df[part == 0], valid=df[part == 1], test=df[part == 2])
    del df
    model = fit(spec, split, threads=workers)
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "test_auc": round(model.metrics["test_auc"], 5),
        "rounds": model.booster.num_boosted_rounds(),
    }


def run_dask(files: list[Path], rounds: int, workers: int, memory_limit: str) -> dict[str, Any]:
    from ativo.compute.cluster import client_for, close_clients
    from ativo.config import load_settings
    from ativo.data.split import lazy_split
    from ativo.data.training import parquet_frame
    from ativo.train.distributed import fit_dask

    shape = {"workers": workers, "threads_per_worker": 1, "memory_limit": memory_limit}
    base = _spec(rounds)
    spec = base.model_copy(
        update={
            "compute": base.compute.model_copy(
                update={"engine": "dask", "dask": base.compute.dask.model_copy(update=shape)}
            )
        }
    )
    settings = load_settings()
    client_for(spec, settings)  # the cluster first: its start is not training
    t0 = time.perf_counter()
    frame, rows = parquet_frame([(str(f), {}) for f in files])
    split = lazy_split(frame, spec, rows)
    model = fit_dask(spec, settings, split)
    out = {
        "seconds": round(time.perf_counter() - t0, 1),
        "test_auc": round(model.metrics["test_auc"], 5),
        "rounds": model.booster.num_boosted_rounds(),
    }
    close_clients()
    return out


def _child(args: argparse.Namespace) -> int:
    files = sorted(Path(args.data).glob("part-*.parquet"))
    if args.engine == "single":
        result = run_single(files, args.rounds, args.workers)
    else:
        result = run_dask(files, args.rounds, args.workers, args.memory_limit)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


def _tree(root: int) -> list[int]:
    """``root`` and every descendant, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _status(pid: int) -> tuple[int, str]:
    """(VmHWM in bytes, a short role) of a process, (0, '') when it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0, ""
    hwm = next((int(line.split()[1]) * 1024 for line in text.splitlines() if line.startswith("VmHWM:")), 0)
    role = (
        "worker"
        if cmd.startswith("dask worker")
        else "client"
        if "--child" in cmd
        else "resource-tracker"
        if "resource_tracker" in cmd
        else cmd.split()[0].rsplit("/", 1)[-1]
    )
    return hwm, role


def measure(engine: str, data: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Run one engine in a child process; peak RSS per process; stopped above the budget."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--engine",
        engine,
        "--data",
        str(data),
        "--rounds",
        str(args.rounds),
        "--workers",
        str(args.workers),
        "--memory-limit",
        args.memory_limit,
    ]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )
    peaks: dict[int, tuple[int, str]] = {}
    over: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set() and proc.poll() is None:
            for pid in _tree(proc.pid):
                hwm, role = _status(pid)
                if hwm > peaks.get(pid, (0, ""))[0]:
                    peaks[pid] = (hwm, role)
                if hwm > args.budget_gb * GIB and not over:
                    over.append(f"{role} (pid {pid}) above {args.budget_gb} GB")
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    stop.set()
    watcher.join()
    wall = time.perf_counter() - t0
    by_role: dict[str, float] = {}
    for hwm, role in peaks.values():
        by_role[role] = max(by_role.get(role, 0.0), round(hwm / GIB, 2))
    peak = max((h for h, _ in peaks.values()), default=0) / GIB
    line = next((row for row in out.splitlines() if row.startswith("RESULT ")), None)
    if over or line is None:
        reason = over[0] if over else (err.strip().splitlines() or ["no result"])[-1][:300]
        return {
            "finished": False,
            "why": reason,
            "wall_s": round(wall, 1),
            "peak_rss_gb": round(peak, 2),
            "peak_rss_gb_by_role": by_role,
        }
    result = json.loads(line.removeprefix("RESULT "))
    return {
        "finished": True,
        "wall_s": round(wall, 1),
        **result,
        "peak_rss_gb": round(peak, 2),
        "peak_rss_gb_by_role": by_role,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000000,10000000,30000000")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--memory-limit", default="7GiB", help="each Dask worker's limit (it spills to disk above)")
    p.add_argument("--budget-gb", type=float, default=8.0, help="a process above this peak RSS is stopped")
    p.add_argument("--partition-rows", type=int, default=500_000)
    p.add_argument("--data-dir", default=str(ROOT / "var" / "bench-scale"))
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--engine", choices=("single", "dask"), help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return _child(args)
    os.environ.setdefault("ATIVO_HOME", tempfile.mkdtemp(prefix="ativo-bench-scale-"))
    reference = Path(os.environ.get("ATIVO_REFERENCE_DIR", ROOT / "var" / "reference"))
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, dict[str, Any]] = {}
    for rows in sizes:
        t0 = time.perf_counter()
        data = Path(args.data_dir) / f"rows-{rows}"
        write_partitions(data, rows, args.partition_rows, reference)
        print(
            f"{rows:>11,} rows: {len(list(data.glob('part-*.parquet')))} partitions "
            f"({time.perf_counter() - t0:.0f} s to write)",
            flush=True,
        )
        results[str(rows)] = {}
        for engine in ("single", "dask"):
            r = measure(engine, data, args)
            results[str(rows)][engine] = r
            shown = (
                f"{r['wall_s']:>7.1f} s  test AUC {r['test_auc']:.5f}"
                if r["finished"]
                else f"did not finish: {r['why']}"
            )
            print(
                f"{'':13}{engine:6}  {shown}  peak RSS {r['peak_rss_gb']:.2f} GB {r['peak_rss_gb_by_role']}", flush=True
            )
    both = [int(n) for n, r in results.items() if r["single"]["finished"] and r["dask"]["finished"]]
    largest = max(sizes)
    top = results[str(largest)]["dask"]
    summary = {
        "sizes": sizes,
        "rounds": args.rounds,
        "workers": args.workers,
        "budget_gb": args.budget_gb,
        "results": results,
        "largest_both": max(both) if both else None,
        "auc_gap": (
            round(abs(results[str(max(both))]["single"]["test_auc"] - results[str(max(both))]["dask"]["test_auc"]), 5)
            if both
            else None
        ),
        "single_fits_up_to": max((int(n) for n, r in results.items() if r["single"]["finished"]), default=None),
        "dask_largest_finished": bool(top["finished"]),
        "dask_largest_peak_rss_gb": top["peak_rss_gb"],
        "dask_largest_under_budget": bool(top["finished"] and top["peak_rss_gb"] < args.budget_gb),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
