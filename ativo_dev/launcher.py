"""`make run` / `make stop` / `make status`: start the embedded platform, run the demo lifecycle, print the banner."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ativo.cli import run_command
from ativo.config import load_settings
from ativo_dev import banner, lifecycle, supervisor


def _cmd_up(args: argparse.Namespace) -> int:
    from ativo.errors import SpecError
    from ativo.ops.summary import collect, render
    from ativo.spec import get_spec, load_specs

    settings = load_settings()
    valid, invalid = load_specs(settings.specs_dir)
    for err in invalid:
        supervisor.say(f"skipping an invalid spec (ativo spec check says why): {err}")
    names = list(dict.fromkeys(args.spec)) if args.spec else [s.name for s in valid]
    if not names:
        raise SpecError(f"no valid model spec in {settings.specs_dir}")
    for name in names:
        get_spec(name, settings.specs_dir)
    if args.fresh:
        supervisor.stop_services(settings)
        supervisor.clear_state(settings)
    # the demo lifecycle lands batches made from a spec's reference data; a spec without any (its batches come with
    # `ativo land` or its own source) is served and scheduled, and waits for its data
    demo, waiting = [], {}
    for name in names:
        spec = get_spec(name, settings.specs_dir)
        if spec.source.reference is None:
            waiting[name] = (
                f"no reference data (source.kind {spec.source.kind}): its DAGs are unpaused and the inference API "
                "serves it once a version passes its gates; land its batches with `ativo land`"
            )
            supervisor.say(f"{name}: {waiting[name]}")
        else:
            demo.append(name)
    prepare = None
    if demo and not args.no_lifecycle and not supervisor.airflow_running(settings):

        def prepare() -> None:
            lifecycle.prepare_lifecycle(settings, demo, args.days, args.quarantine_day)

    api = supervisor.start_services(
        settings, before_airflow=prepare, spec_names=names, dask=args.dask, all_specs=not args.spec
    )
    lifecycle.unpause_all(api, names)
    samples: dict[str, dict | None] = {}
    if prepare is not None:
        for name in demo:
            lifecycle.watch_lifecycle(settings, api, name, args.days)
    if not args.no_lifecycle:
        for name in demo:
            samples[name] = lifecycle.serve_sample(settings, name)
    lifecycle_settings = load_settings({**supervisor.platform_env(settings)})
    texts = {name: render(collect(get_spec(name, settings.specs_dir), lifecycle_settings)) for name in names}
    print(banner.banner(settings, texts, samples, waiting), flush=True)
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    stopped = supervisor.stop_services(load_settings())
    print("stopped: " + ", ".join(stopped) if stopped else "nothing was running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    import datetime as dt

    from ativo_dev.watchdog import restarts

    settings = load_settings()
    for name, pid in supervisor.status(settings).items():
        print(f"{name:22s} {'running, pid ' + str(pid) if pid else 'stopped'}")
    health = supervisor.airflow_health(settings)
    if health:
        print("airflow health         " + ", ".join(f"{k} {v}" for k, v in health.items()))
    for r in restarts(settings):
        at = dt.datetime.fromtimestamp(r["at"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        print(
            f"restarted {r['component']} at {at}: {r['reason']} (pid {r['old_pid']} → {r['new_pid']}, "
            f"paged: {r.get('paged')})"
        )
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    import shlex

    for key, value in sorted(supervisor.platform_env(load_settings()).items()):
        if key.startswith(("AIRFLOW", "ATIVO", "MLFLOW")):
            print(f"export {key}={shlex.quote(value)}")
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    import logging

    from ativo_dev.watchdog import Watchdog

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    Watchdog(load_settings(), stale_s=args.stale_s).run(every=args.every)
    return 0


def _cmd_demo_drift(args: argparse.Namespace) -> int:
    from ativo_dev.demo_drift import SHIFTS, demo

    return demo(load_settings(), args.spec, tuple(args.drift or SHIFTS), rows=args.rows)


def _cmd_demo_erasure(args: argparse.Namespace) -> int:
    from ativo_dev.demo_erasure import demo

    return demo(load_settings(), args.spec)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m ativo_dev``."""
    p = argparse.ArgumentParser(prog="python -m ativo_dev", description="The embedded platform behind `make run`.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("up", help="start the embedded platform and run the lifecycle (make run)")
    s.add_argument("--spec", action="append", help="a spec to run (repeatable; default: every valid spec)")
    s.add_argument("--days", type=int, default=30)
    s.add_argument("--quarantine-day", type=int, default=11, help="index of the day whose batch is malformed")
    s.add_argument("--no-lifecycle", action="store_true", help="only start the services")
    s.add_argument("--fresh", action="store_true", help="stop and wipe var/ state first")
    s.add_argument(
        "--dask",
        action="store_true",
        help="also start a Dask scheduler and workers on loopback (compute.engine: dask specs train there)",
    )
    s.set_defaults(func=_cmd_up)
    s = sub.add_parser("down", help="stop everything `up` started (make stop)")
    s.set_defaults(func=_cmd_down)
    s = sub.add_parser("status", help="which services are running (make status)")
    s.set_defaults(func=_cmd_status)
    s = sub.add_parser("env", help="the platform's AIRFLOW_*, ATIVO_*, MLFLOW_* variables as shell exports")
    s.set_defaults(func=_cmd_env)
    s = sub.add_parser("watch", help="restart dead components and page on-call (make run starts it)")
    s.add_argument("--every", type=float, default=5.0, help="seconds between checks")
    s.add_argument("--stale-s", type=float, default=90.0, help="unhealthy this long while alive: hung, restarted")
    s.set_defaults(func=_cmd_watch)
    s = sub.add_parser("demo-drift", help="drifted traffic → monitor → retraining → canary, on the running platform")
    s.add_argument("--spec", default="adult_income")
    s.add_argument("--drift", action="append", help="a shift as `ativo traffic --drift` takes it (repeatable)")
    s.add_argument("--rows", type=int, default=1500, help="rows per window")
    s.set_defaults(func=_cmd_demo_drift)
    s = sub.add_parser("demo-erasure", help="erase one customer on the running platform and print the receipt")
    s.add_argument("--spec", default="adult_income")
    s.set_defaults(func=_cmd_demo_erasure)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ativo_dev``."""
    return run_command(build_parser(), argv)
