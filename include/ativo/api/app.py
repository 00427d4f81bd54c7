"""The inference API (ASGI): ``/predict``, ``/explain``, ``/feedback``, ``/health``, ``/metrics``.

Run it with ``ativo serve --spec adult_income`` (uvicorn), or one process for several specs (``--spec`` repeated,
or ``--all-specs``): each answers under ``/models/<spec>/``. Versions are loaded as the signed promotion record
routes them and kept live (:mod:`ativo.serve.live`); ``canary`` answers the share of callers whose key hashes
under the canary percent, and when it fails to score a row the champion answers instead and the failure counts
against the canary; ``shadow`` scores copies of the rows off the response path (in the log's flusher). Every
answered row is written to the prediction log (:mod:`ativo.serve.predlog`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from ativo.api.metrics import ServeMetrics, families
from ativo.model.served import ServedModel
from ativo.serve.keys import ApiKeys
from ativo.serve.live import LiveModels, Routing, routes_to_canary
from ativo.serve.predlog import Entry, LabelLog, PredictionLog, prediction_id, prediction_ids
from ativo.serve.validation import RequestInvalid, RequestParser
from ativo.spec import ModelSpec
from ativo.store.objects import ObjectStore

if TYPE_CHECKING:
    from ativo.config import Settings

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
SWITCH_INTERVAL_S = 0.0005
MAX_EXPLAIN_ROWS = 100  # exact TreeSHAP costs ~1.7 ms per row: a bigger batch belongs in a notebook, not the API
PREDICTION_ID = re.compile(r"\d{8}-[0-9a-f]{20}")
"""A prediction id as :func:`ativo.serve.predlog.prediction_ids` makes them (the only kind /feedback takes)."""
REQUEST_ID = re.compile(r"req-\d{8}-[0-9a-f]{20}")
"""A request id as this server makes them (:func:`request_id_of`)."""


def request_id_of(given: str | None, now: float | None = None) -> str:
    """The id a request's decisions are logged under: the caller's ``X-Request-Id`` if this server made it, else new.

    A caller's own id is never written to the prediction log: whatever an API key holder sends there would be kept
    and found by an erasure's verification scan (a subject id sent as a request id would keep that subject's erasure
    open forever). A client that retries may quote the id it was given (``req-<UTC date>-<20 hex digits>``, which no
    subject or record id looks like); anything else is replaced, and the answer's ``X-Request-Id`` says by what.
    """
    if given and REQUEST_ID.fullmatch(given):
        return given
    return f"req-{prediction_id(now)}"


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(status: int, detail: str, errors: list[dict[str, str]] | None = None) -> Response:
    doc: dict[str, Any] = {"detail": detail}
    if errors is not None:
        doc["errors"] = errors
    return _json(doc, status)


@dataclass
class ServeConfig:
    """How a server runs (the CLI's flags)."""

    refresh_s: float = 2.0  # the signed routing (a read of the platform DB)
    watch_s: float = 10.0  # MLflow compared with it (registry tampering): a call per live version, so less often
    flush_s: float = 2.0
    flush_rows: int = 5000
    contributions: str = "none"  # lineage computes them exactly when a decision is looked up
    max_batch_rows: int | None = None
    all_specs: bool = False  # serve every valid spec of the specs folder, as files come, change and go
    specs_refresh_s: float = 10.0  # how often that folder is read


class InferenceService:
    """The state behind the ASGI app: live models, keys, parser, logs, metrics."""

    def __init__(
        self,
        spec: ModelSpec,
        live: LiveModels,
        keys: ApiKeys,
        store: ObjectStore,
        pepper: bytes,
        config: ServeConfig | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.spec = spec
        self.config = config or ServeConfig()
        self.live = live
        self.keys = keys
        self.parser = RequestParser(spec, self.config.max_batch_rows)
        self.metrics = ServeMetrics(spec.registered_model_name, registry)
        self.threshold = spec.gates.decision_threshold
        self.labels = (spec.data_schema.target.negative, spec.data_schema.target.positive)
        self.salt = spec.name
        self.predictions = PredictionLog(
            store,
            spec,
            pepper,
            flush_s=self.config.flush_s,
            flush_rows=self.config.flush_rows,
            contributions=self.config.contributions,
            on_shadow=self._shadow_scored,
        )
        self.feedback_log = LabelLog(store, spec, flush_s=self.config.flush_s, flush_rows=self.config.flush_rows)
        live.on_change = self._live_changed
        self.started = time.time()
        self.spec_problem: str | None = None
        """Why the spec's file is invalid now, while this service goes on with its last valid version."""

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the live versions and start the background threads."""
        self.live.start()
        self.metrics.set_live(self.live.routing.versions())
        self.predictions.start()
        self.feedback_log.start()

    def stop(self) -> None:
        """Stop refreshing and flush both logs (called after the last request finished)."""
        self.live.stop()
        self.predictions.close()
        self.feedback_log.close()

    def _live_changed(self, routing: Routing) -> None:
        self.metrics.set_live(routing.versions())
        gc.freeze()  # the new version's objects join the permanent generation (see build_app's lifespan)

    def _shadow_scored(self, model: ServedModel, scores: np.ndarray, failed: int, seconds: float) -> None:
        if failed:
            self.metrics.failed(model.version, "shadow", failed)
        else:
            self.metrics.scored(model.version, "shadow", scores, seconds)

    # -- helpers ---------------------------------------------------------------------------------------------
    def authorise(self, request: Request, role: str) -> Response | None:
        """None when the caller's key holds ``role``; else the 401 / 403 to send."""
        raw = request.headers.get("x-api-key")
        if raw is None:
            auth = request.headers.get("authorization", "")
            raw = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not raw:
            return _error(401, "missing API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key'")
        caller = self.keys.check(raw)
        if caller is None:
            return _error(401, "unknown API key")
        if role not in caller.roles:
            return _error(403, f"API key {caller.name!r} lacks the role {role!r} this endpoint needs")
        return None

    async def body(self, request: Request) -> bytes:
        """The request body, refused past MAX_BODY_BYTES without reading the rest."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            raise RequestInvalid(
                [
                    {
                        "field": "(body)",
                        "reason": f"{int(declared)} bytes is more than the {MAX_BODY_BYTES} a request may carry",
                    }
                ]
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise RequestInvalid(
                    [{"field": "(body)", "reason": f"more than the {MAX_BODY_BYTES} bytes a request may carry"}]
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def score(
        self, routing: Routing, matrix: np.ndarray, keys: list[str]
    ) -> tuple[np.ndarray, list[ServedModel], list[str], list[bool]]:
        """Score rows on the versions their keys route to; a failing canary row falls back to the champion."""
        champion = routing.champion
        assert champion is not None
        n = len(matrix)
        canary = routing.canary
        if canary is not None and routing.canary_percent > 0:
            to_canary = np.fromiter(
                (routes_to_canary(k, routing.canary_percent, self.salt) for k in keys), dtype=bool, count=n
            )
        else:
            to_canary = np.zeros(n, dtype=bool)
        scores = np.empty(n, dtype=np.float64)
        models: list[ServedModel] = [champion] * n
        routes = ["champion"] * n
        fallback = [False] * n
        if to_canary.any():
            assert canary is not None
            idx = np.flatnonzero(to_canary)
            t0 = time.perf_counter()
            try:
                s = canary.score(matrix[idx])
                if len(s) != len(idx) or not np.all(np.isfinite(s)):
                    raise ValueError(f"returned {len(s)} scores for {len(idx)} rows, or non-finite ones")
            except Exception as err:
                log.warning(
                    "canary version %s failed on %d row(s), the champion answers: %s", canary.version, len(idx), err
                )
                self.metrics.failed(canary.version, "canary", len(idx))
                for i in idx:
                    fallback[i] = True
                to_canary[:] = False
            else:
                self.metrics.scored(canary.version, "canary", s, time.perf_counter() - t0)
                scores[idx] = s
                for i in idx:
                    models[i] = canary
                    routes[i] = "canary"
        rest = np.flatnonzero(~to_canary)
        if len(rest):
            t0 = time.perf_counter()
            rows = matrix if len(rest) == n else matrix[rest]
            try:
                s = champion.score(rows)
            except Exception:
                self.metrics.failed(champion.version, "champion", len(rest))
                raise
            self.metrics.scored(champion.version, "champion", s, time.perf_counter() - t0)
            scores[rest] = s
        return scores, models, routes, fallback

    def _row(
        self, pid: str, model: ServedModel, route: str, score: float, decision: int, fallback: bool, threshold: float
    ) -> dict[str, Any]:
        out = {
            "prediction_id": pid,
            "model": model.name,
            "version": model.version,
            "route": route,
            "score": round(score, 6),
            "decision": decision,
            "label": self.labels[decision],
            "threshold": threshold,
        }
        if model.policy is not None:
            out["policy"] = model.policy.kind
        if fallback:
            out["fallback"] = True
        return out

    # -- endpoints -------------------------------------------------------------------------------------------
    async def predict(self, request: Request) -> Response:
        """Decisions for one row or a batch."""
        return await self._answer(request, explain=False)

    async def explain(self, request: Request) -> Response:
        """Decisions with each row's TreeSHAP contributions (exact, log-odds)."""
        return await self._answer(request, explain=True)

    async def _answer(self, request: Request, explain: bool) -> Response:
        endpoint = "explain" if explain else "predict"
        t0 = time.perf_counter()
        denied = self.authorise(request, "predict")
        if denied is not None:
            self.metrics.request(endpoint, str(denied.status_code))
            return denied
        try:
            parsed = self.parser.parse(await self.body(request))
        except RequestInvalid as err:
            self.metrics.request(endpoint, "422")
            return _error(422, "invalid request", err.errors)
        if explain and len(parsed.matrix) > MAX_EXPLAIN_ROWS:
            self.metrics.request(endpoint, "422")
            reason = f"{len(parsed.matrix)} rows is more than the {MAX_EXPLAIN_ROWS} /explain takes at once"
            return _error(422, "invalid request", [{"field": "rows", "reason": reason}])
        routing = self.live.routing  # this request keeps this view to the end, whatever changes meanwhile
        if routing.champion is None:
            self.metrics.request(endpoint, "503")
            return _error(503, f"no version of {self.spec.name} is serving yet (no 'champion' alias loaded)")
        now = time.time()
        n = len(parsed.matrix)
        ids = prediction_ids(n, now)
        keys = [k or ids[i] for i, k in enumerate(parsed.keys)]
        try:
            scores, models, routes, fallback = self.score(routing, parsed.matrix, keys)
        except Exception as err:
            log.exception("the champion failed to score a valid request")
            self.metrics.request(endpoint, "503")
            return _error(503, f"version {routing.champion.version} could not score the request: {err}")
        decisions, thresholds = self.decide(parsed.matrix, scores, models, keys)
        rows = [
            self._row(
                ids[i], models[i], routes[i], float(scores[i]), int(decisions[i]), fallback[i], float(thresholds[i])
            )
            for i in range(n)
        ]
        if explain:  # milliseconds per row: off the event loop, so other requests are not held up
            await run_in_threadpool(self._add_explanations, parsed.matrix, models, rows)
        request_id = request_id_of(request.headers.get("x-request-id"), now)
        latency_ms = (time.perf_counter() - t0) * 1000
        self.predictions.append(
            Entry(
                ts=now,
                request_id=request_id,
                ids=ids,
                matrix=parsed.matrix,
                subjects=parsed.subjects,
                models=models,
                routes=routes,
                fallback=fallback,
                scores=scores,
                decisions=decisions,
                latency_ms=latency_ms,
                shadow=routing.shadow,
                thresholds=thresholds,
            )
        )
        self.metrics.request(endpoint, "200", time.perf_counter() - t0)
        doc: Any = rows[0] if parsed.single else {"request_id": request_id, "predictions": rows}
        return _json(doc, headers={"x-request-id": request_id})

    def decide(
        self, matrix: np.ndarray, scores: np.ndarray, models: list[ServedModel], keys: list[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Decisions and thresholds: the spec's threshold, or the version's per-group policy where it has one."""
        decisions = (scores >= self.threshold).astype(np.int8)
        thresholds = np.full(len(scores), self.threshold)
        for model in {id(m): m for m in models if m.policy is not None}.values():
            assert model.policy is not None
            idx = np.array([i for i, m in enumerate(models) if m is model])
            d, used = model.policy.decide(matrix[idx], scores[idx], [keys[i] for i in idx])
            decisions[idx] = d
            thresholds[idx] = used
        return decisions, thresholds

    def _add_explanations(self, matrix: np.ndarray, models: list[ServedModel], rows: list[dict[str, Any]]) -> None:
        names = self.spec.data_schema.feature_names
        for i, model in enumerate(models):
            contribs = model.booster.predict(model.dmatrix(matrix[i : i + 1]), pred_contribs=True)[0]
            order = np.argsort(-np.abs(contribs[:-1]))
            rows[i]["explanation"] = {
                "method": "TreeSHAP (XGBoost pred_contribs), log-odds",
                "base_value": round(float(contribs[-1]), 6),
                "margin": round(float(contribs.sum()), 6),
                "contributions": [{"feature": names[j], "contribution": round(float(contribs[j]), 6)} for j in order],
            }

    async def feedback(self, request: Request) -> Response:
        """Delayed labels: ``{"prediction_id": "...", "label": 1}`` or ``{"labels": [...]}``."""
        denied = self.authorise(request, "feedback")
        if denied is not None:
            self.metrics.request("feedback", str(denied.status_code))
            return denied
        try:
            ids, labels = self._parse_feedback(await self.body(request))
        except RequestInvalid as err:
            self.metrics.request("feedback", "422")
            return _error(422, "invalid feedback", err.errors)
        self.feedback_log.append(time.time(), ids, labels)
        self.metrics.request("feedback", "200")
        return _json({"accepted": len(ids)})

    def _parse_feedback(self, body: bytes) -> tuple[list[str], list[int]]:
        try:
            doc = orjson.loads(body or b"null")
        except orjson.JSONDecodeError as err:
            raise RequestInvalid([{"field": "(body)", "reason": f"not valid JSON: {err}"}]) from None
        items = doc.get("labels") if isinstance(doc, dict) and "labels" in doc else [doc]
        if not isinstance(items, list) or not items or len(items) > self.parser.max_batch_rows:
            raise RequestInvalid(
                [
                    {
                        "field": "labels",
                        "reason": f"expected 1-{self.parser.max_batch_rows} objects with 'prediction_id' and 'label'",
                    }
                ]
            )
        ids, labels, errors = [], [], []
        negative, positive = self.labels
        for i, item in enumerate(items):
            where = f"labels[{i}]." if len(items) > 1 or "labels" in (doc or {}) else ""
            if not isinstance(item, dict):
                errors.append({"field": where.rstrip(".") or "(body)", "reason": "expected an object"})
                continue
            pid = item.get("prediction_id")
            if not isinstance(pid, str) or not PREDICTION_ID.fullmatch(pid):  # only ids this API made reach the log
                errors.append(
                    {
                        "field": f"{where}prediction_id",
                        "reason": "not a prediction id: send the "
                        "'prediction_id' /predict answered (YYYYMMDD-<20 hex digits>)",
                    }
                )
            label = item.get("label")
            mapped = {0: 0, 1: 1, negative: 0, positive: 1}.get(label) if not isinstance(label, bool | float) else None
            if mapped is None:
                errors.append(
                    {"field": f"{where}label", "reason": f"expected 0, 1, {negative!r} or {positive!r}, got {label!r}"}
                )
            ids.append(str(pid))
            labels.append(mapped if mapped is not None else -1)
        if errors:
            raise RequestInvalid(errors)
        return ids, labels

    def health_doc(self) -> dict[str, Any]:
        """Live versions, registry and log state (``status`` is ``ok`` once a champion is loaded)."""
        status = self.live.status()
        ok = "champion" in status["versions"]
        return {
            "status": "ok" if ok else "no champion",
            "model": self.spec.registered_model_name,
            **status,
            "prediction_log": {
                "unwritten_rows": self.predictions.unwritten_rows,
                "written_rows": self.predictions.written_rows,
                "last_error": self.predictions.last_error,
            },
            "uptime_s": round(time.time() - self.started, 1),
        } | ({"spec_problem": self.spec_problem} if self.spec_problem else {})

    async def health(self, request: Request) -> Response:
        """:meth:`health_doc`; 503 while no champion is loaded."""
        doc = self.health_doc()
        return _json(doc, 200 if doc["status"] == "ok" else 503)

    async def metrics_endpoint(self, request: Request) -> Response:
        """Prometheus text exposition (of every model the process serves: they share one registry)."""
        self.update_gauges()
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    def update_gauges(self) -> None:
        """Bring the prediction log's gauges up to date (read at scrape time)."""
        self.metrics.log_rows.set(self.predictions.unwritten_rows)
        self.metrics.log_failures.set(self.predictions.failed_flushes)

    def routes(self) -> list[Route]:
        """The service's endpoints, relative to where it is mounted."""
        return [
            Route("/predict", self.predict, methods=["POST"]),
            Route("/explain", self.explain, methods=["POST"]),
            Route("/feedback", self.feedback, methods=["POST"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
        ]


def _public_reason(problems: list[str], path: Path) -> str:
    """A spec file's problems as ``/health`` (which needs no key) shows them.

    No host path and no quoted line of the file (a YAML error quotes the broken line, which may hold anything): only
    where the problem is.
    """
    out = []
    for problem in problems:
        first, _, rest = problem.replace(str(path), path.name).partition("\n")
        where = re.search(r"line \d+, column \d+", rest)
        out.append(f"{first} ({where.group(0)})" if where else first)
    return "; ".join(out)


@dataclass(frozen=True)
class SpecProblem:
    """A file of the specs folder that is invalid now, and what the server does about it."""

    file: str
    reason: str
    digest: str  # of the file's text: the problem is logged again only when the file changes
    since: float
    serving: str  # "last valid version" (the spec was served when it broke) or "not served"

    def doc(self) -> dict[str, Any]:
        """The problem as health shows it."""
        return {"file": self.file, "reason": self.reason, "since": round(self.since, 3), "serving": self.serving}


class SpecFolder:
    """The specs folder of an ``--all-specs`` server: which services to add, replace or drop as its files change.

    A spec added (or made valid) gets a service of its own, mounted at ``/models/<spec>/`` once its live versions
    are loaded; a spec edited is served by a new service built from the new file (the old one answers until then);
    a spec removed stops being served, its logs flushed. A spec edited into an invalid one goes on being served as
    it last was valid (a typo must not take a model off the air): the problem is logged once per change of the file
    and shown in ``/health`` (``spec_problems``) and ``/metrics`` (``ativo_spec_file_invalid``) until the file is
    fixed or removed. Read every ``specs_refresh_s``.
    """

    def __init__(self, settings: Settings, config: ServeConfig, keys: ApiKeys, registry: CollectorRegistry) -> None:
        self.settings, self.config, self.keys, self.registry = settings, config, keys, registry
        self.problems: dict[str, SpecProblem] = {}
        """The invalid files now, by the name of the spec each would hold (a spec's name is its file's stem)."""
        self._invalid = families(registry).spec_invalid

    def read(self, served: Collection[str] = ()) -> dict[str, ModelSpec]:
        """The valid specs of the folder now, by name; the invalid files go to :attr:`problems`.

        Args:
            served: the names served now (an invalid file of one of them keeps its last valid version serving).
        """
        import hashlib

        from ativo.errors import SpecError
        from ativo.spec import load_spec, spec_paths

        valid: dict[str, ModelSpec] = {}
        problems: dict[str, SpecProblem] = {}
        for path in spec_paths(self.settings.specs_dir):
            try:
                text = path.read_bytes()
            except OSError:  # removed between the listing and the read: the next refresh sees it gone
                continue
            digest = hashlib.sha256(text).hexdigest()
            known = self.problems.get(path.stem)
            if known is not None and known.file == path.name and known.digest == digest:
                problems[path.stem] = known  # the same broken text: not parsed again, not logged again
                continue
            try:
                valid[path.stem] = load_spec(path)
            except SpecError as err:
                keep = path.stem in served
                problems[path.stem] = SpecProblem(
                    path.name,  # not its host path: /health needs no key
                    _public_reason(err.problems, path),
                    digest,
                    known.since if known is not None else time.time(),  # invalid since its first broken edit
                    "last valid version" if keep else "not served",
                )
                log.error(
                    "spec file %s is invalid, %s: %s",
                    path,
                    "its last valid version is still served" if keep else "it is not served",
                    problems[path.stem].reason,
                )
        files = {Path(p.file).name for p in problems.values()}
        for name in {Path(p.file).name for p in self.problems.values()} - files:
            with contextlib.suppress(KeyError):  # already gone (another folder of the same registry removed it)
                self._invalid.remove(name)
        for name in files:
            self._invalid.labels(name).set(1)
        self.problems = problems  # one assignment: /health, on the event loop, reads either the old or the new
        return valid

    def service(self, spec: ModelSpec) -> InferenceService:
        """A started service for ``spec`` (its live versions loaded)."""
        svc = create_service(spec, self.settings, self.config, keys=self.keys, registry=self.registry)
        svc.start()
        return svc


def build_app(service: InferenceService | list[InferenceService], folder: SpecFolder | None = None) -> Starlette:
    """The ASGI app around one or several services; its lifespan loads the models and flushes the logs on shutdown.

    Each spec answers under ``/models/<spec>/`` (predict, explain, feedback, health, metrics). A server of a single
    spec answers at the root as well (``/predict`` …); a server of several answers ``/health`` with every model's
    state and ``/metrics`` with every model's series. With a ``folder`` (``ativo serve --all-specs``), specs added,
    edited or removed while it runs are served, re-served or dropped within ``specs_refresh_s``.
    """
    services = service if isinstance(service, list) else [service]
    if not services and folder is None:
        raise ValueError("a server needs at least one spec to serve")
    names = [s.spec.name for s in services]
    if len(set(names)) != len(names):
        raise ValueError(f"a spec is listed twice: {', '.join(names)}")
    current: dict[str, InferenceService] = {svc.spec.name: svc for svc in services}

    def mount(svc: InferenceService) -> Mount:
        return Mount(f"/models/{svc.spec.name}", routes=svc.routes())

    def unmount(app: Starlette, name: str) -> None:
        app.router.routes[:] = [
            r for r in app.router.routes if not (isinstance(r, Mount) and r.path == f"/models/{name}")
        ]

    async def follow(app: Starlette) -> None:
        """Keep the served specs in step with the folder (runs as long as the server)."""
        import asyncio

        assert folder is not None
        while True:
            await asyncio.sleep(folder.config.specs_refresh_s)
            try:
                await sync(app)
            except Exception:  # a bad moment of the folder must not end the server: the next read tries again
                log.exception("reading the specs folder failed; serving %s as before", ", ".join(current) or "nothing")

    async def sync(app: Starlette) -> None:
        assert folder is not None
        wanted = await run_in_threadpool(folder.read, list(current))
        for name, svc in current.items():
            problem = folder.problems.get(name)
            svc.spec_problem = (
                f"{problem.file} is invalid, this is its last valid version: {problem.reason}" if problem else None
            )
        for name, spec in wanted.items():
            old = current.get(name)
            if old is not None and old.spec == spec:
                continue
            try:
                svc = await run_in_threadpool(folder.service, spec)
            except Exception:
                log.exception("spec %s could not be served; %s", name, "the old one still is" if old else "skipped")
                continue
            if old is not None:
                unmount(app, name)
            app.router.routes.insert(0, mount(svc))
            current[name] = svc
            log.info("%s spec %s under /models/%s/", "re-serving edited" if old else "serving new", name, name)
            if old is not None:
                await run_in_threadpool(old.stop)
        for name in [n for n in current if n not in wanted and n not in folder.problems]:
            gone = current.pop(name)
            unmount(app, name)
            log.info("spec %s left the specs folder: no longer served", name)
            await run_in_threadpool(gone.stop)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        import asyncio

        started: list[InferenceService] = []
        watcher: asyncio.Task[None] | None = None
        try:
            for svc in services:
                svc.start()
                started.append(svc)
            if folder is not None:
                watcher = asyncio.create_task(follow(app))
            # What is loaded now (the libraries, the models) lives as long as the process: out of the cyclic
            # collector's sight, a full collection walks only what requests allocate. Walking everything took
            # 50-270 ms, holding every request in flight (measured under wrk: the single-row p99 was 210 ms).
            gc.collect()
            gc.freeze()
            # The log's flusher thread runs Python too: by default the event loop would wait up to 5 ms for the
            # GIL each time it wants it back from the flusher; 0.5 ms keeps a flush from showing in the tail.
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            for svc in {id(s): s for s in [*started, *current.values()]}.values():
                svc.stop()

    async def not_found(request: Request, exc: Exception) -> Response:
        served = list(current)
        hint = f" (this server serves {', '.join(f'/models/{n}/' for n in served)})" if len(served) != 1 else ""
        return _error(404, f"no such endpoint: {request.method} {request.url.path}{hint}")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return _error(405, f"{request.method} is not allowed on {request.url.path}")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    async def health_all(request: Request) -> Response:
        docs = {name: svc.health_doc() for name, svc in list(current.items())}
        ok = [n for n, d in docs.items() if d["status"] == "ok"]
        status = "ok" if docs and len(ok) == len(docs) else ("degraded" if ok else "no champion")
        doc: dict[str, Any] = {"status": status, "models": docs}
        if folder is not None:  # (the folder's path stays out: /health needs no key)
            doc["specs_folder"] = {"refresh_s": folder.config.specs_refresh_s}
            doc["spec_problems"] = [p.doc() for p in folder.problems.values()]
        return _json(doc, 200 if ok else 503)

    async def metrics_all(request: Request) -> Response:
        from prometheus_client import generate_latest

        for svc in list(current.values()):
            svc.update_gauges()
        registry = folder.registry if folder is not None else services[0].metrics.registry
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    routes: list[Route | Mount] = [mount(svc) for svc in services]
    if len(services) == 1 and folder is None:
        routes += services[0].routes()
    else:
        routes += [Route("/health", health_all, methods=["GET"]), Route("/metrics", metrics_all, methods=["GET"])]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_allowed, 500: crashed}
    )
    app.state.service = services[0]
    app.state.services = {svc.spec.name: svc for svc in services}
    return app


def create_service(
    spec: ModelSpec,
    settings: Settings,
    config: ServeConfig | None = None,
    keys_path: Path | None = None,
    *,
    keys: ApiKeys | None = None,
    registry: CollectorRegistry | None = None,
) -> InferenceService:
    """The service for a spec with the platform's registry, object store and key file."""
    from ativo.store.objects import open_store

    config = config or ServeConfig()
    live = LiveModels(spec, settings, refresh_s=config.refresh_s, watch_s=config.watch_s)
    keys = keys or ApiKeys(keys_path or settings.home / "serve" / "api_keys.json")
    from ativo.hashing import platform_pepper

    pepper = platform_pepper(settings)
    return InferenceService(spec, live, keys, open_store(settings), pepper, config, registry)


def create_services(
    specs: list[ModelSpec], settings: Settings, config: ServeConfig | None = None, keys_path: Path | None = None
) -> list[InferenceService]:
    """One service per spec, sharing the key file and one metrics registry (one ``/metrics`` for the process)."""
    keys = ApiKeys(keys_path or settings.home / "serve" / "api_keys.json")
    registry = CollectorRegistry()
    return [create_service(s, settings, config, keys=keys, registry=registry) for s in specs]


def app_from_env() -> Starlette:
    """The app as ``ativo serve`` starts it in each uvicorn worker (specs and options: ``settings.serve``)."""
    from ativo.config import load_settings
    from ativo.spec import get_spec

    settings = load_settings()
    specs = [get_spec(name, settings.specs_dir) for name in settings.serve.specs]
    config = ServeConfig(**settings.serve.config)
    services = create_services(specs, settings, config, settings.serve.keys)
    folder = None
    if config.all_specs:
        keys = (
            services[0].keys if services else ApiKeys(settings.serve.keys or settings.home / "serve" / "api_keys.json")
        )
        registry = services[0].metrics.registry if services else CollectorRegistry()
        folder = SpecFolder(settings, config, keys, registry)
    return build_app(services, folder)
