"""The training-run ledger alone (no Airflow): what a run trains, the drift episodes it answers, how it settles."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from ativo.errors import DatasetVersionError
from ativo.store import episodes
from ativo.store.db import get_engine
from ativo.store.episodes import MAX_ATTEMPTS, open_episodes
from ativo.train import claims
from ativo.train.claims import claim_of
from ativo.train.runs import (
    RunOutcome,
    RunPlan,
    RunRequest,
    close_run,
    missing_run,
    nothing_registered_because,
    open_run,
    release_failed_run,
)
from tests.unit.test_claims import add_version

SPEC = "s"
T0 = dt.datetime(2026, 6, 1, 6, tzinfo=dt.UTC)


@pytest.fixture
def engine(tmp_path):
    return get_engine(f"sqlite:///{tmp_path / 'ativo.db'}")


def dead(_run: str) -> bool:
    return False


def alive(_run: str) -> bool:
    return True


def announce(engine, version: str = "3", day: int = 0) -> int:
    """A drift episode of ``version``, as the monitor announces it."""
    start = T0 + dt.timedelta(days=day)
    with engine.begin() as conn:
        return episodes.announce(
            conn,
            spec=SPEC,
            version=version,
            window_start=start,
            window_end=start + dt.timedelta(days=1),
            reasons=["age: PSI 0.412 ≥ 0.2"],
            report_uri=f"runs:/r/monitor/{day}",
            emitted_at=start + dt.timedelta(days=1),
        )


def run(engine, run_id: str, is_alive=dead, **request) -> RunPlan:
    return open_run(engine, SPEC, run_id, RunRequest(**request), is_alive=is_alive)


def drift_event(episode: int) -> dict:
    return {"episode": episode, "version": "3"}


def trained(engine, run_id: str = "asset__1", version: str = "3") -> None:
    """``run_id`` trained the latest dataset version and registered model ``version``."""
    assert run(engine, run_id, events=({"tag": f"{SPEC}-v0001"},)).trains
    close_run(engine, SPEC, run_id, RunOutcome.registered(version, "challenger"))


# --- opening a run: what it trains ----------------------------------------------------------------------------------


def test_an_asset_run_claims_and_trains_the_latest_which_covers_its_events(engine):
    for n in range(1, 6):
        add_version(engine, n)
    plan = run(engine, "asset__1", events=({"tag": "s-v0002"}, {"tag": "s-v0003"}))
    assert plan == RunPlan(
        "asset",
        "asset event(s) for s-v0002, s-v0003; trains the latest, s-v0005, which covers s-v0002, s-v0003",
        dataset_tag="s-v0005",
    )
    assert plan.trains and claim_of(engine, SPEC, "s-v0005")["dag_run_id"] == "asset__1"
    assert run(engine, "asset__1", events=({"tag": "s-v0002"},)).dataset_tag == "s-v0005"  # a retry keeps its claim


def test_a_second_automatic_run_on_claimed_data_skips_saying_which_run_has_it(engine):
    add_version(engine, 1)
    run(engine, "asset__1", events=({"tag": "s-v0001"},))
    queued = run(engine, "asset__2", events=({"tag": "s-v0001"},))
    assert not queued.trains and queued.dataset_tag is None and queued.covered_by is None
    assert "claimed by run asset__1" in queued.skip and "not trained twice" in queued.skip


def test_a_reconciler_run_trains_what_nobody_trained_with_the_reconcilers_reason(engine):
    add_version(engine, 1)
    todo = missing_run(engine, SPEC)
    assert todo.run_id == "reconcile__s-v0001" and todo.conf == {"trigger": "reconciler", "reason": todo.reason}
    plan = run(engine, todo.run_id, trigger="reconciler", reason=todo.reason)
    assert (plan.trigger, plan.dataset_tag, plan.reason) == ("reconciler", "s-v0001", todo.reason)
    assert claim_of(engine, SPEC, "s-v0001")["trigger"] == "reconciler"


def test_a_run_by_hand_trains_what_it_names_even_when_trained_before(engine):
    add_version(engine, 1)
    add_version(engine, 2)
    trained(engine)
    plan = run(engine, "manual__1", dataset_version="s-v0002")
    assert (plan.trigger, plan.dataset_tag, plan.reason) == ("manual", "s-v0002", "asked by hand for s-v0002")
    assert run(engine, "manual__2").dataset_tag == "s-v0002"  # nothing named: the latest
    with pytest.raises(DatasetVersionError, match="s has no dataset version 's-v0009'"):
        run(engine, "manual__3", dataset_version="s-v0009")


@pytest.mark.parametrize(
    "request_",
    [{"events": ({"tag": "s-v0001"},)}, {"trigger": "reconciler"}, {}],
    ids=["asset", "reconciler", "manual"],
)
def test_no_dataset_version_yet_skips_saying_so(engine, request_):
    plan = run(engine, "r", **request_)
    assert not plan.trains and plan.skip == "s has no dataset version yet"


def test_a_conf_dataset_version_is_for_runs_by_hand_only(engine):
    add_version(engine, 1)
    add_version(engine, 2)
    plan = run(engine, "asset__1", events=({"tag": "s-v0002"},), dataset_version="s-v0001")
    assert plan.dataset_tag == "s-v0002"  # an automatic run trains the latest


# --- drift episodes -------------------------------------------------------------------------------------------------


def test_a_drift_run_claims_every_open_episode_and_trains_untrained_latest_data(engine):
    add_version(engine, 1)
    first, second = announce(engine), announce(engine, day=1)
    plan = run(engine, "drift__1", events=(drift_event(second),))
    assert plan.trigger == "drift" and plan.episodes == (first, second)  # one retraining covers them all
    assert plan.dataset_tag == "s-v0001" and plan.seed_offset == 0  # new data: the spec's seed
    assert plan.reason.startswith(
        f"drift episode(s) {first} (version 3: age: PSI 0.412 ≥ 0.2; report runs:/r/monitor/0)"
    )
    assert plan.reason.endswith("trains the latest dataset version, s-v0001")
    assert open_episodes(engine, SPEC) == []
    assert run(engine, "drift__1", trigger="drift").episodes == (first, second)  # a retry keeps them
    queued = run(engine, "asset__1", events=({"tag": "s-v0001"},))
    assert not queued.trains and "claimed by run drift__1" in queued.skip  # the features run does not train it twice


@pytest.mark.parametrize(
    "request_",
    [{"trigger": "drift", "episode": 1}, {"trigger": "drift"}, {"events": ({"episode": 1},)}],
    ids=["reconciler-conf", "conf-trigger", "drift-event"],
)
def test_an_episode_already_taken_is_not_retrained_twice(engine, request_):
    add_version(engine, 1)
    ep = announce(engine)
    assert ep == 1 and run(engine, "drift__1", trigger="drift").episodes == (ep,)
    late = run(engine, "drift__2", **request_)
    assert not late.trains and late.trigger == "drift" and late.episodes == ()
    assert late.skip.endswith("already taken by another training run: not retrained twice")


def test_a_features_event_merged_with_a_taken_drift_event_still_trains_new_data(engine):
    add_version(engine, 1)
    ep = announce(engine)
    run(engine, "drift__1", trigger="drift")
    add_version(engine, 2)
    plan = run(engine, "asset__2", events=(drift_event(ep), {"tag": "s-v0002"}))
    assert (plan.trigger, plan.dataset_tag, plan.episodes) == ("asset", "s-v0002", ())


def test_drift_on_the_data_the_drifting_version_was_trained_on_retrains_with_another_seed(engine):
    add_version(engine, 1)
    trained(engine, version="3")
    ep = announce(engine, version="3")
    plan = run(engine, "drift__1", events=(drift_event(ep),))
    assert plan.trains and plan.dataset_tag == "s-v0001" and plan.episodes == (ep,)
    assert plan.seed_offset == 1000 * ep + 100 * 1  # episode 1, first attempt: new trials
    assert "retrains the latest dataset version, s-v0001 (trained before by run asset__1" in plan.reason
    close_run(engine, SPEC, "drift__1", RunOutcome.failed("the budget refused trials"))
    retry = run(engine, "reconcile__drift-1__2", trigger="drift", episode=ep)
    assert retry.trains and retry.seed_offset == 1000 * ep + 100 * 2  # the next attempt draws other trials again


def test_drift_answered_by_a_version_trained_on_the_latest_data_skips_and_settles(engine):
    add_version(engine, 1)
    trained(engine, version="3")
    ep = announce(engine, version="2")  # the champion, v2, drifts; v3 was trained on the latest data already
    plan = run(engine, "drift__1", trigger="drift")
    assert not plan.trains and plan.covered_by is None and plan.episodes == (ep,)
    assert "version 3 is the answer to this drift; no retraining on the same data" in plan.skip
    assert open_episodes(engine, SPEC) == [] and missing_run(engine, SPEC).skip  # settled, nothing to reconcile
    assert [r["outcome"] for r in _episodes(engine)] == ["covered by version 3, trained on the latest data"]
    closed = close_run(engine, SPEC, "drift__1", RunOutcome.nothing_registered())  # its skipped tasks settle nothing
    assert (closed.claims, closed.episodes, closed.given_up) == (0, 0, ())


def test_a_drift_run_hands_its_episodes_over_to_the_live_run_training_the_latest_data(engine):
    add_version(engine, 1)
    assert run(engine, "asset__1", events=({"tag": "s-v0001"},)).trains  # still training
    ep = announce(engine)
    asked: list[str] = []
    plan = run(engine, "drift__1", trigger="drift", is_alive=lambda r: asked.append(r) or True)
    assert asked == ["asset__1"] and plan.covered_by == "asset__1" and not plan.trains
    assert plan.episodes == (ep,) and "it covers the drift" in plan.skip
    assert close_run(engine, SPEC, "drift__1", RunOutcome.nothing_registered()).episodes == 0  # not its own now
    closed = close_run(engine, SPEC, "asset__1", RunOutcome.registered("4", "challenger"))
    assert (closed.claims, closed.episodes) == (1, 1)  # the live run settles them when it ends
    assert open_episodes(engine, SPEC) == []


def test_a_drift_run_takes_over_the_claim_of_a_run_that_died(engine):
    add_version(engine, 1)
    run(engine, "asset__1", events=({"tag": "s-v0001"},))  # then its worker died: the claim is never settled
    ep = announce(engine)
    plan = run(engine, "drift__1", trigger="drift", is_alive=dead)
    assert plan.trains and plan.dataset_tag == "s-v0001" and plan.episodes == (ep,) and plan.seed_offset == 0
    assert "took the claim on the latest version over from run asset__1, which ended" in plan.reason
    held = claim_of(engine, SPEC, "s-v0001")
    assert (held["dag_run_id"], held["attempt"], held["trigger"]) == ("drift__1", 2, "drift")


def test_a_take_over_inherits_the_episodes_the_dead_run_held(engine):
    add_version(engine, 1)
    assert run(engine, "asset__1", events=({"tag": "s-v0001"},)).trains
    first = announce(engine)
    assert run(engine, "drift__0", trigger="drift", is_alive=alive).covered_by == "asset__1"  # handed over
    second = announce(engine, day=1)  # then asset__1 died without settling its claim or the episode it was handed
    plan = run(engine, "drift__1", trigger="drift", is_alive=dead)
    assert plan.trains and plan.episodes == (first, second)
    closed = close_run(engine, SPEC, "drift__1", RunOutcome.registered("4", "challenger"))
    assert (closed.claims, closed.episodes) == (1, 2)
    assert (
        open_episodes(engine, SPEC) == [] and close_run(engine, SPEC, "asset__1", RunOutcome.failed("x")).episodes == 0
    )


def test_a_take_over_another_run_won_first_skips(engine):
    add_version(engine, 1)
    run(engine, "asset__1", events=({"tag": "s-v0001"},))
    announce(engine)

    def raced(holder: str) -> bool:  # another run takes the dead run's claim between the look and the take
        assert claims.take_over(engine, SPEC, "s-v0001", holder, "drift__0", "first")
        return False

    plan = run(engine, "drift__1", trigger="drift", is_alive=raced)
    assert not plan.trains and plan.covered_by is None and "it covers the drift" in plan.skip
    assert claim_of(engine, SPEC, "s-v0001")["dag_run_id"] == "drift__0"


# --- closing a run --------------------------------------------------------------------------------------------------


def test_a_registered_version_settles_the_claim_and_the_episodes_and_the_first_word_stands(engine):
    add_version(engine, 1)
    ep = announce(engine)
    run(engine, "drift__1", trigger="drift")
    closed = close_run(engine, SPEC, "drift__1", RunOutcome.registered("4", "rejected"))
    assert (closed.claims, closed.episodes, closed.given_up) == (1, 1, ())
    assert claim_of(engine, SPEC, "s-v0001")["outcome"] == "registered version 4: rejected"
    assert release_failed_run(engine, SPEC, "drift__1").claims == 0  # a later failure changes nothing
    assert claim_of(engine, SPEC, "s-v0001")["outcome"] == "registered version 4: rejected"
    assert open_episodes(engine, SPEC) == [] and missing_run(engine, SPEC).run_id is None
    [row] = [r for r in _episodes(engine) if r["id"] == ep]
    assert row["outcome"] == "retrained: version 4, rejected"


def test_a_failed_run_releases_its_claim_and_episodes_for_another_attempt(engine):
    add_version(engine, 1)
    ep = announce(engine)
    run(engine, "drift__1", trigger="drift")
    closed = release_failed_run(engine, SPEC, "drift__1")
    assert (closed.claims, closed.episodes, closed.given_up) == (1, 1, ())
    assert claim_of(engine, SPEC, "s-v0001")["outcome"] == "failed: the training run failed"
    [again] = open_episodes(engine, SPEC)
    assert again["id"] == ep and again["outcome"] == "failed: the training run failed"
    todo = missing_run(engine, SPEC)  # the episode first, then the version
    assert todo.run_id == f"reconcile__drift-{ep}__2" and todo.reason.endswith("; attempt 2")
    assert todo.conf == {"trigger": "drift", "episode": ep, "reason": todo.reason}
    retry = run(engine, todo.run_id, **todo.conf)
    assert retry.trains and retry.dataset_tag == "s-v0001" and retry.episodes == (ep,)  # the failed claim is taken


def test_nothing_registered_releases_the_claim_for_the_reconciler(engine):
    add_version(engine, 1)
    run(engine, "asset__1", events=({"tag": "s-v0001"},))
    closed = close_run(engine, SPEC, "asset__1", RunOutcome.nothing_registered())
    assert (closed.claims, closed.episodes) == (1, 0)
    assert claim_of(engine, SPEC, "s-v0001")["outcome"] == "failed: no model version was registered (see register_best)"
    todo = missing_run(engine, SPEC)
    assert todo.run_id == "reconcile__s-v0001__2" and "attempt 2" in todo.reason


def test_a_duplicate_counts_as_trained_not_failed(engine):
    add_version(engine, 1)
    ep = announce(engine, version="2")
    run(engine, "drift__1", trigger="drift")
    closed = close_run(engine, SPEC, "drift__1", RunOutcome.duplicate("3"))
    assert (closed.claims, closed.episodes, closed.given_up) == (1, 1, ())
    assert claims.claimed_version(claim_of(engine, SPEC, "s-v0001")) == "3"
    assert [r["outcome"] for r in _episodes(engine) if r["id"] == ep] == [
        "retrained: the best model duplicates version 3"
    ]
    assert missing_run(engine, SPEC).run_id is None  # nothing to retry


def test_an_episode_failing_its_last_attempt_is_given_up_and_paged_once(engine):
    add_version(engine, 1)
    ep = announce(engine)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        run_id = f"reconcile__drift-{ep}__{attempt}"
        assert run(engine, run_id, trigger="drift", episode=ep).episodes == (ep,)
        closed = close_run(engine, SPEC, run_id, RunOutcome.failed("the budget refused trials"))
        assert [g["id"] for g in closed.given_up] == ([ep] if attempt == MAX_ATTEMPTS else [])
    assert close_run(engine, SPEC, run_id, RunOutcome.failed("again")).given_up == ()  # paged once
    assert open_episodes(engine, SPEC) == []
    assert missing_run(engine, SPEC).run_id == "reconcile__s-v0001__4"  # the version is still offered, not the episode


# --- the reconciler -------------------------------------------------------------------------------------------------


def test_the_reconciler_says_why_there_is_nothing_to_do(engine):
    assert missing_run(engine, SPEC).skip == "nothing to reconcile: s has no dataset version yet"
    add_version(engine, 1)
    trained(engine)
    nothing = missing_run(engine, SPEC)
    assert nothing.run_id is None and nothing.skip == "nothing to reconcile: s-v0001 has a training run"


def test_the_reconciler_takes_the_newest_open_episode_first(engine):
    add_version(engine, 1)
    announce(engine)
    newest = announce(engine, day=1)
    todo = missing_run(engine, SPEC)
    assert todo.run_id == f"reconcile__drift-{newest}" and todo.skip is None
    assert todo.reason.startswith(f"reconciler: drift episode {newest} (version 3) has no training run")
    assert todo.to_dict()["conf"] == {"trigger": "drift", "episode": newest, "reason": todo.reason}


# --- one owner ------------------------------------------------------------------------------------------------------

LIBRARY = Path(__file__).resolve().parents[2] / "include" / "ativo"
WRITERS = {
    "ativo.train.claims": {"_claim", "take_over", "settle", "plan_training"},
    "ativo.store.episodes": {"announce", "claim_episodes", "hand_over", "settle_episodes"},
}
CALLERS = {"ativo.train.runs", "ativo.train.claims", "ativo.store.episodes"}


def _episodes(engine) -> list[dict]:
    from sqlalchemy import select

    from ativo.store.db import drift_episodes

    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(drift_episodes)).mappings()]


def _module(path: Path) -> str:
    return ".".join(path.relative_to(LIBRARY.parent).with_suffix("").parts)


def writes_called(path: Path) -> set[tuple[str, str]]:
    """(storage module, function) for each storage function that writes and that ``path`` imports or calls."""
    tree = ast.parse(path.read_text())
    bound: dict[str, str] = {}  # local name → storage module
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in WRITERS:
            found |= {(node.module, a.name) for a in node.names if a.name in WRITERS[node.module]}
        elif isinstance(node, ast.ImportFrom):
            for a in node.names:
                if f"{node.module}.{a.name}" in WRITERS:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name in WRITERS and a.asname:
                    bound[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            module = bound[node.value.id]
            if node.attr in WRITERS[module]:
                found.add((module, node.attr))
    return found


def test_only_the_ledger_calls_the_storage_that_writes():
    allowed = {("ativo.monitor.decide", "ativo.store.episodes", "announce")}  # a new episode, in the decision's tx
    offenders = sorted(
        f"{_module(path)} uses {module}.{func}"
        for path in LIBRARY.rglob("*.py")
        if _module(path) not in CALLERS
        for module, func in writes_called(path)
        if (_module(path), module, func) not in allowed
    )
    assert offenders == []


def test_the_ownership_scanner_sees_both_import_forms(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from ativo.store import episodes\nfrom ativo.train.claims import settle, claim_of\n"
        "def f(e):\n    episodes.hand_over(e, 's', 'a', 'b')\n    episodes.open_episodes(e, 's')\n"
    )
    assert writes_called(source) == {("ativo.store.episodes", "hand_over"), ("ativo.train.claims", "settle")}


def test_a_run_that_registered_nothing_says_which_of_the_reasons_it_was(engine):
    assert nothing_registered_because(engine, SPEC, "asset__0").startswith("no search ran")
    add_version(engine, 1)
    assert run(engine, "asset__1", events=({"tag": "s-v0001"},)).trains
    assert nothing_registered_because(engine, SPEC, "asset__1").startswith("no trial completed")
    close_run(engine, SPEC, "asset__1", RunOutcome.duplicate("3"))
    assert nothing_registered_because(engine, SPEC, "asset__1") == (
        "the best model is byte-identical to version 3, already registered: nothing new to gate"
    )
    add_version(engine, 2)
    assert run(engine, "asset__2", events=({"tag": "s-v0002"},)).trains
    close_run(engine, SPEC, "asset__2", RunOutcome.failed("the trial workers were refused by the budget"))
    assert (
        nothing_registered_because(engine, SPEC, "asset__2") == "failed: the trial workers were refused by the budget"
    )
