"""What the Ativo page shows, read from the platform DB, the registry and the object store (no Airflow imports).

Each function returns plain JSON-like data; :mod:`ativo.ops.html` renders it and :mod:`ativo.airflow.page` serves
it behind Airflow's login. The actions (promote, rollback, budget) are here too, each audited with its actor.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from typing import Any

from sqlalchemy import Engine

from ativo.config import Settings
from ativo.errors import AtivoError
from ativo.spec import ModelSpec, load_specs

log = logging.getLogger(__name__)

DEPLOYMENTS_SHOWN = 12
ROWS_SHOWN = 50
CHART_DAYS = 14
"""Days of spend the page charts."""
MONITOR_WINDOWS_CHARTED = 14
"""Monitored windows per spec the page charts (PSI and estimated AUC)."""
QUARANTINE_DAYS = 7
"""The status strip counts quarantined days over this many days."""
TRIAL_ALIASES = ("canary", "shadow")


class ActionRefused(AtivoError):
    """An action on the Ativo page was refused (no such spec or version, a bad field, or not allowed)."""


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds")
    return str(value)


def spend(engine: Engine, settings: Settings) -> list[dict[str, Any]]:
    """Per team: this period's budget status, spend by spec, the threshold alerts sent, and spend per day."""
    from ativo.compute.budget import Ledger

    ledger = Ledger(engine, settings.prices)
    out = []
    by_spec, alerts = ledger.settled_spend(), ledger.alerts()
    for team in ledger.teams():
        status = ledger.status(team)
        out.append(
            status
            | {
                "by_spec": [
                    {
                        "spec": s.spec,
                        "period": s.period,
                        "usd": round(s.usd, 6),
                        "seconds": round(s.seconds, 1),
                        "tasks": s.tasks,
                    }
                    for s in by_spec
                    if s.team == team
                ],
                "alerts": [
                    {"period": a.period, "threshold": a.threshold, "sent_at": _iso(a.sent_at)}
                    for a in alerts
                    if a.team == team
                ],
                "daily": [
                    {"day": day.isoformat(), "usd": round(usd, 6)}
                    for day, usd in ledger.daily_spend(team, days=CHART_DAYS)
                ],
            }
        )
    return out


def leases(engine: Engine) -> list[dict[str, Any]]:
    """Every GPU lease on every host, expired ones flagged."""
    from ativo.compute.leases import LeaseManager

    mgr = LeaseManager(engine)
    return [
        {**r, "acquired_at": _iso(r["acquired_at"]), "expires_at": _iso(r["expires_at"])}
        for r in mgr.list(all_hosts=True)
    ]


def deployments(specs: list[ModelSpec], settings: Settings) -> list[dict[str, Any]]:
    """Per spec: the live aliases and the latest deployment records (newest first)."""
    from ativo.deploy.promotion import history
    from ativo.model.registry import aliases, current

    out: list[dict[str, Any]] = []
    for spec in specs:
        try:
            live, records = aliases(spec, settings), history(spec, settings)
            percent = current(spec, settings).canary_percent
        except Exception as err:  # one spec's registry or store being down must not blank the page
            log.warning("deployments of %s: %s", spec.name, err)
            out.append({"spec": spec.name, "error": str(err), "aliases": {}, "history": [], "trial": None})
            continue
        out.append(
            {
                "spec": spec.name,
                "model": spec.registered_model_name,
                "aliases": live,
                "trial": _trial(live, records, percent),
                "history": [
                    {k: r.get(k) for k in ("at", "action", "version", "actor", "reason")}
                    for r in reversed(records[-DEPLOYMENTS_SHOWN:])
                ],
            }
        )
    return out


def _trial(live: dict[str, str], records: list[dict[str, Any]], percent: float | None) -> dict[str, Any] | None:
    """The version on trial (canary before shadow): its alias, share of callers and since when (its newest start)."""
    alias = next((a for a in TRIAL_ALIASES if live.get(a)), None)
    if alias is None:
        return None
    version = live[alias]
    started = next(
        (
            r.get("at")
            for r in reversed(records)
            if r.get("action") == f"start_{alias}" and str(r.get("version")) == version
        ),
        None,
    )
    return {"alias": alias, "version": version, "percent": percent if alias == "canary" else None, "since": started}


def _window_figures(row: dict[str, Any]) -> dict[str, Any]:
    """One monitored window's charted figures: its end, its largest feature PSI and its (estimated) AUC."""
    figures = row.get("figures") or {}
    psi = [v for v in (figures.get("psi") or {}).values() if isinstance(v, int | float) and math.isfinite(v)]
    auc = figures.get("auc") if figures.get("auc") is not None else figures.get("estimated_auc")
    return {"end": _iso(row["window_end"]), "psi": max(psi) if psi else None, "auc": auc}


def monitor(
    engine: Engine, specs: list[ModelSpec], champions: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """Per spec: the live champion, the latest monitored window and its decision, and the last windows' figures.

    ``champions`` (spec → the version serving as champion now) comes from the registry: a window judged before a
    champion went live recorded no version, and the page still names the one that serves.
    """
    from ativo.monitor.decide import history

    out = []
    for spec in specs:
        rows = history(engine, spec.name, limit=MONITOR_WINDOWS_CHARTED)
        row = next(iter(rows), None)
        out.append(
            {
                "spec": spec.name,
                "champion": (champions or {}).get(spec.name),
                "windows": [_window_figures(r) for r in reversed(rows)],
                "latest": None
                if row is None
                else {
                    "version": row["version"],
                    "window": f"{_iso(row['window_start'])} → {_iso(row['window_end'])}",
                    "window_start": _iso(row["window_start"]),
                    "window_end": _iso(row["window_end"]),
                    "rows": row["rows"],
                    "judged": bool(row["judged"]),
                    "drifted": bool(row["drifted"]),
                    "decision": row["decision"],
                    "reason": row["decision_reason"],
                    "at": _iso(row["created_at"]),
                    "report_uri": row["report_uri"],
                    "reasons": row["reasons"],
                },
            }
        )
    return out


def quarantine(engine: Engine) -> list[dict[str, Any]]:
    """The latest quarantined batches with their reasons and reports."""
    from ativo.data.quarantine import recent

    return [
        {
            "spec": q.spec,
            "partition": q.partition,
            "reasons": q.reasons,
            "report_uri": q.report_uri,
            "batch_uri": q.batch_uri,
            "at": _iso(q.quarantined_at),
        }
        for q in recent(engine, ROWS_SHOWN)
    ]


def quarantine_days(engine: Engine, now: dt.datetime | None = None) -> dict[str, int]:
    """Per spec: the days quarantined over the last :data:`QUARANTINE_DAYS` days."""
    from ativo.data.quarantine import days_quarantined

    return days_quarantined(engine, (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=QUARANTINE_DAYS))


def erasure_open(engine: Engine) -> dict[str, int]:
    """Per spec: the erasure requests not closed yet (every one, not only those the table shows)."""
    from ativo.erasure.requests import states

    out: dict[str, int] = {}
    for state in states(engine):
        if state.status != "closed":
            out[state.spec] = out.get(state.spec, 0) + 1
    return out


def _readable(section: Any) -> bool:
    return not (isinstance(section, dict) and "error" in section)


def status(specs: list[ModelSpec], sections: dict[str, Any]) -> list[dict[str, Any]]:
    """Per spec, the status strip's figures, from the sections :func:`overview` read.

    What serves (and what is on trial), the last monitor decision, open erasure requests, days quarantined lately,
    and the spec's team's spend against its budget. A figure whose section could not be read is None (the page
    says so rather than showing 0).
    """
    deployments = (
        {d["spec"]: d for d in sections.get("deployments", [])} if _readable(sections.get("deployments")) else None
    )
    monitors = {m["spec"]: m for m in sections.get("monitor", [])} if _readable(sections.get("monitor")) else None
    teams = {t["team"]: t for t in sections.get("spend", [])} if _readable(sections.get("spend")) else None
    opened, quarantined = sections.get("erasure_open", {}), sections.get("quarantine_days", {})
    out = []
    for spec in specs:
        d = (deployments or {}).get(spec.name) or {}
        latest = ((monitors or {}).get(spec.name) or {}).get("latest")
        team = (teams or {}).get(spec.compute.team)
        out.append(
            {
                "spec": spec.name,
                "team": spec.compute.team,
                "deployments_error": None
                if deployments is not None and not d.get("error")
                else d.get("error", "unread"),
                "champion": (d.get("aliases") or {}).get("champion"),
                "trial": d.get("trial"),
                "monitor": None
                if latest is None
                else {k: latest[k] for k in ("decision", "reason", "at", "drifted", "judged", "version")},
                "monitor_read": monitors is not None,
                "erasure_open": opened.get(spec.name, 0) if _readable(opened) else None,
                "quarantine_days": quarantined.get(spec.name, 0) if _readable(quarantined) else None,
                "quarantine_window_days": QUARANTINE_DAYS,
                "spend": None
                if team is None
                else {k: team.get(k) for k in ("team", "period", "settled_usd", "reserved_usd", "limit_usd")},
                "spend_read": teams is not None,
            }
        )
    return out


def erasure(engine: Engine) -> list[dict[str, Any]]:
    """The latest erasure requests (never their subjects) with status, batch and receipt hash."""
    from ativo.erasure.requests import recent

    return [
        {
            "request_id": r.request_id,
            "spec": r.spec,
            "status": r.status,
            "channel": r.channel,
            "actor": r.actor,
            "batch": r.batch_id,
            "received_at": _iso(r.received_at),
            "closed_at": _iso(r.closed_at),
            "reason": r.reason,
            "receipt_sha256": r.receipt_sha256,
            "subjects": r.subjects,
        }
        for r in recent(engine, ROWS_SHOWN)
    ]


def incidents(engine: Engine) -> list[dict[str, Any]]:
    """The latest recorded incidents (every spec's regression set), newest first."""
    from ativo.evaluate.regression import recent_cases

    return [
        {
            "id": c.id,
            "spec": c.spec,
            "prediction_id": c.prediction_id,
            "expected": c.expected,
            "decision": c.decision,
            "score": c.score,
            "model_version": c.model_version,
            "dataset_version": c.dataset_version,
            "note": c.note,
            "actor": c.actor,
            "at": _iso(c.created_at),
        }
        for c in recent_cases(engine, ROWS_SHOWN)
    ]


SEARCHES_SHOWN = 3


def searches(engine: Engine) -> list[dict[str, Any]]:
    """The newest searches' trial tables: per trial slot its trial, parameters, state, value, time and run."""
    from ativo.train import slots

    out = []
    for study in slots.recent_studies(engine, limit=SEARCHES_SHOWN):
        rows = slots.table(engine, study)
        out.append(
            {
                "study": study,
                "spec": rows[0]["spec"] if rows else None,
                "trials": [
                    {
                        "slot": r["slot"],
                        "trial": r["trial_number"],
                        "label": r["label"],
                        "state": r["state"] or "running",
                        "value": r["value"],
                        "seconds": None if r["seconds"] is None else round(float(r["seconds"]), 1),
                        "attempt": r["attempt"],
                        "worker": r["worker"].rsplit("/", 1)[-1],
                        "run_id": r["run_id"],
                        "reason": r["reason"],
                        "finished_at": _iso(r["finished_at"]),
                    }
                    for r in rows
                ],
            }
        )
    return out


def datasets(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per spec: the latest dataset version."""
    from ativo.data.versioning import latest_versions

    return {
        spec: {"tag": v.tag, "rows": v.rows, "at": _iso(v.recorded_at)} for spec, v in latest_versions(engine).items()
    }


def dataset_version(engine: Engine, settings: Settings, spec: str, tag: str) -> dict[str, Any] | None:
    """One dataset version as its page shows it: its facts, its days, and the model versions trained on it.

    Returns:
        ``{"spec", "tag", "version", "rows", "days", "data_registry_commit", "manifest_sha256", "recorded_at",
        "latest", "models": [{"version", "gates", "alias", "test_auc", "card_ref"}]}``, or None when ``spec`` has
        no version ``tag`` (or is no spec of this platform). The models are None when the registry cannot be read.
        Nothing names a stored file: the days are partition names, a model card is its report reference.
    """
    from ativo.data.versioning import recorded_version
    from ativo.ops.summary import registered_models
    from ativo.store.reports import ref_of

    specs = {s.name: s for s in load_specs(settings.specs_dir)[0]}
    found = recorded_version(engine, spec, tag) if spec in specs else None
    if found is None:
        return None
    latest = recorded_version(engine, spec)
    try:
        models: list[dict[str, Any]] | None = [
            {k: m.get(k) for k in ("version", "gates", "alias", "test_auc")}
            | {"card_ref": ref_of(settings, m.get("model_card_uri"))}
            for m in registered_models(specs[spec], settings)
            if m.get("dataset_version") == tag
        ]
    except Exception as err:  # the registry being down must not hide the dataset version
        log.warning("dataset page of %s: %s", tag, err)
        models = None
    return {
        "spec": spec,
        "tag": found.tag,
        "version": found.version,
        "rows": found.rows,
        "days": sorted(str(p) for p in found.partitions),
        "data_registry_commit": found.git_rev,
        "manifest_sha256": found.manifest_hash,
        "recorded_at": _iso(found.recorded_at),
        "latest": latest is not None and latest.tag == found.tag,
        "models": models,
    }


def overview(settings: Settings) -> dict[str, Any]:
    """Everything the page shows, section by section; a section that cannot be read says why instead."""
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    specs, problems = load_specs(settings.specs_dir)
    sections: dict[str, Any] = {
        "as_of": _iso(dt.datetime.now(dt.UTC)),
        "specs": [s.name for s in specs],
        "spec_errors": [str(p) for p in problems],
    }

    def champions() -> dict[str, str | None]:  # what serves now, read once by the deployments section
        read = sections.get("deployments")
        return {d["spec"]: d["aliases"].get("champion") for d in read} if isinstance(read, list) else {}

    readers: dict[str, Any] = {
        "spend": lambda: spend(engine, settings),
        "leases": lambda: leases(engine),
        "deployments": lambda: deployments(specs, settings),
        "monitor": lambda: monitor(engine, specs, champions()),
        "quarantine": lambda: quarantine(engine),
        "quarantine_days": lambda: quarantine_days(engine),
        "erasure": lambda: erasure(engine),
        "erasure_open": lambda: erasure_open(engine),
        "datasets": lambda: datasets(engine),
        "incidents": lambda: incidents(engine),
        "searches": lambda: searches(engine),
    }
    for name, read in readers.items():
        try:
            sections[name] = read()
        except Exception as err:
            log.exception("the Ativo page could not read %s", name)
            sections[name] = {"error": f"{type(err).__name__}: {err}"}
    _report_refs(settings, sections)
    sections["status"] = status(specs, sections)
    return sections


def _report_refs(settings: Settings, sections: dict[str, Any]) -> None:
    """Give each stored report the reference the page links it by (:mod:`ativo.store.reports`), never its URI."""
    from ativo.store.reports import ref_of

    quarantine = sections.get("quarantine")
    for q in quarantine if isinstance(quarantine, list) else []:
        q["report_ref"] = ref_of(settings, q.get("report_uri"))
    monitor = sections.get("monitor")
    for m in monitor if isinstance(monitor, list) else []:
        if m.get("latest"):
            m["latest"]["report_ref"] = ref_of(settings, m["latest"].get("report_uri"))


def lineage(settings: Settings, prediction_id: str) -> dict[str, Any]:
    """The chain of one decision (prediction → version → run → dataset → commit → gates), or the reason why not."""
    from ativo.ops.lineage import LineageError, trace

    prediction_id = prediction_id.strip()
    if not prediction_id:
        return {"error": "prediction_id: give the id a /predict answer returned"}
    try:
        chain = trace(settings, prediction_id)
    except LineageError as err:
        return {"error": str(err)}
    return {"chain": chain, "tree": lineage_tree(settings, chain)}


def dag_run_url(airflow: str, dag_id: str, run_id: str) -> str:
    """Where Airflow's UI (at ``airflow``) shows one DAG run: its grid, the run selected."""
    from urllib.parse import quote

    return f"{airflow}/dags/{quote(str(dag_id), safe='')}/runs/{quote(str(run_id), safe='')}"


def lineage_tree(settings: Settings, chain: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain's links (:func:`ativo.ops.lineage.steps`, as the CLI's tree) with where a person opens each one.

    Returns:
        One node per link, prediction first: ``{"kind", "title", "lines", "links": [{"label", "href"}]}``. Links go
        to MLflow's run and model version pages (when the tracking store has a UI), the training and deploy DAG
        runs in Airflow's UI, and the gate report and model card through the page's report route. No node names a
        stored file's URI or a host path: the dataset shows its version tag and partition names.
    """
    from urllib.parse import quote

    from ativo.model.client import run_url, version_url
    from ativo.naming import deploy_dag_id
    from ativo.ops.lineage import steps
    from ativo.store.reports import href

    airflow = settings.link_url
    model, run, dataset = chain["model"], chain["run"], chain["dataset"]
    spec = chain.get("spec") or ""

    def q(value: Any) -> str:
        return quote(str(value), safe="")

    links: dict[str, list[dict[str, str]]] = {k: [] for k in ("prediction", "model", "run", "dataset", "code", "gates")}
    version_page = version_url(settings, model["name"], model["version"])
    if version_page:
        links["model"].append({"label": "MLflow model version", "href": version_page})
    run_page = run_url(settings, run["experiment_id"], run["run_id"]) if run.get("experiment_id") else None
    if run_page:
        links["run"].append({"label": "MLflow run", "href": run_page})
    dag = run.get("airflow") or {}
    if dag.get("dag_id") and dag.get("dag_run_id"):
        links["run"].append(
            {"label": "training DAG run", "href": dag_run_url(airflow, dag["dag_id"], dag["dag_run_id"])}
        )
    for dep in chain.get("deployments") or []:  # each move of this version a deploy DAG run made: that run
        made = dep.get("dag_run") or {}
        if made.get("dag_id") and made.get("run_id"):
            label = f"deploy DAG run: {dep.get('action')} {dep.get('at')}"
            links["model"].append({"label": label, "href": dag_run_url(airflow, made["dag_id"], made["run_id"])})
    if spec:  # every run, for the moves made outside Airflow (ativo promote, the page) and the ones still to come
        links["model"].append({"label": "deploy DAG runs", "href": f"{airflow}/dags/{q(deploy_dag_id(spec))}/runs"})
    if spec and dataset.get("tag") and dataset.get("resolves"):  # its page on the Ativo page: days, rows, models
        links["dataset"].append({"label": "dataset version", "href": f"datasets/{q(spec)}/{q(dataset['tag'])}"})
    gates = chain["gates"]
    for label, uri in (("gate report", gates.get("report_uri")), ("model card", gates.get("model_card_uri"))):
        if link := href(settings, uri, base=""):
            links["gates"].append({"label": label, "href": link})
    out = []
    for step in steps(chain):
        lines = list(step["lines"]) + list(step.get("after", []))
        if step["kind"] == "dataset" and dataset.get("partition_names"):
            names = dataset["partition_names"]
            lines.append(
                f"partitions: {', '.join(names[:12])}" + (f" (+{len(names) - 12} more)" if len(names) > 12 else "")
            )
        out.append({"kind": step["kind"], "title": step["title"], "lines": lines, "links": links[step["kind"]]})
    return out


AUDIT_ROWS_SHOWN = 100
AUDIT_FILTERS = ("kind", "actor", "spec")
"""The audit view's filters (each an exact match; :func:`ativo.audit.recent`)."""
AUDIT_FILTER_MAX = 200
"""The longest filter value the audit view takes (an actor or ref is at most 255 characters, a kind 64)."""


class BadFilter(AtivoError):
    """A filter of the audit view is not one it takes: ``field`` names it, the message says why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"field {field!r}: {why}")
        self.field = field


def audit_filters(query: dict[str, str]) -> dict[str, str]:
    """The audit view's filters from a query (``kind``, ``actor``, ``spec``; empty or absent: any), checked.

    Raises:
        BadFilter: a value is longer than :data:`AUDIT_FILTER_MAX` characters or holds a control character (a NUL
            would reach the database; a line break never names anything).
    """
    out = {}
    for field in AUDIT_FILTERS:
        value = query.get(field) or ""
        if len(value) > AUDIT_FILTER_MAX:
            raise BadFilter(field, f"at most {AUDIT_FILTER_MAX} characters, not {len(value)}; nothing was searched")
        if any(not c.isprintable() for c in value):
            raise BadFilter(field, "a control or line-break character is not part of any name; nothing was searched")
        out[field] = value.strip()
    return out


def audit_log(
    engine: Engine, filters: dict[str, str], limit: int = AUDIT_ROWS_SHOWN, since: dt.datetime | None = None
) -> dict[str, Any]:
    """The newest audit rows that match ``filters`` (newest first) and the verdict on the whole hash chain.

    The page's audit view and ``ativo audit --json`` show this document. The verdict recomputes the hashes of the rows
    added since this process last gave one, once the rows before are found stored as they were
    (:func:`ativo.audit.check_chain_since_last`).

    Returns:
        ``{"filters", "since", "rows": [{"seq", "at" (UTC ISO), "kind", "actor", "ref", "summary", "payload"}],
        "limit", "kinds", "chain": {"ok", "rows", "first_bad", "problems"}}``.
    """
    from ativo import audit

    rows = audit.recent(
        engine,
        kind=filters.get("kind") or None,
        actor=filters.get("actor") or None,
        spec=filters.get("spec") or None,
        since=since,
        limit=limit,
    )
    return {
        "filters": filters,
        "since": _iso(since),
        "rows": [
            {
                "seq": r["seq"],
                "at": _iso(r["at"]),
                "kind": r["kind"],
                "actor": r["actor"],
                "ref": r["ref"],
                "summary": audit.summary(r["payload"]),
                "payload": r["payload"],
            }
            for r in rows
        ],
        "limit": limit,
        "kinds": audit.kinds(engine),
        "chain": audit.check_chain_since_last(engine).to_dict(),  # the page is re-read often: new rows only
    }


def _spec(settings: Settings, name: str) -> ModelSpec:
    specs = {s.name: s for s in load_specs(settings.specs_dir)[0]}
    if name not in specs:
        raise ActionRefused(f"spec: unknown spec {name!r}; the specs are {', '.join(sorted(specs)) or 'none'}")
    return specs[name]


def act(settings: Settings, action: str, form: dict[str, str], actor: str) -> dict[str, Any]:
    """Run one page action (``promote``, ``rollback``, ``budget``) as ``actor`` and audit it.

    Raises:
        ActionRefused: a missing or bad field (named), an unknown spec, or the registry refusing the move.
    """
    from ativo import audit
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    reason = (form.get("reason") or "").strip() or f"by {actor} on the Ativo page"
    if action == "promote":
        from ativo.deploy.promotion import DeployError, promote

        spec, version = _spec(settings, form.get("spec", "")), (form.get("version") or "").strip()
        if not version.isdigit():
            raise ActionRefused(f"version: give a registered version number of {spec.name}, not {version!r}")
        try:
            rec = promote(spec, settings, version, reason=reason, actor=actor)
        except DeployError as err:
            raise ActionRefused(str(err)) from None
        result = {"spec": spec.name, "version": version, "aliases": rec.get("aliases_after")}
    elif action == "rollback":
        from ativo.deploy.promotion import DeployError, rollback

        spec = _spec(settings, form.get("spec", ""))
        try:
            rec = rollback(spec, settings, reason=reason, actor=actor)
        except DeployError as err:
            raise ActionRefused(str(err)) from None
        result = {"spec": spec.name, "version": rec.get("version"), "aliases": rec.get("aliases_after")}
    elif action == "budget":
        from ativo.compute.budget import Ledger

        team = (form.get("team") or "").strip()
        if not team:
            raise ActionRefused("team: name the team whose budget changes")
        try:
            limit = float(form.get("limit_usd") or "")
        except ValueError:
            raise ActionRefused(f"limit_usd: a number of USD, not {form.get('limit_usd')!r}") from None
        if not (math.isfinite(limit) and limit > 0):
            raise ActionRefused(f"limit_usd: must be a finite amount above 0, not {limit}")
        ledger = Ledger(engine, settings.prices)
        before = ledger.status(team)
        reserve = float(before.get("erasure_reserve_usd") or 0.0)
        if reserve >= limit:
            raise ActionRefused(f"limit_usd: {limit} is not above the erasure reserve of {reserve} USD")
        policy = before["policy"] if before["policy"] in ("fail", "defer") else "fail"
        ledger.set_budget(team, limit, erasure_reserve_usd=reserve, policy=policy)
        result = {"team": team, "limit_usd_before": before.get("limit_usd"), "limit_usd": limit}
    elif action == "incident":
        from ativo.ops.incidents import IncidentError, page_oncall, record_incident

        try:
            recorded = record_incident(
                settings, form.get("prediction_id") or "", form.get("expected") or "", form.get("note") or "", actor
            )
        except IncidentError as err:
            raise ActionRefused(str(err)) from None
        case = recorded["case"]
        paged = page_oncall(settings, recorded) if recorded["created"] else False
        result = {
            "spec": case["spec"],
            "case": case["id"],
            "prediction_id": case["prediction_id"],
            "expected": case["expected"],
            "created": recorded["created"],
            "paged": paged,
        }
    else:
        raise ActionRefused(f"action: unknown action {action!r} (promote, rollback, budget, incident)")
    audit.append(
        engine, f"page_{action}", actor, result.get("spec") or result.get("team") or "", {"reason": reason, **result}
    )
    return result
