"""Benchmark: Ativo's inference API against ``mlflow models serve`` for the same model, on loopback.

One XGBoost model is trained on the UCI Adult reference data (48,842 rows, the spec's parameters) and registered
twice in a throw-away MLflow registry (SQLite, local artifacts): as training registers it (native UBJ, sha256
tag) for ``ativo serve``, and with a numeric signature for ``mlflow models serve``. MLflow's XGBoost flavour cannot
score this model from its raw rows: it builds a DMatrix without ``enable_categorical``, so string categories are
refused (checked below and reported); it is therefore sent the rows already encoded as category codes
(``dataframe_split``), while Ativo gets the raw rows and validates every field against the spec. Both servers run
uvicorn with one worker, one after the other, and are driven by the same closed-loop generator
(:mod:`ativo_dev.loadgen`, keep-alive connections) with single rows and with 100-row batches. Ativo also writes its
prediction log (Parquet, with the top contributions of every row) while it is measured; MLflow logs nothing.

Usage: ``.venv/bin/python bench/serve.py [--duration 15] [--concurrency 4]``. The last line is one JSON object
with ``ativo_rps``, ``mlflow_rps``, ``rps_ratio``, ``ativo_p99_ms``, ``mlflow_p99_ms`` (single row) and the same
for batches.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ativo import http
from ativo.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support and ativo_dev, from the repository (neither is installed)
HOME = Path(tempfile.mkdtemp(prefix="ativo-bench-serve-"))
os.environ.update(
    ATIVO_HOME=str(HOME),
    ATIVO_MLFLOW_TRACKING_URI=f"sqlite:///{HOME / 'mlflow.db'}",
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
    MLFLOW_DISABLE_TELEMETRY="true",
)
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))

SPEC = "adult_income"


def _mlflow_server(model_uri: str, port: int, tracking_uri: str) -> subprocess.Popen:
    env = dict(
        os.environ, MLFLOW_TRACKING_URI=tracking_uri, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    )  # its uvicorn
    log = open(HOME / "mlflow-serve.log", "wb")  # noqa: SIM115  # closed with the process
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow models serve exited: {(HOME / 'mlflow-serve.log').read_text()[-2000:]}")
        http.get_text(f"http://127.0.0.1:{port}/ping", timeout=2, attempts=1)
        return True

    wait_until(answers, 120, 0.5, "mlflow models serve to answer /ping", retry_on=(http.HttpError,))
    return proc


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """(status, parsed body) of one POST of a JSON body, whatever its status."""
    return http.parse_response(http.request("POST", url, doc=json.loads(body), headers=headers, timeout=30))


def main() -> None:
    """Train, register, serve with both, load both, print a table and one JSON line."""
    import importlib.util

    from ativo_dev.wrk import available as wrk_available

    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--concurrency", type=int, default=4, help="connections of our own generator")
    p.add_argument("--wrk-connections", type=int, default=8, help="wrk -c (with -t2)")
    p.add_argument("--servers", default="ativo,mlflow", help="which servers to drive (comma-separated)")
    p.add_argument("--clients", default="loadgen,wrk", help="which load generators (comma-separated)")
    p.add_argument("--serve-args", default="", help="extra `ativo serve` flags, e.g. '--refresh-s 60'")
    args = p.parse_args()
    servers, clients = args.servers.split(","), args.clients.split(",")
    missing = []
    if "wrk" in clients and not wrk_available():
        missing.append("wrk is not installed: run ativo_dev/system-packages.sh wrk (or pass --clients loadgen)")
    if importlib.util.find_spec("mlflow") is None or (
        "mlflow" in servers and not (Path(sys.executable).parent / "mlflow").exists()
    ):
        missing.append(f"mlflow (its package and its CLI beside {sys.executable}) is not installed: run make setup")
    if missing:  # the JSON line still comes, saying what could not run
        print(json.dumps({"bench": "serve", "error": "; ".join(missing), "servers": servers, "clients": clients}))
        shutil.rmtree(HOME, ignore_errors=True)
        sys.exit("; ".join(missing))
    import mlflow
    import mlflow.xgboost
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    from ativo.config import load_settings
    from ativo.data.features import to_features
    from ativo.data.landing import reference_records
    from ativo.data.split import split_frame
    from ativo.deploy.promotion import promote
    from ativo.evaluate.suite import request_rows
    from ativo.model.served import ServedModel
    from ativo.spec import get_spec
    from ativo.train.trainer import fit
    from ativo_dev.loadgen import run_load
    from ativo_dev.wrk import run_wrk
    from tests.support.harness import free_port, register_booster, start_server

    settings = load_settings()
    spec = get_spec(SPEC, settings.specs_dir)
    raw = reference_records(spec, settings.reference_dir)
    raw[spec.data_schema.event_time] = "2026-01-01"
    split = split_frame(to_features(raw, spec), spec)
    t0 = time.perf_counter()
    booster = fit(spec, split, threads=2).booster
    print(
        f"trained on {len(split.train)} rows in {time.perf_counter() - t0:.1f}s ({booster.num_boosted_rounds()} trees)",
        flush=True,
    )
    uri = settings.mlflow_tracking_uri
    version = register_booster(settings, spec, booster, artifact_root=HOME / "artifacts")
    promote(spec, settings, version, reason="benchmark")

    rows = request_rows(spec, split.test, 500)
    served = ServedModel(spec=spec, name=spec.name, version=version, booster=booster, sha256="")
    codes = served.encode(rows).astype(np.float64)
    names = spec.data_schema.feature_names
    # MLflow's copy: same booster, numeric signature (category codes), logged by MLflow's own flavour (the baseline,
    # not Ativo's artifact contract).
    mlflow.set_tracking_uri(uri)
    frame = pd.DataFrame(codes, columns=names)
    with mlflow.start_run():
        info = mlflow.xgboost.log_model(
            booster,
            name="model",
            model_format="ubj",
            pip_requirements=["xgboost"],
            signature=infer_signature(frame, served.score(codes.astype(np.float32))),
            registered_model_name="adult_income_mlflow_bench",
        )
    mlflow_uri = f"models:/adult_income_mlflow_bench/{info.registered_model_version}"

    ativo_single = [json.dumps({"features": r, "subject_id": f"s-{i}"}).encode() for i, r in enumerate(rows)]
    ativo_batch = [
        json.dumps({"rows": [{"features": r} for r in rows[i : i + 100]]}).encode() for i in range(0, 500, 100)
    ]
    ml_single = [
        json.dumps({"dataframe_split": {"columns": names, "data": [list(map(_num, c))]}}).encode() for c in codes
    ]
    ml_batch = [
        json.dumps(
            {"dataframe_split": {"columns": names, "data": [list(map(_num, c)) for c in codes[i : i + 100]]}}
        ).encode()
        for i in range(0, 500, 100)
    ]
    raw_refused = _mlflow_on_raw_rows(spec, split, booster, rows[:3])
    print(f"MLflow's pyfunc on raw rows (the model logged as training logs it): {raw_refused}", flush=True)

    results: dict[str, dict] = {}

    def drive(server: str, url: str, single: list[bytes], batch: list[bytes], headers: dict[str, str]) -> None:
        for name, bodies in (("single", single), ("batch100", batch)):
            if "loadgen" in clients:
                r = run_load(
                    url, bodies, headers=headers, concurrency=args.concurrency, duration_s=args.duration, warmup_s=2
                ).summary()
                results[f"{server}_{name}"] = r
                print(f"{server:6s} {name:9s} loadgen -c{args.concurrency} {r}", flush=True)
            if "wrk" in clients:
                run_wrk(url, bodies, headers=headers, connections=args.wrk_connections, duration_s=2)  # warm-up
                w = run_wrk(url, bodies, headers=headers, connections=args.wrk_connections, duration_s=args.duration)
                results[f"{server}_{name}_wrk"] = w
                print(f"{server:6s} {name:9s} {w['client']} {w}", flush=True)

    ml_score = ativo_score = float("nan")
    health: dict[str, Any] = {"prediction_log": {"written_rows": None}}
    if "mlflow" in servers:
        port = free_port()
        proc = _mlflow_server(mlflow_uri, port, uri)
        try:
            status, body = _post(f"http://127.0.0.1:{port}/invocations", ml_single[0], {})
            ml_score = body["predictions"][0]
            drive("mlflow", f"http://127.0.0.1:{port}/invocations", ml_single, ml_batch, {})
        finally:
            _stop(proc)

    if "ativo" in servers:
        server = start_server(settings, SPEC, args=tuple(args.serve_args.split()))
        try:
            headers = {"Authorization": f"Bearer {server.key}"}
            status, body = _post(server.url + "/predict", ativo_single[0], headers)
            ativo_score = body["score"]
            drive("ativo", server.url + "/predict", ativo_single, ativo_batch, headers)
            health = http.get_json(server.url + "/health", timeout=30)
        finally:
            server.stop()
    print(json.dumps(_summary(results, args, ativo_score, ml_score, raw_refused, health)))
    shutil.rmtree(HOME, ignore_errors=True)


def _summary(
    results: dict[str, dict],
    args: argparse.Namespace,
    ativo_score: float,
    ml_score: float,
    raw_refused: str,
    health: dict[str, Any],
) -> dict[str, Any]:
    """The JSON line: wrk's figures where wrk ran (the acceptance client), else the generator's."""
    out: dict[str, Any] = {}
    for server in ("ativo", "mlflow"):
        for name, tag in (("single", ""), ("batch100", "batch_")):
            w, g = results.get(f"{server}_{name}_wrk"), results.get(f"{server}_{name}")
            r = w or g
            if r is None:
                continue
            out[f"{server}_{tag}rps"] = r["rps"]
            out[f"{server}_{tag}p50_ms"] = r["p50_ms"]
            out[f"{server}_{tag}p99_ms"] = r["p99_ms"]
            if w is not None:
                out[f"{server}_{tag}p999_ms"] = w["p999_ms"]
            if name == "batch100":
                out[f"{server}_batch_rows_per_s"] = round(r["rps"] * 100)
            if g is not None and w is not None:
                out[f"{server}_{tag}loadgen"] = {k: g[k] for k in ("rps", "p50_ms", "p99_ms")}
    if "ativo_rps" in out and "mlflow_rps" in out:
        out["rps_ratio"] = round(out["ativo_rps"] / out["mlflow_rps"], 2)
        out["p99_ratio"] = round(out["mlflow_p99_ms"] / out["ativo_p99_ms"], 2)
        out["batch_rps_ratio"] = round(out["ativo_batch_rps"] / out["mlflow_batch_rps"], 2)
    out.update(
        {
            "failed": {k: v["failed"] for k, v in results.items()},
            "same_score": abs(ativo_score - ml_score) < 1e-6,
            "mlflow_raw_rows": raw_refused,
            "ativo_log_rows_written": health["prediction_log"]["written_rows"],
            "client": f"wrk -t2 -c{args.wrk_connections}"
            if any(k.endswith("_wrk") for k in results)
            else f"loadgen -c{args.concurrency}",
            "duration_s": args.duration,
            "workers": 1,
        }
    )
    print()
    print(f"{'':26s}{'ativo serve':>14s}{'mlflow serve':>14s}")
    for key, label in (
        ("rps", "single row req/s"),
        ("p50_ms", "single row p50 ms"),
        ("p99_ms", "single row p99 ms"),
        ("p999_ms", "single row p99.9 ms"),
        ("batch_rows_per_s", "100-row batch rows/s"),
        ("batch_p99_ms", "100-row batch p99 ms"),
    ):
        a, m = out.get(f"ativo_{key}"), out.get(f"mlflow_{key}")
        print(f"{label:26s}{'' if a is None else f'{a:14.2f}':>14s}{'' if m is None else f'{m:14.2f}':>14s}")
    return out


def _mlflow_on_raw_rows(spec, split, booster, rows) -> str:  # noqa: ANN001
    """What MLflow's own pyfunc does with raw rows for the model as training logs it (string categories)."""
    import mlflow
    import pandas as pd

    from ativo.model.artifact import log_booster
    from ativo.model.encoding import design_matrix

    with mlflow.start_run():
        logged = log_booster(booster, signature_sample=design_matrix(split.valid.head(200), spec))
    frame = pd.DataFrame(rows)
    for col in frame.columns:
        if pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = frame[col].astype("float64")
    try:
        mlflow.pyfunc.load_model(logged.uri).predict(frame)
    except Exception as err:
        return f"refused: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return "accepted"


def _num(x: float) -> float | None:
    return None if x != x else float(x)  # NaN (a missing category) as JSON null


if __name__ == "__main__":
    main()
