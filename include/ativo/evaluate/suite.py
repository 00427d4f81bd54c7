"""The gate suite: run one gate or all of them on a registered version, then publish the decision.

One gate is one Airflow task; all of them in one process serve a notebook or a benchmark.

:func:`run_gate` loads the version through serving's loader and its pinned dataset version's seeded split, and
calls the gate's plain function. :func:`publish` writes the gate report (JSON) and the model card (HTML) to the
model's MLflow run, links them from the model version, and either sets the registry alias ``challenger`` (every
gate passed) or tags the version rejected with its reasons.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.config import Settings
from ativo.evaluate.results import GateResult
from ativo.spec import ModelSpec
from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.data.split import Split
    from ativo.model.artifact import RegisteredVersion
    from ativo.model.served import ServedModel

log = logging.getLogger(__name__)

GATES = ("performance", "champion", "fairness", "robustness", "privacy", "explainability", "infra", "regression")
CHALLENGER, CHAMPION = "challenger", "champion"


@dataclass
class Candidate:
    """A registered version and the data it is judged on."""

    spec: ModelSpec
    settings: Settings
    model: ServedModel
    split: Split
    baseline: str | None = None  # the version the champion gate compares with (None: the serving champion)


def load_candidate(spec: ModelSpec, settings: Settings, version: str | int) -> Candidate:
    """The version as serving loads it, and the seeded split of the dataset version it was trained on."""
    from ativo.data.training import load_split
    from ativo.model.artifact import load_version

    model = load_version(spec, settings.mlflow_tracking_uri, version)
    _, split, _ = load_split(spec, settings, model.dataset_version)
    return Candidate(spec=spec, settings=settings, model=model, split=split)


def _champion(c: Candidate) -> tuple[ServedModel | None, set[str] | None]:
    """The serving champion (unless it is this very version) and the record ids it trained or early-stopped on.

    A candidate with a ``baseline`` (an erasure retraining, compared with the version it replaces) is compared with
    that version instead.
    """
    from mlflow.exceptions import MlflowException

    from ativo.model.artifact import registered_version
    from ativo.model.registry import current as authorized

    # The serving champion is what the signed promotion record says, never MLflow's alias (which anyone who reaches
    # MLflow could point at a weak version, or delete, to let a worse challenger through).
    baseline = c.baseline or (r.version if (r := authorized(c.spec, c.settings).routes.get(CHAMPION)) else None)
    if baseline is None:
        return None, None
    try:
        current = registered_version(c.spec, c.settings.mlflow_tracking_uri, baseline)
    except MlflowException:
        return None, None
    if current.version == c.model.version:
        return None, None
    champion = load_candidate(c.spec, c.settings, current.version)
    rid = c.spec.data_schema.record_id
    return champion.model, set(champion.split.train[rid].astype(str)) | set(champion.split.valid[rid].astype(str))


def _run_artifacts(c: Candidate, dest: Path) -> Path:
    """Every artifact of the version's training run and of its logged model, downloaded under ``dest``."""
    from mlflow.artifacts import download_artifacts

    from ativo.model.client import mlflow_client

    client = mlflow_client(c.settings)
    mv = client.get_model_version(c.spec.registered_model_name, c.model.version)
    from ativo.model.artifact import artifact_location

    source = artifact_location(client.tracking_uri, str(mv.source))
    download_artifacts(artifact_uri=source, dst_path=str(dest / "model"), tracking_uri=client.tracking_uri)
    if mv.run_id:
        download_artifacts(
            run_id=mv.run_id, artifact_path="", dst_path=str(dest / "run"), tracking_uri=client.tracking_uri
        )
    return dest


def request_rows(spec: ModelSpec, frame: Any, n: int = 200) -> list[dict[str, Any]]:
    """Test rows shaped like API requests (feature name → plain Python value, missing as None)."""
    import pandas as pd

    rows = frame[spec.data_schema.feature_names].head(n)
    return [
        {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for k, v in r.items()}
        for r in rows.to_dict(orient="records")
    ]


def _gate(name: str) -> Callable[[Candidate], GateResult]:
    from ativo.evaluate.explain import explainability_gate
    from ativo.evaluate.fairness import fairness_gate
    from ativo.evaluate.infra import infra_gate
    from ativo.evaluate.performance import champion_gate, performance_gate, replacement_gate
    from ativo.evaluate.privacy import privacy_gate
    from ativo.evaluate.robustness import robustness_gate

    def champion(c: Candidate) -> GateResult:
        if c.baseline:  # an erasure retraining: judged against the version it replaces
            from ativo.model.client import mlflow_client

            client = mlflow_client(c.settings)
            run_id = client.get_model_version(c.spec.registered_model_name, c.baseline).run_id
            recorded = client.get_run(run_id).data.metrics.get("test_auc") if run_id else None
            if recorded is not None:
                return replacement_gate(c.spec, c.model, c.split, c.baseline, float(recorded))
        current, seen = _champion(c)
        return champion_gate(c.spec, c.model, c.split, current, seen)

    def privacy(c: Candidate) -> GateResult:
        with tempfile.TemporaryDirectory() as tmp:
            return privacy_gate(c.spec, c.model, c.split, _run_artifacts(c, Path(tmp)))

    def regression(c: Candidate) -> GateResult:
        from ativo.evaluate.regression import cases, regression_gate
        from ativo.store.db import get_engine

        return regression_gate(c.spec, c.model, cases(get_engine(c.settings.db_url), c.spec.name))

    def infra(c: Candidate) -> GateResult:
        return infra_gate(c.spec, c.settings.mlflow_tracking_uri, c.model.version, request_rows(c.spec, c.split.test))

    table: dict[str, Callable[[Candidate], GateResult]] = {
        "performance": lambda c: performance_gate(c.spec, c.model, c.split),
        "champion": champion,
        "fairness": lambda c: fairness_gate(c.spec, c.model, c.split),
        "robustness": lambda c: robustness_gate(c.spec, c.model, c.split),
        "privacy": privacy,
        "explainability": lambda c: explainability_gate(c.spec, c.model, c.split),
        "infra": infra,
        "regression": regression,
    }
    if name not in table:
        raise ValueError(f"gate {name!r}: unknown; the gates are {', '.join(GATES)}")
    return table[name]


def run_gate(name: str, candidate: Candidate) -> GateResult:
    """Run one gate on a loaded candidate, timed.

    A test set under ``gates.min_test_rows`` fails every gate that reads it (insufficient evidence); a gate listed in
    ``gates.report_only`` is measured and reported, and its failure does not block (the result says so).
    """
    from ativo.evaluate.results import INSUFFICIENT

    started = time.perf_counter()
    need, have = candidate.spec.gates.min_test_rows, len(candidate.split.test)
    if have < need and name not in ("infra", "regression"):  # these two read no test rows
        result = GateResult(
            gate=name,
            passed=False,
            metrics={"test_rows": have},
            thresholds={"min_test_rows": need},
            reason=f"{INSUFFICIENT}the pinned test set of dataset version "
            f"{candidate.model.dataset_version} has {have} rows; gates.min_test_rows is "
            f"{need}",
        )
    else:
        result = _gate(name)(candidate)
    if name in candidate.spec.gates.report_only:
        result.details["report_only"] = True
        if not result.passed:
            result.passed = True
            result.reason = f"report-only (gates.report_only), would fail: {result.reason}"
    result.seconds = round(time.perf_counter() - started, 3)
    for line in result.check_lines():
        log.info("gate %s: %s", name, line)
    log.info("gate %s: %s — %s (%.1f s)", name, "PASS" if result.passed else "FAIL", result.reason, result.seconds)
    return result


def _unloadable(name: str, err: Exception) -> GateResult:
    return GateResult(
        gate=name, passed=False, reason=f"the registered artifact does not load as serving loads it: {err}"
    )


def gate_version(name: str, spec: ModelSpec, settings: Settings, version: str | int) -> GateResult:
    """One gate on a registered version (what each gate task of the training DAG runs).

    An artifact that serving would refuse (checksum mismatch, a pickle, no native file) fails the gate with that
    reason instead of raising: the verdict must say why, and retrying cannot mend an artifact.
    """
    from ativo.model.artifact import ModelIntegrityError

    try:
        candidate = load_candidate(spec, settings, version)
    except ModelIntegrityError as err:
        return _unloadable(name, err)
    return run_gate(name, candidate)


def gate_versions(
    names: tuple[str, ...] | list[str], spec: ModelSpec, settings: Settings, version: str | int
) -> list[GateResult]:
    """Several gates on one registered version in this process (a gate task of the training DAG), loaded once.

    A gate that raises is run once more (as its own task would have been retried), then fails with the error as its
    reason: a gate that cannot measure must not pass, and the others still judge.
    """
    from ativo.model.artifact import ModelIntegrityError

    try:
        candidate = load_candidate(spec, settings, version)
    except ModelIntegrityError as err:
        return [_unloadable(name, err) for name in names]
    results = []
    for name in names:
        for attempt in (1, 2):
            try:
                results.append(run_gate(name, candidate))
                break
            except Exception as err:
                if attempt == 2:
                    log.exception("gate %s could not run", name)
                    results.append(GateResult.error(name, err))
                else:
                    log.warning("gate %s raised %s: %s — running it once more", name, type(err).__name__, err)
    return results


def run_suite(
    spec: ModelSpec, settings: Settings, version: str | int, gates: tuple[str, ...] = GATES, baseline: str | None = None
) -> list[GateResult]:
    """Every gate on one version in this process; a gate that raises fails with the error as its reason.

    ``baseline`` is the version the champion gate compares with (default: the serving champion).
    """
    from dataclasses import replace

    from ativo.model.artifact import ModelIntegrityError

    try:
        candidate = replace(load_candidate(spec, settings, version), baseline=baseline)
    except ModelIntegrityError as err:
        return [_unloadable(name, err) for name in gates]
    results = []
    for name in gates:
        try:
            results.append(run_gate(name, candidate))
        except Exception as err:  # a gate that cannot measure must not pass
            log.exception("gate %s could not run", name)
            results.append(GateResult.error(name, err))
    return results


def build_report(
    spec: ModelSpec,
    model: ServedModel | RegisteredVersion,
    results: list[GateResult],
    expected: tuple[str, ...] = GATES,
) -> dict[str, Any]:
    """The gate report: every expected gate's result (a missing one fails: it did not run), and the verdict."""
    by_name = {r.gate: r for r in results}
    for name in expected:
        if name not in by_name:
            by_name[name] = GateResult(
                gate=name, passed=False, reason="the gate did not run (its task failed); see the training DAG run"
            )
    passed = all(r.passed for r in by_name.values())
    return {
        "model": model.name,
        "version": model.version,
        "run_id": model.run_id,
        "dataset_version": model.dataset_version,
        "model_sha256": model.sha256,
        "spec": spec.name,
        "spec_hash": spec.content_hash(),
        "gate_hash": spec.gate_hash(),
        "git_commit": model.tags.get("ativo.git_commit"),
        "study": model.tags.get("ativo.study"),
        "trial_number": model.tags.get("ativo.trial_number"),
        "decided_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "passed": passed,
        "verdict": CHALLENGER if passed else "rejected",
        "failed_gates": [n for n in expected if not by_name[n].passed],
        "gates": {n: by_name[n].to_dict() for n in expected},
    }


def publish(
    spec: ModelSpec,
    settings: Settings,
    version: str | int,
    results: list[GateResult],
    expected: tuple[str, ...] = GATES,
    alias: str | None = CHALLENGER,
) -> dict[str, Any]:
    """Log the gate report and model card, link them from the version, and set ``alias`` (challenger) or reject.

    An erasure retraining passes ``alias=None``: it replaces live versions directly, it is not a challenger.

    Returns:
        The report, with ``gate_report_uri`` and ``model_card_uri``.
    """
    import mlflow

    from ativo.evaluate.card import render_card
    from ativo.model.artifact import registered_version
    from ativo.model.client import mlflow_client

    model = registered_version(spec, settings.mlflow_tracking_uri, version)  # the record: the artifact may be bad
    report = build_report(spec, model, results, expected)
    if model.dataset_version:
        from ativo.data.training import evaluated_on

        report["evaluated_on"] = evaluated_on(spec, settings, model.dataset_version)
    client = mlflow_client(settings)
    run_id = model.run_id
    base = f"runs:/{run_id}/{prefixes.RUN_GATES}" if run_id else None
    report["gate_report_uri"] = f"{base}/gate_report.json" if base else None
    report["model_card_uri"] = f"{base}/model_card.html" if base else None
    policy = report["gates"]["fairness"].get("details", {}).get("mitigation", {}).get("policy")
    report["decision_policy_uri"] = f"{base}/decision_policy.json" if base and policy else None
    if run_id:
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / prefixes.RUN_GATES
            out.mkdir()
            (out / "gate_report.json").write_text(json.dumps(report, indent=2, default=str))
            (out / "model_card.html").write_text(render_card(spec, report), encoding="utf-8")
            if policy:
                (out / "decision_policy.json").write_text(json.dumps(policy, indent=2, sort_keys=True))
            client.log_artifacts(run_id, str(out), artifact_path=prefixes.RUN_GATES)
        for r in report["gates"].values():
            client.set_tag(run_id, f"ativo.gate.{r['gate']}", "pass" if r["passed"] else "fail")
    name, v = spec.registered_model_name, str(model.version)
    tags = {
        "ativo.gates": "passed" if report["passed"] else "rejected",
        "ativo.gate_report_uri": str(report["gate_report_uri"]),
        "ativo.model_card_uri": str(report["model_card_uri"]),
    }
    if policy:
        tags["ativo.decision_policy_uri"] = str(report["decision_policy_uri"])
    if not report["passed"]:
        tags["ativo.rejected"] = "true"
        tags["ativo.rejected_gates"] = ",".join(report["failed_gates"])
        # tag_version cuts a value at TAG_VALUE_LIMIT
        tags["ativo.rejected_reasons"] = " | ".join(
            f"{g}: {report['gates'][g]['reason']}" for g in report["failed_gates"]
        )
    from ativo.model.registry import describe_version, record_gates, set_challenger, tag_version

    tag_version(spec, settings, v, tags)
    verdict = (
        "Passed every gate: alias challenger."
        if report["passed"]
        else f"Rejected by {', '.join(report['failed_gates'])}."
    )
    describe_version(
        spec,
        settings,
        v,
        lambda current: f"{current.split(' Gates:')[0]} Gates: {verdict} Model card: {report['model_card_uri']}",
    )
    record_gates(spec, settings, v, report, policy)  # the signed verdict: what a promotion checks
    if report["passed"] and alias:
        set_challenger(spec, settings, v)
        log.info("%s version %s passed every gate: alias %s", name, v, alias)
    elif report["passed"]:
        log.info("%s version %s passed every gate", name, v)
    else:
        log.warning("%s version %s rejected: %s", name, v, tags["ativo.rejected_reasons"])
    return report
