"""From one prediction back to everything that produced it.

prediction (the log row) → model version (registry) → MLflow run (parameters, metrics) → dataset version (DVC tag,
its data-registry commit, rows, manifest) → code commit → gate report (verdict, every gate) → deployments of that
version (who promoted it, when, why, and the deploy DAG run that did).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from ativo.errors import AtivoError
from ativo.spec import load_specs
from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.config import Settings
    from ativo.spec import ModelSpec

log = logging.getLogger(__name__)


class LineageError(AtivoError):
    """The prediction cannot be traced (unknown id, or a link of the chain is missing)."""


def find_prediction(settings: Settings, prediction_id: str, spec_name: str | None = None) -> dict[str, Any]:
    """The prediction log row of ``prediction_id``.

    Raises:
        LineageError: malformed id, or no such row (it may still be in a server's buffer for ``flush_s``).
    """
    import io

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ativo.serve.predlog import partition_of
    from ativo.store.objects import open_store

    try:
        day = partition_of(prediction_id)
    except ValueError as err:
        raise LineageError(str(err)) from None
    store = open_store(settings)
    specs = [spec_name] if spec_name else [s.name for s in load_specs(settings.specs_dir)[0]]
    for name in specs:
        for key in store.list(prefixes.predictions(name, day)):
            if not key.endswith(".parquet"):
                continue
            table = pq.read_table(io.BytesIO(store.get_bytes(key)))
            hit = table.filter(pc.equal(table["prediction_id"], prediction_id))
            if hit.num_rows:
                row = hit.slice(0, 1).to_pylist()[0]
                row["ts"] = row["ts"].isoformat()
                row["spec"] = name
                row["log_object"] = store.uri(key)
                return row
    raise LineageError(
        f"prediction {prediction_id} is not in the prediction log of {', '.join(specs)} for {day} "
        "(a server writes its buffer every few seconds and at shutdown)"
    )


def trace(settings: Settings, prediction_id: str, spec_name: str | None = None) -> dict[str, Any]:
    """The whole chain for one prediction, as a JSON-able dict.

    Raises:
        LineageError: see :func:`find_prediction`, or the model version is gone from the registry.
    """
    from mlflow.exceptions import MlflowException

    from ativo.data.versioning import DatasetVersionError, open_registry
    from ativo.model.artifact import read_artifact_json
    from ativo.model.client import mlflow_client
    from ativo.spec import get_spec
    from ativo.store.db import get_engine

    row = find_prediction(settings, prediction_id, spec_name)
    client = mlflow_client(settings)
    try:
        mv = client.get_model_version(row["model"], row["version"])
    except MlflowException as err:
        raise LineageError(
            f"prediction {prediction_id}: model {row['model']} version {row['version']} is not in the registry: {err}"
        ) from None
    tags = dict(mv.tags)
    features = {k[2:]: v for k, v in row.items() if k.startswith("f_")}
    out: dict[str, Any] = {
        "spec": row["spec"],
        "prediction": {
            k: row[k]
            for k in (
                "prediction_id",
                "ts",
                "route",
                "score",
                "decision",
                "threshold",
                "subject",
                "request_id",
                "fallback",
                "latency_ms",
                "log_object",
            )
        },
        "features": features,
        "top_contributions": [],
        "contributions_method": None,
        "model": {
            "name": row["model"],
            "version": row["version"],
            "source": mv.source,
            "sha256": tags.get("ativo.model_sha256"),
            "state": tags.get("ativo.deploy_state"),
            "description": mv.description,
        },
    }
    run_id = str(tags.get("ativo.mlflow_run_id") or mv.run_id)
    try:
        run = client.get_run(run_id)
        out["run"] = {
            "run_id": run_id,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "params": dict(run.data.params),
            "metrics": dict(run.data.metrics),
            "study": tags.get("ativo.study"),
            "trial": tags.get("ativo.trial_number"),
            "airflow": {k.removeprefix("ativo.airflow."): v for k, v in tags.items() if k.startswith("ativo.airflow.")},
        }
    except MlflowException as err:
        out["run"] = {"run_id": run_id, "error": str(err)}
    spec = get_spec(row["spec"], settings.specs_dir)
    from ativo.model.registry import version_record

    # What the platform signed wins over MLflow's tags (anyone who reaches MLflow can rewrite those).
    registered = version_record(settings, spec, row["version"], "registered") or {}
    gated = version_record(settings, spec, row["version"], "gated") or {}
    if registered.get("model_sha256"):
        out["model"]["sha256"] = registered["model_sha256"]
    out["model"]["signed"] = {
        "registered": bool(registered),
        "gated": bool(gated),
        "gates_passed": gated.get("passed") if gated else None,
    }
    dataset: dict[str, Any] = {
        "tag": registered.get("dataset_version") or tags.get("ativo.dataset_version"),
        "data_registry_commit": tags.get("ativo.dataset_rev"),
        "manifest_sha256": tags.get("ativo.dataset_manifest"),
        "rows": tags.get("ativo.dataset_rows"),
    }
    try:
        dv = open_registry(settings).resolve(get_engine(settings.db_url), row["spec"], dataset["tag"])
        dataset["partitions"] = len(dv.partitions)
        dataset["partition_names"] = [str(p) for p in dv.partitions]  # its days (``2026-11-30``), never a path
        dataset["resolves"] = True
    except (DatasetVersionError, Exception) as err:  # the registry may be elsewhere: report, do not fail
        dataset["resolves"] = False
        dataset["error"] = str(err)
    out["dataset"] = dataset
    out["code"] = {
        "commit": tags.get("ativo.git_commit"),
        "dirty": tags.get("ativo.git_dirty"),
        "spec_hash": tags.get("ativo.spec_hash"),
    }
    gates: dict[str, Any] = {
        "verdict": ("passed" if gated["passed"] else "rejected") if gated else tags.get("ativo.gates"),
        "report_uri": gated.get("gate_report_uri") or tags.get("ativo.gate_report_uri"),
        "model_card_uri": gated.get("model_card_uri") or tags.get("ativo.model_card_uri"),
    }
    if gates["report_uri"]:
        try:
            report = read_artifact_json(settings.mlflow_tracking_uri, gates["report_uri"])
            gates["gates"] = {name: ("pass" if g["passed"] else "fail") for name, g in report["gates"].items()}
        except Exception as err:
            gates["error"] = f"cannot read the gate report: {err}"
    out["gates"] = gates
    out["top_contributions"], out["contributions_method"] = _top_contributions(settings, spec, row, features)
    out["deployments"] = deployments_of(spec, settings, row["version"])
    return out


def deployments_of(spec: ModelSpec, settings: Settings, version: str) -> list[dict[str, Any]]:
    """The deployment records of ``version``, oldest first: when, what, why, who, and the DAG run that made each."""
    from ativo.deploy.promotion import history

    return [
        {k: r.get(k) for k in ("at", "action", "reason", "actor", "uri", "dag_run")}
        for r in history(spec, settings)
        if r.get("version") == version
    ]


def _top_contributions(
    settings: Settings, spec: Any, row: dict[str, Any], features: dict[str, Any]
) -> tuple[list[dict[str, Any]], str | None]:
    """The three features that moved this decision most, and how they were computed.

    As the log wrote them when the server was asked to (``ativo serve --contributions approx|exact``); else
    exact TreeSHAP, computed now from the logged features and the version that answered (the server's default
    spends no time on them: they are a function of those two, and only a lookup like this one reads them).
    """
    if row.get("top_contributions"):
        return json.loads(row["top_contributions"]), str(row.get("contributions_method") or "approx")
    from ativo.evaluate.explain import top_contributions
    from ativo.model.artifact import load_version

    try:
        model = load_version(spec, settings.mlflow_tracking_uri, row["version"])
    except Exception as err:  # the version cannot be loaded here: the rest of the chain still stands
        log.warning("lineage: cannot load %s version %s to explain the decision: %s", row["model"], row["version"], err)
        return [], None
    values = {k: (None if isinstance(v, float) and v != v else v) for k, v in features.items()}
    contribs = model.booster.predict(model.dmatrix(model.encode([values])), pred_contribs=True)[0]
    return top_contributions(spec.data_schema.feature_names, contribs), "exact TreeSHAP, computed at lookup"


def steps(chain: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain's links in order, prediction first: what the CLI's tree and the page's tree are both built from.

    Each step is ``{"kind", "title", "lines", "uris"}``: ``kind`` is one of prediction, model, run, dataset, code,
    gates; ``title`` and ``lines`` are readable text that names no stored file (a reader may be anyone who may see
    the page); ``uris`` are the stored files of that link (the prediction's log object, the gate report, the model
    card), which the CLI prints and the page turns into links that name no host path.
    """
    p, m, r, d, c, g = (chain[k] for k in ("prediction", "model", "run", "dataset", "code", "gates"))
    contributions = ", ".join(f"{t['feature']} {t['contribution']:+.3f}" for t in chain["top_contributions"]) or "-"
    if chain.get("contributions_method"):
        contributions += f"  ({chain['contributions_method']})"
    return [
        {
            "kind": "prediction",
            "title": f"prediction  {p['prediction_id']}  at {p['ts']}  route {p['route']}  score {p['score']:.4f}  "
            f"decision {p['decision']} (threshold {p['threshold']})",
            "lines": [f"subject (pseudonymised) {p['subject'] or '-'}  request {p['request_id']}"],
            "uris": {"logged in": p.get("log_object")},
            "after": [f"top contributions: {contributions}"],
        },
        {
            "kind": "model",
            "title": f"model  {m['name']} version {m['version']}  ({m['state'] or 'no deploy state'})  sha256 "
            f"{(m['sha256'] or '?')[:16]}…",
            "lines": [],
            "uris": {},
        },
        {
            "kind": "run",
            "title": f"MLflow run  {r['run_id']}  (experiment {r.get('experiment_id', '?')}, study {r.get('study')}, "
            f"trial {r.get('trial')})",
            "lines": [],
            "uris": {},
        },
        {
            "kind": "dataset",
            "title": f"dataset  {d['tag']}  ({d['rows']} rows, data-registry commit "
            f"{(d['data_registry_commit'] or '?')[:12]}{'' if d['resolves'] else ', NOT resolvable here'})",
            "lines": [],
            "uris": {},
        },
        {
            "kind": "code",
            "title": f"code  commit {c['commit']}{' (dirty tree)' if c['dirty'] == 'true' else ''}",
            "lines": [],
            "uris": {},
        },
        {
            "kind": "gates",
            "title": f"gates  {g['verdict']}  " + ", ".join(f"{k} {v}" for k, v in (g.get("gates") or {}).items()),
            "lines": [],
            "uris": {"report": g.get("report_uri"), "card  ": g.get("model_card_uri")},
        },
    ]


def render(chain: dict[str, Any]) -> str:
    """The chain as readable text (a tree of :func:`steps`)."""
    lines: list[str] = []
    for depth, step in enumerate(steps(chain)):
        lead = "" if depth == 0 else "  " + "   " * (depth - 1) + "└─ "
        under = " " * (12 if depth == 0 else len(lead))
        lines.append(lead + step["title"])
        lines.extend(under + line for line in step["lines"])
        lines.extend(f"{under}{label} {uri}" for label, uri in step["uris"].items())
        lines.extend(under + line for line in step.get("after", []))
    for dep in chain["deployments"]:
        run = dep.get("dag_run") or {}
        made = f"  (DAG run {run['dag_id']} {run['run_id']})" if run.get("dag_id") and run.get("run_id") else ""
        lines.append(f"  deployment  {dep['at']}  {dep['action']}  by {dep['actor']}: {dep['reason']}{made}")
    return "\n".join(lines)
