"""Reference profiles: what a model version was trained and judged on, summarised once, with no rows in it.

A profile holds, per numeric feature, quantile bin edges of the training split and its counts in those bins (a
missing value has a bin of its own); per categorical feature, the count of each category of the spec (and of
missing); the score distribution on the test split, binned the same way; the per-group rates of the protected
attributes on the test split; and the test AUC and log-loss. A monitoring run compares a window of live rows
against it, paying only for the window (:mod:`ativo.monitor.stats`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.spec import ModelSpec
from ativo.store import prefixes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

PROFILE_ARTIFACT = prefixes.MONITOR_PROFILE
PROFILE_TAG = "ativo.profile_uri"  # the model version tag that links its profile
MISSING = "(missing)"
NUMERIC_BINS = 10
SCORE_BINS = 10


@dataclass(frozen=True)
class Binned:
    """A distribution over bins, with ``counts`` per bin.

    Interior ``edges`` for a numeric value (``len(edges) + 1`` bins, then one for missing), or ``categories`` (the
    spec's, then ``(missing)``).
    """

    counts: tuple[int, ...]
    edges: tuple[float, ...] | None = None
    categories: tuple[str, ...] | None = None

    @property
    def rows(self) -> int:
        """Rows counted."""
        return int(sum(self.counts))

    def count(self, values: Any) -> tuple[int, ...]:
        """The counts of ``values`` in the same bins.

        A category outside the list counts as missing here (the request parser and validation refuse one before it
        gets this far).
        """
        import numpy as np
        import pandas as pd

        if self.edges is not None:
            x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
            missing = np.isnan(x)
            idx = np.searchsorted(np.asarray(self.edges), x[~missing], side="right")
            counts = np.bincount(idx, minlength=len(self.edges) + 1).tolist() + [int(missing.sum())]
            return tuple(int(c) for c in counts)
        assert self.categories is not None
        seen = pd.Series(values).value_counts(dropna=True)  # hashing each value once: fast on any dtype
        counts = [int(seen.get(c, 0)) for c in self.categories[:-1]]
        return (*counts, len(values) - sum(counts))  # missing, and anything outside the list

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {k: list(v) for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Binned:
        """Inverse of :meth:`to_dict`."""
        return cls(
            counts=tuple(int(c) for c in doc["counts"]),
            edges=tuple(float(e) for e in doc["edges"]) if "edges" in doc else None,
            categories=tuple(doc["categories"]) if "categories" in doc else None,
        )


def numeric_bins(values: Any, bins: int = NUMERIC_BINS) -> Binned:
    """Quantile bins of ``values``.

    Ties merge bins (an integer feature with few values gets fewer); when they do, the minimum gets a bin of its own
    and the values above it their own quantiles, so a feature that is mostly one value is still tested on the rest.
    """
    import numpy as np
    import pandas as pd

    x = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64")
    present = x[~np.isnan(x)]
    if len(present) == 0:
        edges: tuple[float, ...] = ()
    else:
        inner = np.linspace(0, 1, bins + 1)[1:-1]
        low = float(present.min())
        qs = np.quantile(present, inner, method="linear")
        # an edge equal to the minimum would leave its bin empty forever: drop it, and duplicates
        found = {float(e) for e in np.unique(qs) if e > low}
        rest = present[present > low]
        if len(found) < len(inner) and len(rest):
            # ties merged bins: a spike (capital_gain is 0 for 92 % of rows) would leave the rest in one bin, never
            # tested; the spike gets a bin of its own and the rest its own quantiles
            found.add(float(np.nextafter(low, np.inf)))
            found.update(float(e) for e in np.unique(np.quantile(rest, inner, method="linear")) if e > low)
        edges = tuple(sorted(found))
    empty = Binned(counts=(), edges=edges)
    return Binned(counts=empty.count(x), edges=edges)


def category_bins(values: Any, categories: tuple[str, ...]) -> Binned:
    """Counts of each category of the spec, then of missing."""
    empty = Binned(counts=(), categories=(*categories, MISSING))
    return Binned(counts=empty.count(values), categories=empty.categories)


@dataclass
class Profile:
    """The reference of one model version (JSON-able; no rows)."""

    spec: str
    version: str
    dataset_version: str | None
    train_rows: int
    features: dict[str, Binned]
    scores: Binned
    metrics: dict[str, float | None]
    groups: dict[str, dict[str, dict[str, float | None]]] = field(default_factory=dict)
    score_mean: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "spec": self.spec,
            "version": self.version,
            "dataset_version": self.dataset_version,
            "train_rows": self.train_rows,
            "features": {k: v.to_dict() for k, v in self.features.items()},
            "scores": self.scores.to_dict(),
            "metrics": self.metrics,
            "groups": self.groups,
            "score_mean": self.score_mean,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            spec=doc["spec"],
            version=str(doc["version"]),
            dataset_version=doc.get("dataset_version"),
            train_rows=int(doc["train_rows"]),
            features={k: Binned.from_dict(v) for k, v in doc["features"].items()},
            scores=Binned.from_dict(doc["scores"]),
            metrics=dict(doc["metrics"]),
            groups=dict(doc.get("groups") or {}),
            score_mean=float(doc.get("score_mean", 0.0)),
        )


def build_profile(
    spec: ModelSpec,
    version: str,
    dataset_version: str | None,
    train: pd.DataFrame,
    test: pd.DataFrame,
    test_scores: np.ndarray,
    test_labels: np.ndarray,
) -> Profile:
    """The reference profile of a version from its training split and its test split's scores and labels."""
    import numpy as np
    from sklearn.metrics import log_loss, roc_auc_score

    features: dict[str, Binned] = {}
    for f in spec.data_schema.features:
        column = train[f.name]
        features[f.name] = (
            category_bins(column, tuple(f.categories or ())) if f.type == "category" else numeric_bins(column)
        )
    scores = numeric_bins(test_scores, SCORE_BINS)
    y = np.asarray(test_labels).astype(int)
    decided = (np.asarray(test_scores) >= spec.gates.decision_threshold).astype(int)
    groups: dict[str, dict[str, dict[str, float | None]]] = {}
    for attr in spec.fairness_attributes:
        view: dict[str, dict[str, float | None]] = {}
        for value, idx in test.groupby(test[attr].astype(str), observed=True).indices.items():
            yy, dd = y[idx], decided[idx]
            pos, neg = int(yy.sum()), int(len(yy) - yy.sum())
            view[str(value)] = {
                "rows": len(idx),
                "positives": pos,
                "selection_rate": float(dd.mean()),
                "tpr": float(dd[yy == 1].mean()) if pos else None,
                "fpr": float(dd[yy == 0].mean()) if neg else None,
            }
        groups[attr] = view
    from ativo.monitor.performance import expected_auc

    metrics = {
        "auc": float(roc_auc_score(y, test_scores)) if len(set(y)) > 1 else None,
        # what the label-free estimate gives on the test split itself: the like-for-like reference for it
        "expected_auc": float(expected_auc(test_scores)),
        "logloss": float(log_loss(y, np.clip(test_scores, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "test_rows": float(len(y)),
    }
    return Profile(
        spec=spec.name,
        version=str(version),
        dataset_version=dataset_version,
        train_rows=len(train),
        features=features,
        scores=scores,
        metrics=metrics,
        groups=groups,
        score_mean=float(np.mean(test_scores)),
    )
