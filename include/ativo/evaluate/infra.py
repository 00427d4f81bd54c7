"""Infra: the registered artifact loads the way serving loads it, answers, and meets its latency budget."""

from __future__ import annotations

import time
from typing import Any

from ativo.evaluate.results import Check, GateResult
from ativo.model.artifact import ModelIntegrityError, load_version
from ativo.model.served import ServedModel
from ativo.spec import ModelSpec


def latency_ms(model: ServedModel, records: list[dict[str, Any]], calls: int, rounds: int = 3) -> dict[str, float]:
    """Single-row scoring through the serving path (encode + predict): the best of ``rounds`` rounds of ``calls``.

    Each call is timed in CPU time of the scoring thread (what the model costs) and in wall-clock time (what a
    caller waited, which on a shared host includes other processes' turns). Returns both for the round with the
    lowest CPU-time p99: like ``timeit``, the best round is the figure of the code, the others add interference.
    """
    import numpy as np

    model.score(model.encode(records[:1]))  # first call pays one-off set-up, as a warm server would not
    best: dict[str, float] | None = None
    for _ in range(rounds):
        cpu, wall = [], []
        for i in range(calls):
            row = records[i % len(records)]
            c, w = time.thread_time(), time.perf_counter()
            model.score(model.encode([row]))
            cpu.append((time.thread_time() - c) * 1000)
            wall.append((time.perf_counter() - w) * 1000)
        figures = {
            "cpu_p50_ms": float(np.percentile(cpu, 50)),
            "cpu_p99_ms": float(np.percentile(cpu, 99)),
            "wall_p50_ms": float(np.percentile(wall, 50)),
            "wall_p99_ms": float(np.percentile(wall, 99)),
            "wall_max_ms": float(max(wall)),
            "calls": calls,
            "rounds": rounds,
        }
        if best is None or figures["cpu_p99_ms"] < best["cpu_p99_ms"]:
            best = figures
    assert best is not None
    return best


def infra_gate(spec: ModelSpec, tracking_uri: str, version: str, sample: list[dict[str, Any]]) -> GateResult:
    """Load version ``version`` through :func:`ativo.model.artifact.load_version`, score ``sample``, time single rows.

    Args:
        spec: the budget (``gates.infra.max_p99_ms``, else ``deploy.latency_budget_ms``).
        tracking_uri: where the registry is.
        version: the model version.
        sample: request-shaped rows (feature name → value), as the API receives them.
    """
    import numpy as np

    cfg = spec.gates.infra
    budget = cfg.max_p99_ms or spec.deploy.latency_budget_ms
    started = time.perf_counter()
    try:
        model = load_version(spec, tracking_uri, version)
    except ModelIntegrityError as err:
        return GateResult(gate="infra", passed=False, reason=str(err), thresholds={"p99_ms": {"max": budget}})
    load_s = time.perf_counter() - started
    try:
        scores = model.score(model.encode(sample))  # the API's own path: encode, then inplace_predict
    except Exception as err:  # e.g. a model trained on another schema: it cannot answer a valid request
        return GateResult(
            gate="infra",
            passed=False,
            thresholds={"p99_ms": {"max": budget}},
            reason=f"version {version} loads but cannot score a valid request: "
            f"{type(err).__name__}: {str(err).splitlines()[0][:300]}",
        )
    failures = []
    if len(scores) != len(sample) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        failures.append(
            f"the loaded model answered {len(scores)} score(s) for {len(sample)} rows, not all probabilities in [0, 1]"
        )
    timing = latency_ms(model, sample, cfg.calls)
    checks = [
        Check(
            "p99_ms",
            timing["cpu_p99_ms"],
            budget,
            "max",
            f"single-row scoring, CPU time per call, best of {timing['rounds']} rounds of {cfg.calls}; "
            f"wall-clock p99 {timing['wall_p99_ms']:.1f} ms on this host",
        )
    ]
    return GateResult.judge(
        "infra",
        checks,
        extra_failures=failures,
        ok=f"loads from its native file (sha256 {model.sha256[:12]}… verified, no pickle) in {load_s:.2f} s; "
        f"single row p99 {timing['cpu_p99_ms']:.2f} ms (wall clock {timing['wall_p99_ms']:.2f} ms)",
        metrics={
            "load_s": load_s,
            "p50_ms": timing["cpu_p50_ms"],
            "wall_p50_ms": timing["wall_p50_ms"],
            "wall_p99_ms": timing["wall_p99_ms"],
            "wall_max_ms": timing["wall_max_ms"],
        },
        details={"files": list(model.files), "sha256": model.sha256},
    )
