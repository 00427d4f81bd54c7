"""Prometheus metrics of the inference API, per model version and route; the deploy watch reads them too."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))


def observe_many(hist: Histogram, values: np.ndarray) -> None:
    """``hist.observe(v)`` for every value, counted a bucket at a time (a batch's scores: one call, not one per row).

    prometheus_client observes one value per call; a 100-row batch made that 100 calls on the request path. Its
    buckets are counted here with numpy and added to the child's counters (its private ``_buckets``/``_sum``,
    the same ones ``observe`` adds to); where a release lays them out otherwise, each value is observed.
    """
    buckets, total = getattr(hist, "_buckets", None), getattr(hist, "_sum", None)
    bounds = getattr(hist, "_upper_bounds", None)
    values = np.asarray(values, dtype=np.float64)
    if buckets is None or total is None or bounds is None or len(bounds) != len(buckets):
        for v in values.tolist():
            hist.observe(v)
        return
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():
        buckets[i].inc(int(counts[i]))
    total.inc(float(values.sum()))


class _Families:
    """The metric families of one registry (created once: every model served by a process shares them)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "ativo_requests", "HTTP requests by model, endpoint and status", ["model", "endpoint", "status"], registry=r
        )
        self.request_latency = Histogram(
            "ativo_request_duration_seconds",
            "Request latency inside the server",
            ["model", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "ativo_predictions", "Rows scored, by model version and route", ["model", "version", "route"], registry=r
        )
        self.errors = Counter(
            "ativo_prediction_errors",
            "Rows a version failed to score (the champion answered)",
            ["model", "version", "route"],
            registry=r,
        )
        self.failed_calls = Counter(
            "ativo_failed_calls",
            "Scoring calls of a version that failed (each counts once, however many rows it held)",
            ["model", "version", "route"],
            registry=r,
        )
        self.model_latency = Histogram(
            "ativo_model_duration_seconds",
            "Scoring time of one call, per version",
            ["model", "version", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.scores = Histogram(
            "ativo_score",
            "Positive-class probabilities, per version and route",
            ["model", "version", "route"],
            buckets=SCORE_BUCKETS,
            registry=r,
        )
        self.live = Gauge(
            "ativo_model_live", "1 for each alias and the version it serves", ["model", "alias", "version"], registry=r
        )
        self.log_rows = Gauge(
            "ativo_prediction_log_unwritten_rows", "Log rows buffered or waiting for the store", ["model"], registry=r
        )
        self.log_failures = Gauge(
            "ativo_prediction_log_failed_flushes", "Log writes that failed and are retried", ["model"], registry=r
        )
        self.spec_invalid = Gauge(
            "ativo_spec_file_invalid",
            "1 for each file of the specs folder that is invalid now (an --all-specs server; a spec it served "
            "goes on with its last valid version)",
            ["file"],
            registry=r,
        )


def families(r: CollectorRegistry) -> _Families:
    """The metric families of ``r``, created the first time they are asked for."""
    f = getattr(r, "_ativo_families", None)
    if f is None:
        f = _Families(r)
        r._ativo_families = f  # type: ignore[attr-defined]  # the families live as long as their registry
    return f


class ServeMetrics:
    """One model's counters and histograms; every series carries its ``model`` label.

    Models served by one process share a registry (pass it), so ``/metrics`` is one exposition; every version is
    named by (model, version), never by the version alone.
    """

    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        r = self.registry = registry or CollectorRegistry()
        f = self.families = families(r)
        self.requests = f.requests
        self.request_latency = f.request_latency
        self.rows, self.errors, self.model_latency, self.scores = f.rows, f.errors, f.model_latency, f.scores
        self.failed_calls = f.failed_calls
        self.live = f.live
        self.log_rows = f.log_rows.labels(model)
        self.log_failures = f.log_failures.labels(model)

    def request(self, endpoint: str, status: int | str, seconds: float | None = None) -> None:
        """Count one request (and its latency, when it was answered)."""
        self.requests.labels(self.model, endpoint, str(status)).inc()
        if seconds is not None:
            self.request_latency.labels(self.model, endpoint).observe(seconds)

    def scored(self, version: str, route: str, scores: np.ndarray, seconds: float) -> None:
        """Count one scoring call of a version: its rows, its time, its score distribution."""
        self.rows.labels(self.model, version, route).inc(len(scores))
        self.model_latency.labels(self.model, version, route).observe(seconds)
        observe_many(self.scores.labels(self.model, version, route), scores)

    def failed(self, version: str, route: str, rows: int) -> None:
        """Count a call of a version that could not score ``rows`` rows.

        The watch judges calls: the rows of one call fail together, so they are not independent evidence.
        """
        self.errors.labels(self.model, version, route).inc(rows)
        if rows > 0:
            self.failed_calls.labels(self.model, version, route).inc()

    def set_live(self, versions: dict[str, str]) -> None:
        """Which version each alias serves now."""
        for labels in [k for k in self._live_keys() if k[0] == self.model]:
            self.live.remove(*labels)
        for alias, version in versions.items():
            self.live.labels(self.model, alias, version).set(1)

    def _live_keys(self) -> list[tuple[str, ...]]:
        return [tuple(k) for k in self.live._metrics]  # prometheus_client keeps no public list of a family's children

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))
