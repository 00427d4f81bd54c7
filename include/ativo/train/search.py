"""Hyperparameter search: an Optuna study stored in the platform DB, one trial per call.

Each trial asks the shared study for parameters, trains XGBoost with a pruning callback that reports the
validation AUC per boosting round, and tells the study the result. Because the study lives in the platform DB
(SQLite or PostgreSQL), trials can run in parallel processes or on other hosts.
"""

from __future__ import annotations

from typing import Any

from ativo.spec import ModelSpec, SearchParam
from ativo.train.trainer import Split, TrainedModel, fit


def _optuna() -> Any:
    import logging

    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


def create_study(spec: ModelSpec, storage_url: str, name: str) -> Any:
    """Create (or reopen) the study ``name`` for the spec's search, maximising the validation AUC."""
    optuna = _optuna()
    search = spec.model.search
    sampler = (
        optuna.samplers.TPESampler(seed=search.seed, n_startup_trials=max(4, search.n_trials // 4))
        if search.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=search.seed)
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=20) if search.pruning else None
    return optuna.create_study(
        study_name=name, storage=storage_url, direction="maximize", sampler=sampler, pruner=pruner,
        load_if_exists=True,
    )  # fmt: skip


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


def _pruning_callback(trial: Any) -> Any:
    import xgboost as xgb

    optuna = _optuna()

    class ReportAndPrune(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, Any]) -> bool:
            trial.report(float(evals_log["valid"]["auc"][-1]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {epoch}")
            return False

    return ReportAndPrune()


def run_trial(
    spec: ModelSpec, storage_url: str, study_name: str, split: Split, device: str = "cpu"
) -> tuple[dict[str, Any], TrainedModel | None]:
    """Ask the study for parameters, train, tell the study.

    Returns:
        (``{"number", "state", "params", "value", "metrics"}``, the trained model or None when pruned).
    """
    optuna = _optuna()
    study = optuna.load_study(study_name=study_name, storage=storage_url)
    trial = study.ask()
    params = suggest(trial, spec.model.search.space)
    callbacks = [_pruning_callback(trial)] if spec.model.search.pruning else None
    try:
        model = fit(spec, split, device=device, overrides=params, callbacks=callbacks)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return {"number": trial.number, "state": "pruned", "params": params, "value": None, "metrics": {}}, None
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
    """The best completed trial of a study: number, value and parameters."""
    optuna = _optuna()
    best = optuna.load_study(study_name=study_name, storage=storage_url).best_trial
    return {"number": best.number, "value": best.value, "params": best.params}
