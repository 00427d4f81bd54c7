"""Watching a canary (or shadow) on live figures and deciding: promote, roll back, or keep watching.

The figures are the servers' own ``/metrics`` (summed over every server URL), taken as the difference from a
snapshot at the start of the trial, so the champion is compared over the same minutes as the candidate:

- error rate: rows the candidate failed to score (the champion answered them), against ``max_error_rate``; a
  breach is acted on as soon as its 95 % Wilson lower bound passes the limit, so one early error does not decide;
- latency: p99 of the candidate's scoring calls against ``latency_budget_ms``;
- score distribution: PSI of the candidate's scores against the champion's, on deciles, against
  ``max_score_psi`` — beyond what sampling noise alone reaches at that many rows (99.9 %), so an early look at a
  small canary does not roll back a sound model;
- accuracy, once labels arrived (``/feedback``): AUC on labelled rows of each version, against ``max_auc_drop``.

Any breach rolls back at once. At the end of the window the candidate is promoted if it served at least
``min_canary_requests`` rows, otherwise rolled back for lack of evidence.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ativo.http import get_text
from ativo.monitor.stats import homogeneity_pvalue, psi  # the one PSI and χ² test: the watch and monitoring share them
from ativo.spec import ModelSpec

Figures = dict[str, dict[str, Any]]  # "<version>/<route>" → rows, errors, score and latency buckets


def scrape(urls: list[str], model: str, timeout: float = 10.0) -> Figures:
    """Per version and route of ``model``, the counters and histograms of every server's /metrics, summed.

    Only series labelled with ``model`` count: a server may serve several models, and their version numbers overlap.

    Raises:
        ativo.http.HttpError: a server does not answer (a watch cannot judge what it cannot see); an OSError.
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: Figures = {}
    for base in urls:
        text = get_text(base.rstrip("/") + "/metrics", timeout=timeout)
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = s.labels
                if "version" not in labels or "route" not in labels or labels.get("model") != model:
                    continue
                fig = out.setdefault(
                    f"{labels['version']}/{labels['route']}", {"rows": 0.0, "errors": 0.0, "scores": {}, "latency": {}}
                )
                if s.name == "ativo_predictions_total":
                    fig["rows"] += s.value
                elif s.name == "ativo_prediction_errors_total":
                    fig["errors"] += s.value
                elif s.name == "ativo_score_bucket":
                    fig["scores"][labels["le"]] = fig["scores"].get(labels["le"], 0.0) + s.value
                elif s.name == "ativo_model_duration_seconds_bucket":
                    fig["latency"][labels["le"]] = fig["latency"].get(labels["le"], 0.0) + s.value
    return out


def since(now: Figures, base: Figures) -> Figures:
    """``now`` minus ``base`` (a counter that went down means a server restarted: its current value counts)."""
    out: Figures = {}
    for key, fig in now.items():
        b = base.get(key, {})

        def sub(a: float, c: float) -> float:
            return a - c if a >= c else a

        out[key] = {
            "rows": sub(fig["rows"], b.get("rows", 0.0)),
            "errors": sub(fig["errors"], b.get("errors", 0.0)),
            "scores": {le: sub(v, b.get("scores", {}).get(le, 0.0)) for le, v in fig["scores"].items()},
            "latency": {le: sub(v, b.get("latency", {}).get(le, 0.0)) for le, v in fig["latency"].items()},
        }
    return out


def _sorted_buckets(cumulative: dict[str, float]) -> list[tuple[float, float]]:
    """Cumulative Prometheus buckets (le → count) as (upper edge, count), ascending."""
    return sorted((math.inf if le == "+Inf" else float(le), v) for le, v in cumulative.items())


def _bins(cumulative: dict[str, float], edges: tuple[float, ...]) -> list[float]:
    """Counts per bin between ``edges`` from cumulative Prometheus buckets (le → count)."""
    by_le = _sorted_buckets(cumulative)
    counts, prev = [], 0.0
    for edge in edges:
        c = max((v for le, v in by_le if le <= edge + 1e-9), default=0.0)
        counts.append(max(c - prev, 0.0))
        prev = c
    return counts


PSI_CONFIDENCE = 0.999


def psi_noise(n_candidate: float, n_champion: float, bins: int = 10, confidence: float = PSI_CONFIDENCE) -> float:
    """How large a PSI two samples of one distribution reach by chance (``confidence`` quantile).

    Under no shift, PSI ≈ (1/n₁ + 1/n₂) · χ²(bins − 1); a few dozen rows alone can reach 0.5. The watch acts on a
    PSI only beyond this, so an early look at a small canary does not roll back a sound model.
    """
    from scipy.stats import chi2

    if n_candidate <= 0 or n_champion <= 0:
        return math.inf
    return float(chi2.ppf(confidence, bins - 1)) * (1 / n_candidate + 1 / n_champion)


def p99_ms(cumulative: dict[str, float]) -> float | None:
    """The upper edge of the latency bucket holding the 99th percentile, in ms (None without data)."""
    by_le = _sorted_buckets(cumulative)
    if not by_le or by_le[-1][1] <= 0:
        return None
    target = 0.99 * by_le[-1][1]
    for le, v in by_le:
        if v >= target:
            return le * 1000
    return None


def wilson_lower(errors: float, n: float, z: float = 1.645) -> float:
    """One-sided 95 % lower bound of a rate (Wilson score interval)."""
    if n <= 0:
        return 0.0
    p = errors / n
    denom = 1 + z * z / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom)


DECILES = tuple(round(i / 10, 1) for i in range(1, 11))


@dataclass
class Verdict:
    """What the watch concluded (``decided`` False: keep watching)."""

    decided: bool
    promote: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (XCom, records)."""
        return asdict(self)


def label_figures(
    store: Any, spec: ModelSpec, started: float, candidate: str, route: str, champion: str | None
) -> dict[str, dict[str, float]]:
    """AUC and labelled-row count per side ("candidate", "champion") over predictions made since ``started``."""
    import datetime as dt

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ativo.serve.predlog import read_log

    first = dt.datetime.fromtimestamp(started, dt.UTC).date()
    days = [str(first + dt.timedelta(days=i)) for i in range((dt.datetime.now(dt.UTC).date() - first).days + 1)]
    labels = read_log(store, "labels", spec.name, days)
    if labels.empty:
        return {}
    preds = read_log(store, "predictions", spec.name, days)
    if preds.empty:
        return {}
    preds = preds[preds["ts"].astype("int64") / 1e9 >= started]
    joined = preds.merge(
        labels.drop_duplicates("prediction_id", keep="last")[["prediction_id", "label"]], on="prediction_id"
    )
    out: dict[str, dict[str, float]] = {}
    if route == "shadow":
        sides = {
            "candidate": joined[joined["shadow_version"] == candidate].assign(score=lambda d: d["shadow_score"]),
            "champion": joined[(joined["version"] == champion) & (joined["route"] == "champion")],
        }
    else:
        sides = {
            "candidate": joined[(joined["version"] == candidate) & (joined["route"] == "canary")],
            "champion": joined[(joined["version"] == champion) & (joined["route"] == "champion")],
        }
    for side, frame in sides.items():
        y = frame["label"].to_numpy()
        auc = float(roc_auc_score(y, frame["score"].to_numpy())) if len(np.unique(y)) == 2 else math.nan
        out[side] = {"labels": float(len(frame)), "auc": auc}
    return out


def judge(
    spec: ModelSpec,
    figures: Figures,
    *,
    candidate: str,
    champion: str | None,
    route: str,
    elapsed_s: float,
    labels: dict[str, dict[str, float]] | None = None,
) -> Verdict:
    """Decide on a candidate from the figures since its trial started.

    Args:
        spec: its deploy limits.
        figures: :func:`since` of the trial's start.
        candidate: the version on trial.
        champion: the version it is compared with.
        route: ``canary`` or ``shadow``.
        elapsed_s: seconds since the trial started.
        labels: :func:`label_figures`, when labels arrived.
    """
    d = spec.deploy
    cand = figures.get(f"{candidate}/{route}", {"rows": 0.0, "errors": 0.0, "scores": {}, "latency": {}})
    champ = figures.get(f"{champion}/champion", {"rows": 0.0, "errors": 0.0, "scores": {}, "latency": {}})
    rows, errors = cand["rows"], cand["errors"]
    attempts = rows + errors
    out: dict[str, Any] = {
        "candidate": candidate,
        "champion": champion,
        "route": route,
        "elapsed_s": round(elapsed_s, 1),
        "candidate_rows": rows,
        "candidate_errors": errors,
        "champion_rows": champ["rows"],
    }
    error_rate = errors / attempts if attempts else 0.0
    out["error_rate"] = round(error_rate, 4)
    broken: list[str] = []  # every limit the candidate broke, so a rollback names them all
    if attempts and wilson_lower(errors, attempts) > d.max_error_rate:
        bound = wilson_lower(errors, attempts)
        broken.append(
            f"error rate {error_rate:.1%} of {attempts:.0f} rows is above the limit "
            f"{d.max_error_rate:.1%} (95 % lower bound {bound:.1%})"
        )
    p99 = p99_ms(cand["latency"])
    out["p99_ms"] = p99
    enough = rows >= d.min_canary_requests
    if enough and p99 is not None and p99 > d.latency_budget_ms:
        broken.append(f"p99 scoring latency {p99:g} ms is above the budget {d.latency_budget_ms:g} ms")
    if enough and champ["rows"] >= d.min_canary_requests:
        champ_bins, cand_bins = _bins(champ["scores"], DECILES), _bins(cand["scores"], DECILES)
        value = psi(champ_bins, cand_bins)
        noise = psi_noise(rows, champ["rows"])
        # PSI's noise formula does not hold when a few rows leave bins empty (each costs ~0.7 through the floor): the
        # shift must also show in the χ² test on pooled bins, at the same confidence
        p = homogeneity_pvalue([round(c) for c in champ_bins], [round(c) for c in cand_bins])
        out["score_psi"] = round(value, 4)
        out["score_psi_noise"] = round(noise, 4)
        out["score_p_value"] = float(f"{p:.3g}")
        if value - noise > d.max_score_psi and p < 1 - PSI_CONFIDENCE:
            broken.append(
                f"score distribution moved from the champion's: PSI {value:.3f} is above "
                f"{d.max_score_psi:g} beyond its sampling noise ({noise:.3f} at {rows:.0f} vs "
                f"{champ['rows']:.0f} rows)"
            )
    for side, v in (labels or {}).items():
        out[f"{side}_labels"] = v["labels"]
        out[f"{side}_auc"] = None if math.isnan(v["auc"]) else round(v["auc"], 4)
    if labels and all(labels.get(s, {}).get("labels", 0) >= d.min_labels for s in ("candidate", "champion")):
        ca, ch = labels["candidate"]["auc"], labels["champion"]["auc"]
        if not math.isnan(ca) and not math.isnan(ch) and ca < ch - d.max_auc_drop:
            broken.append(
                f"AUC on labelled rows {ca:.4f} is more than {d.max_auc_drop:g} below the champion's {ch:.4f}"
            )
    if broken:
        return Verdict(True, False, "; ".join(broken), out)
    window = d.canary_window_minutes * 60
    if elapsed_s < window:
        return Verdict(False, False, f"watching: {rows:.0f} rows in {elapsed_s:.0f} of {window:.0f} s", out)
    if not enough:
        need = d.min_canary_requests
        return Verdict(
            True,
            False,
            f"only {rows:.0f} rows reached the {route} in the {window:.0f} s window "
            f"(min_canary_requests {need}): not enough evidence to promote",
            out,
        )
    checks = [f"error rate {error_rate:.2%}", f"p99 {p99:g} ms" if p99 is not None else "p99 n/a"]
    if "score_psi" in out:
        checks.append(f"score PSI {out['score_psi']:.3f}")
    if labels and "candidate_auc" in out and out["candidate_auc"] is not None:
        checks.append(f"AUC {out['candidate_auc']:.4f} vs {out.get('champion_auc')}")
    return Verdict(
        True,
        True,
        f"{route} held for {window:.0f} s on {rows:.0f} rows within every limit (" + ", ".join(checks) + ")",
        out,
    )
