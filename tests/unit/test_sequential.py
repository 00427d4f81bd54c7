"""Anytime-valid evidence (ativo.deploy.sequential): error rates that hold whenever the watch looks and stops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from ativo.deploy.sequential import (
    anytime_margin,
    anytime_z,
    bounded_evidence,
    psi_standard_error,
    rate_evidence,
)

LOOKS = range(25, 4_001, 25)  # a watch looking every 25 rows, up to 4,000


def ever(streams: np.ndarray, decide) -> float:
    """Share of the seeded 0/1 ``streams`` for which ``decide(k, n)`` is true at one look or more."""
    hits = 0
    for stream in streams:
        counts = np.cumsum(stream)
        hits += any(decide(float(counts[n - 1]), float(n)) for n in LOOKS)
    return hits / len(streams)


@pytest.mark.parametrize("limit", [0.01, 0.05], ids=["1pct", "5pct"])
def test_a_rate_at_its_limit_is_seldom_called_harm_or_safe_however_often_it_is_looked_at(limit):
    """160 looks per stream: a one-look 95 % bound read at each of them would fire far more often than 5 %."""
    streams = np.random.default_rng(7).random((200, max(LOOKS))) < limit
    harm = ever(streams, lambda k, n: rate_evidence("e", k, n, limit, alpha_harm=0.05, alpha_safe=1).harm)
    safe = ever(streams, lambda k, n: rate_evidence("e", k, n, limit, alpha_harm=1, alpha_safe=0.05).safe)
    assert harm <= 0.05 and safe <= 0.05
    z = norm.ppf(0.95)  # the naive alternative: a normal one-sided bound at every look
    naive = ever(streams, lambda k, n: k / n - z * math.sqrt(limit * (1 - limit) / n) > limit)
    assert naive > 2 * 0.05


@pytest.mark.parametrize(
    ("k", "n", "state"),
    [
        pytest.param(0, 0, "open", id="no-rows"),
        pytest.param(0, 300, "open", id="300-clean-rows-are-not-yet-evidence-at-1pct"),
        pytest.param(0, 600, "safe", id="600-clean-rows-are"),
        pytest.param(1, 1, "open", id="one-failure-in-one"),
        pytest.param(10, 100, "harm", id="10-of-100"),
        pytest.param(40, 2_000, "harm", id="twice-the-limit-on-2000"),
        pytest.param(15, 2_000, "open", id="near-the-limit-stays-open"),
    ],
)
def test_rate_evidence_states(k, n, state):
    assert rate_evidence("error rate", k, n, 0.01, alpha_harm=0.0125, alpha_safe=0.05).state == state


def test_rate_evidence_at_the_extreme_limits():
    assert rate_evidence("e", 1, 10_000, 0.0, alpha_harm=0.05, alpha_safe=0.05).harm  # none allowed: one is harm
    assert rate_evidence("e", 0, 10, 0.0, alpha_harm=0.05, alpha_safe=0.05).safe
    assert rate_evidence("e", 10, 10, 1.0, alpha_harm=0.05, alpha_safe=0.05).safe
    near_one = rate_evidence("e", 1, 100, 0.95, alpha_harm=0.05, alpha_safe=0.05)  # no rate above it on the grid
    assert not near_one.harm and near_one.safe


def test_anytime_z_is_wider_than_one_look_and_grows_slowly():
    one_look = norm.ppf(0.975)
    zs = [anytime_z(n, 0.05) for n in (100, 1_000, 10_000, 100_000, 1_000_000)]
    assert all(z > one_look for z in zs)
    assert anytime_z(1_000, 0.05) == pytest.approx(3.0352, abs=1e-4)  # tightest near the tuned size
    assert zs[-1] < 4.5  # √(log n): a million rows cost little more than a thousand
    assert anytime_margin(math.inf, 100, 0.05) == math.inf


@pytest.mark.parametrize(
    ("estimate", "harm_above", "state"),
    [
        pytest.param(0.5, True, "harm", id="psi-far-above"),
        pytest.param(0.05, True, "safe", id="psi-far-below"),
        pytest.param(0.21, True, "open", id="psi-near"),
        pytest.param(-0.1, False, "harm", id="auc-far-below"),
        pytest.param(0.0, False, "safe", id="auc-unchanged"),
    ],
)
def test_bounded_evidence_orientation(estimate, harm_above, state):
    limit = 0.2 if harm_above else -0.02
    e = bounded_evidence(
        "x", estimate, 0.004, 5_000, limit, harm_above=harm_above, alpha_harm=0.0125, alpha_safe=0.05, says=""
    )
    assert e.state == state
    assert e.low < estimate < e.high


def test_psi_standard_error_bias_and_sparse_bins():
    bias, se = psi_standard_error([100] * 10, [10] * 10, 1e-4)
    assert bias == pytest.approx(9 * (1 / 1_000 + 1 / 100)) and se == pytest.approx(0.0, abs=1e-12)
    _, shifted = psi_standard_error([100] * 10, [4] * 5 + [16] * 5, 1e-4)
    assert 0 < shifted < 1
    _, sparse = psi_standard_error([100] * 10, [20] * 5 + [0] * 5, 1e-4)  # empty bins: no evidence either way
    assert sparse > 1  # against a limit of 0.2: no decision can rest on it
    assert psi_standard_error([0] * 10, [1] * 10, 1e-4)[1] == math.inf
