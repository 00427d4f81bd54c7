"""DAG builders: one function per DAG family, called by the thin files in ``dags/`` for every valid spec.

Task bodies import the heavy libraries they need; this module imports only Airflow's SDK and Ativo's spec,
so parsing stays cheap.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param, PokeReturnValue, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from ativo import naming
from ativo.airflow.compute import TRIALS_LABEL, TrialWorkerOperator, compute_kwargs, run_meta
from ativo.airflow.notifier import WebhookFailureNotifier
from ativo.config import load_settings
from ativo.errors import SpecError
from ativo.spec import ModelSpec, load_specs


def etl_dag_id(spec: ModelSpec) -> str:
    """DAG id of a spec's ETL."""
    return naming.etl_dag_id(spec.name)


def train_dag_id(spec: ModelSpec) -> str:
    """DAG id of a spec's training."""
    return naming.train_dag_id(spec.name)


def deploy_dag_id(spec: ModelSpec) -> str:
    """DAG id of a spec's deployment."""
    return naming.deploy_dag_id(spec.name)


def features_asset(spec: ModelSpec) -> Asset:
    """The Asset a spec's ETL updates with every new dataset version."""
    return Asset(name=f"{spec.name}.features", uri=f"x-ativo://features/{spec.name}", group="ativo")


def drift_asset(spec: ModelSpec) -> Asset:
    """The Asset the monitor updates when drift that matters is sustained, outside the cooldown, within budget."""
    return Asset(name=f"{spec.name}.drift", uri=f"x-ativo://drift/{spec.name}", group="ativo")


def challenger_asset(spec: ModelSpec) -> Asset:
    """The Asset the training DAG updates when a model version passes every gate (alias ``challenger``)."""
    return Asset(name=f"{spec.name}.challenger", uri=f"x-ativo://models/{spec.name}/challenger", group="ativo")


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


def default_args(spec: ModelSpec) -> dict[str, Any]:
    """Owner, retries and the on-call notifier, shared by every task of every Ativo DAG.

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
    }


def _start(spec: ModelSpec) -> dt.datetime:
    return dt.datetime.combine(spec.source.start_date, dt.time(), tzinfo=dt.UTC)


def _partition(context: Any) -> str:
    return str(context["data_interval_start"].date().isoformat())


def build_etl_dag(spec: ModelSpec) -> DAG:
    """Daily ETL of one spec: validate → write features → version dataset (Asset event)."""
    asset = features_asset(spec)

    @dag(
        dag_id=etl_dag_id(spec),
        description=f"Landing → validated features → dataset version, for {spec.name}",
        schedule=CronDataIntervalTimetable(spec.schedule.etl_cron, timezone="UTC"),
        start_date=_start(spec),
        catchup=spec.schedule.catchup,
        max_active_runs=spec.schedule.max_active_runs,
        default_args=default_args(spec),
        tags=["ativo", "etl", spec.name, *spec.tags],
        doc_md=_ETL_DOC.format(spec=spec.name),
    )
    def etl() -> None:
        @task(retries=3)
        def validate() -> dict[str, Any]:
            """Validate the interval's landing batch; a rejected batch goes to quarantine and fails the run.

            An interval that has not ended yet is refused (its batch may still be arriving), not left running.
            """
            from ativo.data.etl import validate_landing
            from ativo.errors import BatchRejected, IntervalNotOver

            context = get_current_context()
            end = context.get("data_interval_end")
            if end is not None and end > dt.datetime.now(dt.UTC):
                raise AirflowFailException(
                    f"the data interval {_partition(context)} ends at {end.isoformat()}, which is later than now: "
                    "it is not validated before it has ended; a backfill can run it once it has ended"
                )
            settings = load_settings()
            try:
                return validate_landing(spec, settings, _partition(context), interval_end=end)
            except BatchRejected as err:  # retrying cannot help: one line (why, the report, what next), page on-call
                from ativo.airflow.notifier import rejected_batch_line

                line = rejected_batch_line(spec.name, err, settings.link_url)
                logging.getLogger("ativo.etl").error(line)
                raise AirflowFailException(line) from None  # the validation internals are in the report
            except IntervalNotOver as err:
                raise AirflowFailException(str(err)) from None

        @task
        def write_features(accepted: dict[str, Any]) -> dict[str, Any]:
            """Write the interval's Parquet partition (same bytes on a re-run) and index its subjects."""
            from ativo.data.etl import write_features as write
            from ativo.errors import BatchRejected

            settings = load_settings()
            try:
                return write(spec, settings, _partition(get_current_context()), accepted["sha256"])
            except BatchRejected as err:  # a concurrent run took its record ids: quarantined, retrying cannot help
                from ativo.airflow.notifier import rejected_batch_line

                raise AirflowFailException(rejected_batch_line(spec.name, err, settings.link_url)) from None

        @task(outlets=[asset])
        def version_dataset(written: dict[str, Any]) -> dict[str, Any]:
            """Snapshot the lake as a DVC dataset version and announce it on the features Asset."""
            from ativo.data.etl import version_dataset as snapshot

            version = snapshot(spec, load_settings())
            if not version.created:
                raise AirflowSkipException(
                    f"no new dataset version: the lake is unchanged since {version.tag} "
                    f"(partition {_partition(get_current_context())} is already in it)"
                )
            extra = version.event_extra()
            get_current_context()["outlet_events"][asset].extra = extra
            return extra

        version_dataset(write_features(validate()))  # type: ignore[arg-type]  # XComArg at parse time

    return etl()


def build_train_dag(spec: ModelSpec) -> DAG:
    """Training of one spec as a parallel search, triggered by its features or drift Asset (or by hand).

    plan_search (pins the dataset version) → trials × w (mapped workers, as many as the spec's pool runs at once,
    each running trial after trial from the search's slots, each trial under a GPU lease and the budget) →
    register_best (runs when every worker is done, registers the best trial that completed) → one task
    per gate, in parallel → decide (report, model card, alias ``challenger`` or rejection) → announce_challenger.
    """
    asset = features_asset(spec)
    drift = drift_asset(spec)
    challenger = challenger_asset(spec)

    @dag(
        dag_id=train_dag_id(spec),
        description=f"Pinned dataset version → parallel XGBoost search → best model registered, for {spec.name}",
        schedule=asset | drift,
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        on_failure_callback=_release_failed_run(spec),
        default_args=default_args(spec),
        tags=["ativo", "train", spec.name, *spec.tags],
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
        doc_md=_TRAIN_DOC.format(spec=spec.name, pool=spec.compute.pool, team=spec.compute.team),
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
            from ativo.store.episodes import claim_episodes, hand_over, settle_episodes
            from ativo.train.claims import latest_version, plan_training, settle, take_over
            from ativo.train.search import plan_search as plan

            context = get_current_context()
            params = context["params"]
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            drift_events = [e for e in events if (e.extra or {}).get("episode") is not None]
            event_tags = [str(e.extra["tag"]) for e in events if (e.extra or {}).get("tag")]
            settings = load_settings()
            engine, run_id = get_engine(settings.db_url), context["run_id"]
            reason = params.get("reason")
            episodes: list[dict[str, Any]] = []
            wanted = [int(e.extra["episode"]) for e in drift_events]
            if params.get("episode") is not None:
                wanted.append(int(params["episode"]))
            if wanted or params.get("trigger") == "drift":
                # every open episode (these and any whose event was lost), claimed: one retraining covers them all,
                # and a merged, repeated or reconciled event retrains nothing twice
                episodes = claim_episodes(engine, spec.name, run_id)
                if episodes:
                    reason = "drift episode(s) " + ", ".join(
                        f"{ep['id']} (version {ep['version']}: {'; '.join(ep['reasons'])[:300]}; report "
                        f"{ep['report_uri']})"
                        for ep in episodes
                    )
            if episodes:
                trigger = "drift"
            elif params.get("trigger") == "drift" or (drift_events and not event_tags):
                raise AirflowSkipException(
                    f"drift episode(s) {', '.join(map(str, wanted))} already taken by "
                    "another training run: not retrained twice"
                )
            else:
                trigger = "reconciler" if params.get("trigger") == "reconciler" else ("asset" if events else "manual")
            decided = plan_training(
                engine,
                spec.name,
                run_id,
                requested=params.get("dataset_version") if trigger == "manual" else None,
                trigger=trigger,
                event_tags=event_tags,
                reason=reason,
                drifting={str(ep["version"]) for ep in episodes},
            )
            log = logging.getLogger("ativo.train")
            log.info("%s run: %s", trigger, decided.reason)
            if decided.covered_by:
                holder = decided.covered_by
                if _run_state(train_dag_id(spec), holder) in ("queued", "running"):
                    hand_over(engine, spec.name, run_id, holder)  # that run settles the episodes when it ends
                    raise AirflowSkipException(decided.skip)
                # the claim's run ended without settling it (it died): this run takes the latest version over
                took = f"{decided.reason}; took the claim on the latest version over from run {holder}, which ended"
                latest = latest_version(engine, spec.name)
                if latest is None or not take_over(engine, spec.name, latest[0], holder, run_id, took):
                    raise AirflowSkipException(decided.skip)
                decided = plan_training(
                    engine,
                    spec.name,
                    run_id,
                    requested=None,
                    trigger=trigger,
                    reason=took,
                    drifting={str(ep["version"]) for ep in episodes},
                )
            if decided.covered_version:
                settle_episodes(
                    engine,
                    spec.name,
                    run_id,
                    f"covered by version {decided.covered_version}, trained on the latest data",
                )
            if decided.skip:
                raise AirflowSkipException(decided.skip)
            n = params.get("n_trials")
            # new trials on data trained before: a different sampler seed for every episode and attempt
            offset = (
                1000 * max(ep["id"] for ep in episodes) + 100 * max(ep["attempt"] for ep in episodes)
                if decided.again
                else 0
            )
            try:
                result = plan(
                    spec,
                    settings,
                    decided.tag,
                    run_meta(context),
                    n_trials=int(n) if n else None,
                    extra_tags={"ativo.trigger": trigger, "ativo.trigger_reason": decided.reason[:4000]},
                    seed_offset=offset,
                )
            except Exception as err:
                if context["ti"].try_number > context["ti"].max_tries:  # the last try: release what it holds
                    settle(engine, spec.name, run_id, f"failed: {err}")
                    _settle_drift(spec, engine, run_id, f"failed: {err}")
                raise
            workers = min(result.n_trials, parallel_trials(spec))
            log.info(
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
            except SearchFailed as err:
                raise AirflowFailException(str(err)) from err
            except DuplicateVersion as dup:  # nothing new to gate or deploy: the gates and the deploy skip
                from ativo.store.db import get_engine
                from ativo.store.episodes import settle_episodes

                settle_episodes(
                    get_engine(load_settings().db_url),
                    spec.name,
                    get_current_context()["run_id"],
                    f"retrained: the best model duplicates version {dup.version}",
                )
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
            from ativo.train.claims import settle

            settings = load_settings()
            engine, run_id = get_engine(settings.db_url), get_current_context()["run_id"]
            if not registered:
                # the claim on its dataset version, if it made one, is released: another run may train it
                settle(engine, spec.name, run_id, "failed: no model version was registered (see register_best)")
                _settle_drift(spec, engine, run_id, "failed: no model version was registered")
                note_run(
                    get_current_context()["dag"].dag_id,
                    run_id,
                    "no new model version: the best trial was not registered (register_best says why: "
                    "a byte-identical model already registered, or no trial finished)",
                )
                raise AirflowSkipException("no model version was registered (see register_best): nothing to gate")
            results = [GateResult.from_dict(doc) for batch in judged if batch for doc in batch]
            report = publish(spec, settings, registered["model_version"], results, GATES)
            settle(engine, spec.name, run_id, f"registered version {report['version']}: {report['verdict']}")
            _settle_drift(spec, engine, run_id, f"retrained: version {report['version']}, {report['verdict']}")
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
    (``deploy/airflow/pools.json``; ``dag.test()`` has no API server), else 1.
    """
    import json
    from urllib.parse import quote

    from ativo.config import PROJECT_ROOT
    from ativo.orchestrator import AirflowAPI

    pool, slots = spec.compute.pool, None
    try:
        slots = int(AirflowAPI.from_settings(load_settings()).get(f"/api/v2/pools/{quote(pool, safe='')}")["slots"])
    except Exception as err:  # no API server (dag.test()), or no such pool: the shipped pools file says
        logging.getLogger("ativo.train").info("pool %s: size from the pools file (%s)", pool, str(err)[:200])
        try:
            doc = json.loads((PROJECT_ROOT / "deploy" / "airflow" / "pools.json").read_text())
            slots = int(doc[pool]["slots"])
        except (OSError, KeyError, ValueError):
            slots = 1
    if slots < 0:  # an unlimited pool
        return 1024
    return max(1, slots // spec.compute.pool_slots)


def _run_state(dag_id: str, run_id: str) -> str | None:
    """A DAG run's state, asked through the task's supervisor (tasks have no DB access); None when unknown."""
    try:
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        return str(RuntimeTaskInstance.get_dagrun_state(dag_id, run_id))
    except Exception:  # no such run, or no supervisor to ask
        return None


def _settle_drift(spec: ModelSpec, engine: Any, run_id: str, outcome: str) -> None:
    """Record how the run's drift episodes ended; page on-call for one that failed its last allowed attempt."""
    from ativo.airflow.notifier import send_to_oncall
    from ativo.ops.alerts import episode_given_up_payload
    from ativo.store.episodes import given_up, settle_episodes

    if settle_episodes(engine, spec.name, run_id, outcome) and outcome.startswith("failed"):
        for ep in given_up(engine, spec.name, run_id):
            send_to_oncall(spec.oncall_connection, episode_given_up_payload(spec.name, ep))


def _release_failed_run(spec: ModelSpec) -> Any:
    """A DAG failure callback: a training run that failed releases its dataset claim and drift episodes."""

    def release(context: Any) -> None:
        from ativo.store.db import get_engine
        from ativo.train.claims import settle

        engine = get_engine(load_settings().db_url)
        run_id = context["dag_run"].run_id
        settle(engine, spec.name, run_id, "failed: the training run failed")
        _settle_drift(spec, engine, run_id, "failed: the training run failed")

    return release


def _deploy_approval(spec: ModelSpec) -> type:
    """Airflow's ApprovalOperator, judging the answer (four eyes) and signing it where Airflow hands it over."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    class DeployApproval(ApprovalOperator):
        def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
            ret = super().execute_complete(context=context, event=event)  # a "Reject" skips start: held
            if list(ret.get("chosen_options") or []) == [self.APPROVE]:
                from ativo.deploy.approvals import ApprovalRefused, record

                checked = context["ti"].xcom_pull(task_ids="infra_check")  # the version the body showed
                try:
                    record(
                        load_settings(),
                        spec,
                        str(checked["version"]),
                        dict(ret),
                        deploy_actor(context),
                        str(context["run_id"]),
                    )
                except ApprovalRefused as err:
                    raise AirflowFailException(str(err)) from err
            return ret

    return DeployApproval


def deploy_actor(context: Any) -> str:
    """Who a deploy run acts for: the Airflow user who triggered it, else the challenger event that did."""
    user = getattr(context.get("dag_run"), "triggering_user_name", None)
    return f"airflow:{user}" if user else "deploy (challenger event)"


def build_deploy_dag(spec: ModelSpec) -> DAG:
    """Deployment of one spec's challengers, triggered by its challenger Asset (or by hand with a version).

    infra_check (the serving loader, an answer, the latency budget) → start (canary at the spec's percent, or
    shadow; the first version becomes champion directly) → watch (a rescheduling sensor: live figures every
    ``watch_interval_seconds`` for ``canary_window_minutes``) → conclude (promote, or roll back with the reason
    and page on-call).
    """
    challenger = challenger_asset(spec)
    window_s = spec.deploy.canary_window_minutes * 60

    @dag(
        dag_id=deploy_dag_id(spec),
        description=f"Challenger → canary/shadow on live traffic → champion or rollback, for {spec.name}",
        schedule=[challenger],
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(spec),
        tags=["ativo", "deploy", spec.name, *spec.tags],
        params={
            "version": Param(
                None,
                type=["null", "string"],
                pattern="^[0-9]+$",
                description="Model version to deploy; empty = the triggering challenger event's, else "
                "the version holding the alias 'challenger'.",
            ),
        },
        doc_md=_DEPLOY_DOC.format(
            spec=spec.name, percent=spec.deploy.canary_percent, window=spec.deploy.canary_window_minutes
        ),
    )
    def deploy() -> None:
        @task(retries=1, multiple_outputs=spec.deploy.approval == "required")
        def infra_check() -> dict[str, Any]:
            """Load the version through the serving code path; it must answer within the latency budget."""
            from ativo.deploy.promotion import DeployError
            from ativo.deploy.steps import authorized_or_refuse, version_to_deploy
            from ativo.deploy.steps import infra_check as check_infra

            context = get_current_context()
            events = [e for evs in (context.get("triggering_asset_events") or {}).values() for e in evs]
            settings = load_settings()
            requested = context["params"].get("version")
            version = version_to_deploy(spec, settings, requested, [e.extra or {} for e in events])
            actor = deploy_actor(context)
            try:  # before anything else: a rejected or ungated version never reaches even the infra check
                gated = authorized_or_refuse(spec, settings, version, actor=actor, requested=bool(requested))
            except DeployError as err:
                raise AirflowFailException(str(err)) from err
            result = check_infra(spec, settings, version)
            if not result.passed:
                raise AirflowFailException(f"version {version} failed the infra check: {result.reason}")
            out = {"version": version, "infra": result.metrics, "actor": actor}
            if spec.deploy.approval == "required":
                from ativo.deploy.approvals import body

                out["approval_body"] = body(spec, version, gated, actor, settings.link_url)
            return out

        @task(retries=1)
        def start(checked: dict[str, Any], answer: dict[str, Any] | None = None) -> dict[str, Any]:
            """Put the version on trial (canary or shadow), or make it champion when there is none.

            With four eyes (``deploy.approval: required``), only once someone other than the requester approved.
            """
            from ativo.deploy.promotion import DeployError
            from ativo.deploy.steps import begin

            settings = load_settings()
            requester = checked.get("actor") or "deploy"
            approval = None
            try:
                if spec.deploy.approval == "required":  # the signed approval, never the approve task's XCom
                    from ativo.deploy.approvals import approved

                    approval = approved(settings, spec, checked["version"], get_current_context()["run_id"])
                return begin(spec, settings, checked["version"], actor=requester, approval=approval)
            except DeployError as err:
                raise AirflowFailException(str(err)) from err

        @task.sensor(
            poke_interval=spec.deploy.watch_interval_seconds, timeout=window_s + 3600, mode="reschedule", retries=2
        )
        def watch(state: dict[str, Any]) -> PokeReturnValue:
            """Judge the trial on live figures; done at the first breach or when the window ends."""
            from ativo.deploy.steps import check

            verdict = check(spec, load_settings(), state)
            logging.getLogger("ativo.deploy").info("%s — %s", verdict.reason, verdict.figures)
            return PokeReturnValue(is_done=verdict.decided, xcom_value=verdict.to_dict())

        @task(trigger_rule="all_done", retries=2)
        def conclude(
            checked: dict[str, Any] | None, state: dict[str, Any] | None, verdict: dict[str, Any] | None
        ) -> dict[str, Any]:
            """Promote on a passing verdict; otherwise roll back, record why and page on-call."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.deploy.steps import DeploymentAbandoned, finish
            from ativo.ops.alerts import deploy_payload

            try:
                rec, page = finish(spec, load_settings(), checked, state, verdict)
            except DeploymentAbandoned as err:
                if err.record is not None:
                    send_to_oncall(spec.oncall_connection, deploy_payload(spec.name, err.record))
                # Fail the run (not skip): a deployment that never happened must not look like a successful one.
                raise AirflowFailException(str(err)) from err
            if page:
                send_to_oncall(spec.oncall_connection, deploy_payload(spec.name, rec))
            return {k: rec.get(k) for k in ("action", "version", "reason", "aliases_after", "uri")}

        checked = infra_check()
        if spec.deploy.approval == "required":  # four eyes: waits without a worker; a timeout answers "Reject"
            approve = _deploy_approval(spec)(
                task_id="approve",
                subject=f"Put {spec.registered_model_name} on live traffic? (four eyes: not the requester)",
                body=checked["approval_body"],  # type: ignore[index]
                defaults="Reject",
                response_timeout=dt.timedelta(hours=spec.deploy.approval_timeout_hours),
                retries=0,
            )
            state = start(checked, approve.output)  # type: ignore[arg-type]
        else:
            state = start(checked)  # type: ignore[arg-type]  # XComArg at parse time
        verdict = watch(state)  # type: ignore[arg-type]
        conclude(checked, state, verdict)  # type: ignore[arg-type]

    return deploy()


def build_reconcile_dag(spec: ModelSpec) -> DAG:
    """The training reconciler of one spec: when the latest dataset version has no training run, trigger one.

    check (the platform DB: latest version, its claim) → trigger (``<spec>__train`` with run id
    ``reconcile__<tag>`` and a note saying why; a run of that id already there is left alone).
    """
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    class TriggerTraining(TriggerDagRunOperator):
        template_fields = (*TriggerDagRunOperator.template_fields, "note")  # the note says why, in the run's UI

    @dag(
        dag_id=naming.reconcile_dag_id(spec.name),
        description=f"Every dataset version of {spec.name} that is the latest gets trained (asset events get lost)",
        schedule=CronDataIntervalTimetable(spec.schedule.reconcile_cron, timezone="UTC"),
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args={**default_args(spec), "retries": 1},
        tags=["ativo", "reconcile", spec.name, *spec.tags],
        render_template_as_native_obj=True,
        doc_md=_RECONCILE_DOC.format(spec=spec.name, cron=spec.schedule.reconcile_cron),
    )
    def reconcile() -> None:
        @task
        def check() -> dict[str, Any]:
            """What no training run covers: a drift episode, else the latest dataset version (else skip)."""
            from ativo.store.db import get_engine
            from ativo.store.episodes import open_episodes
            from ativo.train.claims import latest_version
            from ativo.train.claims import reconcile as missing

            engine = get_engine(load_settings().db_url)
            episodes = open_episodes(engine, spec.name)
            if episodes:
                ep = episodes[-1]
                attempt = int(ep.get("attempt") or 0) + 1
                reason = (
                    f"reconciler: drift episode {ep['id']} (version {ep['version']}) has no training run (its "
                    "asset event was merged or dropped, or its run failed)"
                    + (f"; attempt {attempt}" if attempt > 1 else "")
                )
                return {
                    "run_id": f"reconcile__drift-{ep['id']}" + (f"__{attempt}" if attempt > 1 else ""),
                    "reason": reason,
                    "conf": {"trigger": "drift", "episode": ep["id"], "reason": reason},
                }
            todo = missing(engine, spec.name)
            if todo is None:
                latest = latest_version(engine, spec.name)
                raise AirflowSkipException(
                    f"nothing to reconcile: {latest[0]} has a training run"
                    if latest
                    else f"nothing to reconcile: {spec.name} has no dataset version yet"
                )
            return {**todo, "conf": {"trigger": "reconciler", "reason": todo["reason"]}}

        checked = check()
        checked >> TriggerTraining(
            task_id="trigger_training",
            trigger_dag_id=train_dag_id(spec),
            trigger_run_id="{{ ti.xcom_pull(task_ids='check')['run_id'] }}",
            conf="{{ ti.xcom_pull(task_ids='check')['conf'] }}",  # type: ignore[arg-type]  # a dict once rendered
            note="{{ ti.xcom_pull(task_ids='check')['reason'] }}",
            skip_when_already_exists=True,
            wait_for_completion=False,
        )

    return reconcile()


def build_monitor_dag(spec: ModelSpec) -> DAG:
    """Monitoring of one spec's champion on ``monitor.cron``: the window's drift and decay, and whether to retrain.

    judge_window (prediction and label logs → statistics → report beside the model card → decision recorded, with
    the gauges ``/ativo/metrics`` serves; on-call paged for a drift held back) → announce_drift (the
    ``<spec>.drift`` Asset, only for a sustained drift outside the cooldown and within budget).
    """
    drift = drift_asset(spec)

    @dag(
        dag_id=naming.monitor_dag_id(spec.name),
        description=f"Champion's live window → drift, decay and fairness → retrain on sustained drift, for {spec.name}",
        schedule=CronDataIntervalTimetable(spec.monitor.cron, timezone="UTC"),
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(spec),
        tags=["ativo", "monitor", spec.name, *spec.tags],
        params={
            "start": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Window start (ISO 8601); empty = the run's data interval.",
            ),
            "end": Param(
                None,
                type=["null", "string"],
                format="date-time",
                description="Window end (ISO 8601, exclusive); empty = the run's data interval.",
            ),
        },
        doc_md=_MONITOR_DOC.format(
            spec=spec.name,
            cron=spec.monitor.cron,
            sustain=spec.monitor.sustain,
            cooldown=spec.monitor.cooldown_hours,
            team=spec.compute.team,
        ),
    )
    def monitor() -> None:
        @task
        def judge_window() -> dict[str, Any]:
            """Read the window, judge it against the champion's reference profile, report, decide, record."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.monitor.run import monitor_window
            from ativo.ops.alerts import drift_payload

            context = get_current_context()
            params = context["params"]
            start = dt.datetime.fromisoformat(params["start"]) if params.get("start") else None
            end = dt.datetime.fromisoformat(params["end"]) if params.get("end") else None
            start = start or context["data_interval_start"]
            end = end or context["data_interval_end"]
            if start is None or end is None or start >= end:
                raise AirflowFailException(f"no window to monitor: start {start}, end {end} (give both, start first)")
            doc = monitor_window(
                spec, load_settings(), start.astimezone(dt.UTC), end.astimezone(dt.UTC), dag_run_id=context["run_id"]
            )
            decision = doc["decision"]
            log = logging.getLogger("ativo.monitor")
            log.info(
                "window %s → %s: %d rows; %s",
                doc["window"]["start"],
                doc["window"]["end"],
                doc["assessment"]["rows"],
                "; ".join(doc["assessment"]["reasons"]) or "no drift",
            )
            log.info("decision: %s: %s (report %s)", decision["action"], decision["reason"], doc["report_html_uri"])
            if decision["page"]:
                send_to_oncall(spec.oncall_connection, drift_payload(doc))
            return {k: doc[k] for k in ("spec", "version", "window", "decision", "report_uri", "report_html_uri")} | {
                "reasons": doc["assessment"]["reasons"],
                "rows": doc["assessment"]["rows"],
            }

        @task(outlets=[drift])
        def announce_drift(judged: dict[str, Any]) -> dict[str, Any]:
            """Emit the drift Asset for a new episode (skipped otherwise, saying why) and tell on-call."""
            from ativo.airflow.notifier import send_to_oncall
            from ativo.ops.alerts import drift_payload

            decision = judged["decision"]
            if not decision["emit"]:
                raise AirflowSkipException(f"no retraining: {decision['action']}: {decision['reason']}")
            extra = {
                "episode": decision["episode"],
                "version": judged["version"],
                "window": judged["window"],
                "reasons": judged["reasons"][:20],
                "report": judged["report_html_uri"],
            }
            get_current_context()["outlet_events"][drift].extra = extra
            send_to_oncall(
                spec.oncall_connection,
                drift_payload({**judged, "assessment": {"reasons": judged["reasons"], "rows": judged["rows"]}}),
            )
            return extra

        announce_drift(judge_window())  # type: ignore[arg-type]  # XComArg at parse time

    return monitor()


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

Backfill: Trigger → Backfill in the UI, or `airflow backfill create --dag-id {spec}__etl --from-date … --to-date …`.
"""

_TRAIN_DOC = """
### Training of `{spec}`
Triggered by each new `{spec}.features` dataset version (or by hand, with `dataset_version` and `n_trials` in the
run conf). **plan_search** pins the dataset version (run conf, else the newest event, else the latest), creates
the Optuna study in the platform DB and the parent MLflow run. The **trials** workers (one per slot of pool
`{pool}`, each named by the trials it ran) take the search's trial slots one after another: each trial runs under
a GPU lease or on CPU, within the budget of team `{team}`; it asks the study, trains XGBoost with pruning, logs a
child run and tells the study. A trial the budget cannot cover ends its worker at once with the budget's figures
(or waits, if the team's policy is `defer`). The trial table is on the Ativo page. **register_best** registers
the best completed trial's model with its lineage (dataset, commit, study, trial). Two gate tasks judge that
version side by side: **gate_robustness** (the attack and the perturbations, the slowest) and **gates** (performance,
champion comparison, fairness, privacy, explainability, infra, regression); **decide** logs the gate
report and model card to its MLflow run and sets the registry alias `challenger` only if every gate passed
(otherwise the version is tagged rejected with its reasons and on-call is told); **announce_challenger** then
updates the `{spec}.challenger` Asset (it is skipped for a rejected version).
"""

_RECONCILE_DOC = """
### Training reconciler of `{spec}`
Airflow merges or drops `{spec}.features` asset events that arrive while training is busy, so a dataset version
could go untrained. On `{cron}`, **check** reads the platform DB: when the latest dataset version has no training
run (every run claims the version it trains), **trigger_training** starts `{spec}__train` as run
`reconcile__<tag>`, noted with why. A training run always trains the latest version when it starts (which covers
the older ones) and skips, saying which run did, when another run claimed it: a version is never trained twice.
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
