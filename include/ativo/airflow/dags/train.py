"""The TRAIN DAG of one spec: open the run in the ledger → parallel search → register the best → gates → decide.

Every decision about what a run trains, the drift episodes it answers and how it ends is the training-run ledger's
(:mod:`ativo.train.runs`); the task bodies here call it and translate its answer (a skip, a page).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from ativo import naming
from ativo.airflow.compute import TRIALS_LABEL, TrialWorkerOperator, compute_kwargs, run_meta
from ativo.airflow.dags.common import challenger_asset, dag_kwargs, schedule
from ativo.airflow.failure import fail
from ativo.config import load_settings
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    from ativo.train.runs import Closed

GATES = ("performance", "champion", "fairness", "robustness", "privacy", "explainability", "infra", "regression")
"""The gates the training DAG judges (the same names as :data:`ativo.evaluate.suite.GATES`, which a test checks;
repeated here so that parsing a DAG never imports the evaluation stack)."""

GATE_TASKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gate_robustness", ("robustness",)),
    ("gates", tuple(g for g in GATES if g != "robustness")),
)
"""The training DAG's gate tasks: the slowest gate (the attack and the perturbations) alone, the others together,
so that two tasks run side by side and each loads the candidate once. One task per gate (eight) spent more time
starting, loading the model and the split and contending for two cores than judging (bench/hpo.py)."""


def build_train_dag(spec: ModelSpec) -> DAG:
    """Training of one spec as a parallel search, triggered by its features or drift Asset (or by hand).

    plan_search (pins the dataset version) → trials × w (mapped workers, as many as the spec's pool runs at once,
    each running trial after trial from the search's slots, each trial under a GPU lease and the budget) →
    register_best (runs when every worker is done, registers the best trial that completed) → one task
    per gate, in parallel → decide (report, model card, alias ``challenger`` or rejection) → announce_challenger.
    """
    challenger = challenger_asset(spec)

    @dag(
        schedule=schedule(spec, "train"),
        **dag_kwargs(spec, "train"),
        on_failure_callback=_release_failed_run(spec),
        params={
            "dataset_version": Param(
                None,
                type=["null", "string"],
                description="Dataset version tag to train on (e.g. adult_income-v0003); empty = from the "
                "triggering Asset event, else the latest.",
            ),
            "n_trials": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                maximum=1024,
                description=f"Trials in the search; empty = the spec's ({spec.model.search.n_trials}).",
            ),
            "trigger": Param(
                None,
                type=["null", "string"],
                description="Set by the reconciler (reconciler, or drift with an episode); leave empty.",
            ),
            "episode": Param(
                None, type=["null", "integer"], description="The drift episode a reconciler run retrains; leave empty."
            ),
            "reason": Param(
                None,
                type=["null", "string"],
                description="Why the run was triggered (shown in its log and on its MLflow run).",
            ),
        },
    )
    def train() -> None:
        @task
        def plan_search() -> list[dict[str, Any]]:
            """Decide the dataset version (claimed, so never trained twice), create the study and the parent run.

            An asset-triggered or reconciler run trains the latest version (it covers the events' older ones) unless
            another run claimed it; a run triggered by hand trains its ``dataset_version``, else the latest.
            Returns one entry per trial worker to map over (as many as the pool runs trials at once).
            """
            from ativo.store.db import get_engine
            from ativo.train.runs import RunOutcome, RunRequest, close_run, open_run
            from ativo.train.search import plan_search as plan

            context = get_current_context()
            params = context["params"]
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            request = RunRequest(
                events=tuple(e.extra or {} for e in events),
                trigger=params.get("trigger"),
                episode=params.get("episode"),
                dataset_version=params.get("dataset_version"),
                reason=params.get("reason"),
            )
            settings = load_settings()
            engine, run_id = get_engine(settings.db_url), context["run_id"]
            planned = open_run(engine, spec.name, run_id, request, is_alive=_train_run_alive(spec))
            logging.getLogger("ativo.train").info("%s run: %s", planned.trigger, planned.reason)
            if planned.skip:
                raise AirflowSkipException(planned.skip)
            n = params.get("n_trials")
            try:
                result = plan(
                    spec,
                    settings,
                    str(planned.dataset_tag),
                    run_meta(context),
                    n_trials=int(n) if n else None,
                    extra_tags={"ativo.trigger": planned.trigger, "ativo.trigger_reason": planned.reason[:4000]},
                    seed_offset=planned.seed_offset,  # new trials on data trained before (a drift retraining)
                )
            except Exception as err:
                if context["ti"].try_number > context["ti"].max_tries:  # the last try: release what it holds
                    _page_given_up(spec, close_run(engine, spec.name, run_id, RunOutcome.failed(str(err))))
                raise
            workers = min(result.n_trials, parallel_trials(spec))
            logging.getLogger("ativo.train").info(
                "%d trial(s) on %d worker task(s): as many as pool %s runs at once",
                result.n_trials,
                workers,
                spec.compute.pool,
            )
            return [{"plan": result.to_dict(), "worker": i, "workers": workers} for i in range(workers)]

        @task(trigger_rule="all_done")
        def register_best(planned: list[dict[str, Any]] | None) -> dict[str, Any]:
            """Register the best completed trial's model (study and trial in its lineage) and close the search."""
            from ativo.model.artifact import DuplicateVersion
            from ativo.train.search import SearchFailed, SearchPlan, finish_search

            if not planned:
                raise AirflowSkipException("no search was planned (see plan_search): nothing to register")
            try:
                return finish_search(
                    spec, load_settings(), SearchPlan.from_dict(planned[0]["plan"]), run_meta(get_current_context())
                )
            except SearchFailed as err:  # retrying cannot make a trial complete: the run's note says why
                from ativo.store.db import get_engine
                from ativo.train.runs import release_failed_run

                run_id = get_current_context()["run_id"]
                closed = release_failed_run(get_engine(load_settings().db_url), spec.name, run_id, str(err))
                _page_given_up(spec, closed)
                fail(str(err))
            except DuplicateVersion as dup:  # nothing new to gate or deploy: the gates and the deploy skip
                # finish_search settled the run's claim and episodes as a duplicate (run_meta carries the run's id)
                raise AirflowSkipException(f"best model: {dup}") from dup

        @task(retries=1)
        def gate(registered: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
            """Run gates on the registered version (its pinned test set, serving's loader), loaded once."""
            from ativo.evaluate.suite import gate_versions

            return [r.to_dict() for r in gate_versions(names, spec, load_settings(), registered["model_version"])]

        @task(trigger_rule="all_done")
        def decide(registered: dict[str, Any] | None, judged: list[list[dict[str, Any]] | None]) -> dict[str, Any]:
            """Gate report + model card on the run; alias challenger on a full pass, else rejected and on-call told.

            ``judged`` holds each gate task's results, None for a gate task that failed (its gates count as failed).
            """
            from ativo.airflow.notifier import note_run, send_to_oncall
            from ativo.evaluate.results import GateResult
            from ativo.evaluate.suite import publish
            from ativo.ops.alerts import rejection_payload
            from ativo.paging import stored_link
            from ativo.store.db import get_engine
            from ativo.train.runs import RunOutcome, close_run, nothing_registered_because

            settings = load_settings()
            engine, run_id = get_engine(settings.db_url), get_current_context()["run_id"]
            if not registered:
                why = nothing_registered_because(engine, spec.name, run_id)  # before it is closed
                # the claim on its dataset version, if it made one, is released: another run may train it
                _page_given_up(spec, close_run(engine, spec.name, run_id, RunOutcome.nothing_registered()))
                note_run(get_current_context()["dag"].dag_id, run_id, f"no new model version: {why}")
                raise AirflowSkipException("no model version was registered (see register_best): nothing to gate")
            results = [GateResult.from_dict(doc) for batch in judged if batch for doc in batch]
            report = publish(spec, settings, registered["model_version"], results, GATES)
            close_run(engine, spec.name, run_id, RunOutcome.registered(str(report["version"]), report["verdict"]))
            context = get_current_context()
            card = stored_link(report.get("model_card_uri"), settings.link_url)
            if not report["passed"]:
                reasons = "; ".join(f"{g['gate']}: {g['reason']}" for g in report["gates"].values() if not g["passed"])
                verdict = (
                    f"REJECTED: version {report['version']} failed {', '.join(report['failed_gates'])}"
                    f" — {reasons} | model card: {card}"
                )
                logging.getLogger("ativo.gates").error(verdict)
                send_to_oncall(
                    spec.oncall_connection,
                    rejection_payload(
                        report, airflow_url=settings.link_url, log_url=getattr(context["ti"], "log_url", None)
                    ),
                )
            else:
                verdict = f"challenger: version {report['version']} passed every gate | model card: {card}"
                logging.getLogger("ativo.gates").info(verdict)
            note_run(context["dag"].dag_id, run_id, verdict)
            return {
                k: report[k]
                for k in (
                    "model",
                    "version",
                    "verdict",
                    "failed_gates",
                    "model_card_uri",
                    "gate_report_uri",
                    "dataset_version",
                )
            }

        @task(outlets=[challenger])
        def announce_challenger(decision: dict[str, Any]) -> dict[str, Any]:
            """Announce a version that passed every gate on the challenger Asset (skipped for a rejected one)."""
            if decision["verdict"] != "challenger":
                failed = ", ".join(decision["failed_gates"])
                raise AirflowSkipException(f"version {decision['version']} was rejected by {failed}: no challenger")
            get_current_context()["outlet_events"][challenger].extra = decision
            return decision

        planned = plan_search()
        trials = TrialWorkerOperator.partial(
            task_id="trials",
            spec=spec.name,
            task_key=f"{spec.name}.trial",
            map_index_template=TRIALS_LABEL,
            doc_md="A worker of the search: claims the next trial slot, asks the study, trains with pruning, logs a "
            "child run, tells the study, and claims again until no slot is left (one per pool slot).",
            **compute_kwargs(spec),
        ).expand_kwargs(planned)
        registered = register_best(planned)  # type: ignore[arg-type]  # XComArg at parse time
        trials >> registered
        gates = [
            gate.override(task_id=task_id)(registered, list(names))  # type: ignore[arg-type]
            for task_id, names in GATE_TASKS
        ]
        decision = decide(registered, gates)  # type: ignore[arg-type]
        announce_challenger(decision)  # type: ignore[arg-type]

    return train()


def parallel_trials(spec: ModelSpec) -> int:
    """How many of the spec's trials its pool runs at once: the pool's slots over the slots a trial holds.

    The pool's size comes from the REST API (as an operator set it), else from the pools file setup imports
    (:data:`ativo.airflow.POOLS_FILE`; ``dag.test()`` has no API server), else 1.
    """
    import json
    from urllib.parse import quote

    from ativo.airflow import POOLS_FILE
    from ativo.orchestrator import AirflowAPI

    pool, slots = spec.compute.pool, None
    try:
        slots = int(AirflowAPI.from_settings(load_settings()).get(f"/api/v2/pools/{quote(pool, safe='')}")["slots"])
    except Exception as err:  # no API server (dag.test()), or no such pool: the shipped pools file says
        logging.getLogger("ativo.train").info("pool %s: size from the pools file (%s)", pool, str(err)[:200])
        try:
            doc = json.loads(POOLS_FILE.read_text())
            slots = int(doc[pool]["slots"])
        except (OSError, KeyError, ValueError):
            slots = 1
    if slots < 0:  # an unlimited pool
        return 1024
    return max(1, slots // spec.compute.pool_slots)


def _train_run_alive(spec: ModelSpec) -> Callable[[str], bool]:
    """Whether a run of the spec's training DAG is still queued or running, asked through the task's supervisor.

    Tasks have no DB access; a run the supervisor cannot find (or no supervisor to ask) counts as ended.
    """

    def alive(run_id: str) -> bool:
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            state = str(RuntimeTaskInstance.get_dagrun_state(naming.train_dag_id(spec.name), run_id))
        except Exception:  # no such run, or no supervisor to ask
            return False
        return state in ("queued", "running")

    return alive


def _page_given_up(spec: ModelSpec, closed: Closed) -> None:
    """Page on-call for each drift episode that failed its last allowed attempt as the run closed."""
    if not closed.given_up:
        return
    from ativo.airflow.notifier import send_to_oncall
    from ativo.ops.alerts import episode_given_up_payload

    for ep in closed.given_up:
        send_to_oncall(spec.oncall_connection, episode_given_up_payload(spec.name, ep))


def _release_failed_run(spec: ModelSpec) -> Any:
    """A DAG failure callback: a training run that failed releases its dataset claim and drift episodes."""

    def release(context: Any) -> None:
        from ativo.store.db import get_engine
        from ativo.train.runs import release_failed_run

        engine = get_engine(load_settings().db_url)
        _page_given_up(spec, release_failed_run(engine, spec.name, context["dag_run"].run_id))

    return release
