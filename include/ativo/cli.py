"""`ativo …`: the command line of the platform."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ativo.config import load_settings
from ativo.errors import AtivoError

if TYPE_CHECKING:
    from ativo.compute.budget import Ledger
    from ativo.config import Settings


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _malformed(value: str) -> tuple[dt.date, str]:
    from ativo.data.landing import MALFORMED_KINDS

    day, _, kind = value.partition(":")
    if kind not in MALFORMED_KINDS:
        raise argparse.ArgumentTypeError(f"--malformed {value!r}: kind must be one of {', '.join(MALFORMED_KINDS)}")
    return _date(day), kind


def _cmd_fetch_data(args: argparse.Namespace) -> int:
    from ativo.data.reference import fetch_adult

    settings = load_settings()
    path = fetch_adult(settings.reference_dir)
    print(f"UCI Adult reference data ready in {path} (sha256 verified)")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ativo.data.landing import simulate
    from ativo.spec import get_spec
    from ativo.store.objects import open_store

    settings = load_settings()
    spec = get_spec(args.spec, settings.specs_dir)
    batches = simulate(
        spec, open_store(settings), settings.reference_dir, args.start, args.days, seed=args.seed,
        drift_from=args.drift_from, malformed=dict(args.malformed or []),
    )  # fmt: skip
    for b in batches:
        flags = ", ".join(f for f in (b.malformed and f"malformed: {b.malformed}", b.drifted and "drifted") if f)
        print(f"{b.day}  {b.rows:6d} rows  {b.key}" + (f"  ({flags})" if flags else ""))
    print(f"landed {len(batches)} batches, {sum(b.rows for b in batches)} records")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from ativo.spec import get_spec
    from ativo.summary import collect, render

    settings = load_settings()
    summary = collect(get_spec(args.spec, settings.specs_dir), settings)
    print(json.dumps(summary, indent=2, default=str) if args.json else render(summary))
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from ativo import platform
    from ativo.spec import get_spec
    from ativo.summary import collect, render

    settings = load_settings()
    if args.fresh:
        platform.stop_services(settings)
        platform.clear_state(settings)
    prepare = None
    if not args.no_lifecycle and platform.status(settings)["airflow"] is None:

        def prepare() -> None:
            platform.prepare_lifecycle(settings, args.spec, args.days, args.quarantine_day)

    api = platform.start_services(settings, before_airflow=prepare)
    if prepare is not None:
        platform.watch_lifecycle(settings, api, args.spec, args.days)
    lifecycle_settings = load_settings({**platform.platform_env(settings)})
    text = render(collect(get_spec(args.spec, settings.specs_dir), lifecycle_settings))
    print(platform.banner(settings, text), flush=True)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    from ativo import platform

    stopped = platform.stop_services(load_settings())
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from ativo import platform

    for name, pid in platform.status(load_settings()).items():
        print(f"{name:12s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    return 0


def _ledger() -> tuple[Ledger, Settings]:
    from ativo.compute.budget import Ledger
    from ativo.store.db import get_engine

    settings = load_settings()
    return Ledger(get_engine(settings.db_url), settings.prices), settings


def _cmd_budget_set(args: argparse.Namespace) -> int:
    ledger, _ = _ledger()
    try:
        ledger.set_budget(args.team, args.limit_usd, erasure_reserve_usd=args.erasure_reserve_usd, policy=args.policy)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return _cmd_budget_status(argparse.Namespace(team=[args.team], json=False))


def _cmd_budget_status(args: argparse.Namespace) -> int:
    ledger, _ = _ledger()
    rows = [ledger.status(t) for t in (args.team or ledger.teams())]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no budgets set and nothing spent yet (ativo budget set TEAM --limit-usd N)")
    for r in rows:
        if r["limit_usd"] is None:
            print(f"{r['team']:16s} {r['period']}  spent {r['settled_usd']:.2f} USD  (no budget set: unlimited)")
            continue
        print(
            f"{r['team']:16s} {r['period']}  spent {r['settled_usd']:.2f} of {r['limit_usd']:.2f} USD "
            f"({r['used_pct']:.1f} %), reserved {r['reserved_usd']:.2f}, available {r['available_usd']:.2f}, "
            f"erasure reserve {r['erasure_reserve_usd']:.2f}, policy {r['policy']}, resets {r['resets_on']}"
        )
    return 0


def _cmd_leases(args: argparse.Namespace) -> int:
    from ativo.compute.leases import LeaseManager
    from ativo.store.db import get_engine

    mgr = LeaseManager(get_engine(load_settings().db_url))
    rows = mgr.list(all_hosts=True)
    print(f"this host: {mgr.host}, {mgr.devices} GPU(s)")
    if not rows:
        print("no GPU leases held")
    for r in rows:
        state = "EXPIRED (holder stopped renewing)" if r["expired"] else f"until {r['expires_at']:%H:%M:%S}"
        print(f"{r['host']:20s} gpu {r['device']}  {r['holder']:40s} {state}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from ativo.compute.metrics import render
    from ativo.store.db import get_engine

    settings = load_settings()
    sys.stdout.write(render(get_engine(settings.db_url), settings.prices).decode())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ativo`."""
    p = argparse.ArgumentParser(prog="ativo", description="Ativo: models as assets of the product, on Airflow.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("fetch-data", help="fetch the UCI Adult reference data (sha256 checked)")
    s.set_defaults(func=_cmd_fetch_data)

    s = sub.add_parser("simulate", help="land daily batches from the reference data")
    s.add_argument("--spec", default="adult_income")
    s.add_argument("--start", type=_date, required=True, help="first event date, YYYY-MM-DD")
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument("--drift-from", type=_date, help="inject covariate drift from this day on")
    s.add_argument(
        "--malformed", type=_malformed, action="append", metavar="DAY:KIND",
        help="break that day's batch: missing_column, wrong_type, out_of_range, unknown_category, duplicate_ids, "
        "empty_file, non_utf8, header_only (repeatable)",
    )  # fmt: skip
    s.set_defaults(func=_cmd_simulate)

    s = sub.add_parser("summary", help="landed days, partitions, quarantine, dataset versions, models")
    s.add_argument("--spec", default="adult_income")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_summary)

    s = sub.add_parser("up", help="start the embedded platform and run the lifecycle (make run)")
    s.add_argument("--spec", default="adult_income")
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--quarantine-day", type=int, default=11, help="index of the day whose batch is malformed")
    s.add_argument("--no-lifecycle", action="store_true", help="only start the services")
    s.add_argument("--fresh", action="store_true", help="stop and wipe var/ state first")
    s.set_defaults(func=_cmd_up)

    s = sub.add_parser("down", help="stop everything `ativo up` started (make stop)")
    s.set_defaults(func=_cmd_down)

    budget = sub.add_parser("budget", help="team budgets and spend").add_subparsers(dest="budget_cmd", required=True)
    s = budget.add_parser("status", help="spend against each team's budget this period")
    s.add_argument("team", nargs="*")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_budget_status)
    s = budget.add_parser("set", help="create or change a team's monthly budget")
    s.add_argument("team")
    s.add_argument("--limit-usd", type=float, required=True)
    s.add_argument("--erasure-reserve-usd", type=float, default=0.0, help="only erasure retraining may spend this")
    s.add_argument("--policy", choices=["fail", "defer"], default="fail", help="when a task would pass the limit")
    s.set_defaults(func=_cmd_budget_set)

    s = sub.add_parser("leases", help="GPU device leases")
    s.set_defaults(func=_cmd_leases)

    s = sub.add_parser("metrics", help="budgets, spend and GPU leases in Prometheus text format")
    s.set_defaults(func=_cmd_metrics)

    s = sub.add_parser("status", help="which services are running")
    s.set_defaults(func=_cmd_status)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ativo` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AtivoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
