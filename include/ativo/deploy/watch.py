"""Watching a canary (or shadow) on live figures and deciding as soon as the evidence allows: promote or roll back.

The figures are the servers' own ``/metrics`` (summed over every server URL), taken as the difference from a
snapshot at the start of the trial, so the champion is compared over the same minutes as the candidate. Each
watched figure is judged with an anytime-valid test (:mod:`ativo.deploy.sequential`), so looking every
``watch_interval_seconds`` and stopping at the first answer keeps the spec's error rate ``deploy.alpha``:

- error rate: rows the candidate failed to score (the champion answered them), against ``max_error_rate``;
- latency: the share of the candidate's scoring calls slower than ``latency_budget_ms``, against 1 % (its p99);
- score distribution: PSI of the candidate's scores against the champion's, on deciles, against
  ``max_score_psi``;
- accuracy, once labels arrived (``/feedback``): the candidate's AUC minus the champion's, against
  ``-max_auc_drop`` (required for a promotion with ``await_labels``).

Harm shown on any figure (each tested at α over the number of figures, so a sound candidate is rolled back with
probability at most α) rolls back at once. The candidate is promoted as soon as every figure is shown within its
limit (each at α: a candidate beyond a limit is promoted with probability at most α) and it served at least
``min_canary_requests`` rows. ``canary_window_minutes`` is the longest the watch waits: a candidate still undecided
then is rolled back for lack of evidence, naming the figures that lacked it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ativo.deploy.sequential import Evidence, bounded_evidence, psi_standard_error, rate_evidence
from ativo.http import get_text
from ativo.monitor.stats import (
    EPS,
    homogeneity_pvalue,
    psi,
)  # the one PSI and χ² test: the watch and monitoring share them
from ativo.spec import ModelSpec

Figures = dict[str, dict[str, Any]]  # "<version>/<route>" → rows, errors, score and latency buckets


Scrape = dict[str, Figures]  # server URL → its figures


def _empty() -> dict[str, Any]:
    return {"rows": 0.0, "errors": 0.0, "failed_calls": 0.0, "scores": {}, "latency": {}}


def scrape(urls: list[str], model: str, timeout: float = 10.0) -> Scrape:
    """Per server, per version and route of ``model``: the counters and histograms of its /metrics.

    Only series labelled with ``model`` count: a server may serve several models, and their version numbers overlap.
    Kept per server so that :func:`since` can tell one server's restart from the others' traffic.

    Raises:
        ativo.http.HttpError: a server does not answer (a watch cannot judge what it cannot see); an OSError.
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: Scrape = {}
    for base in urls:
        text = get_text(base.rstrip("/") + "/metrics", timeout=timeout)
        figs: Figures = out.setdefault(base, {})
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = s.labels
                if "version" not in labels or "route" not in labels or labels.get("model") != model:
                    continue
                fig = figs.setdefault(f"{labels['version']}/{labels['route']}", _empty())
                if s.name == "ativo_predictions_total":
                    fig["rows"] += s.value
                elif s.name == "ativo_prediction_errors_total":
                    fig["errors"] += s.value
                elif s.name == "ativo_failed_calls_total":
                    fig["failed_calls"] += s.value
                elif s.name == "ativo_score_bucket":
                    fig["scores"][labels["le"]] = fig["scores"].get(labels["le"], 0.0) + s.value
                elif s.name == "ativo_model_duration_seconds_bucket":
                    fig["latency"][labels["le"]] = fig["latency"].get(labels["le"], 0.0) + s.value
    return out


COUNTS = ("rows", "errors", "failed_calls")
HISTOGRAMS = ("scores", "latency")


def since(now: Scrape, base: Scrape) -> Figures:
    """The figures of the trial: each server's ``now`` minus its ``base``, summed over the servers.

    A server whose series of a version went down (any counter or bucket of it) restarted since the snapshot: its
    current values of that version are all of the trial's, taken whole (never mixed bucket by bucket with the
    snapshot, which would make a distribution no server saw).
    """
    out: Figures = {}
    for url, figs in now.items():
        before = base.get(url, {})
        for key, fig in figs.items():
            b = before.get(key, _empty())
            restarted = any(fig.get(c, 0.0) < b.get(c, 0.0) for c in COUNTS) or any(
                v < b.get(h, {}).get(le, 0.0) for h in HISTOGRAMS for le, v in fig[h].items()
            )
            start = _empty() if restarted else b
            total = out.setdefault(key, _empty())
            for c in COUNTS:
                total[c] += fig.get(c, 0.0) - start.get(c, 0.0)
            for h in HISTOGRAMS:
                for le, v in fig[h].items():
                    total[h][le] = total[h].get(le, 0.0) + v - start.get(h, {}).get(le, 0.0)
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


DECILES = tuple(round(i / 10, 1) for i in range(1, 11))


@dataclass
class Verdict:
    """What the watch concluded (``decided`` False: keep watching).

    ``undecided``: the window ended without evidence either way; the candidate is rolled back without a page
    (nothing was shown wrong with it).
    """

    decided: bool
    promote: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)
    undecided: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (XCom, records)."""
        return asdict(self)


def label_figures(
    store: Any, spec: ModelSpec, started: float, candidate: str, route: str, champion: str | None
) -> dict[str, dict[str, float]]:
    """AUC, its standard error and the labelled rows per side ("candidate", "champion").

    Over the predictions made since ``started``.
    """
    import datetime as dt

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ativo.evaluate.intervals import auc_standard_error
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
        y, score = frame["label"].to_numpy(), frame["score"].to_numpy()
        two = len(np.unique(y)) == 2
        out[side] = {
            "labels": float(len(frame)),
            "auc": float(roc_auc_score(y, score)) if two else math.nan,
            "se": auc_standard_error(y, score) if two else math.nan,
        }
    return out


def slow_calls(cumulative: dict[str, float], budget_ms: float) -> tuple[float, float, float]:
    """From cumulative latency buckets: (calls, calls surely slower than the budget, calls perhaps slower).

    Buckets rarely fall on the budget: a call in the bucket straddling it is counted slow for a promotion (it may be)
    and not for a rollback (it may not be), so neither decision rests on a guess.
    """
    by_le = _sorted_buckets(cumulative)
    if not by_le:
        return 0.0, 0.0, 0.0
    total = by_le[-1][1]
    budget = budget_ms / 1000
    within_sure = max((v for le, v in by_le if le <= budget + 1e-12), default=0.0)
    within_maybe = min((v for le, v in by_le if le >= budget - 1e-12), default=total)
    return total, max(total - within_maybe, 0.0), max(total - within_sure, 0.0)


P99_SHARE = 0.01  # a p99 within the budget: at most 1 % of calls slower than it


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
        spec: its deploy limits and ``alpha``.
        figures: :func:`since` of the trial's start.
        candidate: the version on trial.
        champion: the version it is compared with.
        route: ``canary`` or ``shadow``.
        elapsed_s: seconds since the trial started.
        labels: :func:`label_figures`, when labels arrived.
    """
    d = spec.deploy
    cand = figures.get(f"{candidate}/{route}", _empty())
    champ = figures.get(f"{champion}/champion", _empty())
    rows, errors = cand["rows"], cand["errors"]
    attempts = rows + errors
    # calls, not rows: the rows of one call fail (or are slow) together, so they are not independent evidence
    latency_buckets = _sorted_buckets(cand["latency"])
    calls_ok = latency_buckets[-1][1] if latency_buckets else 0.0
    failed_calls = cand.get("failed_calls", 0.0)
    watched = 4  # error rate, latency, score distribution, accuracy: each harm test gets alpha / 4
    a_harm, a_safe = d.alpha / watched, d.alpha
    out: dict[str, Any] = {
        "candidate": candidate,
        "champion": champion,
        "route": route,
        "elapsed_s": round(elapsed_s, 1),
        "alpha": d.alpha,
        "candidate_rows": rows,
        "candidate_errors": errors,
        "champion_rows": champ["rows"],
    }
    error_rate = errors / attempts if attempts else 0.0
    out["error_rate"] = round(error_rate, 4)
    out["failed_calls"] = failed_calls
    failing = rate_evidence(
        "error rate", failed_calls, calls_ok + failed_calls, d.max_error_rate, alpha_harm=a_harm, alpha_safe=a_safe
    )
    evidence: list[Evidence] = [
        replace(
            failing,
            says=f"error rate {failed_calls:.0f} of {calls_ok + failed_calls:.0f} calls"
            + (
                f" ({failing.estimate:.2%}; {errors:.0f} of {attempts:.0f} rows)"
                if failing.estimate is not None
                else ""
            ),
        )
    ]
    p99 = p99_ms(cand["latency"])
    out["p99_ms"] = p99 if p99 is None or math.isfinite(p99) else None  # beyond the last bucket: JSON has no inf
    finite = [le for le, _ in latency_buckets if math.isfinite(le)]
    shown = (
        "not measured yet"
        if p99 is None
        else f"{p99:g} ms"
        if math.isfinite(p99)
        else f"above {finite[-1] * 1000:g} ms"
        if finite
        else "unknown"
    )
    calls, slow_sure, slow_maybe = slow_calls(cand["latency"], d.latency_budget_ms)
    over = rate_evidence("latency", slow_sure, calls, P99_SHARE, alpha_harm=a_harm, alpha_safe=1.0)
    under = rate_evidence("latency", slow_maybe, calls, P99_SHARE, alpha_harm=1.0, alpha_safe=a_safe)
    evidence.append(
        Evidence(
            "latency",
            out["p99_ms"],
            None,
            None,
            d.latency_budget_ms,
            int(calls),
            # a few cold first calls of a newly loaded model are not a verdict: harm waits for min_canary_requests
            over.harm and rows >= d.min_canary_requests,
            under.safe and not over.harm,
            f"p99 scoring latency {shown} against the budget {d.latency_budget_ms:g} ms "
            f"({slow_sure:.0f}–{slow_maybe:.0f} of {calls:.0f} calls slower)",
        )
    )
    evidence.append(_score_evidence(d, cand, champ, out, a_harm, a_safe))
    accuracy = _accuracy_evidence(d, labels, out, a_harm, a_safe)
    if accuracy is not None:
        evidence.append(accuracy)
    out["evidence"] = [e.to_dict() for e in evidence]
    harms = [e for e in evidence if e.harm]
    if harms:
        return Verdict(True, False, "; ".join(_harm_words(e, d) for e in harms), out)
    needed = [e for e in evidence if not e.safe and (e.figure != "AUC change" or d.await_labels)]
    if d.await_labels and accuracy is None:
        needed.append(Evidence("AUC change", None, None, None, -d.max_auc_drop, 0, False, False, "no labels yet"))
    window = d.canary_window_minutes * 60
    enough = rows >= d.min_canary_requests
    if not needed and enough:
        shown = ", ".join(_safe_words(e) for e in evidence if e.safe)
        return Verdict(
            True,
            True,
            f"{route} shown within every limit after {elapsed_s:.0f} s on {rows:.0f} rows (α {d.alpha:g}): {shown}",
            out,
        )
    if elapsed_s < window:
        wanting = [f"rows ({rows:.0f} of min_canary_requests {d.min_canary_requests})"] * (not enough)
        pending = ", ".join(wanting + [e.figure for e in needed])
        return Verdict(
            False,
            False,
            f"watching: {rows:.0f} rows in {elapsed_s:.0f} of at most {window:.0f} s; not yet shown: {pending}",
            out,
        )
    if not enough:
        return Verdict(
            True,
            False,
            f"only {rows:.0f} rows reached the {route} in the {window:.0f} s window "
            f"(min_canary_requests {d.min_canary_requests}): not enough evidence to promote",
            out,
            undecided=True,
        )
    return Verdict(
        True,
        False,
        f"no decision within the {window:.0f} s window on {rows:.0f} rows: not shown within the limit at α "
        f"{d.alpha:g}: " + "; ".join(e.says for e in needed) + " (more traffic, a larger canary_percent or a longer "
        "canary_window_minutes gives the evidence)",
        out,
        undecided=True,
    )


def _score_evidence(d: Any, cand: dict, champ: dict, out: dict[str, Any], a_harm: float, a_safe: float) -> Evidence:
    """PSI of the candidate's scores against the champion's, judged once both sides have min_canary_requests."""
    rows, champ_rows = cand["rows"], champ["rows"]
    if rows < d.min_canary_requests or champ_rows < d.min_canary_requests:
        return Evidence(
            "score PSI",
            None,
            None,
            None,
            d.max_score_psi,
            int(rows),
            False,
            False,
            f"score distribution not judged yet ({rows:.0f} and {champ_rows:.0f} rows of min_canary_requests "
            f"{d.min_canary_requests})",
        )
    champ_bins, cand_bins = _bins(champ["scores"], DECILES), _bins(cand["scores"], DECILES)
    value = psi(champ_bins, cand_bins)
    bias, se = psi_standard_error(champ_bins, cand_bins, EPS)
    # a few rows leaving sparse bins empty inflate PSI through its floor: a rollback also needs the χ² test on
    # pooled bins to see the shift
    p = homogeneity_pvalue([round(c) for c in champ_bins], [round(c) for c in cand_bins])
    out["score_psi"] = round(value, 4)
    out["score_psi_bias"] = round(bias, 4)
    out["score_p_value"] = float(f"{p:.3g}")
    e = bounded_evidence(
        "score PSI",
        max(value - bias, 0.0),  # PSI less its small-sample bias (never below 0)
        se,
        min(rows, champ_rows),
        d.max_score_psi,
        harm_above=True,
        alpha_harm=a_harm,
        alpha_safe=a_safe,
        says=f"score PSI {value:.3f} against the champion's ({rows:.0f} vs {champ_rows:.0f} rows)",
    )
    return replace(e, harm=False) if e.harm and p >= a_harm else e


def _accuracy_evidence(
    d: Any, labels: dict[str, dict[str, float]] | None, out: dict[str, Any], a_harm: float, a_safe: float
) -> Evidence | None:
    """The candidate's AUC minus the champion's on labelled rows, once each side has ``min_labels``."""
    for side, v in (labels or {}).items():
        out[f"{side}_labels"] = v["labels"]
        out[f"{side}_auc"] = None if math.isnan(v["auc"]) else round(v["auc"], 4)
    if not labels or not all(labels.get(s, {}).get("labels", 0) >= d.min_labels for s in ("candidate", "champion")):
        return None
    ca, ch = labels["candidate"], labels["champion"]
    if math.isnan(ca["auc"]) or math.isnan(ch["auc"]):
        return None
    se = math.sqrt(ca.get("se", math.inf) ** 2 + ch.get("se", math.inf) ** 2)
    return bounded_evidence(
        "AUC change",
        ca["auc"] - ch["auc"],
        se,
        min(ca["labels"], ch["labels"]),
        -d.max_auc_drop,
        harm_above=False,
        alpha_harm=a_harm,
        alpha_safe=a_safe,
        says=f"AUC on labelled rows {ca['auc']:.4f} vs the champion's {ch['auc']:.4f} "
        f"({ca['labels']:.0f} and {ch['labels']:.0f} labels)",
    )


def _harm_words(e: Evidence, d: Any) -> str:
    """Why a figure rolls back, with its numbers."""
    if e.figure == "error rate":
        return f"{e.says} failed to score: above the limit {d.max_error_rate:.1%}"
    if e.figure == "latency":
        return f"{e.says}: above the budget"
    if e.figure == "score PSI":
        return (
            f"score distribution moved from the champion's: {e.says}, at least {e.low:.3f} with confidence, "
            f"above {d.max_score_psi:g}"
        )
    return f"{e.says}: more than {d.max_auc_drop:g} below the champion's (at most {e.high:+.4f} with confidence)"


def _safe_words(e: Evidence) -> str:
    """A figure shown within its limit, briefly."""
    if e.figure == "error rate":
        return f"error rate {e.estimate:.2%} of calls (limit {e.limit:.1%})"
    if e.figure == "latency":
        return f"p99 {e.estimate:g} ms (budget {e.limit:g} ms)"
    if e.figure == "score PSI":
        return f"score PSI at most {e.high:.3f} (limit {e.limit:g})"
    return f"AUC change at least {e.low:+.4f} (limit {e.limit:+g})"
