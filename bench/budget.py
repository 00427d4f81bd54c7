"""Benchmark: budget caps under concurrent searches of two teams whose limits sit just above their spend.

Each round sets the limit of two teams (``risk`` and ``growth``) a little above what each has spent
(``--room`` reservations of a trial), then starts a 16-trial search for each at once, each on ``--workers`` worker
processes: more processes than cores, so trials run slower than their history says (on 2 cores a trial took up to
3.7 times its median when this was measured). Every trial runs as the platform runs it: inside a
:class:`ativo.compute.session.ComputeSession` (reserve, heartbeat, settle), training the reference configuration on
the reference data with Optuna's pruning (``ativo.train.search.run_trial``); a trial the budget refuses ends its
worker, as the ``fail`` policy ends a trial worker. After each round it reads each team's settled spend against its
limit. A warm-up round without limits gives the ledger its history first.

It reports, over ``--rounds`` rounds (≥ 10 for the acceptance): ``max_used_pct`` (the worst settled spend over
limit of any team after any round: the promise is ≤ 100), the trials run, refused, and stopped at their reservation
(pruned when they had run for all they reserved), and the largest overrun a trial would have had (its seconds × price
over what it reserved), which the cap turned into a stop.

Usage: ``.venv/bin/python bench/budget.py [--rounds 10] [--trials 16] [--workers 2] [--room 2.5]``.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support, from the repository (not installed)
os.environ.setdefault("ATIVO_REFERENCE_DIR", str(ROOT / "var" / "reference"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

SPEC = "adult_income"
TEAMS = ("risk", "growth")
TASK_KEY = "adult_income.bench-budget-trial"


def _team_spec(team: str):
    from ativo.config import load_settings
    from ativo.spec import get_spec

    spec = get_spec(SPEC, load_settings().specs_dir)
    return spec.model_copy(update={"compute": spec.compute.model_copy(update={"team": team, "pool_slots": 1})})


_SPLIT = None


def _split(tag: str):
    global _SPLIT
    if _SPLIT is None:
        from ativo.config import load_settings
        from ativo.data.training import load_split

        _SPLIT = load_split(_team_spec(TEAMS[0]), load_settings(), tag)[1]
    return _SPLIT


def _worker(team: str, tag: str, study: str, counter, lock, results) -> None:
    """Run trials of ``team``'s search until none is left or the budget refuses one (which ends the worker)."""
    from ativo.compute.budget import BudgetExceeded
    from ativo.compute.session import ComputeSession
    from ativo.config import load_settings
    from ativo.train.search import run_trial

    settings, spec, split = load_settings(), _team_spec(team), _split(tag)
    while True:
        with lock:
            slot = counter.value
            if slot >= counter.limit:
                return
            counter.value += 1
        try:
            with ComputeSession(spec, settings, task_key=TASK_KEY, holder=f"{study}/{slot}") as cs:
                out, _ = run_trial(spec, settings.db_url, study, split, slot=slot, threads=1)
        except BudgetExceeded:
            results.put({"team": team, "state": "refused"})
            return
        reserved, ran = cs.reservation.estimate_usd, cs.outcome.seconds * cs.ledger.price("cpu") / 3600
        stopped = out["state"] == "pruned" and "budget reservation" in str(out.get("reason"))
        results.put(
            {
                "team": team,
                "state": "stopped" if stopped else out["state"],
                "seconds": cs.outcome.seconds,
                "reserved_usd": reserved,
                "charged_usd": cs.outcome.cost_usd,
                "overrun": ran / reserved if reserved else 0.0,
            }
        )


class _Counter:
    def __init__(self, ctx, limit: int) -> None:
        self._v = ctx.Value("i", 0)
        self.limit = limit

    @property
    def value(self) -> int:
        return self._v.value

    @value.setter
    def value(self, v: int) -> None:
        self._v.value = v


def search_round(ctx, tag: str, label: str, trials: int, workers: int) -> list[dict]:
    """One 16-trial search per team, started at once, each on ``workers`` processes; the trials' records."""
    from ativo.config import load_settings
    from ativo.train.search import create_study

    settings = load_settings()
    results, procs, shared = ctx.Queue(), [], []
    for team in TEAMS:
        study = f"{SPEC}/bench-budget/{label}/{team}"
        create_study(_team_spec(team), settings.db_url, study)
        counter, lock = _Counter(ctx, trials), ctx.Lock()
        shared.append((counter, lock))  # alive until the workers end: a started Process drops its arguments
        procs += [ctx.Process(target=_worker, args=(team, tag, study, counter, lock, results)) for _ in range(workers)]
    for p in procs:
        p.start()
    records = []
    while any(p.is_alive() for p in procs) or not results.empty():
        try:
            records.append(results.get(timeout=0.5))
        except Exception:  # queue.Empty: nobody finished a trial in that half second
            pass
    for p in procs:
        p.join()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=16, help="trials per search")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per team's search")
    parser.add_argument("--room", type=float, default=2.5, help="limit = spend + room × a trial's reservation")
    parser.add_argument("--rows", type=int, default=None, help="rows of the dataset (default: the reference data)")
    parser.add_argument("--keep", action="store_true", help="keep the throw-away home (its path is printed)")
    args = parser.parse_args()

    from ativo.compute.budget import Ledger, usd
    from ativo.config import load_settings
    from ativo.store.db import get_engine
    from tests.support.harness import isolated_platform, land_dataset

    home = Path(tempfile.mkdtemp(prefix="ativo-bench-budget-"))
    home.chmod(0o711)
    ctx = mp.get_context("spawn")
    started = time.monotonic()
    with isolated_platform(home / "home") as settings:
        tag = land_dataset(settings, SPEC, days=3, rows=args.rows)
        ledger = Ledger(get_engine(settings.db_url), load_settings().prices)
        warm = search_round(ctx, tag, "warm-up", 2, 1)  # no limit yet: the ledger's history
        print(f"warm-up: {len(warm)} trials, {sum(r.get('seconds', 0) for r in warm):.1f} s in all", flush=True)
        rounds, worst = [], 0.0
        for n in range(args.rounds):
            limits = {}
            for team in TEAMS:
                spent = ledger.status(team)["settled_usd"]
                reservation = ledger.estimate(TASK_KEY, "cpu", 1, _timeout())
                limits[team] = spent + args.room * reservation
                ledger.set_budget(team, limit_usd=limits[team])
            records = search_round(ctx, tag, f"round-{n}", args.trials, args.workers)
            used = {t: 100 * ledger.status(t)["settled_usd"] / limits[t] for t in TEAMS}
            worst = max(worst, *used.values())
            summary = {
                "round": n,
                "used_pct": {t: round(u, 3) for t, u in used.items()},
                "limit_usd": {t: usd(v) for t, v in limits.items()},
                **{s: sum(r["state"] == s for r in records) for s in ("complete", "pruned", "stopped", "refused")},
                "max_overrun": round(max((r.get("overrun", 0.0) for r in records), default=0.0), 3),
            }
            rounds.append(summary)
            print(
                f"round {n}: used {', '.join(f'{t} {u:.2f} %' for t, u in used.items())}; trials run "
                f"{summary['complete'] + summary['pruned'] + summary['stopped']} (stopped at their reservation "
                f"{summary['stopped']}), refused {summary['refused']}; a trial ran up to {summary['max_overrun']}× "
                "what it reserved",
                flush=True,
            )
    if args.keep:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "bench": "budget",
        "rounds": len(rounds),
        "max_used_pct": round(worst, 3),
        "trials_run": sum(r["complete"] + r["pruned"] + r["stopped"] for r in rounds),
        "trials_refused": sum(r["refused"] for r in rounds),
        "trials_stopped_at_reservation": sum(r["stopped"] for r in rounds),
        "max_overrun_ratio": max((r["max_overrun"] for r in rounds), default=0.0),
        "cores": os.cpu_count(),
        "seconds": round(time.monotonic() - started, 1),
        "per_round": rounds,
    }
    print(json.dumps(result))


def _timeout():
    import datetime as dt

    return dt.timedelta(minutes=_team_spec(TEAMS[0]).compute.execution_timeout_minutes)


if __name__ == "__main__":
    main()
