"""Incidents become regression tests: a wrong production decision, traced and kept, that every candidate must fix.

``ativo incident PREDICTION_ID --expected LABEL --note …`` (or the Ativo page) traces the decision to its model
version, run and dataset version (:func:`ativo.ops.lineage.trace`), stores the request's features with the expected
label in the spec's regression set (the platform DB), audits it, and pages on-call with the lineage. From then on
the ``regression`` gate scores every candidate on every case, through the serving path and its decision rule, and
fails it when more than ``gates.regression.max_wrong_fraction`` of the cases are decided wrongly.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from ativo.config import Settings
from ativo.errors import AtivoError, SpecError
from ativo.evaluate.results import Check, GateResult
from ativo.model.served import ServedModel
from ativo.spec import ModelSpec
from ativo.store.db import regression_cases, utcnow

log = logging.getLogger(__name__)


class IncidentError(AtivoError):
    """An incident cannot be recorded (a bad field, an unknown prediction, or a conflicting earlier record)."""


def parse_label(spec: ModelSpec, value: Any) -> int:
    """The expected label as 0/1: ``0``/``1`` or the spec's own class names (its positive label is 1).

    Raises:
        IncidentError: naming the field and the values it accepts.
    """
    text = str(value).strip()
    if text in ("0", "1"):
        return int(text)
    target = spec.data_schema.target
    names = {target.positive.strip(): 1, target.negative.strip(): 0}
    if text in names:
        return names[text]
    raise IncidentError(
        f"expected: {value!r} is not a label of {spec.name}; give 1 or {target.positive!r} "
        f"(positive), 0 or {target.negative!r} (negative)"
    )


@dataclass(frozen=True)
class RegressionCase:
    """One kept incident: the decision production made, what it should have been, and who said so."""

    id: int
    spec: str
    prediction_id: str
    features: dict[str, Any]
    expected: int
    decision: int
    score: float
    model_version: str
    dataset_version: str | None
    subject: str | None
    note: str
    actor: str
    created_at: dt.datetime


def recent_cases(engine: Engine, limit: int) -> list[RegressionCase]:
    """The ``limit`` latest cases of every spec's regression set, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(select(regression_cases).order_by(regression_cases.c.id.desc()).limit(limit)).mappings()
        return [RegressionCase(**r) for r in rows]


def cases(engine: Engine, spec_name: str) -> list[dict[str, Any]]:
    """The spec's regression set, oldest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(regression_cases).where(regression_cases.c.spec == spec_name).order_by(regression_cases.c.id)
            )
            .mappings()
            .all()
        )
    return [dict(r) for r in rows]


def keep_incident(
    settings: Settings, chain: dict[str, Any], expected: Any, note: str, actor: str, spec_name: str | None = None
) -> dict[str, Any]:
    """Keep one traced decision in its spec's regression set; returns the case and its lineage.

    ``chain`` is the decision's lineage (:func:`ativo.ops.lineage.trace`); :func:`ativo.ops.incidents.record_incident`
    traces and calls this. Recording the same prediction again with the same label is acknowledged (nothing
    changes); with the other label it is refused, since the first record may already have judged candidates.

    Raises:
        IncidentError: an empty note, a bad label, a model of no valid spec, or a conflicting earlier record.
    """
    from ativo import audit
    from ativo.spec import get_spec
    from ativo.store.db import get_engine, write_lock

    note = (note or "").strip()
    if not note:
        raise IncidentError("note: say what was wrong with the decision (it is kept with the case)")
    row, model = chain["prediction"], chain["model"]
    try:
        spec = get_spec(spec_name or _spec_of(settings, chain), settings.specs_dir)
    except SpecError as err:
        raise IncidentError(f"prediction_id: its model {model['name']!r} belongs to no valid spec: {err}") from None
    label = parse_label(spec, expected)
    engine = get_engine(settings.db_url)
    case = {
        "spec": spec.name,
        "prediction_id": row["prediction_id"],
        "features": chain["features"],
        "expected": label,
        "decision": int(row["decision"]),
        "score": float(row["score"]),
        "model_version": str(model["version"]),
        "dataset_version": chain["dataset"].get("tag"),
        "subject": row.get("subject"),
        "note": note,
        "actor": actor,
    }
    with engine.begin() as conn:
        write_lock(conn, f"regression/{spec.name}")
        old = (
            conn.execute(
                select(regression_cases).where(
                    regression_cases.c.spec == spec.name, regression_cases.c.prediction_id == case["prediction_id"]
                )
            )
            .mappings()
            .first()
        )
        if old is not None:
            if old["expected"] != label:
                raise IncidentError(
                    f"expected: prediction {case['prediction_id']} is already recorded as "
                    f"incident {old['id']} expecting {old['expected']}, not {label}"
                )
            return {"case": dict(old), "lineage": chain, "created": False}
        inserted = conn.execute(insert(regression_cases).values(**case, created_at=utcnow())).inserted_primary_key
        assert inserted is not None
        case_id = inserted[0]
    case["id"] = case_id
    audit.append(
        engine,
        "incident_recorded",
        actor,
        spec.name,
        {
            "case": case_id,
            "prediction_id": case["prediction_id"],
            "expected": label,
            "decision": case["decision"],
            "model_version": case["model_version"],
            "dataset_version": case["dataset_version"],
            "note": note,
        },
    )
    return {"case": case, "lineage": chain, "created": True}


def _spec_of(settings: Settings, chain: dict[str, Any]) -> str:
    from ativo.spec import load_specs

    by_model = {s.registered_model_name: s.name for s in load_specs(settings.specs_dir)[0]}
    return by_model.get(chain["model"]["name"], chain["model"]["name"])


def forget_subjects(engine: Engine, spec_name: str, pseudonyms: list[str]) -> int:
    """Delete the cases of erased subjects (by the pseudonym the prediction log carried); returns how many."""
    if not pseudonyms:
        return 0
    with engine.begin() as conn:
        res = conn.execute(
            delete(regression_cases).where(
                regression_cases.c.spec == spec_name, regression_cases.c.subject.in_(pseudonyms)
            )
        )
    return int(res.rowcount or 0)


def regression_gate(spec: ModelSpec, model: ServedModel, recorded: list[dict[str, Any]]) -> GateResult:
    """Decide every recorded case with the candidate, as serving would; fail beyond the spec's tolerance."""
    tolerance = spec.gates.regression.max_wrong_fraction
    if not recorded:
        return GateResult(
            gate="regression",
            passed=True,
            reason="no incident is recorded for this spec yet",
            metrics={"cases": 0},
            thresholds={"wrong_fraction": {"max": tolerance}},
        )
    matrix = model.encode([c["features"] for c in recorded])
    scores = model.score(matrix)
    threshold = spec.gates.decision_threshold
    decisions = (scores >= threshold).astype(int)
    if model.policy is not None:
        decisions, _ = model.policy.decide(matrix, scores, [c["prediction_id"] for c in recorded])
    wrong = [c for c, d in zip(recorded, decisions, strict=True) if int(d) != int(c["expected"])]
    detail = [
        {
            "case": c["id"],
            "prediction_id": c["prediction_id"],
            "expected": c["expected"],
            "decided": int(d),
            "score": round(float(s), 6),
            "note": c["note"],
        }
        for c, d, s in zip(recorded, decisions, scores, strict=True)
    ]
    fraction = len(wrong) / len(recorded)
    check = Check(
        "wrong_fraction",
        fraction,
        tolerance,
        "max",
        explain=f"{len(wrong)} of {len(recorded)} recorded incidents decided wrongly: "
        + ", ".join(f"case {c['id']} ({c['note'][:60]})" for c in wrong[:5]),
    )
    return GateResult.judge(
        "regression",
        [check],
        ok=f"decides all {len(recorded)} recorded incident(s) "
        f"within tolerance ({len(wrong)} wrong, at most {tolerance:.0%} allowed)",
        metrics={"cases": len(recorded), "wrong": len(wrong)},
        details={"cases": detail},
    )
