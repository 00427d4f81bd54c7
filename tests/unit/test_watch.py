"""The canary watch's decision maths (ativo.deploy.watch): PSI and its noise, Wilson bounds, buckets, the verdict."""

from __future__ import annotations

import math

import pytest
from scipy.stats import chi2, norm

from ativo.api.metrics import LATENCY_BUCKETS, SCORE_BUCKETS
from ativo.deploy.watch import (
    DECILES,
    Verdict,
    _bins,
    _sorted_buckets,
    judge,
    p99_ms,
    psi,
    psi_noise,
    since,
    wilson_lower,
)

CANDIDATE, CHAMPION = "7", "6"
UNIFORM = [0.1] * 10
SHIFTED = [0.04] * 5 + [0.16] * 5  # PSI against UNIFORM: 0.3 * ln 4 = 0.4159
FAST = {0.005: 100}  # every scoring call within 5 ms
SLOW_TAIL = {0.005: 98, 0.1: 2}  # p99 falls in the 100 ms bucket


def cumulative(per_bucket: dict[float, float], edges: tuple[float, ...]) -> dict[str, float]:
    """Counts per bucket (upper edge → count) as Prometheus' cumulative ``le`` buckets, '+Inf' included."""
    out, total = {}, 0.0
    for edge in edges:
        total += per_bucket.get(edge, 0.0)
        out[str(edge)] = total
    out["+Inf"] = total + sum(v for e, v in per_bucket.items() if e not in edges)
    return out


def score_buckets(rows: float, deciles: list[float]) -> dict[str, float]:
    """The score histogram of ``rows`` scores spread over the deciles in these shares (half in each half-decile)."""
    per: dict[float, float] = {}
    for i, share in enumerate(deciles):
        per[SCORE_BUCKETS[2 * i]] = rows * share / 2
        per[SCORE_BUCKETS[2 * i + 1]] = rows * share / 2
    return cumulative(per, SCORE_BUCKETS)


def figure(rows: float, errors: float = 0.0, deciles: list[float] = UNIFORM, latency: dict | None = None) -> dict:
    return {
        "rows": float(rows),
        "errors": float(errors),
        "scores": score_buckets(rows, deciles),
        "latency": cumulative(latency if latency is not None else FAST, LATENCY_BUCKETS),
    }


def figures(cand_rows: float, champ_rows: float = 10_000, *, route: str = "canary", **candidate) -> dict:
    return {f"{CANDIDATE}/{route}": figure(cand_rows, **candidate), f"{CHAMPION}/champion": figure(champ_rows)}


def with_limits(spec, **deploy):
    return spec.model_copy(update={"deploy": spec.deploy.model_copy(update=deploy)})


# --- PSI and the noise it reaches by chance -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "actual", "value"),
    [
        pytest.param([50, 50], [50, 50], 0.0, id="identical"),
        pytest.param([10, 30, 60], [1, 3, 6], 0.0, id="same-shares-different-totals"),
        pytest.param([50, 50], [25, 75], 0.25 * math.log(3), id="two-bins-by-hand"),
        pytest.param([10] * 10, [4] * 5 + [16] * 5, 0.3 * math.log(4), id="deciles-by-hand"),
        pytest.param([0, 0], [5, 5], 0.0, id="empty-expected"),
        pytest.param([5, 5], [0, 0], 0.0, id="empty-actual"),
    ],
)
def test_psi_by_hand(expected, actual, value):
    assert psi(expected, actual) == pytest.approx(value, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        pytest.param([50, 50], [25, 75], id="two-bins"),
        pytest.param([1, 2, 3, 4], [4, 3, 2, 1], id="reversed"),
        pytest.param([100, 0], [50, 50], id="one-empty-bin"),
    ],
)
def test_psi_is_symmetric_and_positive_for_different_shares(a, b):
    assert psi(a, b) == pytest.approx(psi(b, a), rel=1e-12)
    assert psi(a, b) > 0


@pytest.mark.parametrize("eps", [1e-4, 1e-2], ids=["default-eps", "coarse-eps"])
def test_an_empty_bin_is_floored_at_eps_so_psi_stays_finite(eps):
    # expected shares (1, 0) floored to (1, eps); actual (0.5, 0.5)
    by_hand = (0.5 - 1) * math.log(0.5 / 1) + (0.5 - eps) * math.log(0.5 / eps)
    got = psi([100, 0], [50, 50], eps=eps)
    assert math.isfinite(got) and got == pytest.approx(by_hand, rel=1e-12)


@pytest.mark.parametrize(
    ("n1", "n2", "bins", "confidence"),
    [
        pytest.param(200, 200, 10, 0.999, id="small-canary"),
        pytest.param(2_000, 20_000, 10, 0.999, id="larger-canary"),
        pytest.param(50, 5_000, 5, 0.99, id="five-bins-99"),
    ],
)
def test_psi_noise_is_the_chi2_quantile_scaled_by_both_sample_sizes(n1, n2, bins, confidence):
    expected = chi2.ppf(confidence, bins - 1) * (1 / n1 + 1 / n2)
    assert psi_noise(n1, n2, bins=bins, confidence=confidence) == pytest.approx(expected, rel=1e-12)


def test_psi_noise_shrinks_as_the_samples_grow():
    noise = [psi_noise(n, 10 * n) for n in (20, 200, 2_000, 20_000)]
    assert noise == sorted(noise, reverse=True) and len(set(noise)) == 4
    assert noise[0] > 0.5  # a few dozen rows alone can reach 0.5, as documented
    assert noise[-1] < 0.01


@pytest.mark.parametrize(("n1", "n2"), [(0, 100), (100, 0), (-1, 100)], ids=["no-candidate", "no-champion", "neg"])
def test_psi_noise_without_rows_is_infinite(n1, n2):
    assert psi_noise(n1, n2) == math.inf


# --- Wilson lower bound of the error rate -------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 10, 1_000], ids=["n1", "n10", "n1000"])
def test_wilson_lower_of_no_errors_is_zero(n):
    assert wilson_lower(0, n) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("n", [0, -5], ids=["zero", "negative"])
def test_wilson_lower_without_rows_is_zero(n):
    assert wilson_lower(3, n) == 0.0


@pytest.mark.parametrize(
    ("errors", "n", "bound"),
    [
        pytest.param(5, 100, 0.024546, id="5-of-100"),
        pytest.param(1, 1, 0.269831, id="1-of-1"),
        pytest.param(1, 50, 0.004474, id="1-of-50"),
        pytest.param(40, 2_000, 0.015462, id="40-of-2000"),
        pytest.param(10, 10, 0.787028, id="all-errors"),
    ],
)
def test_wilson_lower_by_hand(errors, n, bound):
    got = wilson_lower(errors, n)
    assert got == pytest.approx(bound, abs=1e-6)
    # the Wilson bound L solves (p - L)^2 = z^2 L (1 - L) / n, with z the one-sided 95 % normal quantile
    p, z = errors / n, norm.ppf(0.95)
    assert (p - got) ** 2 == pytest.approx(z * z * got * (1 - got) / n, rel=1e-3)
    assert got < p  # a lower bound, below the point estimate


@pytest.mark.parametrize("n", [10, 100, 1_000, 10_000], ids=["n10", "n100", "n1000", "n10000"])
def test_wilson_lower_tightens_towards_the_rate_with_more_rows(n):
    bound = wilson_lower(0.02 * n, n)
    assert 0 <= bound < 0.02
    assert bound < wilson_lower(0.02 * n * 10, n * 10)


# --- buckets: cumulative Prometheus histograms --------------------------------------------------------------------


def test_sorted_buckets_parse_le_labels_and_put_inf_last():
    assert _sorted_buckets({"+Inf": 5.0, "0.5": 3.0, "0.1": 1.0, "1.0": 4.0}) == [
        (0.1, 1.0),
        (0.5, 3.0),
        (1.0, 4.0),
        (math.inf, 5.0),
    ]
    assert _sorted_buckets({}) == []


@pytest.mark.parametrize(
    ("cumulative_buckets", "edges", "counts"),
    [
        pytest.param(score_buckets(200, SHIFTED), DECILES, [8.0] * 5 + [32.0] * 5, id="deciles-round-trip"),
        pytest.param(
            {"0.5": 10.0, "1.0": 30.0, "+Inf": 30.0},
            DECILES,
            [0.0] * 4 + [10.0] + [0.0] * 4 + [20.0],
            id="coarser-buckets-land-on-their-edge",
        ),
        pytest.param({"0.1": 2.0, "1.0": 2.0, "+Inf": 9.0}, DECILES, [2.0] + [0.0] * 9, id="inf-beyond-last-edge"),
        pytest.param({}, DECILES, [0.0] * 10, id="no-data"),
        pytest.param({"0.3": 4.0, "0.7": 10.0, "+Inf": 12.0}, (0.5, math.inf), [4.0, 8.0], id="inf-edge"),
    ],
)
def test_bins_from_cumulative_buckets(cumulative_buckets, edges, counts):
    assert _bins(cumulative_buckets, edges) == pytest.approx(counts)


@pytest.mark.parametrize(
    ("latency", "ms"),
    [
        pytest.param({"0.005": 50.0, "0.01": 99.0, "0.025": 100.0, "+Inf": 100.0}, 10.0, id="99th-in-10ms"),
        pytest.param({"0.005": 100.0, "0.01": 100.0, "+Inf": 100.0}, 5.0, id="all-in-first-bucket"),
        pytest.param({"+Inf": 100.0, "0.01": 98.0, "0.005": 10.0}, math.inf, id="99th-beyond-last-edge"),
        pytest.param(cumulative(SLOW_TAIL, LATENCY_BUCKETS), 100.0, id="slow-tail"),
        pytest.param({}, None, id="no-data"),
        pytest.param({"0.005": 0.0, "+Inf": 0.0}, None, id="no-calls"),
    ],
)
def test_p99_ms_is_the_upper_edge_of_the_bucket_holding_the_99th_percentile(latency, ms):
    assert p99_ms(latency) == ms


# --- since: the figures of the trial, not of the server's life ----------------------------------------------------


def test_since_subtracts_the_baseline_snapshot():
    base = {
        "7/canary": {
            "rows": 100.0,
            "errors": 1.0,
            "scores": {"0.5": 40.0, "+Inf": 100.0},
            "latency": {"0.005": 10.0, "+Inf": 10.0},
        },
        "6/champion": {"rows": 900.0, "errors": 0.0, "scores": {}, "latency": {}},
        "5/champion": {"rows": 50.0, "errors": 0.0, "scores": {}, "latency": {}},
    }
    now = {
        "7/canary": {
            "rows": 150.0,
            "errors": 3.0,
            "scores": {"0.5": 60.0, "+Inf": 150.0},
            "latency": {"0.005": 14.0, "+Inf": 15.0},
        },
        "6/champion": {"rows": 300.0, "errors": 0.0, "scores": {"+Inf": 300.0}, "latency": {}},
        "8/shadow": {"rows": 20.0, "errors": 0.0, "scores": {"+Inf": 20.0}, "latency": {}},
    }
    got = since(now, base)
    assert got == {
        "7/canary": {
            "rows": 50.0,
            "errors": 2.0,
            "scores": {"0.5": 20.0, "+Inf": 50.0},
            "latency": {"0.005": 4.0, "+Inf": 5.0},
        },
        # a counter below its baseline: the server restarted, its current value is all of the trial's
        "6/champion": {"rows": 300.0, "errors": 0.0, "scores": {"+Inf": 300.0}, "latency": {}},
        # new since the baseline: counted whole; a key only in the baseline is gone
        "8/shadow": {"rows": 20.0, "errors": 0.0, "scores": {"+Inf": 20.0}, "latency": {}},
    }


def test_since_of_itself_is_all_zeros():
    snap = figures(500)
    got = since(snap, snap)
    for fig in got.values():
        assert fig["rows"] == fig["errors"] == 0.0
        assert set(fig["scores"].values()) == {0.0} and set(fig["latency"].values()) == {0.0}


# --- judge: promote, roll back or keep watching -------------------------------------------------------------------

WINDOW_S = 30 * 60  # the reference spec's canary_window_minutes
AUC = {"candidate": {"labels": 200.0, "auc": 0.85}, "champion": {"labels": 200.0, "auc": 0.90}}


@pytest.mark.parametrize(
    ("limits", "figs", "elapsed", "labels", "decided", "promote", "reason"),
    [
        # error rate: acted on once the Wilson bound passes max_error_rate (0.01), not on the point estimate
        pytest.param({}, figures(49, errors=1), 60, None, False, False, "watching", id="one-early-error-waits"),
        pytest.param({}, figures(196, errors=4), 60, None, False, False, "watching", id="2pct-of-200-waits"),
        pytest.param(
            {},
            figures(1_960, errors=40),
            60,
            None,
            True,
            False,
            "error rate 2.0% of 2000 rows",
            id="2pct-of-2000-rolls-back-at-once",
        ),
        pytest.param(
            {"max_error_rate": 0.05},
            figures(1_960, errors=40),
            60,
            None,
            False,
            False,
            "watching",
            id="2pct-under-a-5pct-limit-waits",
        ),
        pytest.param(
            {},
            figures(0, errors=1),
            60,
            None,
            True,
            False,
            "error rate 100.0% of 1 rows",
            id="first-attempt-failing-rolls-back",
        ),
        # latency: p99 against latency_budget_ms (50), once min_canary_requests rows arrived
        pytest.param(
            {},
            figures(1_000, latency=SLOW_TAIL),
            60,
            None,
            True,
            False,
            "p99 scoring latency 100 ms is above the budget 50 ms",
            id="p99-over-budget-rolls-back",
        ),
        pytest.param(
            {},
            figures(100, latency=SLOW_TAIL),
            60,
            None,
            False,
            False,
            "watching",
            id="p99-over-budget-on-few-rows-waits",
        ),
        pytest.param(
            {"latency_budget_ms": 200},
            figures(1_000, latency=SLOW_TAIL),
            60,
            None,
            False,
            False,
            "watching",
            id="p99-within-a-raised-budget-waits",
        ),
        # score PSI (0.416 here) against max_score_psi (0.2) beyond its sampling noise
        pytest.param(
            {},
            figures(2_000, 20_000, deciles=SHIFTED),
            60,
            None,
            True,
            False,
            "score distribution moved from the champion's: PSI 0.416",
            id="psi-beyond-noise-rolls-back",
        ),
        pytest.param(
            {},
            figures(200, 200, deciles=SHIFTED),
            60,
            None,
            False,
            False,
            "watching",
            id="same-psi-within-noise-at-small-n-waits",
        ),
        pytest.param(
            {},
            figures(2_000, 20_000, deciles=SHIFTED, latency=SLOW_TAIL),
            60,
            None,
            True,
            False,
            "p99 scoring latency 100 ms is above the budget 50 ms; score distribution moved",
            id="every-broken-limit-is-named",
        ),
        pytest.param(
            {},
            figures(2_000, 100, deciles=SHIFTED),
            60,
            None,
            False,
            False,
            "watching",
            id="psi-not-judged-on-a-quiet-champion",
        ),
        # accuracy: AUC drop beyond max_auc_drop (0.02) once min_labels (200) per side arrived
        pytest.param(
            {},
            figures(1_000),
            60,
            AUC,
            True,
            False,
            "AUC on labelled rows 0.8500 is more than 0.02 below",
            id="auc-drop-rolls-back",
        ),
        pytest.param(
            {},
            figures(1_000),
            60,
            {**AUC, "candidate": {"labels": 199.0, "auc": 0.85}},
            False,
            False,
            "watching",
            id="auc-drop-before-min-labels-waits",
        ),
        pytest.param(
            {},
            figures(1_000),
            60,
            {**AUC, "candidate": {"labels": 500.0, "auc": 0.885}},
            False,
            False,
            "watching",
            id="auc-drop-within-tolerance-waits",
        ),
        pytest.param(
            {},
            figures(1_000),
            60,
            {**AUC, "candidate": {"labels": 500.0, "auc": math.nan}},
            False,
            False,
            "watching",
            id="auc-undefined-is-not-judged",
        ),
        pytest.param(
            {"max_auc_drop": 0.1},
            figures(1_000),
            60,
            AUC,
            False,
            False,
            "watching",
            id="auc-drop-within-a-raised-tolerance-waits",
        ),
        # the window
        pytest.param(
            {},
            figures(1_000),
            WINDOW_S - 1,
            None,
            False,
            False,
            "watching: 1000 rows in 1799 of 1800 s",
            id="before-window-end-waits",
        ),
        pytest.param(
            {},
            figures(1_000),
            WINDOW_S,
            None,
            True,
            True,
            "canary held for 1800 s on 1000 rows",
            id="window-end-promotes",
        ),
        pytest.param(
            {},
            figures(1_000),
            WINDOW_S,
            {**AUC, "candidate": {"labels": 500.0, "auc": 0.9}},
            True,
            True,
            "AUC 0.9000 vs 0.9",
            id="window-end-promotes-with-labels",
        ),
        pytest.param(
            {},
            figures(199),
            WINDOW_S,
            None,
            True,
            False,
            "only 199 rows reached the canary in the 1800 s window (min_canary_requests 200)",
            id="window-end-with-too-few-rows-rolls-back",
        ),
        pytest.param(
            {},
            {f"{CHAMPION}/champion": figure(5_000)},
            WINDOW_S,
            None,
            True,
            False,
            "only 0 rows reached the canary",
            id="window-end-without-any-canary-figures-rolls-back",
        ),
        pytest.param(
            {"min_canary_requests": 100},
            figures(150, 150),
            WINDOW_S,
            None,
            True,
            True,
            "held for",
            id="lower-min-requests-promotes",
        ),
        pytest.param(
            {"canary_window_minutes": 1},
            figures(1_000),
            60,
            None,
            True,
            True,
            "held for 60 s",
            id="shorter-window-promotes",
        ),
    ],
)
def test_judge(spec, limits, figs, elapsed, labels, decided, promote, reason):
    verdict = judge(
        with_limits(spec, **limits),
        figs,
        candidate=CANDIDATE,
        champion=CHAMPION,
        route="canary",
        elapsed_s=elapsed,
        labels=labels,
    )
    assert isinstance(verdict, Verdict)
    assert (verdict.decided, verdict.promote) == (decided, promote), verdict.reason
    assert reason in verdict.reason
    assert verdict.figures["candidate"] == CANDIDATE and verdict.figures["champion"] == CHAMPION
    assert verdict.figures["candidate_rows"] == figs.get(f"{CANDIDATE}/canary", {"rows": 0.0})["rows"]


def test_a_psi_within_noise_is_reported_with_its_noise(spec):
    """PSI 0.416 is above max_score_psi but 200 vs 200 rows reach 0.279 by chance: the watch waits, saying so."""
    verdict = judge(
        spec, figures(200, 200, deciles=SHIFTED), candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60
    )
    f = verdict.figures
    assert f["score_psi"] == pytest.approx(0.3 * math.log(4), abs=1e-4)
    assert f["score_psi"] > spec.deploy.max_score_psi
    assert f["score_psi_noise"] == pytest.approx(chi2.ppf(0.999, 9) * (2 / 200), abs=1e-4)
    assert f["score_psi"] - f["score_psi_noise"] <= spec.deploy.max_score_psi
    assert not verdict.decided


def test_shadow_is_judged_on_its_own_route(spec):
    figs = figures(1_000, route="shadow", latency=SLOW_TAIL)
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="shadow", elapsed_s=60)
    assert verdict.decided and not verdict.promote and "p99" in verdict.reason
    # the same figures read as a canary: there is none, so nothing to judge yet
    assert not judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60).decided


def test_a_promotion_carries_every_figure_it_was_judged_on(spec):
    labels = {"candidate": {"labels": 300.0, "auc": 0.9012345}, "champion": {"labels": 400.0, "auc": math.nan}}
    verdict = judge(
        spec,
        figures(1_000, 9_000, errors=2),
        candidate=CANDIDATE,
        champion=CHAMPION,
        route="canary",
        elapsed_s=WINDOW_S + 5,
        labels=labels,
    )
    assert verdict.decided and verdict.promote
    f = verdict.to_dict()["figures"]
    assert f["elapsed_s"] == WINDOW_S + 5 and f["candidate_rows"] == 1_000 and f["candidate_errors"] == 2
    assert f["champion_rows"] == 9_000 and f["error_rate"] == round(2 / 1_002, 4) and f["p99_ms"] == 5.0
    assert f["score_psi"] == pytest.approx(0.0, abs=1e-9)
    assert f["score_psi_noise"] == round(psi_noise(1_000, 9_000), 4)
    assert f["candidate_labels"] == 300 and f["candidate_auc"] == 0.9012 and f["champion_auc"] is None


def test_a_few_canary_rows_leaving_sparse_bins_empty_do_not_roll_a_sound_model_back(spec):
    """Adult-like scores: most rows low, a few in each upper bin. 73 canary rows from that same distribution leave
    the upper bins empty, which the PSI floor turns into PSI ~0.4–0.7, beyond its formula's noise; the χ² test on
    pooled bins sees no shift, and the watch waits (a real shift at that size still rolls back)."""
    spec = with_limits(spec, min_canary_requests=50)  # the deploy e2e's quick window
    skew = [0.5, 0.15, 0.08, 0.05, 0.04, 0.05, 0.04, 0.04, 0.025, 0.025]
    sparse = [0.6849, 0.137, 0.0685, 0.0411, 0.0, 0.0411, 0.0137, 0.0137, 0.0, 0.0]  # 50, 10, 5, 3, 0, 3, 1, 1, 0, 0
    figs = {f"{CANDIDATE}/canary": figure(73, deciles=sparse), f"{CHAMPION}/champion": figure(907, deciles=skew)}
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    f = verdict.figures
    assert f["score_psi"] - f["score_psi_noise"] > spec.deploy.max_score_psi  # PSI alone would have rolled back
    assert not verdict.decided and f["score_p_value"] > 0.001, verdict.reason
    moved = {
        f"{CANDIDATE}/canary": figure(73, deciles=list(reversed(skew))),
        f"{CHAMPION}/champion": figure(907, deciles=skew),
    }
    shifted = judge(spec, moved, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    assert shifted.decided and not shifted.promote and "score distribution moved" in shifted.reason
