"""Compute operators: any compute-bound task runs under its spec's pool, priority, GPU lease and budget.

:class:`ComputeOperator` takes its Airflow placement from the spec's ``compute`` section (pool, pool slots,
``priority_weight`` from the priority class, execution timeout) and runs its work inside a
:class:`ativo.compute.session.ComputeSession`: a GPU lease exported as ``CUDA_VISIBLE_DEVICES`` (or the CPU, per the
spec's fallback), a budget reservation that is settled after the run and released on failure. When the budget
cannot cover the task, the team's policy decides: ``fail`` fails the task at once (no retry, on-call is paged with
the budget, spent, limit, estimate and reset date), ``defer`` hands the task to :class:`BudgetTrigger` until the
limit is raised or the period resets. Crossing 50/80/100 % of a budget posts one alert per period to on-call.

Use it by subclassing (override :meth:`ComputeOperator.run`) or with a callable::

    ComputeOperator(task_id="fit", spec=spec, python_callable=fit_model, op_kwargs={"rounds": 100})

where ``fit_model(context, placement, rounds)`` gets the :class:`ativo.compute.session.Placement`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import TaskDeferred

from ativo.airflow.failure import ExpectedFailure, fail
from ativo.spec import ModelSpec

log = logging.getLogger(__name__)

PRIORITY_WEIGHT = {"low": 1, "normal": 10, "high": 50, "erasure": 100}
"""Priority classes of the spec's ``compute.priority`` → Airflow ``priority_weight`` (absolute rule)."""


GPU_QUEUE, DEFAULT_QUEUE = "gpu", "default"

GPU_POD_TEMPLATE = "/opt/ativo/deploy/helm/pod-templates/gpu.yaml"
"""The KubernetesExecutor's pod template for GPU tasks, where the image (``Dockerfile``) has it."""


def compute_kwargs(spec: ModelSpec) -> dict[str, Any]:
    """Airflow task arguments for a compute-bound task of ``spec``: pool, slots, queue, priority, timeout, pod.

    A ``cuda`` spec's tasks go to the Celery queue ``gpu`` (the CeleryExecutor's workers on GPU hosts listen to it)
    and carry ``executor_config={"pod_template_file": GPU_POD_TEMPLATE}``: the KubernetesExecutor of the Kubernetes
    shape (``deploy/helm/``) starts them from that template, whose pod asks for one ``nvidia.com/gpu`` on a GPU
    node. Each executor reads only its own part (the LocalExecutor and the KubernetesExecutor ignore queues, the
    Local and Celery executors ignore ``executor_config``), so one DAG runs on every shape. Other specs' tasks go
    to ``default`` and the executor's default pod.
    """
    compute = spec.compute
    kwargs: dict[str, Any] = {
        "pool": compute.pool,
        "queue": GPU_QUEUE if compute.device == "cuda" else DEFAULT_QUEUE,
        "pool_slots": compute.pool_slots,
        "priority_weight": PRIORITY_WEIGHT[compute.priority],
        "weight_rule": "absolute",  # a priority class means the same in every DAG, whatever its shape
        "execution_timeout": dt.timedelta(minutes=compute.execution_timeout_minutes),
    }
    if compute.device == "cuda":
        # a plain dict of strings: it serializes with the DAG, and needs no kubernetes import to parse
        kwargs["executor_config"] = {"pod_template_file": GPU_POD_TEMPLATE}
    return kwargs


def run_meta(context: Any) -> dict[str, Any]:
    """The task instance's identity, for lineage tags (map index only for a mapped task)."""
    ti = context["ti"]
    meta = {"dag_id": ti.dag_id, "dag_run_id": ti.run_id, "task_id": ti.task_id, "try_number": ti.try_number}
    if ti.map_index is not None and ti.map_index >= 0:
        meta["map_index"] = ti.map_index
    return meta


def budget_alert(team: str, thresholds: list[int], status: dict[str, Any], conn_id: str) -> None:
    """Tell on-call that a budget crossed ``thresholds`` (once per period; the ledger guarantees it)."""
    from ativo.airflow.notifier import send_to_oncall
    from ativo.ops.alerts import budget_payload

    send_to_oncall(conn_id, budget_payload(team, thresholds, status))


def _spec(name: str) -> ModelSpec:
    from ativo.config import load_settings
    from ativo.spec import get_spec

    return get_spec(name, load_settings().specs_dir)


class ComputeOperator(BaseOperator):
    """Run work under the spec's compute policy (see the module doc).

    Args:
        spec: the model spec whose ``compute`` section applies, or its name (what a mapped task's ``partial``
            needs, since partial arguments are serialized; pass ``**compute_kwargs(spec)`` there too).
        task_key: the cost-history key (defaults to ``<spec>.<task_id>``): tasks with the same key share estimates.
        python_callable: ``f(context, placement, **op_kwargs)``, when not subclassing.
        op_kwargs: keyword arguments for ``python_callable``.
        heartbeat_s: how often the lease and the reservation are renewed (they expire after three missed beats).
        budget_poll_s: how often a task deferred on its budget checks it again (settings' ``budget_poll_s``).
        priority: a priority class instead of the spec's (``erasure`` for erasure retraining).
    """

    ui_color = "#c9e4de"

    def __init__(
        self,
        *,
        spec: ModelSpec | str,
        task_key: str | None = None,
        python_callable: Callable[..., Any] | None = None,
        op_kwargs: dict[str, Any] | None = None,
        heartbeat_s: float = 20.0,
        budget_poll_s: float | None = None,
        priority: str | None = None,
        **kwargs: Any,
    ) -> None:
        model_spec = spec if isinstance(spec, ModelSpec) else _spec(spec)
        if priority is not None:  # erasure work runs at its own class and may spend the protected reserve
            model_spec = model_spec.model_copy(
                update={"compute": model_spec.compute.model_copy(update={"priority": priority})}
            )
        for key, value in compute_kwargs(model_spec).items():
            kwargs.setdefault(key, value)
        super().__init__(**kwargs)
        self.spec = model_spec
        self.task_key = task_key or f"{model_spec.name}.{self.task_id}"
        self.python_callable = python_callable
        self.op_kwargs = op_kwargs or {}
        self.heartbeat_s = heartbeat_s
        self.budget_poll_s = budget_poll_s

    def run(self, context: Any, placement: Any) -> Any:
        """The work; runs with the device placed and the budget reserved. Override, or pass ``python_callable``."""
        if self.python_callable is None:
            raise NotImplementedError(f"{type(self).__name__} needs a python_callable or a run() override")
        return self.python_callable(context, placement, **self.op_kwargs)

    def execute(self, context: Any) -> Any:
        """Place, reserve, run, settle — or fail / defer on the budget (the team's policy)."""
        return self._execute(context, started_at=context["ti"].start_date)

    def execute_after_budget(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after :class:`BudgetTrigger` saw room in the budget (billing starts now, not at the deferral)."""
        from ativo.store.db import utcnow

        log.info("budget has room again (%s); reserving", (event or {}).get("reason", "trigger fired"))
        return self._execute(context, started_at=utcnow())

    def _execute(self, context: Any, started_at: dt.datetime | None, holder_suffix: str = "") -> Any:
        from ativo.compute.budget import BudgetExceeded
        from ativo.compute.leases import NoDeviceAvailable
        from ativo.compute.session import ComputeSession
        from ativo.config import load_settings

        ti = context["ti"]
        holder = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}/try{ti.try_number}{holder_suffix}"
        conn_id = self.spec.oncall_connection
        session = ComputeSession(
            self.spec,
            load_settings(),
            task_key=self.task_key,
            holder=holder,
            started_at=started_at,
            heartbeat=dt.timedelta(seconds=self.heartbeat_s),
            on_alert=lambda team, crossed, status: budget_alert(team, crossed, status, conn_id),
        )
        with ExitStack() as stack:
            try:
                stack.enter_context(session)
            except BudgetExceeded as err:
                if err.policy == "defer":
                    self._defer_on_budget(err)
                fail(str(err))  # retrying cannot help: one line in the log, no traceback; on-call gets it too
            except NoDeviceAvailable as err:
                fail(str(err))
            result = self.run(context, session.placement)
        # leaving the stack settled (or released) the cost
        outcome = session.outcome
        self.log_result(result, None if outcome is None else (outcome.seconds, outcome.cost_usd))
        return result

    def log_result(self, result: Any, cost: tuple[float, float] | None) -> None:
        """The task's last line: what it produced and what it cost (subclasses say more about their result)."""
        if cost is not None:
            log.info("result: ran %.1f s, cost %.6f USD", *cost)

    def _defer_on_budget(self, err: Any) -> None:
        from ativo.airflow.triggers import BudgetTrigger
        from ativo.config import load_settings

        resets = dt.datetime.combine(err.resets_on, dt.time(), tzinfo=dt.UTC)
        log.warning("%s — deferring until the budget has room (policy: defer)", err)
        self.defer(
            trigger=BudgetTrigger(
                team=err.team,
                estimate_usd=err.estimate,
                priority=self.spec.compute.priority,
                period=err.period,
                poll_s=self.budget_poll_s or load_settings().budget_poll_s,
            ),
            method_name="execute_after_budget",
            timeout=resets - dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
        )


TRIALS_LABEL = "{{ trials_label | default('worker %d of %d' % (task.worker + 1, task.workers)) }}"
"""``map_index_template`` of a trial worker: the trials it ran, each by its number and parameters."""


MAP_INDEX_MAX = 250
"""Airflow keeps a rendered map index in 250 characters (a longer one fails the task's last update on PostgreSQL)."""


def workers_label(head: str, labels: list[str]) -> str:
    """A worker's name in the grid: its trials with their parameters, or only their numbers when that is too long."""
    if not labels:
        return f"{head}: no trial left to run"
    full = f"{head}: {' | '.join(labels)}"
    if len(full) <= MAP_INDEX_MAX:
        return full
    short = f"{head}: {len(labels)} trials " + " ".join(label.split(" ", 1)[0] for label in labels)
    return short if len(short) <= MAP_INDEX_MAX else short[: MAP_INDEX_MAX - 1] + "…"


class TrialWorkerOperator(ComputeOperator):
    """A worker of a hyperparameter search (mapped over ``worker``): runs trials until the search has none left.

    A search has as many workers as its pool runs at once; each claims the next free trial slot
    (:mod:`ativo.train.slots`), runs that trial under a compute session of its own (GPU lease, budget reservation
    settled after the trial) and claims again. So the search pays a task start per worker, not per trial, while
    every trial keeps its MLflow child run, its line in the log and its row in the trial table (the Ativo page).

    A trial the budget refuses (policy ``fail``) or that finds no device ends the worker (failed, on-call paged, its
    slot marked refused); with policy ``defer`` the worker waits in the triggerer holding no slot and resumes with
    that trial. A worker that dies (killed, timed out) is retried by Airflow and first runs again the trial it died
    in (the study's half-done trial is closed as failed).

    Args:
        plan: the :class:`ativo.train.search.SearchPlan` as a dict (an XCom of the planning task).
        worker: this worker's index in the search.
        workers: how many workers the search has.
    """

    template_fields = ("plan",)

    def __init__(self, *, plan: Any, worker: int, workers: int, **kwargs: Any) -> None:
        kwargs.setdefault("map_index_template", TRIALS_LABEL)
        super().__init__(**kwargs)
        self.plan = plan
        self.worker = worker
        self.workers = workers
        self._slot = 0
        self._named: Callable[[int, str, str], None] | None = None

    def execute(self, context: Any) -> Any:
        """Run trials until every slot of the search is claimed."""
        return self._work(context, started_at=context["ti"].start_date)

    def execute_after_budget(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the budget had room again: the trial that waited first."""
        from ativo.store.db import utcnow

        log.info("budget has room again (%s); resuming the search", (event or {}).get("reason", "trigger fired"))
        return self._work(context, started_at=utcnow())

    def _work(self, context: Any, started_at: dt.datetime | None) -> list[dict[str, Any]]:
        import time

        from ativo.config import load_settings
        from ativo.store.db import get_engine
        from ativo.train import slots
        from ativo.train.search import SearchPlan

        settings = load_settings()
        engine = get_engine(settings.db_url)
        plan = SearchPlan.from_dict(self.plan)
        ti = context["ti"]
        me = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}"
        head = f"worker {self.worker + 1} of {self.workers}"
        labels = [r["label"] for r in slots.table(engine, plan.study_name) if r["worker"] == me and r["label"]]
        while (claimed := slots.claim(engine, self.spec.name, plan.study_name, plan.n_trials, me)) is not None:
            self._slot = slot = claimed["slot"]
            if claimed["trial_number"] is not None and self._closed_earlier(settings, plan, slot, claimed):
                continue
            log.info("%s: trial slot %d of %d (attempt %d)", head, slot + 1, plan.n_trials, claimed["attempt"])
            began = time.monotonic()

            def named(number: int, label: str, run_id: str, slot: int = slot) -> None:
                slots.started(engine, plan.study_name, slot, number, label, run_id)
                labels.append(label)
                context["trials_label"] = workers_label(head, labels)

            self._named = named
            try:
                result = self._execute(context, started_at=started_at, holder_suffix=f"/slot{slot}")
            except ExpectedFailure as err:  # refused: the budget cannot cover it, or no device
                slots.finish(engine, plan.study_name, slot, "refused", reason=str(err))
                raise
            except TaskDeferred:
                raise  # waiting for the budget: the slot stays this worker's, resumed after
            except Exception as err:
                if ti.try_number > ti.max_tries:  # the last try: the slot ends failed; else a retry runs it again
                    slots.finish(
                        engine,
                        plan.study_name,
                        slot,
                        "failed",
                        reason=f"{type(err).__name__}: {err}",
                        seconds=time.monotonic() - began,
                    )
                raise
            slots.finish(
                engine,
                plan.study_name,
                slot,
                result["state"],
                value=result.get("value"),
                seconds=time.monotonic() - began,
                reason=result.get("reason"),
            )
            started_at = None  # the next trial's session bills from its own start
        context["trials_label"] = workers_label(head, labels)
        return [
            {k: r[k] for k in ("slot", "trial_number", "label", "state", "value", "run_id", "seconds")}
            for r in slots.table(engine, plan.study_name)
            if r["worker"] == me
        ]

    def _closed_earlier(self, settings: Any, plan: Any, slot: int, claimed: dict[str, Any]) -> bool:
        """A retried slot: close the trial the dead try left; True when that trial had in fact finished."""
        from ativo.store.db import get_engine
        from ativo.train import slots
        from ativo.train.search import _optuna, open_study

        optuna = _optuna()
        study = open_study(self.spec, settings.db_url, plan.study_name)
        trial = study.get_trials(deepcopy=False)[int(claimed["trial_number"])]
        if trial.state == optuna.trial.TrialState.RUNNING:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            log.warning(
                "trial #%d (slot %d) was left running by an earlier try: failed, and run again", trial.number, slot
            )
            return False
        if trial.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            slots.finish(
                get_engine(settings.db_url), plan.study_name, slot, trial.state.name.lower(), value=trial.value
            )
            return True
        return False

    def run(self, context: Any, placement: Any) -> Any:
        """One trial on the placed device: ask the study, train, log the child run, tell the study."""
        from ativo.config import load_settings
        from ativo.train.search import SearchPlan, search_trial

        result = search_trial(
            self.spec,
            load_settings(),
            SearchPlan.from_dict(self.plan),
            run_meta(context),
            slot=self._slot,
            device=placement.device,
            threads=placement.threads,
            on_label=lambda text: log.info("trial %s", text),
            on_started=self._named,
        )
        metrics = result.pop("metrics", None) or {}
        result["best_iteration"] = metrics.get("best_iteration")
        return result

    def log_result(self, result: Any, cost: tuple[float, float] | None) -> None:
        """A trial's last line: its number and state, its metric, its rounds (or where it was pruned), its cost."""
        spent = f"; ran {cost[0]:.1f} s, cost {cost[1]:.6f} USD" if cost else ""
        if result.get("state") == "pruned":
            log.info("trial #%s result: pruned (%s)%s", result.get("number"), result.get("reason"), spent)
            return
        rounds = result.get("best_iteration")
        log.info(
            "trial #%s result: %s, %s %.4f on the validation split, %s boosting rounds%s",
            result.get("number"),
            result.get("state"),
            self.spec.model.search.metric,
            result.get("value") or float("nan"),
            "?" if rounds is None else int(rounds) + 1,
            spent,
        )
