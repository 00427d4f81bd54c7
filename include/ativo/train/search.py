"""Hyperparameter search: an Optuna study in the platform DB, one parent MLflow run, one child run per trial.

The search has three steps, each a plain function so that Airflow tasks and a plain Python process run the very
same code:

- :func:`plan_search` pins the dataset version, creates the study (``<spec>/<run id>``) in the platform DB and the
  parent MLflow run (lineage tags, dataset input);
- :func:`search_trial` asks the study for parameters, trains XGBoost with a pruning callback that reports the
  validation AUC every ``REPORT_EVERY`` rounds, logs a child run (params, metrics, native model) and tells the study;
- :func:`finish_search` registers the best trial's model with the study name and trial number in its lineage tags
  and closes the parent run.

Because the study lives in the platform DB (SQLite or PostgreSQL), trials can run in parallel processes or hosts.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ativo.config import Settings
from ativo.data.split import Split
from ativo.data.training import load_split, training_data
from ativo.errors import AtivoError
from ativo.spec import ModelSpec, SearchParam
from ativo.store import prefixes
from ativo.train.engine import fit_on
from ativo.train.tracking import log_profile
from ativo.train.trainer import TrainedModel, fit

log = logging.getLogger(__name__)


class SearchFailed(AtivoError):
    """No trial of a search completed, so there is no model to register."""


def _optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def _sampler_and_pruner(spec: ModelSpec, slot: int = 0) -> tuple[Any, Any]:
    """The spec's sampler seeded for trial slot ``slot`` (distinct draws per slot, reproducible), and its pruner."""
    optuna = _optuna()
    search = spec.model.search
    seed = search.seed + slot
    sampler = (
        optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, search.n_trials // 4))
        if search.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=20, interval_steps=REPORT_EVERY)
        if search.pruning
        else None
    )
    return sampler, pruner


def create_study(spec: ModelSpec, storage_url: str, name: str) -> Any:
    """Create (or reopen) the study ``name`` for the spec's search, maximising the validation AUC.

    This is where Optuna creates its tables and checks their schema version; trials then skip both.
    """
    sampler, pruner = _sampler_and_pruner(spec)
    return _optuna().create_study(
        study_name=name,
        storage=storage_url,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )


_STORAGES: dict[str, Any] = {}
_STORAGES_LOCK = threading.Lock()


def study_storage(storage_url: str) -> Any:
    """Optuna's storage on the platform DB, one per process (thread-safe), without its schema checks.

    Creating an ``RDBStorage`` creates the tables and compares the schema version through alembic: half a second
    per trial task. :func:`create_study` has done both for the search before any trial runs.
    """
    with _STORAGES_LOCK:
        if storage_url not in _STORAGES:
            _STORAGES[storage_url] = _optuna().storages.RDBStorage(
                storage_url, skip_compatibility_check=True, skip_table_creation=True
            )
        return _STORAGES[storage_url]


def open_study(spec: ModelSpec, storage_url: str, name: str, slot: int = 0) -> Any:
    """Load a study with the spec's sampler (seeded for ``slot``) and pruner."""
    sampler, pruner = _sampler_and_pruner(spec, slot)
    kwargs: dict[str, Any] = {"sampler": sampler}
    if pruner is not None:
        kwargs["pruner"] = pruner
    return _optuna().load_study(study_name=name, storage=study_storage(storage_url), **kwargs)


def suggest(trial: Any, space: dict[str, SearchParam]) -> dict[str, Any]:
    """Parameters for one trial from the spec's search space."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(p.choices or ()))
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low or 0), float(p.high or 0), log=p.log)
    return params


def trial_label(number: int, params: dict[str, Any]) -> str:
    """How a trial is named in the Airflow UI: its number and parameters."""
    shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
    return f"#{number} {shown}".strip()


REPORT_EVERY = 10
"""Boosting rounds between two reports to the study (each report and pruning check is a platform-DB round trip;
every round made the DB, not XGBoost, the bottleneck of a trial)."""


def _pruning_callback(trial: Any) -> Any:
    import xgboost as xgb

    optuna = _optuna()

    class ReportAndPrune(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            if epoch % REPORT_EVERY:
                return False
            trial.report(float(evals_log["valid"]["auc"][-1]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch}")
            return False

    return ReportAndPrune()


def _budget_callback(session: Any) -> Any:
    """Stop the trial (pruned) at the round where it has run for all its compute session reserved.

    It is charged no more than that, so its team's limit holds (:mod:`ativo.compute.budget`).
    """
    import xgboost as xgb

    optuna = _optuna()

    class StopAtReservation(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            if session.exhausted():
                raise optuna.TrialPruned(
                    f"stopped at round {epoch}: it has run for all its budget reservation of "
                    f"{session.reserved_s:.1f} s (team '{session.spec.compute.team}'), the most it may cost"
                )
            return False

    return StopAtReservation()


def run_trial(
    spec: ModelSpec,
    storage_url: str,
    study_name: str,
    split: Split | None,
    device: str = "cpu",
    *,
    slot: int = 0,
    threads: int | None = None,
    on_ask: Any = None,
    fitter: Any = None,
) -> tuple[dict[str, Any], TrainedModel | None]:
    """Ask the study for parameters, train, tell the study.

    Args:
        spec: the model spec (search space, pruning, metric).
        storage_url: the platform DB holding the study.
        study_name: the study to ask.
        split: train / validation / test frames.
        device: ``cpu`` or ``cuda``.
        slot: the trial's index in the search (seeds its sampler).
        threads: CPU threads for XGBoost (all cores when None).
        on_ask: called with (trial, params) right after the ask, before training (to name and log the trial).
        fitter: trains instead of :func:`~ativo.train.trainer.fit` on ``split``, called with the trial's parameters
            (``compute.engine: dask``); its learning curve is reported to the study after training, not pruned live.

    Returns:
        (``{"number", "state", "params", "value", "metrics"}``, the trained model or None when pruned).
    """
    optuna = _optuna()
    study = open_study(spec, storage_url, study_name, slot)
    trial = study.ask()
    params = suggest(trial, spec.model.search.space)
    if on_ask is not None:
        on_ask(trial, params)
    from ativo.compute.session import current

    callbacks = [_pruning_callback(trial)] if spec.model.search.pruning and fitter is None else []
    if fitter is None and (session := current()) is not None and session.reserved_s is not None:
        callbacks.append(_budget_callback(session))
    try:
        if fitter is not None:
            model = fitter(params)
            for epoch in range(0, len(model.curve or ()), REPORT_EVERY):
                trial.report(float(model.curve[epoch]), epoch)
        else:
            assert split is not None
            model = fit(spec, split, device=device, overrides=params, callbacks=callbacks or None, threads=threads)
    except optuna.TrialPruned as pruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return {
            "number": trial.number,
            "state": "pruned",
            "params": params,
            "value": None,
            "metrics": {},
            "reason": str(pruned),
        }, None
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    value = model.metrics[spec.model.search.metric]
    study.tell(trial, value)
    return {
        "number": trial.number,
        "state": "complete",
        "params": params,
        "value": value,
        "metrics": model.metrics,
    }, model


def best_trial(storage_url: str, study_name: str) -> dict[str, Any]:
    """The best completed trial of a study: number, value, parameters and its MLflow run (if logged)."""
    best = _optuna().load_study(study_name=study_name, storage=storage_url).best_trial
    return {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "mlflow_run_id": best.user_attrs.get("mlflow_run_id"),
    }


# --- the search as three steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchPlan:
    """What every trial of one search needs to know (passed between tasks as XCom)."""

    spec: str
    study_name: str
    dataset_tag: str
    experiment_id: str
    parent_run_id: str
    n_trials: int
    seed_offset: int = 0  # added to every slot's sampler seed: a retraining on the same data draws new trials

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _mlflow(settings: Settings) -> tuple[Any, Any]:
    import os

    import mlflow

    from ativo.model.client import mlflow_client

    # MLflow prints a "View experiment" link per run that lands on its (empty) GenAI overview: each trial logs a
    # link to its own run instead (see :func:`_run_link`)
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return mlflow, mlflow_client(settings)


def _run_link(settings: Settings, experiment_id: str, run_id: str) -> str:
    """Where a person opens an MLflow run: its page in the MLflow UI when the tracking server is one, else its id."""
    from ativo.model.client import run_url

    url = run_url(settings, experiment_id, run_id)
    return url or f"run {run_id} in {settings.mlflow_tracking_uri.split(':', 1)[0]} tracking (no MLflow UI)"


def _airflow_tags(run_meta: dict[str, Any]) -> dict[str, str]:
    return {
        f"ativo.airflow.{k}": str(run_meta[k])
        for k in ("dag_id", "dag_run_id", "task_id", "try_number", "map_index")
        if run_meta.get(k) is not None
    }


def plan_search(
    spec: ModelSpec,
    settings: Settings,
    dataset_tag: str | None,
    run_meta: dict[str, Any],
    *,
    n_trials: int | None = None,
    study_name: str | None = None,
    extra_tags: dict[str, str] | None = None,
    seed_offset: int = 0,
) -> SearchPlan:
    """Pin the dataset, create the study and the parent MLflow run (see the module doc).

    ``seed_offset`` moves every trial's sampler seed: a retraining of data already trained on (on drift) draws new
    trials instead of repeating the model it would duplicate.
    """
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag

    from ativo.data.features import LABEL
    from ativo.train.tracking import code_version, ensure_experiment

    version, split, held = load_split(spec, settings, dataset_tag)
    n = n_trials or (spec.model.search.n_trials if spec.model.search.space else 1)
    name = study_name or f"{spec.name}/{run_meta.get('dag_run_id') or version.tag}"
    create_study(spec, settings.db_url, name)
    _, client = _mlflow(settings)
    experiment_id = ensure_experiment(client, spec, settings)
    code = code_version(settings=settings)
    tags = {
        "ativo.spec": spec.name,
        "ativo.spec_hash": spec.content_hash(),
        "ativo.role": "search",
        "ativo.study": name,
        "ativo.dataset_version": version.tag,
        "ativo.dataset_rev": version.git_rev,
        "ativo.dataset_manifest": version.manifest_hash,
        "ativo.git_commit": code["commit"],
        **_airflow_tags(run_meta),
        **(extra_tags or {}),
    }
    # Created through the client so that it stays RUNNING while the trials run elsewhere; finish_search ends it.
    parent = client.create_run(experiment_id, run_name=f"{spec.name}@{version.tag} search", tags=tags).info.run_id
    params = {
        "n_trials": n,
        "sampler": spec.model.search.sampler,
        "seed": spec.model.search.seed + seed_offset,
        "pruning": spec.model.search.pruning,
        "split_seed": spec.split.seed,
        "train_rows": held["of"]["train"],
        "engine": spec.compute.engine,
    }
    if held["sample"]:
        params["dataset_input_sample_rows"] = len(split.train)  # the MLflow dataset input is the seeded sample
    client.log_batch(parent, params=[_param(k, v) for k, v in params.items()])
    dataset = from_pandas(
        split.train,
        source=prefixes.uri(settings.store_uri, prefixes.lake(spec.name)),
        targets=LABEL,
        name=f"{spec.name}@{version.tag}",
        digest=version.manifest_hash.removesuffix(".dir")[:32],
    )
    client.log_inputs(
        parent,
        [
            DatasetInput(
                dataset._to_mlflow_entity(),
                [InputTag("mlflow.data.context", "training"), InputTag("ativo.dataset_version", version.tag)],
            )
        ],
    )
    log.info("search %s: %d trial(s) on %s, parent run %s", name, n, version.tag, parent)
    return SearchPlan(
        spec=spec.name,
        study_name=name,
        dataset_tag=version.tag,
        experiment_id=experiment_id,
        parent_run_id=parent,
        n_trials=n,
        seed_offset=seed_offset,
    )


def search_trial(
    spec: ModelSpec,
    settings: Settings,
    plan: SearchPlan,
    run_meta: dict[str, Any],
    *,
    slot: int = 0,
    device: str = "cpu",
    threads: int | None = None,
    on_label: Any = None,
    on_started: Any = None,
) -> dict[str, Any]:
    """One trial: ask, train with pruning, log the child run (and model), tell. Returns the trial's summary.

    Args:
        spec: the model spec.
        settings: where things are.
        plan: the search (study, parent run, dataset version).
        run_meta: Airflow context for the child run's tags.
        slot: the trial's index in the search (seeds its sampler, so trials differ and runs are reproducible).
        device: ``cpu`` or ``cuda``, as placed by the compute session.
        threads: CPU threads for XGBoost.
        on_label: called with the trial's label (number and parameters) as soon as it is known.
        on_started: called with (trial number, label, child run id) once its child run exists.
    """
    from ativo.model.artifact import SHA256_TAG, log_booster
    from ativo.model.encoding import design_matrix

    data = training_data(spec, settings, plan.dataset_tag)
    version = data.version

    def fitter(params: dict[str, Any]) -> TrainedModel:  # on the cluster; a split in memory trains with pruning
        return fit_on(data, spec, settings, params, device=device)

    mlflow, client = _mlflow(settings)
    child: dict[str, str] = {}

    def started(trial: Any, params: dict[str, Any]) -> None:
        label = trial_label(trial.number, params)
        if on_label is not None:
            on_label(label)
        run = client.create_run(
            plan.experiment_id,
            run_name=f"trial {trial.number}",
            tags={
                "mlflow.parentRunId": plan.parent_run_id,
                "ativo.spec": spec.name,
                "ativo.role": "trial",
                "ativo.study": plan.study_name,
                "ativo.trial_number": str(trial.number),
                "ativo.dataset_version": version.tag,
                "ativo.device": device,
                "ativo.engine": spec.compute.engine,
                **_airflow_tags(run_meta),
            },
        )
        child["run_id"] = run.info.run_id
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        client.log_batch(run.info.run_id, params=[_param(k, v) for k, v in params.items()])
        if on_started is not None:
            on_started(trial.number, label, run.info.run_id)

    try:
        result, model = run_trial(
            spec,
            settings.db_url,
            plan.study_name,
            data.split,
            device,
            slot=plan.seed_offset + slot,
            threads=threads,
            on_ask=started,
            fitter=fitter if data.lazy is not None else None,
        )
    except BaseException:
        if "run_id" in child:
            client.set_terminated(child["run_id"], "FAILED")
        raise
    run_id = child["run_id"]
    result.update(run_id=run_id, label=trial_label(result["number"], result["params"]), device=device)
    client.set_tag(run_id, "ativo.trial_state", result["state"])
    if model is None:
        client.set_terminated(run_id, "KILLED")  # pruned: stopped early on purpose
        return result
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics(model.metrics)
        logged = log_booster(model.booster, signature_sample=design_matrix(data.signature_rows(), spec))
        mlflow.set_tags({"ativo.model_uri": logged.uri, SHA256_TAG: logged.sha256, "ativo.model_format": "xgboost-ubj"})
    result.update(model_uri=logged.uri, model_sha256=logged.sha256)
    log.info(
        "trial %s (%s) logged: %s", result["number"], result["state"], _run_link(settings, plan.experiment_id, run_id)
    )
    return result


def _param(key: str, value: Any) -> Any:
    from mlflow.entities import Param as MlflowParam

    return MlflowParam(key, str(value))


def finish_search(spec: ModelSpec, settings: Settings, plan: SearchPlan, run_meta: dict[str, Any]) -> dict[str, Any]:
    """Register the best trial's model (lineage tags + study and trial) and close the parent run.

    Raises:
        SearchFailed: no trial completed (all failed, pruned or refused by the budget).
    """
    from ativo.data.versioning import open_registry
    from ativo.model.artifact import SHA256_TAG, DuplicateVersion, LoggedModel
    from ativo.model.registry import adopt, register
    from ativo.store.db import get_engine
    from ativo.train.tracking import lineage_tags

    optuna = _optuna()
    study = open_study(spec, settings.db_url, plan.study_name)
    trials = study.get_trials(deepcopy=False)
    counts = Counter(t.state.name.lower() for t in trials)
    mlflow, client = _mlflow(settings)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no trials"
    from ativo.train import slots

    engine = get_engine(settings.db_url)
    refused = ""
    if table := slots.table(engine, plan.study_name):  # run by trial workers: what became of each slot
        summary += f"; of {plan.n_trials} slots: {slots.summary(engine, plan.study_name, plan.n_trials)}"
        refused = next((f"; refused: {r['reason']}" for r in table if r["state"] == "refused" and r["reason"]), "")
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and "mlflow_run_id" in t.user_attrs]
    if not done:
        client.set_tag(plan.parent_run_id, "ativo.search_outcome", f"failed: {summary}")
        client.set_terminated(plan.parent_run_id, "FAILED")
        raise SearchFailed(
            f"search {plan.study_name}: no trial completed ({summary} of {plan.n_trials} planned){refused}; "
            "nothing to register — see the failed trial workers (task trials) for why"
        )
    best = max(done, key=lambda t: float(t.value))
    child_id = str(best.user_attrs["mlflow_run_id"])
    child = client.get_run(child_id)
    version = open_registry(settings).resolve(get_engine(settings.db_url), spec.name, plan.dataset_tag)
    tags = lineage_tags(spec, version, run_meta, child.data.tags[SHA256_TAG], settings)
    tags.update(
        {
            "ativo.study": plan.study_name,
            "ativo.trial_number": str(best.number),
            "ativo.parent_run_id": plan.parent_run_id,
            "ativo.mlflow_run_id": child_id,
        }
    )
    for key, value in tags.items():
        if not key.startswith("ativo.airflow."):
            client.set_tag(child_id, key, value)
    parent = plan.parent_run_id
    client.log_batch(
        parent,
        metrics=[_metric(f"best_{k}", v) for k, v in child.data.metrics.items()],
        params=[_param(f"best.{k}", v) for k, v in best.params.items()],
    )
    client.log_batch(parent, metrics=[_metric(f"trials_{s}", n) for s, n in counts.items()])
    client.set_tag(parent, "ativo.search_outcome", f"best trial {best.number} ({summary})")
    client.set_tag(parent, "ativo.best_run_id", child_id)
    logged = LoggedModel(uri=child.data.tags["ativo.model_uri"], sha256=child.data.tags[SHA256_TAG])
    description = (
        f"Best of {len(trials)} trial(s) of study {plan.study_name} (trial {best.number}, valid AUC "
        f"{float(best.value):.4f}) on {version.tag} ({version.rows} rows) at commit "
        f"{tags['ativo.git_commit'][:12]}"
    )

    def profile(registered: str) -> None:
        log_profile(spec, settings, client, child_id, registered, version.tag)

    try:
        registered = register(
            spec,
            settings,
            logged,
            tags,
            run_id=child_id,
            description=description,
            dataset_tag=version.tag,
            profile=profile,
        )
    except DuplicateVersion as dup:
        mine = client.get_model_version(spec.registered_model_name, dup.version).tags.get("ativo.parent_run_id")
        if mine != parent:  # another search's version: this one adds nothing
            from ativo.train.runs import RunOutcome, close_run

            if run_meta.get("dag_run_id"):  # its claim (and drift episodes) are settled: not failed, not new
                close_run(
                    get_engine(settings.db_url),
                    spec.name,
                    str(run_meta["dag_run_id"]),
                    RunOutcome.duplicate(dup.version),
                )
            client.set_tag(parent, "ativo.search_outcome", f"duplicate of version {dup.version}: {dup}")
            client.set_tag(parent, "ativo.duplicate_of", dup.version)
            client.set_terminated(parent, "FINISHED")
            log.warning("best trial %d of %s: %s", best.number, plan.study_name, dup)
            raise
        registered = dup.version  # this search registered it on an earlier try: finish what that try began
        adopt(spec, settings, registered, logged, version.tag)
        log_profile(spec, settings, client, child_id, registered, version.tag)
    client.set_terminated(parent, "FINISHED")
    log.info(
        "registered %s version %s from trial %d of %s",
        spec.registered_model_name,
        registered,
        best.number,
        plan.study_name,
    )
    return {
        "model_name": spec.registered_model_name,
        "model_version": registered,
        "model_uri": f"models:/{spec.registered_model_name}/{registered}",
        "run_id": child_id,
        "parent_run_id": parent,
        "study": plan.study_name,
        "trial_number": best.number,
        "dataset_version": version.tag,
        "metrics": dict(child.data.metrics),
        "trials": dict(counts),
    }


def _metric(key: str, value: float) -> Any:
    import time

    from mlflow.entities import Metric

    return Metric(key, float(value), int(time.time() * 1000), 0)
