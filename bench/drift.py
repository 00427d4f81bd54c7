"""Benchmark: Ativo's drift statistics on a 500,000-row window, against Evidently and a plain numpy/scipy baseline.

Data. A seeded generator draws rows in the ``adult_income`` spec's schema (14 features), roughly with UCI Adult's
marginals, the features independent of each other (the statistics are per feature: only marginals matter). A numeric
feature is ``V = clip(floor(X), min, max)`` of a fixed mixture of point masses and continuous scipy distributions
(``age``: 17 + gamma; ``fnlwgt``: log-normal; ``education_num``: a pmf over 1..16; ``capital_gain``/``capital_loss``:
mostly 0, else log-normal/normal; ``hours_per_week``: a spike at 40 plus a normal), int64; a categorical feature has
fixed shares over the spec's categories (a pandas ``category`` column with the spec's categories), and the spec's
nullable ones (``workclass``, ``occupation``, ``native_country``) have 2-6 % missing values. Both frames go through
Parquet (written here, read back by each side, dictionary-encoded categoricals coming back as ``category``), so Ativo,
the baseline and Evidently get the same frames.

1. Speed, on a reference of ``--rows`` (500,000) rows and a current window of as many, drawn with the two shifts of 3
   (``age`` +0.2 σ; 5 points of ``workclass`` moved from ``Private`` to ``Self-emp-not-inc``):

   - ``profile_s``: the reference profile (``numeric_bins``/``category_bins``, as ``build_profile`` makes it), built
     once per model version in the product, so not part of a run.
   - ``ativo_s``: what a monitoring run pays for the drift part: ``Binned.count`` of the window's 14 columns in the
     reference's bins, and ``judge`` (PSI, χ² homogeneity on pooled bins, Holm over the 14 at α = 0.01, the spec's
     ``psi_threshold``); the first full run after a warm-up call on 1,000 rows (``ativo_best_s``: best of 3).
     ``ativo_import_s``: pandas, scipy.stats and the monitor's modules imported in a fresh interpreter, apart.
   - ``evidently_s``: Evidently (the version pinned in ``EVIDENTLY_REQUIREMENTS``) in a throw-away venv,
     ``var/bench/evidently-venv`` (Evidently 0.7 needs ``pandas<3``; made with uv when absent or not at the pin, in
     ``evidently_venv_s``), timed inside its own subprocess around ``Dataset.from_pandas`` of the two frames (an
     explicit ``DataDefinition``: the spec's numeric and categorical columns; ``evidently_dataset_s``) and
     ``Report([DataDriftPreset()]).run(current, reference)`` (``evidently_run_s``); its import time and its own peak RSS
     are reported apart. Evidently keeps no reference profile: every run reads both frames, which is what it costs.
     ``speedup_vs_evidently`` = evidently_s / ativo_s; ``speedup_incl_profile`` also charges Ativo the profile. Without
     the venv (no uv, no registry) the bench says so and reports the rest with ``evidently_s`` null.
   - ``baseline_s``: a plain numpy/scipy implementation written here, on the same window and bins
     (``np.searchsorted``/``np.bincount``, category codes; PSI with the same floor ``EPS``; the same pooling rule in
     numpy, then ``scipy.stats.chi2_contingency`` without Yates' correction; Holm in numpy). ``max_psi_abs_diff`` and
     ``max_p_abs_diff``: the largest differences from Ativo's figures over the 14 features; ``counts_equal`` and
     ``significant_equal``: the same bin counts and the same Holm verdicts.
   - ``peak_rss_mb``: the bench process's peak RSS (``resource.getrusage`` ``ru_maxrss``, which never decreases) read
     right after the Ativo part, so it holds the interpreter, pandas/scipy, the generated frames, both frames as read
     back, the profile, the count and the judgement; the Evidently subprocess (``evidently_peak_rss_mb``, its own
     ``ru_maxrss``) and the simulations come later and are not in it. ``ativo_traced_peak_mb``: the peak of what one
     count + judge allocates itself (``tracemalloc``, in a separate untimed run).

2. False alarms: ``--windows`` stationary windows (default 10,000; the issue asks for ≥ 200, but over 200 windows the
   rate's standard error at 1 % is 0.7 %, as large as the target) at each n in 1k, 10k, 100k, 500k against the 500k
   reference. A window alarms when any of the 14 features is ``Drift.significant`` (the evidence: significant after
   Holm); ``drifted`` also needs PSI ≥ the threshold, which only removes alarms, and its rate is reported apart
   (``drift_alarm_rate``). Generating 10,000 × 500k × 14 rows is too slow on 2 cores, so a window's bin counts are one
   multinomial draw from the generator's TRUE bin probabilities at the reference's edges, the same distribution as
   binning generated rows: for ``V = clip(floor(X))`` the integers of bin j are those in [ceil(e_{j-1}), ceil(e_j)),
   and P(V < t) at an integer t is the mixture's CDF at t (0 at or below min, 1 above max); a categorical's bins have
   its shares. The reference's own counts are its sample's, at its own quantile edges, so each rate is the rate given
   this one reference (what an operator with this profile sees); ``fresh_reference_alarm_rate`` redraws the
   reference's counts (same size, same edges) for every window too: the test's level over references. Cross-checks:
   the reference's counts against the bin probabilities (χ² goodness of fit, ``bin_probs_min_p``), and at n = 1k and
   10k, ``--row-windows`` (500) windows of real generated rows counted with ``Binned.count``: their alarm rate and a
   two-sample KS test of the windows' smallest p-value (which decides a Holm alarm) against the multinomial windows'.
   ``false_alarm_rate`` is the worst n of the test's level (the reference redrawn: the chance, over both samples, that
   a run alarms, which is what α bounds); ``false_alarm_rate_given_reference`` is the worst n given this one reference
   (every window compared with the same finite sample, so its rate scatters around the level, by about ±25 % of it
   across reference seeds at these sizes). Holm over 14 true nulls at α = 0.01 alarms with probability just under
   1 % by design, so the target sits at the design level: each n also gets its exact 95 % interval and a one-sided
   binomial p-value against 1 %.

3. Power at n = 50,000 (``--windows`` multinomial windows each, and ``--row-windows`` / 2 real-row windows):
   ``age`` +0.2 σ (σ: the exact standard deviation of the generator's ``age``; ``power_shift``) and 5 percentage
   points of ``workclass`` moved from ``Private`` to ``Self-emp-not-inc`` (``power_category``); detected = that
   feature ``significant`` after Holm. ``psi_shift``/``psi_category``: the PSI of those shifts (mean over the
   windows); ``drift_rate_shift``/``drift_rate_category``: how often they are ``drifted`` at the spec's
   ``psi_threshold`` (low by design: the threshold is an effect size saying such shifts do not matter).

Usage: ``.venv/bin/python bench/drift.py [--rows 500000] [--windows 10000] [--row-windows 500] [--seed 7]
[--skip-evidently]`` (about 3 minutes on 2 cores). Prints a readable summary, then one JSON line with ``ativo_s``,
``evidently_s``, ``speedup_vs_evidently``, ``baseline_s``, ``max_psi_abs_diff``, ``false_alarm_rate`` (worst n),
``power_shift``, ``power_category``, ``peak_rss_mb`` and the figures above.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ativo.monitor.profile import MISSING, Binned, category_bins, numeric_bins
from ativo.monitor.stats import EPS, MIN_EXPECTED, judge
from ativo.spec import ModelSpec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "include" / "specs" / "adult_income.yaml"
VENV = ROOT / "var" / "bench" / "evidently-venv"
EVIDENTLY_REQUIREMENTS = ("evidently==0.7.23", "pandas==2.3.3", "pyarrow==26.0.1")  # Evidently 0.7 needs pandas<3
ALPHA = 0.01
SIZES = (1_000, 10_000, 100_000, 500_000)
POWER_N = 50_000
SHIFT_FEATURE, SHIFT_SIGMAS = "age", 0.2
CATEGORY_FEATURE, CATEGORY_FROM, CATEGORY_TO, CATEGORY_POINTS = "workclass", "Private", "Self-emp-not-inc", 0.05

# fmt: off
# numeric features: mixtures of (weight, point mass or continuous scipy distribution); V = clip(floor(X), min, max)
NUMERIC: dict[str, list[tuple[float, Any]]] = {
    "age": [(1.0, sps.gamma(2.49, loc=17, scale=8.69))],
    "fnlwgt": [(1.0, sps.lognorm(0.52, scale=178_000))],
    "education_num": list(zip([0.002, 0.005, 0.010, 0.020, 0.016, 0.028, 0.037, 0.013, 0.323, 0.223, 0.042, 0.033,
                               0.164, 0.054, 0.017, 0.012], range(1, 17), strict=True)),
    "capital_gain": [(0.917, 0), (0.005, 99_999), (0.078, sps.lognorm(0.9, scale=7_300))],
    "capital_loss": [(0.953, 0), (0.047, sps.norm(1_870, 360))],
    "hours_per_week": [(0.47, 40), (0.53, sps.norm(40, 13))],
}
# categorical features: shares (normalised) over the spec's categories; MISSING for the nullable ones
SHARES: dict[str, dict[str, float]] = {
    "workclass": {"Private": 0.694, "Self-emp-not-inc": 0.079, "Local-gov": 0.064, "State-gov": 0.041,
                  "Self-emp-inc": 0.035, "Federal-gov": 0.029, "Without-pay": 0.0004, "Never-worked": 0.0002,
                  MISSING: 0.057},
    "education": {"HS-grad": 0.323, "Some-college": 0.223, "Bachelors": 0.164, "Masters": 0.054, "Assoc-voc": 0.042,
                  "11th": 0.037, "Assoc-acdm": 0.033, "10th": 0.028, "7th-8th": 0.020, "Prof-school": 0.017,
                  "9th": 0.016, "12th": 0.013, "Doctorate": 0.012, "5th-6th": 0.010, "1st-4th": 0.005,
                  "Preschool": 0.002},
    "marital_status": {"Married-civ-spouse": 0.458, "Never-married": 0.330, "Divorced": 0.136, "Separated": 0.031,
                       "Widowed": 0.031, "Married-spouse-absent": 0.013, "Married-AF-spouse": 0.001},
    "occupation": {"Prof-specialty": 0.126, "Craft-repair": 0.125, "Exec-managerial": 0.125, "Adm-clerical": 0.115,
                   "Sales": 0.113, "Other-service": 0.101, "Machine-op-inspct": 0.062, "Transport-moving": 0.048,
                   "Handlers-cleaners": 0.042, "Farming-fishing": 0.031, "Tech-support": 0.030,
                   "Protective-serv": 0.020, "Priv-house-serv": 0.005, "Armed-Forces": 0.0003, MISSING: 0.0577},
    "relationship": {"Husband": 0.404, "Not-in-family": 0.258, "Own-child": 0.155, "Unmarried": 0.105, "Wife": 0.048,
                     "Other-relative": 0.031},
    "race": {"White": 0.855, "Black": 0.096, "Asian-Pac-Islander": 0.031, "Amer-Indian-Eskimo": 0.010, "Other": 0.008},
    "sex": {"Male": 0.668, "Female": 0.332},
    "native_country": {"United-States": 0.897, "Mexico": 0.019, MISSING: 0.0175, "Philippines": 0.006,
                       "Germany": 0.0042, "Puerto-Rico": 0.0038, "Canada": 0.0037, "El-Salvador": 0.0032,
                       "India": 0.0031, "Cuba": 0.0028, "England": 0.0026, "China": 0.0025, "South": 0.0024,
                       "Jamaica": 0.0022, "Italy": 0.0022, "Dominican-Republic": 0.0021, "Japan": 0.0019,
                       "Guatemala": 0.0018, "Poland": 0.0018, "Vietnam": 0.0018, "Columbia": 0.0017, "Haiti": 0.0015,
                       "Portugal": 0.0014, "Taiwan": 0.0013, "Iran": 0.0012, "Greece": 0.001, "Nicaragua": 0.001,
                       "Peru": 0.001, "Ecuador": 0.0009, "France": 0.0008, "Ireland": 0.0007, "Hong": 0.0006,
                       "Thailand": 0.0006, "Cambodia": 0.0006, "Trinadad&Tobago": 0.0006, "Laos": 0.0005,
                       "Outlying-US(Guam-USVI-etc)": 0.0005, "Yugoslavia": 0.0005, "Scotland": 0.0004,
                       "Honduras": 0.0004, "Hungary": 0.0004, "Holand-Netherlands": 0.0001},
}
# fmt: on


@dataclass(frozen=True)
class Shift:
    """Drift applied by the generator: X + ``numeric`` for numeric features, share moves for categoricals."""

    numeric: dict[str, float] | None = None
    category: dict[str, tuple[str, str, float]] | None = None


class Synth:
    """Rows in the spec's schema from the fixed marginals above, and their exact bin probabilities."""

    def __init__(self, spec: ModelSpec) -> None:
        self.features = list(spec.data_schema.features)
        self.numeric = [f.name for f in self.features if f.type != "category"]
        self.categorical = [f.name for f in self.features if f.type == "category"]
        self.bounds = {f.name: (int(f.min), int(f.max)) for f in self.features if f.type != "category"}
        self.categories = {f.name: tuple(f.categories or ()) for f in self.features if f.type == "category"}
        assert set(self.numeric) == set(NUMERIC) and set(self.categorical) == set(SHARES)
        for name, cats in self.categories.items():
            extra = set(SHARES[name]) - set(cats) - {MISSING}
            assert not extra, f"{name}: shares for categories outside the spec: {extra}"

    def shares(self, name: str, shift: Shift | None = None) -> np.ndarray:
        """A categorical's probabilities in its ``Binned`` order (the spec's categories, then missing)."""
        p = np.array([SHARES[name].get(c, 0.0) for c in (*self.categories[name], MISSING)])
        p = p / p.sum()
        if shift and shift.category and name in shift.category:
            src, dst, points = shift.category[name]
            order = [*self.categories[name], MISSING]
            p[order.index(src)] -= points
            p[order.index(dst)] += points
        return p

    def below(self, name: str, t: np.ndarray, delta: float = 0.0) -> np.ndarray:
        """P(V < t) for integer thresholds ``t``, V = clip(floor(X + delta), min, max)."""
        lo, hi = self.bounds[name]
        out = np.zeros(len(t))
        for w, comp in NUMERIC[name]:
            if isinstance(comp, int | float):
                out += w * (min(max(math.floor(comp + delta), lo), hi) < t)
            else:
                out += w * comp.cdf(t - delta)
        return np.where(t <= lo, 0.0, np.where(t > hi, 1.0, out))

    def bin_probs(self, name: str, ref: Binned, shift: Shift | None = None) -> np.ndarray:
        """The exact probability of each of ``ref``'s bins (missing last) under the generator."""
        if ref.categories is not None:
            return self.shares(name, shift)
        delta = (shift.numeric or {}).get(name, 0.0) if shift else 0.0
        cdf = self.below(name, np.ceil(np.asarray(ref.edges, dtype="float64")), delta)
        return np.append(np.clip(np.diff(np.concatenate([[0.0], cdf, [1.0]])), 0, None), 0.0)  # no missing

    def sd(self, name: str) -> float:
        """The standard deviation of V (exact, over its integer support)."""
        lo, hi = self.bounds[name]
        support = np.arange(lo, hi + 1, dtype="float64")
        pmf = np.diff(self.below(name, np.arange(lo, hi + 2, dtype="float64")))
        mean = float((support * pmf).sum())
        return float(np.sqrt(((support - mean) ** 2 * pmf).sum()))

    def frame(self, n: int, rng: np.random.Generator, shift: Shift | None = None) -> pd.DataFrame:
        """``n`` rows, in the spec's column order."""
        cols: dict[str, Any] = {}
        for f in self.features:
            if f.type == "category":
                p = self.shares(f.name, shift)
                codes = np.minimum(np.searchsorted(np.cumsum(p), rng.random(n), side="right"), len(p) - 1)
                codes[codes == len(p) - 1] = -1  # the last "category" is missing
                cols[f.name] = pd.Categorical.from_codes(codes, categories=list(self.categories[f.name]))
                continue
            lo, hi = self.bounds[f.name]
            delta = (shift.numeric or {}).get(f.name, 0.0) if shift else 0.0
            weights = np.array([w for w, _ in NUMERIC[f.name]])
            which = np.minimum(
                np.searchsorted(np.cumsum(weights / weights.sum()), rng.random(n), side="right"), len(weights) - 1
            )
            x = np.empty(n)
            for k, (_, comp) in enumerate(NUMERIC[f.name]):
                mask = which == k
                x[mask] = comp if isinstance(comp, int | float) else comp.rvs(size=int(mask.sum()), random_state=rng)
            cols[f.name] = np.clip(np.floor(x + delta), lo, hi).astype("int64")
        return pd.DataFrame(cols)


def profile(synth: Synth, frame: pd.DataFrame) -> dict[str, Binned]:
    """The reference's bins, as ``build_profile`` makes them."""
    return {
        f.name: (
            category_bins(frame[f.name], synth.categories[f.name])
            if f.type == "category"
            else numeric_bins(frame[f.name])
        )
        for f in synth.features
    }


def ativo_run(refs: dict[str, Binned], window: pd.DataFrame, threshold: float) -> tuple[dict[str, tuple], list]:
    """One monitoring run's drift part: count the window in the reference's bins, judge."""
    counts = {name: ref.count(window[name]) for name, ref in refs.items()}
    return counts, judge(refs, counts, threshold=threshold, alpha=ALPHA)


# --- the plain numpy/scipy baseline -----------------------------------------------------------------------------


def baseline_counts(ref: Binned, values: pd.Series) -> np.ndarray:
    if ref.edges is not None:
        x = values.to_numpy(dtype="float64")
        missing = np.isnan(x)
        idx = np.searchsorted(np.asarray(ref.edges), x[~missing], side="right")
        return np.append(np.bincount(idx, minlength=len(ref.edges) + 1), missing.sum())
    assert ref.categories is not None
    codes = pd.Categorical(values, categories=list(ref.categories[:-1])).codes  # -1: missing or outside the list
    counts = np.bincount(codes.astype("int64") + 1, minlength=len(ref.categories))
    return np.append(counts[1:], counts[0])


def baseline_psi(r: np.ndarray, c: np.ndarray) -> float:
    if r.sum() == 0 or c.sum() == 0:
        return 0.0
    rp, cp = np.maximum(r / r.sum(), EPS), np.maximum(c / c.sum(), EPS)
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def baseline_pvalue(r: np.ndarray, c: np.ndarray) -> float:
    rt, ct = r.sum(), c.sum()
    if rt == 0 or ct == 0:
        return 1.0
    live = (r + c) > 0
    r, c = r[live], c[live]
    share = (r + c) / (rt + ct)
    sparse = np.minimum(share * rt, share * ct) < MIN_EXPECTED
    kr, kc, pr, pc = r[~sparse], c[~sparse], r[sparse].sum(), c[sparse].sum()
    if pr + pc:
        share = (pr + pc) / (rt + ct)
        if len(kr) and min(share * rt, share * ct) < MIN_EXPECTED:
            i = int(np.argmin(kr + kc))
            kr, kc = kr.copy(), kc.copy()
            kr[i] += pr
            kc[i] += pc
        else:
            kr, kc = np.append(kr, pr), np.append(kc, pc)
    if len(kr) < 2:
        return 1.0
    return float(sps.chi2_contingency(np.vstack([kr, kc]), correction=False).pvalue)


def baseline_run(refs: dict[str, Binned], window: pd.DataFrame) -> dict[str, tuple[np.ndarray, float, float]]:
    out = {}
    for name, ref in refs.items():
        r, c = np.asarray(ref.counts), baseline_counts(ref, window[name])
        out[name] = (c, baseline_psi(r, c), baseline_pvalue(r, c))
    return out


def baseline_holm(pvalues: dict[str, float], alpha: float) -> set[str]:
    names = sorted(pvalues, key=pvalues.get)  # type: ignore[arg-type]
    p = np.array([pvalues[n] for n in names])
    ok = p <= alpha / (len(p) - np.arange(len(p)))
    k = len(p) if ok.all() else int(np.argmin(ok))
    return set(names[:k])


# --- Evidently, in its own venv -----------------------------------------------------------------------------------

EVIDENTLY_SCRIPT = r"""
import json, resource, sys, time
t = time.perf_counter()
import pandas as pd
from evidently import DataDefinition, Dataset, Report, __version__
from evidently.presets import DataDriftPreset
import_s = time.perf_counter() - t
ref_path, cur_path, numeric, categorical = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
t = time.perf_counter()
ref_ds = Dataset.from_pandas(reference, data_definition=definition)
cur_ds = Dataset.from_pandas(current, data_definition=definition)
t1 = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(cur_ds, ref_ds)
t2 = time.perf_counter()
columns = {}
for m in snapshot.dict()["metrics"]:
    cfg = m.get("config", {})
    if cfg.get("type", "").endswith("ValueDrift"):
        columns[cfg["column"]] = {"method": cfg.get("method"), "value": m["value"], "threshold": cfg.get("threshold"),
                                  "drifted": bool(m["value"] >= cfg.get("threshold"))}
print(json.dumps({"version": __version__, "pandas": pd.__version__, "import_s": import_s, "dataset_s": t1 - t,
                  "run_s": t2 - t1, "total_s": t2 - t, "columns": columns,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def evidently_venv() -> tuple[Path | None, float, str]:
    """The venv's python (created if absent or not matching the pins), seconds spent creating it, and a note."""
    python = VENV / "bin" / "python"
    want = EVIDENTLY_REQUIREMENTS[0].split("==")[1]
    check = [str(python), "-c", "from importlib.metadata import version; print(version('evidently'))"]
    if python.exists() and subprocess.run(check, capture_output=True, text=True).stdout.strip() == want:
        return python, 0.0, "reused"
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not Path(uv).exists():
        return None, 0.0, "uv not found: cannot create the Evidently venv"
    t = time.perf_counter()
    try:
        subprocess.run(
            [uv, "venv", "--quiet", "--allow-existing", "-p", "3.11", str(VENV)],
            check=True,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            [uv, "pip", "install", "--quiet", "-p", str(python), *EVIDENTLY_REQUIREMENTS],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as e:
        return None, time.perf_counter() - t, f"creating the Evidently venv failed: {(e.stderr or '').strip()[-400:]}"
    return python, time.perf_counter() - t, "created"


def run_evidently(python: Path, ref_path: Path, cur_path: Path, synth: Synth) -> dict[str, Any]:
    env = {**os.environ, "ITERATIVE_DO_NOT_TRACK": "1", "DO_NOT_TRACK": "1"}
    proc = subprocess.run(
        [
            str(python),
            "-c",
            EVIDENTLY_SCRIPT,
            str(ref_path),
            str(cur_path),
            ",".join(synth.numeric),
            ",".join(synth.categorical),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"Evidently run failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- simulations ----------------------------------------------------------------------------------------------------


Window = tuple[dict[str, Binned], dict[str, tuple[int, ...]]]  # (the references, the window's counts)


def judge_windows(windows: list[Window], threshold: float, watch: str | None = None) -> dict[str, Any]:
    """Alarm rates over ``windows``, and the watched feature's detection rate and mean PSI."""
    alarms = drift_alarms = hits = drifted = 0
    min_p, psis = [], []
    for refs, counts in windows:
        verdicts = {d.name: d for d in judge(refs, counts, threshold=threshold, alpha=ALPHA)}
        alarms += any(d.significant for d in verdicts.values())
        drift_alarms += any(d.drifted for d in verdicts.values())
        min_p.append(min(d.p_value for d in verdicts.values()))
        if watch:
            hits += verdicts[watch].significant
            drifted += verdicts[watch].drifted
            psis.append(verdicts[watch].psi)
    n = len(windows)
    out = {
        "windows": n,
        "alarm_rate": alarms / n,
        "alarms": alarms,
        "drift_alarm_rate": drift_alarms / n,
        "min_p": min_p,
    }
    if watch:
        out.update(detection=hits / n, drift_rate=drifted / n, psi=float(np.mean(psis)))
    return out


def multinomial_windows(
    synth: Synth,
    refs: dict[str, Binned],
    n: int,
    count: int,
    rng: np.random.Generator,
    shift: Shift | None = None,
    fresh_reference: bool = False,
) -> list[Window]:
    """``count`` windows of ``n`` rows as multinomial bin counts from the generator's exact bin probabilities.

    ``fresh_reference``: each window also gets a reference of the same size redrawn the same way (at the same edges),
    so that the rate is the test's level over references, not the level given this one reference sample.
    """
    draws, ref_draws = {}, {}
    for name, ref in refs.items():
        p = synth.bin_probs(name, ref, shift)
        draws[name] = rng.multinomial(n, p / p.sum(), size=count)
        if fresh_reference:
            p0 = synth.bin_probs(name, ref)
            ref_draws[name] = rng.multinomial(ref.rows, p0 / p0.sum(), size=count)
    out = []
    for i in range(count):
        window_refs = (
            {
                name: Binned(
                    counts=tuple(int(v) for v in ref_draws[name][i]), edges=ref.edges, categories=ref.categories
                )
                for name, ref in refs.items()
            }
            if fresh_reference
            else refs
        )
        out.append((window_refs, {name: tuple(int(v) for v in draws[name][i]) for name in refs}))
    return out


def row_windows(
    synth: Synth, refs: dict[str, Binned], n: int, count: int, rng: np.random.Generator, shift: Shift | None = None
) -> list[Window]:
    """``count`` windows of ``n`` generated rows, counted with ``Binned.count``."""
    out = []
    for _ in range(count):
        frame = synth.frame(n, rng, shift)
        out.append((refs, {name: ref.count(frame[name]) for name, ref in refs.items()}))
    return out


def goodness_of_fit(synth: Synth, name: str, ref: Binned) -> float:
    """p-value of the reference's counts under the generator's bin probabilities (checks :meth:`Synth.bin_probs`)."""
    p = synth.bin_probs(name, ref)
    live = p > 0
    if live.sum() < 2:
        return 1.0
    return float(sps.chisquare(np.asarray(ref.counts)[live], p[live] / p[live].sum() * ref.rows).pvalue)


def binomial_p_above(k: int, n: int, rate: float = ALPHA) -> float:
    """One-sided p-value of k alarms in n windows if the true rate were ``rate`` (small: evidence it is above)."""
    return float(sps.binomtest(k, n, rate, alternative="greater").pvalue)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> list[float]:
    """The exact (Clopper-Pearson) confidence interval of a rate of k in n."""
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(sps.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - a, k + 1, n - k))
    return [round(lo, 5), round(hi, 5)]


# --- the bench ------------------------------------------------------------------------------------------------------


IMPORT_SCRIPT = """
import time
t = time.perf_counter()
import pandas, scipy.stats
from ativo.monitor.profile import Binned
from ativo.monitor.stats import judge
print(time.perf_counter() - t)
"""


def import_seconds() -> float:
    """What Ativo's side imports (pandas, scipy.stats, the monitor's modules), in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the reference and of the current window")
    parser.add_argument("--windows", type=int, default=10_000, help="multinomial windows per sample size (≥ 200)")
    parser.add_argument("--row-windows", type=int, default=500, help="real-row windows of each cross-check")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    spec = load_spec(SPEC)
    threshold = spec.monitor.psi_threshold
    synth = Synth(spec)
    rng = np.random.default_rng(args.seed)
    delta = SHIFT_SIGMAS * synth.sd(SHIFT_FEATURE)
    shift = Shift(
        numeric={SHIFT_FEATURE: delta}, category={CATEGORY_FEATURE: (CATEGORY_FROM, CATEGORY_TO, CATEGORY_POINTS)}
    )
    result: dict[str, Any] = {
        "bench": "drift",
        "cores": os.cpu_count(),
        "rows": args.rows,
        "features": len(synth.features),
        "seed": args.seed,
        "alpha": ALPHA,
        "psi_threshold": threshold,
    }

    # 1. speed, on the same frames for every side (written to Parquet, read back)
    tmp = Path(tempfile.mkdtemp(prefix="ativo-bench-drift-"))
    try:
        t = time.perf_counter()
        ref_path, cur_path = tmp / "reference.parquet", tmp / "current.parquet"
        synth.frame(args.rows, rng).to_parquet(ref_path, index=False)
        synth.frame(args.rows, rng, shift).to_parquet(cur_path, index=False)
        reference, current = pd.read_parquet(ref_path), pd.read_parquet(cur_path)
        result["generate_s"] = round(time.perf_counter() - t, 2)
        assert isinstance(current["workclass"].dtype, pd.CategoricalDtype)

        t = time.perf_counter()
        refs = profile(synth, reference)
        result["profile_s"] = round(time.perf_counter() - t, 4)
        result["ativo_import_s"] = round(import_seconds(), 2)
        t = time.perf_counter()
        ativo_run(refs, current.head(1_000), threshold)  # first-call costs (scipy's lazy imports)
        result["ativo_warmup_s"] = round(time.perf_counter() - t, 4)
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            counts, verdicts = ativo_run(refs, current, threshold)
            runs.append(time.perf_counter() - t)
        result["ativo_s"], result["ativo_best_s"] = round(runs[0], 4), round(min(runs), 4)
        result["peak_rss_mb"] = round(rss_mb(), 1)
        tracemalloc.start()
        ativo_run(refs, current, threshold)
        result["ativo_traced_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
        tracemalloc.stop()

        runs = []
        for _ in range(3):
            t = time.perf_counter()
            base = baseline_run(refs, current)
            baseline_holm({n: v[2] for n, v in base.items()}, ALPHA)
            runs.append(time.perf_counter() - t)
        result["baseline_s"], result["baseline_best_s"] = round(runs[0], 4), round(min(runs), 4)
        by_name = {d.name: d for d in verdicts}
        result["max_psi_abs_diff"] = max(abs(by_name[n].psi - base[n][1]) for n in refs)
        result["max_p_abs_diff"] = max(abs(by_name[n].p_value - base[n][2]) for n in refs)
        result["counts_equal"] = all(tuple(int(v) for v in base[n][0]) == counts[n] for n in refs)
        result["significant_equal"] = {d.name for d in verdicts if d.significant} == baseline_holm(
            {n: v[2] for n, v in base.items()}, ALPHA
        )
        result["ativo_window"] = {
            d.name: {
                "psi": round(d.psi, 5),
                "p": float(f"{d.p_value:.3g}"),
                "significant": d.significant,
                "drifted": d.drifted,
            }
            for d in verdicts
        }
        print(
            f"reference and window: {args.rows:,} × {len(synth.features)} each (window: {SHIFT_FEATURE} "
            f"+{SHIFT_SIGMAS} σ, {CATEGORY_FEATURE} {CATEGORY_POINTS:.0%} {CATEGORY_FROM} → {CATEGORY_TO}); "
            f"generated + Parquet round trip in {result['generate_s']} s"
        )
        print(
            f"ativo: profile {result['profile_s']:.3f} s once; a run (count + judge) {result['ativo_s']:.3f} s "
            f"(best of 3 {result['ativo_best_s']:.3f} s); peak RSS {result['peak_rss_mb']:.0f} MB, count + judge "
            f"allocate {result['ativo_traced_peak_mb']:.0f} MB"
        )
        result["untestable_features"] = [n for n, ref in refs.items() if len(ref.counts) <= 2]
        flagged = [f"{d.name} (PSI {d.psi:.3f}, p {d.p_value:.2g})" for d in verdicts if d.significant]
        print(
            f"  significant after Holm: {', '.join(flagged) or 'none'}; drifted (PSI ≥ {threshold:g}): "
            f"{', '.join(d.name for d in verdicts if d.drifted) or 'none'}"
        )
        if result["untestable_features"]:
            print(
                f"  one bin only, so never tested: {', '.join(result['untestable_features'])} (every quantile "
                "edge of the reference equals its minimum)"
            )
        print(
            f"baseline (numpy/scipy): {result['baseline_s']:.3f} s; |ΔPSI| ≤ {result['max_psi_abs_diff']:.2e}, "
            f"|Δp| ≤ {result['max_p_abs_diff']:.2e}, counts equal: {result['counts_equal']}, Holm verdicts equal: "
            f"{result['significant_equal']}"
        )
        del reference, current

        result.update(evidently_s=None, speedup_vs_evidently=None, speedup_incl_profile=None)
        if args.skip_evidently:
            result["evidently_note"] = "skipped (--skip-evidently)"
            print("evidently: skipped")
        else:
            python, venv_s, note = evidently_venv()
            result["evidently_venv_s"], result["evidently_note"] = round(venv_s, 1), note
            try:
                ev = run_evidently(python, ref_path, cur_path, synth) if python else None
            except (RuntimeError, subprocess.TimeoutExpired, ValueError) as e:
                ev, note = None, f"the Evidently run failed: {e}"
                result["evidently_note"] = note
            if ev is None:
                print(f"evidently: NOT MEASURED — {note}")
            else:
                result.update(
                    evidently_version=ev["version"],
                    evidently_pandas=ev["pandas"],
                    evidently_s=round(ev["total_s"], 3),
                    evidently_run_s=round(ev["run_s"], 3),
                    evidently_dataset_s=round(ev["dataset_s"], 3),
                    evidently_import_s=round(ev["import_s"], 2),
                    evidently_peak_rss_mb=round(ev["peak_rss_mb"], 1),
                    speedup_vs_evidently=round(ev["total_s"] / result["ativo_s"], 1),
                    speedup_incl_profile=round(ev["total_s"] / (result["ativo_s"] + result["profile_s"]), 1),
                    evidently_drifted=sorted(c for c, v in ev["columns"].items() if v["drifted"]),
                    evidently_window={
                        c: {"method": v["method"], "value": round(v["value"], 5), "drifted": v["drifted"]}
                        for c, v in ev["columns"].items()
                    },
                )
                print(
                    f"evidently {ev['version']} (pandas {ev['pandas']}, venv {note} in {venv_s:.0f} s): "
                    f"{ev['total_s']:.2f} s (Dataset {ev['dataset_s']:.2f} s + run {ev['run_s']:.2f} s; import "
                    f"{ev['import_s']:.1f} s apart; peak RSS {ev['peak_rss_mb']:.0f} MB) → Ativo is "
                    f"{result['speedup_vs_evidently']:.0f}× faster ({result['speedup_incl_profile']:.0f}× counting "
                    f"the profile too)"
                )
                print(f"  Evidently's drifted columns: {', '.join(result['evidently_drifted']) or 'none'}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # 2. false alarms on stationary windows; cross-checked with real generated rows
    result["bin_probs_min_p"] = float(f"{min(goodness_of_fit(synth, n, ref) for n, ref in refs.items()):.3g}")
    stationary: dict[str, Any] = {}
    t = time.perf_counter()
    for n in SIZES:
        sim = judge_windows(multinomial_windows(synth, refs, n, args.windows, rng), threshold)
        fresh = judge_windows(multinomial_windows(synth, refs, n, args.windows, rng, fresh_reference=True), threshold)
        entry = {
            "windows": sim["windows"],
            "alarms": sim["alarms"],
            "alarm_rate": sim["alarm_rate"],
            "ci95": clopper_pearson(sim["alarms"], sim["windows"]),
            "p_above_1pct": round(binomial_p_above(sim["alarms"], sim["windows"]), 3),
            "drift_alarm_rate": sim["drift_alarm_rate"],
            "fresh_reference_alarm_rate": fresh["alarm_rate"],
            "fresh_reference_ci95": clopper_pearson(fresh["alarms"], fresh["windows"]),
        }
        if n <= 10_000:
            real = judge_windows(row_windows(synth, refs, n, args.row_windows, rng), threshold)
            entry.update(
                rows_windows=real["windows"],
                rows_alarm_rate=real["alarm_rate"],
                rows_ks_p=round(float(sps.ks_2samp(sim["min_p"], real["min_p"]).pvalue), 3),
            )
        entry["fresh_reference_p_above_1pct"] = round(binomial_p_above(fresh["alarms"], fresh["windows"]), 3)
        stationary[str(n)] = entry
    result["false_alarm_s"] = round(time.perf_counter() - t, 1)
    result["false_alarm_rate"] = max(e["fresh_reference_alarm_rate"] for e in stationary.values())
    result["false_alarm_rate_by_n"] = {n: e["fresh_reference_alarm_rate"] for n, e in stationary.items()}
    result["false_alarm_rate_given_reference"] = max(e["alarm_rate"] for e in stationary.values())
    result["false_alarm_rate_given_reference_by_n"] = {n: e["alarm_rate"] for n, e in stationary.items()}
    result["false_alarm"] = stationary
    print(
        f"false alarms (a window alarms when any feature is significant after Holm, α = {ALPHA:g}; {args.windows:,} "
        f"multinomial windows per n against this reference, and as many with the reference redrawn too; the "
        f"reference's counts vs the bin probabilities: min GOF p {result['bin_probs_min_p']}):"
    )
    for n, e in stationary.items():
        rows = (
            f"; {e['rows_windows']} real-row windows: {e['rows_alarm_rate']:.1%}, KS p {e['rows_ks_p']}"
            if "rows_windows" in e
            else ""
        )
        print(
            f"  n = {int(n):>7,}: {e['alarm_rate']:.2%} ({e['alarms']}/{e['windows']}, 95 % CI "
            f"{e['ci95'][0]:.2%}–{e['ci95'][1]:.2%}, p(rate > 1 %) {e['p_above_1pct']}); reference redrawn "
            f"{e['fresh_reference_alarm_rate']:.2%}; drifted {e['drift_alarm_rate']:.2%}{rows}"
        )

    # 3. power at n = 50k
    t = time.perf_counter()
    for key, feature, one in (
        ("shift", SHIFT_FEATURE, Shift(numeric={SHIFT_FEATURE: delta})),
        ("category", CATEGORY_FEATURE, Shift(category=shift.category)),
    ):
        sim = judge_windows(multinomial_windows(synth, refs, POWER_N, args.windows, rng, one), threshold, watch=feature)
        real = judge_windows(
            row_windows(synth, refs, POWER_N, max(args.row_windows // 2, 10), rng, one), threshold, watch=feature
        )
        result[f"power_{key}"] = sim["detection"]
        result[f"psi_{key}"] = round(sim["psi"], 4)
        result[f"drift_rate_{key}"] = sim["drift_rate"]
        result[f"power_{key}_rows"] = real["detection"]
    result["power_s"] = round(time.perf_counter() - t, 1)
    result["shift_delta"] = round(delta, 3)
    print(f"power at n = {POWER_N:,} ({args.windows} windows each; detection = the feature significant after Holm):")
    print(
        f"  {SHIFT_FEATURE} +{SHIFT_SIGMAS} σ (+{delta:.2f}): {result['power_shift']:.1%} (real rows "
        f"{result['power_shift_rows']:.0%}); PSI {result['psi_shift']:.3f}, drifted at {threshold:g}: "
        f"{result['drift_rate_shift']:.1%}"
    )
    print(
        f"  {CATEGORY_FEATURE} {CATEGORY_FROM} −{CATEGORY_POINTS:.0%} → {CATEGORY_TO}: "
        f"{result['power_category']:.1%} (real rows {result['power_category_rows']:.0%}); "
        f"PSI {result['psi_category']:.3f}, drifted at {threshold:g}: "
        f"{result['drift_rate_category']:.1%}"
    )

    result["total_s"] = round(time.perf_counter() - started, 1)
    speedup = result["speedup_vs_evidently"]
    targets = [
        ("speedup_50x", "speedup ≥ 50×", None if speedup is None else speedup >= 50),
        ("psi_1e-9", "PSI within 1e-9", result["max_psi_abs_diff"] <= 1e-9),
        ("false_alarms_1pct", "false alarms ≤ 1 % at every n", result["false_alarm_rate"] <= 0.01),
        (
            "false_alarms_consistent",
            "false alarms consistent with ≤ 1 % (binomial p ≥ 0.05 at every n)",
            min(e["fresh_reference_p_above_1pct"] for e in stationary.values()) >= 0.05,
        ),
        (
            "false_alarms_given_reference_1pct",
            "given this one reference, ≤ 1 % at every n (informative)",
            result["false_alarm_rate_given_reference"] <= 0.01,
        ),
        ("power_90pct", "detection ≥ 90 % (both)", min(result["power_shift"], result["power_category"]) >= 0.9),
        ("memory_1gb", "peak RSS ≤ 1 GB", result["peak_rss_mb"] <= 1024),
    ]
    result["targets"] = {key: ok for key, _, ok in targets}
    verdict = {True: "met", False: "MISSED", None: "not measured"}
    print(
        "targets: "
        + "; ".join(f"{label}: {verdict[ok]}" for _, label, ok in targets)
        + f"  (total {result['total_s']} s)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
