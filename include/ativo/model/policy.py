"""Per-group decision thresholds from the fairness gate's mitigation (fairlearn's ThresholdOptimizer).

When a spec sets ``gates.fairness.mitigation: threshold_optimizer``, the gate judges the mitigated decisions and
logs the policy that produced them (``gates/decision_policy.json``, tag ``ativo.decision_policy_uri``); serving
applies that same policy, so callers get the decisions the gate approved. Each group (the fairness attributes'
values joined by `` & ``) has two threshold rules and the probability ``p0`` of the first; the choice is drawn from
a stable hash of the request key, so a caller always gets the same decision for the same score. A group the policy
does not know falls back to the spec's global threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ativo.hashing import bucket
from ativo.spec import ModelSpec

SEP = " & "


class DecisionPolicy:
    """A validated per-group threshold policy."""

    def __init__(self, spec: ModelSpec, doc: dict[str, Any]) -> None:
        attrs = doc.get("attributes")
        groups = doc.get("groups")
        if not isinstance(attrs, list) or not attrs or not isinstance(groups, dict):
            raise ValueError("decision policy: fields 'attributes' (a list) and 'groups' (an object) are required")
        names = spec.data_schema.feature_names
        unknown = [a for a in attrs if a not in names]
        if unknown:
            raise ValueError(f"decision policy: attributes {unknown} are not features of {spec.name}")
        for group, rule in groups.items():
            for op in ("operation0", "operation1"):
                if rule.get(op, {}).get("operator") not in (">", "<"):
                    raise ValueError(f"decision policy: groups.{group}.{op}.operator must be '>' or '<'")
            if not 0 <= float(rule.get("p0", -1)) <= 1:
                raise ValueError(f"decision policy: groups.{group}.p0 must be a probability")
        self.spec = spec
        self.kind = str(doc.get("kind", "threshold_optimizer"))
        self.attributes = list(attrs)
        self.columns = [names.index(a) for a in attrs]
        self.categories = [spec.data_schema.feature(a).categories or () for a in attrs]
        self.groups = groups
        self.default = spec.gates.decision_threshold

    def group_of(self, row: np.ndarray) -> str:
        """The group key of one encoded row (``Male & White``)."""
        values = []
        for col, cats in zip(self.columns, self.categories, strict=True):
            v = row[col]
            values.append("nan" if np.isnan(v) or not cats else str(cats[int(v)]))
        return SEP.join(values)

    def decide(self, matrix: np.ndarray, scores: np.ndarray, keys: list[str]) -> tuple[np.ndarray, list[float]]:
        """Decisions and the threshold each row met (the global one for a group the policy does not know)."""
        out = np.empty(len(scores), dtype=np.int8)
        used: list[float] = []
        for i, (row, score, key) in enumerate(zip(matrix, scores, keys, strict=True)):
            rule = self.groups.get(self.group_of(row))
            if rule is None:
                out[i] = score >= self.default
                used.append(self.default)
                continue
            first = bucket(key, "decision-policy") / 100 < float(rule["p0"])
            op = rule["operation0" if first else "operation1"]
            threshold = float(op["threshold"])
            out[i] = score > threshold if op["operator"] == ">" else score < threshold
            used.append(threshold)
        return out, used
