"""The canary watch's decision (ativo.deploy.watch): PSI, buckets, slow calls, and the sequential verdict — promoted as
soon as every limit is shown held, rolled back as soon as one is shown crossed, undecided at the window rolled back."""

from __future__ import annotations

import math

import pytest

from ativo.api.metrics import LATENCY_BUCKETS, SCORE_BUCKETS
from ativo.deploy.watch import (
    DECILES,
    _bins,
    _sorted_buckets,
    judge,
    p99_ms,
    psi,
    since,
    slow_calls,
)

CANDIDATE, CHAMPION = "7", "6"
UNIFORM = [0.1] * 10
SHIFTED = [0.04] * 5 + [0.16] * 5  # PSI against UNIFORM: 0.3 * ln 4 = 0.4159
FAST = {0.005: 1.0}  # every scoring call within 5 ms (shares of the calls)
SLOW_TAIL = {0.005: 0.97, 0.1: 0.03}  # 3 % of calls in the 100 ms bucket: p99 there


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
    """A version's figures: ``rows`` scored and ``errors`` failed in single-row calls, in these latency shares."""
    shares = latency if latency is not None else FAST
    return {
        "rows": float(rows),
        "errors": float(errors),
        "failed_calls": float(errors),  # single-row calls: each failed row is a failed call
        "scores": score_buckets(rows, deciles),
        "latency": cumulative({edge: rows * share for edge, share in shares.items()}, LATENCY_BUCKETS),
    }


def figures(cand_rows: float, champ_rows: float = 10_000, *, route: str = "canary", **candidate) -> dict:
    return {f"{CANDIDATE}/{route}": figure(cand_rows, **candidate), f"{CHAMPION}/champion": figure(champ_rows)}


def with_limits(spec, **deploy):
    return spec.model_copy(update={"deploy": spec.deploy.model_copy(update=deploy)})


# --- PSI -----------------------------------------------------------------------------------------------------------


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
        pytest.param(cumulative({0.005: 97, 0.1: 3}, LATENCY_BUCKETS), 100.0, id="slow-tail"),
        pytest.param({}, None, id="no-data"),
        pytest.param({"0.005": 0.0, "+Inf": 0.0}, None, id="no-calls"),
    ],
)
def test_p99_ms_is_the_upper_edge_of_the_bucket_holding_the_99th_percentile(latency, ms):
    assert p99_ms(latency) == ms


# --- since: the figures of the trial, not of the server's life ----------------------------------------------------


def fig(rows: float, errors: float = 0.0, calls: float = 0.0, scores=None, latency=None) -> dict:
    return {
        "rows": rows,
        "errors": errors,
        "failed_calls": calls,
        "scores": scores or {},
        "latency": latency or {},
    }


A, B = "http://a:8000", "http://b:8000"


def test_since_subtracts_the_baseline_snapshot_per_server():
    base = {
        A: {
            "7/canary": fig(100, 1, 1, {"0.5": 40.0, "+Inf": 100.0}, {"0.005": 10.0, "+Inf": 10.0}),
            "6/champion": fig(900),
            "5/champion": fig(50),
        }
    }
    now = {
        A: {
            "7/canary": fig(150, 3, 2, {"0.5": 60.0, "+Inf": 150.0}, {"0.005": 14.0, "+Inf": 15.0}),
            "6/champion": fig(300, scores={"+Inf": 300.0}),
            "8/shadow": fig(20, scores={"+Inf": 20.0}),
        }
    }
    assert since(now, base) == {
        "7/canary": fig(50, 2, 1, {"0.5": 20.0, "+Inf": 50.0}, {"0.005": 4.0, "+Inf": 5.0}),
        # a counter below its baseline: the server restarted, its current value is all of the trial's
        "6/champion": fig(300, scores={"+Inf": 300.0}),
        # new since the baseline: counted whole; a key only in the baseline is gone
        "8/shadow": fig(20, scores={"+Inf": 20.0}),
    }


def test_one_servers_restart_takes_its_figures_whole_and_never_mixes_them_with_the_others():
    """Two servers; B restarts during the trial. Its champion buckets are taken whole, A's are differenced, so the
    champion's distribution is the one the servers saw (not a bucket-by-bucket mix) and an A/A canary stays sound."""
    before = {"0.5": 4_000.0, "1.0": 8_000.0, "+Inf": 8_000.0}
    base = {A: {"6/champion": fig(8_000, scores=before)}, B: {"6/champion": fig(8_000, scores=before)}}
    # A served 2,000 more rows, half above 0.5; B restarted and served 1,000, half above 0.5
    now = {
        A: {"6/champion": fig(10_000, scores={"0.5": 5_000.0, "1.0": 10_000.0, "+Inf": 10_000.0})},
        B: {"6/champion": fig(1_000, scores={"0.5": 500.0, "1.0": 1_000.0, "+Inf": 1_000.0})},
    }
    got = since(now, base)["6/champion"]
    assert got["rows"] == 3_000
    assert got["scores"] == {"0.5": 1_500.0, "1.0": 3_000.0, "+Inf": 3_000.0}


def test_since_of_itself_is_all_zeros():
    snap = {A: figures(500)}
    got = since(snap, snap)
    for f in got.values():
        assert f["rows"] == f["errors"] == f["failed_calls"] == 0.0
        assert set(f["scores"].values()) == {0.0} and set(f["latency"].values()) == {0.0}


# --- judge: promote, roll back or keep watching -------------------------------------------------------------------

WINDOW_S = 30 * 60  # the reference spec's canary_window_minutes: the longest the watch waits


def auc_labels(candidate: float, champion: float, n: float = 5_000.0, se: float = 0.005) -> dict:
    """label_figures' answer: each side's AUC on ``n`` labelled rows with DeLong's standard error ``se``."""
    return {
        "candidate": {"labels": n, "auc": candidate, "se": se},
        "champion": {"labels": n, "auc": champion, "se": se},
    }


@pytest.mark.parametrize(
    ("limits", "figs", "elapsed", "labels", "decided", "promote", "reason"),
    [
        # error rate against max_error_rate (1 %): an anytime-valid test, not a point estimate or a one-look bound
        pytest.param({}, figures(49, errors=1), 60, None, False, False, "watching", id="one-early-error-waits"),
        pytest.param({}, figures(0, errors=1), 60, None, False, False, "watching", id="one-failed-attempt-waits"),
        pytest.param({}, figures(196, errors=4), 60, None, False, False, "watching", id="2pct-of-200-waits"),
        pytest.param(
            {},
            figures(1_960, errors=40),
            60,
            None,
            True,
            False,
            "error rate 40 of 2000 calls (2.00%; 40 of 2000 rows) failed to score: above the limit 1.0%",
            id="2pct-of-2000-rolls-back-at-once",
        ),
        pytest.param(
            {},
            figures(90, errors=10),
            60,
            None,
            True,
            False,
            "error rate 10 of 100 calls",
            id="10pct-of-100-rolls-back-at-once",
        ),
        pytest.param(
            {"max_error_rate": 0.05},
            figures(1_960, errors=40),
            60,
            None,
            True,
            True,
            "error rate 2.00% of calls (limit 5.0%)",
            id="2pct-under-a-5pct-limit-promotes-early",
        ),
        pytest.param(
            {"max_error_rate": 0.0},
            figures(5_000, errors=1),
            60,
            None,
            True,
            False,
            "error rate 1 of 5001 calls",
            id="no-error-allowed-one-rolls-back",
        ),
        # latency: the share of calls slower than latency_budget_ms (50) against 1 % (a p99 within the budget)
        pytest.param(
            {},
            figures(1_000, latency=SLOW_TAIL),
            60,
            None,
            True,
            False,
            "p99 scoring latency 100 ms against the budget 50 ms (30–30 of 1000 calls slower): above the budget",
            id="p99-over-budget-rolls-back",
        ),
        pytest.param(
            {}, figures(100, latency=SLOW_TAIL), 60, None, False, False, "watching", id="slow-calls-on-few-rows-wait"
        ),
        pytest.param(
            {"latency_budget_ms": 200},
            figures(1_000, latency=SLOW_TAIL),
            60,
            None,
            True,
            True,
            "p99 100 ms (budget 200 ms)",
            id="p99-within-a-raised-budget-promotes",
        ),
        pytest.param(
            {"latency_budget_ms": 30},
            figures(1_000, latency=SLOW_TAIL),
            60,
            None,
            True,
            False,
            "above the budget",
            id="a-budget-between-buckets-counts-the-straddling-bucket-as-slow-only-when-sure",
        ),
        # score PSI (0.416 here) against max_score_psi (0.2): its anytime lower bound must pass the limit
        pytest.param(
            {},
            figures(2_000, 20_000, deciles=SHIFTED),
            60,
            None,
            True,
            False,
            "score distribution moved from the champion's: score PSI 0.416",
            id="psi-beyond-the-limit-rolls-back",
        ),
        pytest.param(
            {}, figures(200, 200, deciles=SHIFTED), 60, None, False, False, "watching", id="same-psi-at-small-n-waits"
        ),
        pytest.param(
            {},
            figures(2_000, 20_000, deciles=SHIFTED, latency=SLOW_TAIL),
            60,
            None,
            True,
            False,
            "above the budget; score distribution moved",
            id="every-broken-limit-is-named",
        ),
        pytest.param(
            {},
            figures(2_000, 100, deciles=SHIFTED),
            60,
            None,
            False,
            False,
            "not yet shown: score PSI",
            id="psi-not-judged-on-a-quiet-champion",
        ),
        # accuracy: the AUC change against -max_auc_drop (0.02), once min_labels (200) per side arrived
        pytest.param(
            {},
            figures(1_000),
            60,
            auc_labels(0.85, 0.90),
            True,
            False,
            "AUC on labelled rows 0.8500 vs the champion's 0.9000 (5000 and 5000 labels): more than 0.02 below",
            id="auc-drop-rolls-back",
        ),
        pytest.param(
            {},
            figures(1_000),
            60,
            auc_labels(0.85, 0.90, n=199, se=0.02),
            True,
            True,
            "shown within every limit",
            id="auc-before-min-labels-is-not-judged",
        ),
        pytest.param(
            {},
            figures(1_000),
            60,
            auc_labels(0.85, 0.90, n=300, se=0.02),
            True,
            True,
            "shown within every limit",
            id="auc-drop-on-few-labels-is-not-harm-shown",
        ),
        pytest.param(
            {"await_labels": True},
            figures(1_000),
            60,
            auc_labels(0.885, 0.90),
            False,
            False,
            "not yet shown: AUC change",
            id="awaited-labels-within-tolerance-but-not-shown-wait",
        ),
        pytest.param(
            {"await_labels": True},
            figures(1_000),
            60,
            None,
            False,
            False,
            "not yet shown: AUC change",
            id="awaited-labels-not-arrived-wait",
        ),
        pytest.param(
            {"await_labels": True},
            figures(1_000),
            60,
            auc_labels(0.90, 0.90, se=0.003),
            True,
            True,
            "AUC change at least",
            id="awaited-labels-shown-within-tolerance-promote",
        ),
        pytest.param(
            {"await_labels": True},
            figures(1_000),
            60,
            {
                "candidate": {"labels": 500.0, "auc": math.nan, "se": math.nan},
                "champion": auc_labels(0.9, 0.9)["champion"],
            },
            False,
            False,
            "not yet shown: AUC change",
            id="auc-undefined-is-not-judged",
        ),
        pytest.param(
            {"max_auc_drop": 0.1},
            figures(1_000),
            60,
            auc_labels(0.85, 0.90),
            True,
            True,
            "AUC change at least",
            id="auc-drop-within-a-raised-tolerance-promotes",
        ),
        # the window is a maximum
        pytest.param(
            {},
            figures(1_000),
            60,
            None,
            True,
            True,
            "canary shown within every limit after 60 s on 1000 rows",
            id="evidence-early-promotes-early",
        ),
        pytest.param(
            {},
            figures(300),
            WINDOW_S - 1,
            None,
            False,
            False,
            "watching: 300 rows in 1799 of at most 1800 s; not yet shown: error rate",
            id="before-window-end-without-evidence-waits",
        ),
        pytest.param(
            {},
            figures(300),
            WINDOW_S,
            None,
            True,
            False,
            "no decision within the 1800 s window on 300 rows: not shown within the limit at α 0.05: "
            "error rate 0 of 300 calls",
            id="window-end-without-evidence-rolls-back",
        ),
        pytest.param(
            {"min_canary_requests": 2_000},
            figures(1_000),
            60,
            None,
            False,
            False,
            "not yet shown: rows (1000 of min_canary_requests 2000), score PSI",
            id="min-requests-is-a-floor-for-a-promotion",
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
            {"alpha": 0.2},
            figures(300),
            60,
            None,
            True,
            True,
            "(α 0.2)",
            id="a-looser-alpha-decides-on-fewer-rows",
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
    assert (verdict.decided, verdict.promote) == (decided, promote), verdict.reason
    assert reason in verdict.reason
    assert verdict.figures["candidate"] == CANDIDATE and verdict.figures["champion"] == CHAMPION
    assert verdict.figures["candidate_rows"] == figs.get(f"{CANDIDATE}/canary", {"rows": 0.0})["rows"]


def test_a_failed_batch_call_is_one_failed_call_not_hundreds_of_independent_errors(spec):
    """100-row calls: one failed call of 1,000 is 10 % of the rows but 0.1 % of the calls — a batch fails as one."""
    figs = figures(1_000)
    figs[f"{CANDIDATE}/canary"].update(errors=100.0, failed_calls=1.0)
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    assert verdict.decided and verdict.promote, verdict.reason  # 1 failed call of 1,000 is within 1 %
    assert verdict.figures["error_rate"] > spec.deploy.max_error_rate and verdict.figures["failed_calls"] == 1


def test_a_few_slow_cold_calls_do_not_roll_back_before_min_canary_requests(spec):
    figs = {f"{CANDIDATE}/canary": figure(9, latency={0.005: 6 / 9, 0.1: 3 / 9}), f"{CHAMPION}/champion": figure(90)}
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=30)
    assert not verdict.decided, verdict.reason


def test_a_p99_beyond_the_last_bucket_is_said_in_words_and_stays_json(spec):
    import json

    figs = figures(1_000, latency={0.005: 0.9, 10.0: 0.1})  # 10 % of calls beyond the 2.5 s bucket
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    assert verdict.decided and not verdict.promote and "p99 scoring latency above 2500 ms" in verdict.reason
    json.dumps(verdict.to_dict(), allow_nan=False)


def test_an_undecided_window_is_marked_so_and_a_harmful_one_is_not(spec):
    undecided = judge(spec, figures(300), candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=WINDOW_S)
    assert undecided.decided and not undecided.promote and undecided.undecided
    harmful = judge(
        spec, figures(1_960, errors=40), candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=WINDOW_S
    )
    assert harmful.decided and not harmful.promote and not harmful.undecided


def test_shadow_is_judged_on_its_own_route(spec):
    figs = figures(1_000, route="shadow", latency=SLOW_TAIL)
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="shadow", elapsed_s=60)
    assert verdict.decided and not verdict.promote and "p99" in verdict.reason
    # the same figures read as a canary: there is none, so nothing to judge yet
    assert not judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60).decided


def test_a_promotion_carries_every_figure_and_its_evidence(spec):
    labels = {
        "candidate": {"labels": 300.0, "auc": 0.9012345, "se": 0.02},
        "champion": {"labels": 400.0, "auc": math.nan, "se": math.nan},
    }
    verdict = judge(
        spec,
        figures(1_500, 9_000, errors=2),
        candidate=CANDIDATE,
        champion=CHAMPION,
        route="canary",
        elapsed_s=90,
        labels=labels,
    )
    assert verdict.decided and verdict.promote, verdict.reason
    f = verdict.to_dict()["figures"]
    assert f["elapsed_s"] == 90 and f["candidate_rows"] == 1_500 and f["candidate_errors"] == 2
    assert f["champion_rows"] == 9_000 and f["error_rate"] == round(2 / 1_502, 4) and f["p99_ms"] == 5.0
    assert f["score_psi"] == pytest.approx(0.0, abs=1e-9) and f["alpha"] == 0.05
    assert f["candidate_labels"] == 300 and f["candidate_auc"] == 0.9012 and f["champion_auc"] is None
    states = {e["figure"]: e["state"] for e in f["evidence"]}
    assert states == {"error rate": "safe", "latency": "safe", "score PSI": "safe"}  # no AUC: one side has none
    psi_evidence = next(e for e in f["evidence"] if e["figure"] == "score PSI")
    assert psi_evidence["high"] < spec.deploy.max_score_psi == psi_evidence["limit"]


def test_a_few_canary_rows_leaving_sparse_bins_empty_do_not_roll_a_sound_model_back(spec):
    """Adult-like scores: most rows low, a few in each upper bin. 73 canary rows from that same distribution leave
    the upper bins empty, which the PSI floor turns into PSI ~0.4–0.7; an empty bin makes PSI's standard error
    large and the χ² test on pooled bins sees no shift, so the watch waits (a real shift at that size rolls back)."""
    spec = with_limits(spec, min_canary_requests=50)  # the deploy e2e's quick window
    skew = [0.5, 0.15, 0.08, 0.05, 0.04, 0.05, 0.04, 0.04, 0.025, 0.025]
    sparse = [0.6849, 0.137, 0.0685, 0.0411, 0.0, 0.0411, 0.0137, 0.0137, 0.0, 0.0]  # 50, 10, 5, 3, 0, 3, 1, 1, 0, 0
    figs = {f"{CANDIDATE}/canary": figure(73, deciles=sparse), f"{CHAMPION}/champion": figure(907, deciles=skew)}
    verdict = judge(spec, figs, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    f = verdict.figures
    assert f["score_psi"] > spec.deploy.max_score_psi  # PSI alone would have rolled back
    assert not verdict.decided, verdict.reason
    moved = {
        f"{CANDIDATE}/canary": figure(300, deciles=list(reversed(skew))),
        f"{CHAMPION}/champion": figure(907, deciles=skew),
    }
    shifted = judge(spec, moved, candidate=CANDIDATE, champion=CHAMPION, route="canary", elapsed_s=60)
    assert shifted.decided and not shifted.promote and "score distribution moved" in shifted.reason


@pytest.mark.parametrize(
    ("budget_ms", "calls", "sure", "maybe"),
    [
        pytest.param(50, 1_000, 30, 30, id="budget-on-an-edge"),
        pytest.param(30, 1_000, 30, 30, id="budget-inside-an-empty-bucket"),
        pytest.param(4, 1_000, 30, 1_000, id="budget-inside-the-bucket-holding-most-calls"),
        pytest.param(5_000, 1_000, 0, 0, id="budget-beyond-the-last-edge"),
    ],
)
def test_slow_calls_count_the_straddling_bucket_only_for_the_side_it_protects(budget_ms, calls, sure, maybe):
    latency = figure(1_000, latency=SLOW_TAIL)["latency"]
    assert slow_calls(latency, budget_ms) == pytest.approx((calls, sure, maybe))
    assert slow_calls({}, 50) == (0.0, 0.0, 0.0)
