"""Privacy: how much the model gives away about who was in its training data, and what the run lets out.

- **Membership inference** (loss-threshold attack, Yeom et al. 2018): an attacker who sees the model's score and the
  true label guesses "member" when the loss is small. Its threshold is fitted on one half of a balanced sample of
  training rows and unseen test rows, and its advantage (true-positive rate minus false-positive rate) is measured
  on the other half, so the figure is not flattered by fitting on what it scores.
- **Features**: no identifier or PII column of the schema is a model input.
- **Artifacts**: no logged artifact of the run holds a training row's record or subject id, or a table of training
  rows.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ativo.data.features import LABEL
from ativo.evaluate.intervals import proportion_difference
from ativo.evaluate.results import Check, GateResult
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ativo.data.split import Split
    from ativo.model.served import ServedModel

TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".csv", ".html", ".md", ".log", ".tsv", "MLmodel")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".json")


def _losses(model: ServedModel, frame: pd.DataFrame) -> np.ndarray:
    import numpy as np

    p = np.clip(model.predict_frame(frame).astype("float64"), 1e-7, 1 - 1e-7)
    y = frame[LABEL].to_numpy()
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def membership_advantage(
    model: ServedModel, members: pd.DataFrame, outsiders: pd.DataFrame, samples: int, seed: int = 0
) -> dict[str, float]:
    """The loss-threshold attack's advantage on held-out halves (see the module doc)."""
    import numpy as np

    n = min(samples // 2, len(members), len(outsiders))
    m = _losses(model, members.sample(n, random_state=seed))
    o = _losses(model, outsiders.sample(n, random_state=seed))
    half = n // 2
    fit_m, test_m, fit_o, test_o = m[:half], m[half:], o[:half], o[half:]
    candidates = np.unique(np.concatenate([fit_m, fit_o]))
    best, threshold = -1.0, float("inf")
    for t in candidates[:: max(1, len(candidates) // 512)]:
        adv = float((fit_m <= t).mean() - (fit_o <= t).mean())
        if adv > best:
            best, threshold = adv, float(t)
    hits_m, hits_o = int((test_m <= threshold).sum()), int((test_o <= threshold).sum())
    tpr, fpr = hits_m / max(1, len(test_m)), hits_o / max(1, len(test_o))
    return {
        "members_flagged": hits_m,
        "members_tested": len(test_m),
        "outsiders_flagged": hits_o,
        "outsiders_tested": len(test_o),
        "advantage": tpr - fpr,
        "attack_tpr": tpr,
        "attack_fpr": fpr,
        "threshold_loss": threshold,
        "member_mean_loss": float(m.mean()),
        "outsider_mean_loss": float(o.mean()),
        "rows_each": n,
    }


def identifier_features(spec: ModelSpec, model: ServedModel) -> list[str]:
    """Model inputs that are identifiers or PII columns of the schema (there must be none)."""
    names = list(model.booster.feature_names or [])
    forbidden = set(spec.data_schema.identifiers) | {spec.data_schema.event_time, spec.data_schema.target.column}
    return sorted(set(names) & forbidden)


def artifact_leaks(spec: ModelSpec, directory: Path, train: pd.DataFrame) -> list[str]:
    """Artifacts (files under ``directory``) that hold a training row: an id, or a table of training rows."""
    schema = spec.data_schema
    ids = set(train[schema.record_id].astype(str)) | set(train[schema.subject].astype(str))
    features = schema.feature_names
    leaks: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = str(path.relative_to(directory))
        data = path.read_bytes()
        if path.name.endswith(TEXT_SUFFIXES):
            text = data.decode("utf-8", errors="ignore")
            hit = next((i for i in _tokens(text) if i in ids), None)
            if hit is not None:
                leaks.append(f"{rel} contains training id {hit!r}")
                continue
        if path.name.endswith(TABLE_SUFFIXES):
            rows = _training_rows_in(path, data, train, features)
            if rows:
                leaks.append(f"{rel} holds {rows} training row(s)")
    return leaks


def _tokens(text: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z0-9_\-]{4,64}", text))


def _training_rows_in(path: Path, data: bytes, train: pd.DataFrame, features: list[str]) -> int:
    import pandas as pd

    try:
        if path.suffix == ".parquet":
            table = pd.read_parquet(io.BytesIO(data))
        elif path.suffix == ".json":
            doc = json.loads(data)
            if isinstance(doc, dict) and "columns" in doc and "data" in doc:  # MLflow's split orient
                table = pd.DataFrame(doc["data"], columns=doc["columns"])
            elif isinstance(doc, list) and doc and isinstance(doc[0], dict):
                table = pd.DataFrame(doc)
            else:
                return 0
        else:
            table = pd.read_csv(io.BytesIO(data), sep="\t" if path.suffix == ".tsv" else ",")
    except Exception:  # not a table: nothing to compare
        return 0
    shared = [c for c in features if c in table.columns]
    if len(shared) < max(3, len(features) // 2):
        return 0
    left = table[shared].astype(str).drop_duplicates()
    right = train[shared].astype(str).drop_duplicates()
    return int(len(left.merge(right, on=shared, how="inner")))


def privacy_gate(spec: ModelSpec, model: ServedModel, split: Split, artifacts: Path | None = None) -> GateResult:
    """Membership advantage against the spec's maximum, no identifier feature, no training row in the artifacts.

    Args:
        spec: thresholds (``gates.privacy``).
        model: the model.
        split: its training rows (members) and test rows (outsiders).
        artifacts: a local copy of every artifact the run logged; None skips that check (and says so).
    """
    cfg = spec.gates.privacy
    mia = membership_advantage(model, split.train, split.test, cfg.samples)
    ids = identifier_features(spec, model)
    leaks = artifact_leaks(spec, artifacts, split.train) if artifacts is not None else []
    failures = []
    if ids:
        failures.append(f"identifier/PII column(s) {', '.join(ids)} are model features")
    if leaks:
        failures.append("raw training data in logged artifacts: " + "; ".join(leaks[:5]))
    advantage = proportion_difference(
        int(mia["members_flagged"]),
        int(mia["members_tested"]),
        int(mia["outsiders_flagged"]),
        int(mia["outsiders_tested"]),
        spec.gates.confidence,
    )
    checks = [
        Check.bounded(
            "membership_advantage",
            advantage,
            cfg.max_membership_advantage,
            "max",
            f"a loss-threshold attacker tells training rows from unseen ones: TPR {mia['attack_tpr']:.2f} vs "
            f"FPR {mia['attack_fpr']:.2f}; mean loss {mia['member_mean_loss']:.3f} on training rows, "
            f"{mia['outsider_mean_loss']:.3f} on unseen rows",
        )
    ]
    return GateResult.judge(
        "privacy",
        checks,
        extra_failures=failures,
        ok=f"membership advantage {mia['advantage']:.3f}, no identifier among the features, "
        + ("no training row in the run's artifacts" if artifacts is not None else "artifacts not scanned"),
        details={
            "membership": mia,
            "identifier_features": ids,
            "artifact_leaks": leaks,
            "artifacts_scanned": artifacts is not None,
        },
    )
