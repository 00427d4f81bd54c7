"""What every DAG family shares: its DAG arguments (:func:`dag_kwargs`), the Assets between families, the spec list.

Each family module (:mod:`~ativo.airflow.dags.etl`, ``train``, ``deploy``, ``reconcile``, ``monitor``, and
:mod:`ativo.airflow.erasure`) builds its ``@dag`` from :func:`dag_kwargs` and :func:`schedule`, adding what is its own
(its params, a DAG-level failure callback, the erasure queue's Asset). At module level this module imports Airflow's
SDK and light Ativo modules only (the spec, the settings, the names, the compute priorities, the on-call notifier).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.sdk import Asset, CronDataIntervalTimetable

from ativo import naming
from ativo.airflow.compute import PRIORITY_WEIGHT
from ativo.airflow.failure import NO_RETRY_ON_EXPECTED_FAILURE
from ativo.airflow.notifier import WebhookFailureNotifier
from ativo.config import load_settings
from ativo.errors import SpecError
from ativo.spec import ModelSpec, load_specs

FAMILY_DEFAULT_ARGS: dict[str, dict[str, Any]] = {
    "reconcile": {"retries": 1},  # it triggers a run; the next tick tries again anyway
    "erasure": {"priority_weight": PRIORITY_WEIGHT["erasure"], "weight_rule": "absolute"},  # ahead of any training
}
"""What a family's tasks take on top of :func:`default_args`."""


def features_asset(spec: ModelSpec) -> Asset:
    """The Asset a spec's ETL updates with every new dataset version."""
    return Asset(name=f"{spec.name}.features", uri=f"x-ativo://features/{spec.name}", group="ativo")


def drift_asset(spec: ModelSpec) -> Asset:
    """The Asset the monitor updates when drift that matters is sustained, outside the cooldown, within budget."""
    return Asset(name=f"{spec.name}.drift", uri=f"x-ativo://drift/{spec.name}", group="ativo")


def challenger_asset(spec: ModelSpec) -> Asset:
    """The Asset the training DAG updates when a model version passes every gate (alias ``challenger``)."""
    return Asset(name=f"{spec.name}.challenger", uri=f"x-ativo://models/{spec.name}/challenger", group="ativo")


def default_args(spec: ModelSpec) -> dict[str, Any]:
    """Owner, retries (none after an expected failure) and the on-call notifier, shared by every Ativo task.

    Building them also turns third-party progress chatter down (:mod:`ativo.logs`): a task process parses its DAG
    file, and so builds these, before it runs.
    """
    from ativo.logs import quiet_third_party

    quiet_third_party()
    return {
        "owner": spec.owner,
        "retries": 2,
        "retry_delay": dt.timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": dt.timedelta(minutes=10),
        "execution_timeout": dt.timedelta(minutes=30),
        "on_failure_callback": [WebhookFailureNotifier(spec.oncall_connection)],
        "retry_policy": NO_RETRY_ON_EXPECTED_FAILURE,  # an expected failure (ativo.airflow.failure.fail) is final
    }


def start_date(spec: ModelSpec) -> dt.datetime:
    """The first data interval of every DAG of a spec: its source's start date, midnight UTC."""
    return dt.datetime.combine(spec.source.start_date, dt.time(), tzinfo=dt.UTC)


def schedule(spec: ModelSpec, family: str) -> Any:
    """When a spec's DAG of ``family`` runs (each builder passes it to ``@dag`` itself, where a reader looks for it).

    ETL, reconciler, monitor and erasure on their cron (data intervals, UTC); training on a new dataset version or a
    sustained drift (its features or drift Asset); deployment on a new challenger.
    """
    if family == "train":
        return features_asset(spec) | drift_asset(spec)  # new data, or sustained drift, retrains
    if family == "deploy":
        return [challenger_asset(spec)]
    cron = {
        "etl": spec.schedule.etl_cron,
        "reconcile": spec.schedule.reconcile_cron,
        "monitor": spec.monitor.cron,
        "erasure": spec.erasure.cron,
    }[family]
    return CronDataIntervalTimetable(cron, timezone="UTC")


def _description(spec: ModelSpec, family: str) -> str:
    return {
        "etl": f"Landing → validated features → dataset version, for {spec.name}",
        "train": f"Pinned dataset version → parallel XGBoost search → best model registered, for {spec.name}",
        "deploy": f"Challenger → canary/shadow on live traffic → champion or rollback, for {spec.name}",
        "reconcile": f"Every dataset version of {spec.name} that is the latest gets trained (asset events get lost)",
        "monitor": f"Champion's live window → drift, decay and fairness → retrain on sustained drift, for {spec.name}",
        "erasure": "Erasure requests → purge everywhere → retrain and redeploy affected models → receipt, for "
        f"{spec.name}",
    }[family]


def _doc(spec: ModelSpec, family: str) -> str:
    if family == "etl":
        return _ETL_DOC.format(spec=spec.name, etl_dag=naming.etl_dag_id(spec.name))
    if family == "train":
        return _TRAIN_DOC.format(spec=spec.name, pool=spec.compute.pool, team=spec.compute.team)
    if family == "deploy":
        return _DEPLOY_DOC.format(
            spec=spec.name, percent=spec.deploy.canary_percent, window=spec.deploy.canary_window_minutes
        )
    if family == "reconcile":
        return _RECONCILE_DOC.format(
            spec=spec.name, cron=spec.schedule.reconcile_cron, train_dag=naming.train_dag_id(spec.name)
        )
    if family == "monitor":
        return _MONITOR_DOC.format(
            spec=spec.name,
            cron=spec.monitor.cron,
            sustain=spec.monitor.sustain,
            cooldown=spec.monitor.cooldown_hours,
            team=spec.compute.team,
        )
    return _ERASURE_DOC.format(spec=spec.name, window=spec.erasure.window_minutes, sla=spec.erasure.sla_hours)


def dag_kwargs(spec: ModelSpec, family: str) -> dict[str, Any]:
    """The ``@dag`` arguments of one spec's DAG of ``family``: the one place they are decided.

    Its id (:mod:`ativo.naming`), description, start date, catch-up and concurrency, the tasks' default arguments
    (owner, retries, the on-call notifier, and the family's own), tags and ``doc_md``. The schedule (:func:`schedule`)
    each builder writes out at its ``@dag`` itself.

    Args:
        spec: the model spec.
        family: one of :data:`ativo.naming.DAG_IDS` (``etl``, ``train``, ``deploy``, ``reconcile``, ``monitor``,
            ``erasure``).

    Raises:
        ValueError: an unknown family.
    """
    if family not in naming.DAG_IDS:
        raise ValueError(f"unknown DAG family {family!r}: one of {', '.join(naming.DAG_IDS)}")
    etl = family == "etl"  # the only family that catches up and runs intervals side by side, as the spec says
    return {
        "dag_id": naming.DAG_IDS[family](spec.name),
        "description": _description(spec, family),
        "start_date": start_date(spec),
        "catchup": spec.schedule.catchup if etl else False,
        "max_active_runs": spec.schedule.max_active_runs if etl else 1,
        "default_args": {**default_args(spec), **FAMILY_DEFAULT_ARGS.get(family, {})},
        "tags": ["ativo", family, spec.name, *spec.tags],
        "doc_md": _doc(spec, family),
    }


def valid_specs() -> list[ModelSpec]:
    """The specs that parse; invalid ones are reported by ``dags/spec_check.py``."""
    specs, _errors = load_specs(load_settings().specs_dir)
    return specs


def raise_for_invalid_specs() -> None:
    """Fail parsing of the calling DAG file with one message listing every invalid spec (file and field).

    Raises:
        SpecError: at least one spec is invalid.
    """
    _specs, errors = load_specs(load_settings().specs_dir)
    if errors:
        raise SpecError(
            f"{len(errors)} invalid model spec(s); their DAGs are not loaded, the others are:\n"
            + "\n".join(f"- {e}" for e in errors)
        )


_ETL_DOC = """
### ETL of `{spec}`
One run per day (data interval). **validate** reads `landing/{spec}/<date>.csv` and runs the Great Expectations
suite generated from the spec; a failing batch moves to `quarantine/` with its report, on-call is paged and the
lake is untouched. **write_features** writes `lake/{spec}/ds=<date>/part-0.parquet` (a re-run writes identical
bytes) and indexes its subjects. **version_dataset** snapshots the lake with DVC (tag `{spec}-vNNNN`) and emits
the `{spec}.features` Asset event; it is *skipped* when nothing changed.

Backfill: Trigger → Backfill in the UI, or `airflow backfill create --dag-id {etl_dag} --from-date … --to-date …`.
"""

_TRAIN_DOC = """
### Training of `{spec}`
Triggered by each new `{spec}.features` dataset version or `{spec}.drift` episode (or by hand, with
`dataset_version` and `n_trials` in the run conf). **plan_search** pins the dataset version (by hand: the conf's,
else the latest; otherwise the latest, unless another run claimed it), creates the Optuna study in the platform DB
and the parent MLflow run. The **trials** workers (one per slot of pool `{pool}`, each named by the trials it ran)
take the search's trial slots one after another: each trial runs under a GPU lease or on CPU, within the budget of
team `{team}`; it asks the study, trains XGBoost with pruning, logs a child run and tells the study. A trial the
budget cannot cover ends its worker at once with the budget's figures (or waits, if the team's policy is `defer`).
The trial table is on the Ativo page. **register_best** registers the best completed trial's model with its lineage
(dataset, commit, study, trial). Two gate tasks judge that version side by side: **gate_robustness** (the attack and
the perturbations, the slowest) and **gates** (performance, champion comparison, fairness, privacy, explainability,
infra, regression); **decide** logs the gate report and model card to its MLflow run and sets the registry alias
`challenger` only if every gate passed (otherwise the version is tagged rejected with its reasons and on-call is
told); **announce_challenger** then updates the `{spec}.challenger` Asset (it is skipped for a rejected version).
"""

_RECONCILE_DOC = """
### Training reconciler of `{spec}`
Airflow merges or drops `{spec}.features` asset events that arrive while training is busy, so a dataset version
could go untrained, and a drift episode unanswered. On `{cron}`, **check** reads the platform DB: when an open drift
episode has no training run, or the latest dataset version has none (every run claims the version it trains),
**trigger_training** starts `{train_dag}` as run `reconcile__drift-<episode>` or `reconcile__<tag>`, noted with
why. An automatic training run trains the latest version when it starts (which covers the older ones) and skips,
saying which run did, when another run claimed it: new data is not trained twice automatically.
"""

_MONITOR_DOC = """
### Monitoring of `{spec}`
On `{cron}` (or by hand, with `start`/`end` in the run conf), **judge_window** reads the champion's decisions of
the data interval from the prediction log (and the labels sent to `/feedback`) and judges them against the
version's reference profile: drift per feature and of the score (PSI as the effect size, a chi² test as the
evidence), a new category, AUC decay on labelled rows, AUC estimated without labels, and fairness differences, all
in one Holm family (on stationary data a run alarms with probability at most `monitor.alpha`). It writes the report
(JSON and HTML) beside the model card, records the decision (the gauges on `/ativo/metrics`), and pages on-call
for a drift held back. **announce_drift** emits the `{spec}.drift` Asset, which retrains, only when drift lasted
{sustain} window(s), no episode was announced in the last {cooldown} hours, and team `{team}`'s budget covers the
search; otherwise it is skipped with the reason.
"""

_DEPLOY_DOC = """
### Deployment of `{spec}`
Triggered by each new `{spec}.challenger` Asset event (a version that passed every gate), or by hand with
`version` in the run conf. **infra_check** loads it through the serving code path (native file, sha256 checked)
and times single-row answers against the latency budget. **start** makes it the champion directly if there is none
yet; otherwise it sets the registry alias `canary` ({percent:g} % of callers, by a stable hash of the request key),
or `shadow` when the spec says so, and waits until every server has loaded it. **watch** reschedules itself and
judges the candidate on the servers' live figures for {window:g} minutes: error rate, p99 latency, score
distribution against the champion (PSI) and, once labels arrive through `/feedback`, AUC. **conclude** promotes
it (`champion` moves, the old one becomes `previous`, still loaded: `ativo rollback` is instant) or rolls it back,
records why in `deployments/{spec}/` and on the version's tags, and pages on-call.
"""

_ERASURE_DOC = """
### Erasure of `{spec}`

File a request, then let this DAG do the rest:

- `ativo erasure request --spec {spec} --subject ID … --key $OP_KEY --now` (an Ativo key with the `op` role), or
- the Ativo page's erasure form (`POST /ativo/erasure/requests`, Airflow's `op` role), or
- a message on the erasure queue (when configured).

These keep the subject ids in the platform DB and trigger this DAG with the request id alone. A conf
`{{"subjects": ["ID", …], "request_id": "R-1"}}` (older clients) still works: it is filed, then redacted in Airflow's
metadata DB (the run's conf and the event log) before the work starts.

A request is recorded before anything runs. Requests within {window:g} minutes are handled in one batch: one purge
pass and one retraining per affected live model. Conf `{{"force": true}}` handles pending requests now.
A request still open after {sla:g} h pages on-call.

`collect` → `purge` (lake, new dataset version, every historical version redacted, DVC cache and remote, landing,
quarantine, prediction and label logs, caches, task logs) → `find_models` → `retrain` × live version → `gates` →
`switch` (blue/green, no canary window) → `verify` (scan; receipts). `ativo erasure status R`, `ativo erasure
receipt R` show the outcome.
"""
