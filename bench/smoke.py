"""Smoke run of every benchmark in ``bench/`` at a tiny size: does each still run and end with its JSON line?

Each benchmark runs as a child process (``.venv/bin/python bench/<name>.py`` with the tiny arguments of ``BENCHES``),
one after the other. It passes when it exits 0 and the last line of its stdout is one JSON object holding the keys
its docstring promises (and the few checks of ``BENCHES`` hold). A JSON line with ``error`` fails, saying it. The one
skip: ``bench/gpu.py`` on a host without a GPU (exit 3, ``gpus`` empty, ``skipped`` the reason), shown as skipped
with that reason. A benchmark in ``bench/`` (a script: it has an ``if __name__ == "__main__":``; a module others
import, such as ``verdicts.py``, is not one) that has no entry here fails too, so that a new one is not left out.
The figures measure nothing at these sizes: the smoke says the code paths run.

Prints a table (name, seconds, ok / skipped / FAILED and why, and what the tiny arguments left out); exits 1 when any
failed. Each benchmark's stdout and stderr are kept under ``var/bench-smoke/``.

Usage: ``.venv/bin/python bench/smoke.py [NAME ...]`` (``make bench-smoke``; default: every benchmark).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "var" / "bench-smoke"
TIMEOUT_S = 420  # one benchmark's limit; the whole smoke takes about 4 minutes on 2 cores
NO_GPU_EXIT = 3  # bench/gpu.py without a GPU


@dataclass(frozen=True)
class Bench:
    args: tuple[str, ...]
    keys: tuple[str, ...]  # in its JSON line, as its docstring names them
    checks: Callable[[dict[str, Any]], list[str]] = lambda r: []  # what is wrong, beyond missing keys
    left_out: str = ""  # what the tiny arguments leave out, shown in the table
    device: bool = False  # may be skipped, only for a missing device
    env: dict[str, str] = field(default_factory=dict)


def _all(*pairs: tuple[bool, str]) -> list[str]:
    return [why for ok, why in pairs if not ok]


def _scale(r: dict[str, Any]) -> list[str]:
    return [
        f"{engine} at {rows} rows did not finish: {res.get('why')}"
        for rows, engines in r["results"].items()
        for engine, res in engines.items()
        if not res.get("finished")
    ]


def _gpu(r: dict[str, Any]) -> list[str]:
    return _all((str(r["reference"].get("booster_device", "")).startswith("cuda"), "the booster did not train on CUDA"))


BENCHES: dict[str, Bench] = {
    "budget": Bench(
        ("--rounds", "1", "--trials", "2", "--workers", "1", "--rows", "4000"),
        ("bench", "rounds", "max_used_pct", "trials_run", "trials_refused", "trials_stopped_at_reservation"),
        lambda r: _all((r["trials_run"] > 0, "no trial ran"), (r["rounds"] == 1, f"{r['rounds']} rounds, not 1")),
    ),
    "canary": Bench(
        ("--smoke",),
        ("alpha", "false_promotion_rate", "false_rollback_rate", "median_decision_s", "median_decision_s_fixed_window"),
        lambda r: _all((r["canaries"] >= 12, f"{r['canaries']} canaries replayed, not 12")),
        left_out="all but 16 of the 480 canaries (no error rate is measured at that size)",
    ),
    "drift": Bench(
        ("--rows", "20000", "--windows", "200", "--row-windows", "20", "--skip-evidently"),
        ("profile_s", "ativo_s", "baseline_s", "max_psi_abs_diff", "counts_equal", "false_alarm_rate", "power_shift"),
        lambda r: _all(
            (r["counts_equal"] is True, "Ativo's bin counts differ from the baseline's"),
            (r["significant_equal"] is True, "Ativo's Holm verdicts differ from the baseline's"),
        ),
        left_out="Evidently (--skip-evidently: its venv needs the package registry)",
    ),
    "erasure": Bench(
        ("--present", "20", "--unknown", "5", "--closes", "1"),
        (
            "total_s",
            "retrain_s",
            "gates_s",
            "target_s",
            "residual_hits",
            "other_rows_lost",
            "retrains_per_model",
            "erasures_closed_without_page",
        ),
        lambda r: _all(
            (r["run_b"]["requests"] == 25, f"run B filed {r['run_b']['requests']} requests, not 25"),
            (r["erasures_run"] == 1, f"run C ran {r['erasures_run']} erasures, not 1"),
        ),
        left_out="19 of run C's 20 successive erasures under the spec's own gates",
    ),
    "etl": Bench(
        ("--rows", "5000", "--skip-backfill"),
        ("bench", "real_partition_rows", "real_rows_per_s", "large_partition_rows", "rows_per_s", "large_steps_s"),
        lambda r: _all((r["large_partition_rows"] == 5000, "the large partition is not 5,000 rows")),
        left_out="the 30-day backfill on Airflow (--skip-backfill: about 2.5 minutes; `make bench` runs it)",
    ),
    "gates": Bench(
        ("--smoke",),
        ("suite_s", "gates", "gate_s", "verdict", "dataset_version", "flip_rate_max", "aa_reject_max", "power_min"),
        lambda r: _all((len(r["gates"]) >= 8, f"only {len(r['gates'])} gates ran: {sorted(r['gates'])}")),
        left_out="the spec's robustness and privacy sample sizes (--smoke: the e2e tests' cheaper gates)",
    ),
    "gpu": Bench(
        ("--scaled-rows", "0", "--rounds", "10"),
        ("gpus", "cpu_cores", "xgboost", "rounds", "reference"),
        _gpu,
        left_out="the scaled-up data set (--scaled-rows 0)",
        device=True,
    ),
    "hpo": Bench(
        ("--trials", "2", "--scaled-rows", "0"),
        ("airflow_s", "inprocess_s", "ratio", "airflow_until_decision_s", "ratio_with_gates", "timeline", "auc_diff"),
        lambda r: _all((bool(r["timeline"]), "the Airflow run has no task timeline")),
        left_out="the scaled scenario (--scaled-rows 0)",
    ),
    "monitor": Bench(
        ("--rows", "2000", "--repeat", "1"),
        ("rows", "monitor_run_s", "read_s", "assess_s", "report_s", "drifted", "decision", "peak_rss_mb"),
    ),
    "scale": Bench(
        ("--sizes", "20000", "--rounds", "5", "--partition-rows", "10000", "--data-dir", "{tmp}"),
        ("largest_both", "auc_gap", "dask_largest_finished", "dask_largest_under_budget", "results"),
        _scale,
    ),
    "serve": Bench(
        ("--duration", "1"),
        ("ativo_rps", "mlflow_rps", "rps_ratio", "ativo_p99_ms", "mlflow_p99_ms", "ativo_batch_rps", "client"),
        lambda r: _all(
            (r["client"].startswith("wrk"), f"wrk did not drive it ({r['client']})"),
            (not any(r["failed"].values()), f"failed requests: {r['failed']}"),
            (r["same_score"] is True, "the two servers scored the row differently"),
        ),
    ),
}


@dataclass
class Outcome:
    name: str
    seconds: float
    status: str  # ok, skipped, FAILED
    why: str = ""


def _last_json(stdout: str) -> tuple[dict[str, Any] | None, str]:
    """The last stdout line as a JSON object, or None and why not."""
    lines = stdout.rstrip("\n").splitlines()
    if not lines:
        return None, "no output on stdout"
    try:
        doc = json.loads(lines[-1])
    except json.JSONDecodeError as err:
        return None, f"the last stdout line is not JSON ({err.msg}): {lines[-1][:160]!r}"
    if not isinstance(doc, dict):
        return None, f"the last stdout line is JSON but not an object: {type(doc).__name__}"
    return doc, ""


def _tail(path: Path, n: int = 3) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return " | ".join(line.strip()[:200] for line in lines[-n:])


def judge(name: str, bench: Bench, rc: int, stdout: str, err_path: Path) -> tuple[str, str]:
    """(status, why) of one finished benchmark."""
    doc, why = _last_json(stdout)
    if doc is None:
        return "FAILED", f"exit {rc}; {why}; stderr: {_tail(err_path)}"
    if "error" in doc:
        return "FAILED", f"exit {rc}; its JSON says: {doc['error']}"
    if "skipped" in doc:
        if bench.device and rc == NO_GPU_EXIT and doc.get("gpus") == []:
            return "skipped", f"no device: {doc['skipped']}"
        return "FAILED", f"exit {rc}; skipped without a missing device: {doc['skipped']}"
    if rc != 0:
        return "FAILED", f"exit {rc} after its JSON line; stderr: {_tail(err_path)}"
    missing = [k for k in bench.keys if k not in doc]
    if missing:
        return "FAILED", f"its JSON lacks {', '.join(missing)}"
    try:
        wrong = bench.checks(doc)
    except (KeyError, TypeError, AttributeError) as err:
        wrong = [f"its JSON is not shaped as expected: {type(err).__name__}: {err}"]
    if wrong:
        return "FAILED", "; ".join(wrong)
    return "ok", f"{len(doc)} keys"


def run(name: str, bench: Bench, tmp: Path) -> Outcome:
    args = [a.replace("{tmp}", str(tmp / name)) for a in bench.args]
    out_path, err_path = LOGS / f"{name}.out", LOGS / f"{name}.err"
    print(f"==> bench/{name}.py {' '.join(args)}", flush=True)
    started = time.monotonic()
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / f"{name}.py"), *args],
            cwd=ROOT,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **bench.env},
            start_new_session=True,  # its servers and workers too are stopped on a timeout
        )
        try:
            rc = proc.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Outcome(name, time.monotonic() - started, "FAILED", f"timed out after {TIMEOUT_S} s")
    seconds = time.monotonic() - started
    status, why = judge(name, bench, rc, out_path.read_text(errors="replace"), err_path)
    return Outcome(name, seconds, status, why)


def main(argv: list[str]) -> int:
    present = sorted(
        p.stem
        for p in (ROOT / "bench").glob("*.py")
        if p.stem != "smoke" and 'if __name__ == "__main__":' in p.read_text()  # scripts, not the modules they import
    )
    names = argv or present
    LOGS.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ativo-bench-smoke-"))
    outcomes: list[Outcome] = []
    started = time.monotonic()
    try:
        for name in names:
            if name not in BENCHES:
                why = "no entry in bench/smoke.py's BENCHES" if name in present else "no such benchmark in bench/"
                outcomes.append(Outcome(name, 0.0, "FAILED", why))
                continue
            outcome = run(name, BENCHES[name], tmp)
            outcomes.append(outcome)
            print(f"    {outcome.status} in {outcome.seconds:.1f} s: {outcome.why}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total = time.monotonic() - started
    print()
    print(f"{'benchmark':10s} {'seconds':>8s}  {'result':8s} why / left out at this size")
    for o in outcomes:
        print(f"{o.name:10s} {o.seconds:8.1f}  {o.status:8s} {o.why}")
        if o.name in BENCHES and BENCHES[o.name].left_out and o.status == "ok":
            print(f"{'':29s}left out: {BENCHES[o.name].left_out}")
    failed = [o.name for o in outcomes if o.status == "FAILED"]
    print(
        f"{len(outcomes)} benchmarks in {total:.1f} s: {sum(o.status == 'ok' for o in outcomes)} ok, "
        f"{sum(o.status == 'skipped' for o in outcomes)} skipped, {len(failed)} failed"
        + (f" ({', '.join(failed)}; output in {LOGS.relative_to(ROOT)}/)" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
