"""Infra: the registered artifact loads the way serving loads it, answers, and meets its latency budget."""

from __future__ import annotations

import time
from typing import Any

from ativo.evaluate.results import Check, GateResult
from ativo.serve.model import ModelIntegrityError, ServedModel, load_version
from ativo.spec import ModelSpec


def latency_ms(model: ServedModel, records: list[dict[str, Any]], calls: int) -> dict[str, float]:
    """Single-row scoring through the serving path (encode + predict), ``calls`` times: p50 / p99 / max in ms."""
    import numpy as np

    model.predict_records(records[:1])  # first call pays one-off set-up, as a warm server would not
    times = []
    for i in range(calls):
        row = records[i % len(records)]
        start = time.perf_counter()
        model.predict_records([row])
        times.append((time.perf_counter() - start) * 1000)
    arr = np.array(times)
    return {"p50_ms": float(np.percentile(arr, 50)), "p99_ms": float(np.percentile(arr, 99)),
            "max_ms": float(arr.max()), "calls": calls}  # fmt: skip


def infra_gate(spec: ModelSpec, tracking_uri: str, version: str, sample: list[dict[str, Any]]) -> GateResult:
    """Load version ``version`` through :func:`ativo.serve.model.load_version`, score ``sample``, time single rows.

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
    scores = model.predict_records(sample)
    failures = []
    if len(scores) != len(sample) or not np.all(np.isfinite(scores)) or scores.min() < 0 or scores.max() > 1:
        failures.append(f"the loaded model answered {len(scores)} score(s) for {len(sample)} rows, not all "
                        "probabilities in [0, 1]")  # fmt: skip
    timing = latency_ms(model, sample, cfg.calls)
    checks = [Check("p99_ms", timing["p99_ms"], budget, "max", f"single-row scoring latency over {cfg.calls} calls")]
    return GateResult.judge(
        "infra", checks, extra_failures=failures,
        ok=f"loads from its native file (sha256 {model.sha256[:12]}… verified, no pickle) in {load_s:.2f} s; "
           f"single row p99 {timing['p99_ms']:.2f} ms",
        metrics={"load_s": load_s, "p50_ms": timing["p50_ms"], "max_ms": timing["max_ms"]},
        details={"files": list(model.files), "sha256": model.sha256},
    )  # fmt: skip
