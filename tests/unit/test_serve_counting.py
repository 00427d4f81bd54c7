"""The serving hot path counts in bulk; what it counts must be what one-by-one counting gives."""

from __future__ import annotations

import re

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from ativo.api.metrics import SCORE_BUCKETS, observe_many
from ativo.serve.predlog import partition_of, prediction_ids


def _series(registry: CollectorRegistry) -> dict[str, float]:
    text = generate_latest(registry).decode()
    return {
        m[1]: float(m[2]) for m in re.finditer(r"^(s_\w+(?:\{[^}]*\})?) (\S+)$", text, re.M) if "created" not in m[1]
    }


def test_a_batch_of_scores_lands_in_the_buckets_one_by_one_observing_fills():
    one, bulk = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("s", "scores", buckets=SCORE_BUCKETS, registry=one)
    h2 = Histogram("s", "scores", buckets=SCORE_BUCKETS, registry=bulk)
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.random(2000), [0.0, 0.05, 0.1, 0.95, 1.0]])  # bucket edges included
    for v in values.tolist():
        h1.observe(v)
    observe_many(h2, values[:3])
    observe_many(h2, values[3:])
    a, b = _series(one), _series(bulk)
    assert a.keys() == b.keys() and any(k.startswith("s_bucket") for k in a)
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-12), k


def test_prediction_ids_are_dated_unique_and_found_by_their_partition():
    now = 1_796_000_000.0  # 2026-11-30 UTC
    ids = prediction_ids(5000, now)
    assert len(set(ids)) == 5000
    assert all(re.fullmatch(r"20261130-[0-9a-f]{20}", i) for i in ids)
    assert partition_of(ids[0]) == "2026-11-30"
