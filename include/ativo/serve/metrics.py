"""Prometheus metrics of the inference API, per model version and route; the deploy watch reads them too."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(i / 20, 2) for i in range(1, 21))


class ServeMetrics:
    """The API's counters and histograms in a registry of its own."""

    def __init__(self, model: str) -> None:
        self.model = model
        r = self.registry = CollectorRegistry()
        self.requests = Counter("ativo_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)  # fmt: skip
        self.request_latency = Histogram("ativo_request_duration_seconds", "Request latency inside the server",
                                         ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.rows = Counter("ativo_predictions", "Rows scored, by model version and route",
                            ["model", "version", "route"], registry=r)  # fmt: skip
        self.errors = Counter("ativo_prediction_errors", "Rows a version failed to score (the champion answered)",
                              ["model", "version", "route"], registry=r)  # fmt: skip
        self.model_latency = Histogram("ativo_model_duration_seconds", "Scoring time of one call, per version",
                                       ["model", "version", "route"], buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.scores = Histogram("ativo_score", "Positive-class probabilities, per version and route",
                                ["model", "version", "route"], buckets=SCORE_BUCKETS, registry=r)  # fmt: skip
        self.live = Gauge("ativo_model_live", "1 for each alias and the version it serves",
                          ["model", "alias", "version"], registry=r)  # fmt: skip
        self.log_rows = Gauge("ativo_prediction_log_unwritten_rows", "Log rows buffered or waiting for the store",
                              registry=r)  # fmt: skip
        self.log_failures = Gauge("ativo_prediction_log_failed_flushes", "Log writes that failed and are retried",
                                  registry=r)  # fmt: skip

    def scored(self, version: str, route: str, scores: np.ndarray, seconds: float) -> None:
        """Count one scoring call of a version: its rows, its time, its score distribution."""
        self.rows.labels(self.model, version, route).inc(len(scores))
        self.model_latency.labels(self.model, version, route).observe(seconds)
        hist = self.scores.labels(self.model, version, route)
        for s in scores.tolist():
            hist.observe(s)

    def failed(self, version: str, route: str, rows: int) -> None:
        """Count rows a version could not score."""
        self.errors.labels(self.model, version, route).inc(rows)

    def set_live(self, versions: dict[str, str]) -> None:
        """Which version each alias serves now."""
        self.live.clear()
        for alias, version in versions.items():
            self.live.labels(self.model, alias, version).set(1)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return bytes(generate_latest(self.registry))
