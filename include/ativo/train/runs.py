"""The training-run ledger: what a training run trains, which drift episodes it answers, and how it ends.

One owner for the two tables that must stay consistent with each other: the dataset claims
(:mod:`ativo.train.claims`: every latest dataset version is trained, or superseded, never twice automatically) and
the drift episodes (:mod:`ativo.store.episodes`: one episode retrains once). The monitor announces an episode
(:func:`ativo.store.episodes.announce`); from then on only the ledger changes it or a claim: the training DAG opens
and closes its runs here, the search settles a duplicate here, and the reconciler asks :func:`missing_run`.

- :func:`open_run` decides, when a run starts, what it does (:class:`RunPlan`): the drift episodes it claims, the
  dataset version it claims and trains, the sampler's seed offset, or why it skips; a drift run whose data another
  run is training **hands its episodes over** to that run when it is still alive, and **takes the claim over** when
  that run died without settling it. What Airflow knows (is that run still alive?) comes in as a plain callable.
- :func:`close_run` settles the run's claim and episodes (:class:`RunOutcome`: registered, a duplicate, nothing
  registered, failed) and says which episodes failed their last allowed attempt, for the caller to page.

Plain Python on the platform DB: callable, and tested, without Airflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine

from ativo.store import episodes
from ativo.train import claims

__all__ = [
    "Closed",
    "MissingRun",
    "RunOutcome",
    "RunPlan",
    "RunRequest",
    "close_run",
    "missing_run",
    "nothing_registered_because",
    "open_run",
    "release_failed_run",
]


@dataclass(frozen=True)
class RunRequest:
    """What started a training run: its triggering asset events and its conf.

    Attributes:
        events: the extra of each triggering asset event (``{}`` for one without): a features event carries the
            dataset version's ``tag``, a drift event its ``episode``.
        trigger: the conf's ``trigger``, set by the reconciler (``reconciler``, or ``drift`` with an episode).
        episode: the conf's ``episode``: the drift episode a reconciler run retrains.
        dataset_version: the conf's ``dataset_version``: what a run by hand trains (else the latest).
        reason: the conf's ``reason``: why the run was triggered.
    """

    events: tuple[Mapping[str, Any], ...] = ()
    trigger: str | None = None
    episode: int | None = None
    dataset_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RunPlan:
    """What a training run does: train ``dataset_tag``, or skip (``skip`` says why).

    Attributes:
        trigger: ``asset`` (features events), ``reconciler``, ``drift`` or ``manual``.
        reason: why it trains what it trains (its log, its MLflow run).
        dataset_tag: the dataset version it claimed and trains (None when it skips).
        episodes: the drift episodes it claimed (handed over to ``covered_by`` when that is set).
        seed_offset: added to the sampler's seed: new trials on data trained before, different for every episode and
            attempt (0 otherwise).
        skip: why the run trains nothing (None when it trains).
        covered_by: the live run that already trains the latest data and now answers this run's episodes.
    """

    trigger: str
    reason: str
    dataset_tag: str | None = None
    episodes: tuple[int, ...] = ()
    seed_offset: int = 0
    skip: str | None = None
    covered_by: str | None = None

    @property
    def trains(self) -> bool:
        """Whether the run trains (otherwise it skips, saying why)."""
        return self.skip is None


def _drift_reason(held: list[dict[str, Any]]) -> str:
    return "drift episode(s) " + ", ".join(
        f"{ep['id']} (version {ep['version']}: {'; '.join(ep['reasons'])[:300]}; report {ep['report_uri']})"
        for ep in held
    )


def open_run(
    engine: Engine,
    spec: str,
    run_id: str,
    request: RunRequest,
    *,
    is_alive: Callable[[str], bool],
) -> RunPlan:
    """Decide what a training run does when it starts, and claim what it trains (see the module doc).

    A run with a drift episode (an event's, the conf's, or ``trigger: drift``) claims every open episode: one
    retraining covers them all, and a merged, repeated or reconciled event retrains nothing twice. It then trains
    the latest dataset version: claimed when untrained; retrained with new trials (``seed_offset``) when the drifting
    version was trained on it; skipped when another version trained on it answers the drift already (the episodes
    are settled so), or when a live run is training it now (the episodes are handed over to that run,
    ``covered_by``); a run that claimed it and died without settling is taken over. An asset or reconciler run
    trains the latest version unless another run claimed it; a run by hand trains its ``dataset_version``, else the
    latest.

    Args:
        engine: the platform DB.
        spec: the spec's name.
        run_id: the run deciding (a retry of the same run keeps what it claimed).
        request: what started the run.
        is_alive: whether another run (by run id) is still queued or running.

    Raises:
        DatasetVersionError: a run by hand asked for a dataset version that does not exist.
    """
    drift_events = [e for e in request.events if e.get("episode") is not None]
    event_tags = [str(e["tag"]) for e in request.events if e.get("tag")]
    wanted = [int(e["episode"]) for e in drift_events]
    if request.episode is not None:
        wanted.append(int(request.episode))
    reason = request.reason
    held: list[dict[str, Any]] = []
    if wanted or request.trigger == "drift":
        held = episodes.claim_episodes(engine, spec, run_id)
        if held:
            reason = _drift_reason(held)
    if held:
        trigger = "drift"
    elif request.trigger == "drift" or (drift_events and not event_tags):
        return RunPlan(
            "drift",
            reason or "drift",
            skip=f"drift episode(s) {', '.join(map(str, wanted))} already taken by another training run: "
            "not retrained twice",
        )
    elif request.trigger == "reconciler":
        trigger = "reconciler"
    else:
        trigger = "asset" if request.events else "manual"
    ids = tuple(int(ep["id"]) for ep in held)
    drifting = {str(ep["version"]) for ep in held}
    decided = claims.plan_training(
        engine,
        spec,
        run_id,
        requested=request.dataset_version if trigger == "manual" else None,
        trigger=trigger,
        event_tags=event_tags,
        reason=reason,
        drifting=drifting,
    )
    if decided.covered_by:
        holder = decided.covered_by
        if is_alive(holder):  # that run settles the episodes when it ends
            episodes.hand_over(engine, spec, run_id, holder)
            return RunPlan(trigger, decided.reason, episodes=ids, skip=decided.skip, covered_by=holder)
        # the claim's run ended without settling it (it died): this run takes the latest version over
        took = f"{decided.reason}; took the claim on the latest version over from run {holder}, which ended"
        latest = claims.latest_version(engine, spec)
        if latest is None or not claims.take_over(engine, spec, latest[0], holder, run_id, took):
            return RunPlan(trigger, decided.reason, episodes=ids, skip=decided.skip)
        # the episodes the dead run held (its own, or handed over to it) are this run's to answer now
        if episodes.hand_over(engine, spec, holder, run_id):
            held = episodes.held_by(engine, spec, run_id)
            ids = tuple(int(ep["id"]) for ep in held)
            drifting = {str(ep["version"]) for ep in held}
        decided = claims.plan_training(
            engine, spec, run_id, requested=None, trigger=trigger, reason=took, drifting=drifting
        )
    if decided.covered_version:
        episodes.settle_episodes(
            engine, spec, run_id, f"covered by version {decided.covered_version}, trained on the latest data"
        )
    if decided.skip:
        return RunPlan(trigger, decided.reason, episodes=ids, skip=decided.skip)
    offset = 1000 * max(ids) + 100 * max(int(ep["attempt"]) for ep in held) if decided.again and held else 0
    return RunPlan(trigger, decided.reason, dataset_tag=decided.tag, episodes=ids, seed_offset=offset)


@dataclass(frozen=True)
class RunOutcome:
    """How a training run ended, in the words its claim and its episodes record (``failed…`` releases both)."""

    claim: str
    episodes: str

    @classmethod
    def registered(cls, version: str, verdict: str) -> RunOutcome:
        """The run registered ``version``, which the gates judged ``verdict`` (challenger or rejected)."""
        return cls(f"registered version {version}: {verdict}", f"retrained: version {version}, {verdict}")

    @classmethod
    def duplicate(cls, version: str) -> RunOutcome:
        """The run's best model is byte-identical to the registered ``version``: nothing new, nothing failed."""
        return cls(f"duplicate of version {version}", f"retrained: the best model duplicates version {version}")

    @classmethod
    def nothing_registered(cls) -> RunOutcome:
        """The run ended without a model version (no trial finished, or the search did not register)."""
        return cls(
            "failed: no model version was registered (see register_best)", "failed: no model version was registered"
        )

    @classmethod
    def failed(cls, why: str) -> RunOutcome:
        """The run failed (``why``): another run may take its dataset version and its episodes."""
        return cls(f"failed: {why}", f"failed: {why}")

    @property
    def is_failure(self) -> bool:
        """Whether the run's episodes are released for another attempt."""
        return self.episodes.startswith("failed")


@dataclass(frozen=True)
class Closed:
    """What :func:`close_run` settled.

    Attributes:
        claims: dataset claims settled (0 when the run held none, or they were settled already).
        episodes: drift episodes settled.
        given_up: the episodes that failed their last allowed attempt with this call: page on-call for each.
    """

    claims: int
    episodes: int
    given_up: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def close_run(engine: Engine, spec: str, run_id: str, outcome: RunOutcome) -> Closed:
    """Settle a run's dataset claim and drift episodes; the first outcome recorded stands (later ones change nothing).

    Args:
        engine: the platform DB.
        spec: the spec's name.
        run_id: the run that ended.
        outcome: how it ended.
    """
    n_claims = claims.settle(engine, spec, run_id, outcome.claim)
    n_episodes = episodes.settle_episodes(engine, spec, run_id, outcome.episodes)
    given_up = episodes.given_up(engine, spec, run_id) if n_episodes and outcome.is_failure else []
    return Closed(n_claims, n_episodes, tuple(given_up))


def nothing_registered_because(engine: Engine, spec: str, run_id: str) -> str:
    """Why a training run that reached its decision registered no model version, in words for its note."""
    claim = claims.run_claim(engine, spec, run_id)
    if claim is None:
        return "no search ran: the run claimed no dataset version to train (plan_search says why)"
    outcome = str(claim.get("outcome") or "")
    if outcome.startswith("duplicate of version"):
        version = outcome.removeprefix("duplicate of version").strip()
        return f"the best model is byte-identical to version {version}, already registered: nothing new to gate"
    if outcome.startswith("failed"):
        return outcome
    return "no trial completed, or registering the best one failed (register_best says which)"


def release_failed_run(engine: Engine, spec: str, run_id: str, why: str = "the training run failed") -> Closed:
    """Release what a failed run holds (its dataset claim, its episodes), so that another run may take them."""
    return close_run(engine, spec, run_id, RunOutcome.failed(why))


@dataclass(frozen=True)
class MissingRun:
    """What the reconciler triggers: a training run (``run_id`` with ``conf``), or nothing (``skip`` says why).

    Attributes:
        run_id: the run id to trigger: the same on every tick until a run of it claimed what it is for (a tick while
            it is queued triggers nothing new), a new one for a new attempt.
        reason: why (the run's note and its conf's ``reason``).
        conf: the run's conf.
        skip: why nothing is missing.
    """

    run_id: str | None
    reason: str
    conf: dict[str, Any] = field(default_factory=dict)
    skip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def missing_run(engine: Engine, spec: str) -> MissingRun:
    """What no training run covers: the newest open drift episode, else the latest dataset version (else nothing)."""
    open_eps = episodes.open_episodes(engine, spec)
    if open_eps:
        ep = open_eps[-1]
        attempt = int(ep.get("attempt") or 0) + 1
        reason = (
            f"reconciler: drift episode {ep['id']} (version {ep['version']}) has no training run (its "
            "asset event was merged or dropped, or its run failed)" + (f"; attempt {attempt}" if attempt > 1 else "")
        )
        return MissingRun(
            run_id=f"reconcile__drift-{ep['id']}" + (f"__{attempt}" if attempt > 1 else ""),
            reason=reason,
            conf={"trigger": "drift", "episode": ep["id"], "reason": reason},
        )
    todo = claims.reconcile(engine, spec)
    if todo is None:
        latest = claims.latest_version(engine, spec)
        return MissingRun(
            None,
            "",
            skip=f"nothing to reconcile: {latest[0]} has a training run"
            if latest
            else f"nothing to reconcile: {spec} has no dataset version yet",
        )
    return MissingRun(todo["run_id"], todo["reason"], {"trigger": "reconciler", "reason": todo["reason"]})
