"""The Ativo page on Airflow's api-server (``/ativo/``), behind Airflow's own login.

Routes (mounted at ``/ativo`` by the plugin):

- ``GET /`` — spend against budget, GPU leases, live versions and deployments, lineage lookup, monitor status,
  quarantine, erasure requests. Needs a signed-in Airflow user (the UI's session cookie or a bearer token); a
  browser without one is sent to Airflow's login page.
- ``POST /actions/{promote,rollback,budget}`` — need a role that may change pools (``op`` or ``admin`` with the
  simple auth manager; the same permission under any auth manager), come from the page itself (same origin), and
  are audited in the platform's audit log with the user's name.
- ``GET /reports/{ref}`` — a stored report, model card or deployment record by its reference
  (:mod:`ativo.store.reports`: ``run/<run id>/gates/gate_report.json``, ``store/quarantine/…/report.json``; never a
  host path), as an HTML page (gate report, validation report, erasure receipt) with its raw JSON at
  ``?format=json``; anything that is not one of those reports is 404.
- ``GET /files?uri=`` — the retired link form: redirected to ``/reports/{ref}`` when the URI is a report the page
  opens and that exists, else 410.
- ``GET /datasets/{spec}/{tag}`` — one dataset version (the lineage's dataset link): its rows, days, data-registry
  commit and manifest hash, and the model versions trained on it with their cards; 404 for a tag the spec never had.
- ``GET /erasure/receipts/{spec}/{request_id}`` — a closed request's receipt, verified against the audit chain, as
  an HTML page (``?format=json``, or an ``Accept: application/json`` client, for the JSON).
- ``GET /audit`` (``GET /api/audit`` as JSON) — the newest 100 rows of the platform's audit log that match the
  ``kind``, ``actor`` and ``spec`` filters, under the verdict on the whole hash chain. Needs the permission to read
  Airflow's own audit log (every role of the simple auth manager has it, like the page's other read-outs); a filter
  over 200 characters or holding a control character is refused with 400 naming it.
- ``POST /erasure/requests`` — file an erasure request (``op`` only, same origin, refusals audited): the subject ids
  go to the platform DB only, in the request body (never a URL, which access logs keep); with ``now`` the ERASURE DAG
  is triggered with the request id alone (:func:`file_erasure`).
- ``GET /runbooks/``, ``GET /runbooks/{slug}`` — the on-call runbooks (public: alerts link them).
- ``GET /metrics`` — the platform's Prometheus metrics (public, like any exporter).
"""

from __future__ import annotations

import json
import logging
import mimetypes
import tempfile
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote, urlsplit

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import get_user
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ativo.store import reports

log = logging.getLogger(__name__)

# This module is imported on the api-server's first request to /ativo (the plugin builds the app lazily), so its
# web imports are module-level: FastAPI resolves the endpoints' annotations from these globals.
CurrentUser = Annotated[Any, Depends(get_user)]


def may_operate(user: Any) -> bool:
    """Whether ``user`` may act on the page: the permission to change pools, which ``op`` has and ``user`` has not."""
    try:
        return bool(get_auth_manager().is_authorized_pool(method="PUT", user=user))
    except Exception:
        log.exception("could not ask the auth manager about %r", user)
        return False


def may_read_audit(user: Any) -> bool:
    """Whether ``user`` may read the audit log: the permission to read Airflow's own audit log (all DAGs)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    try:
        return bool(
            get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.AUDIT_LOG, user=user)
        )
    except Exception:
        log.exception("could not ask the auth manager about %r", user)
        return False


def _name(user: Any) -> str:
    getter = getattr(user, "get_name", None)
    return str(getter() if callable(getter) else getattr(user, "username", "unknown"))


NOTICE_TTL_S = 600
"""How long a notice link shows its banner (the redirect after an action follows at once)."""


def _notice_mac(key: bytes, user: str, at: int, ok: int, notice: str) -> str:
    import hashlib
    import hmac

    return hmac.new(key, f"notice|{user}|{at}|{ok}|{notice}".encode(), hashlib.sha256).hexdigest()


def notice_query(settings: Any, user: str, notice: str, ok: int) -> str:
    """The query string of the redirect after an action: its notice, signed for ``user`` with the platform key.

    The page shows a banner only for a notice it signed itself, for the user reading it, within :data:`NOTICE_TTL_S`:
    a link cannot make the page say an action was done.
    """
    import time

    from ativo.model.registry import signing_key

    at = int(time.time())
    mac = _notice_mac(signing_key(settings)[1], user, at, ok, notice)
    return f"notice={quote(notice)}&ok={ok}&at={at}&sig={mac}"


def verified_notice(settings: Any, user: str, notice: str, ok: int, at: int, sig: str) -> str | None:
    """``notice`` when the page signed it for ``user`` less than :data:`NOTICE_TTL_S` ago, else None."""
    import hmac
    import time

    from ativo.model.registry import signing_key

    if not notice or not sig or not 0 <= time.time() - at <= NOTICE_TTL_S:
        return None
    expected = _notice_mac(signing_key(settings)[1], user, at, ok, notice)
    return notice if hmac.compare_digest(expected, sig) else None


PAGE_ACTIONS = ("promote", "rollback", "budget")
"""The page's actions (:func:`ativo.ops.views.act`)."""


def read_file(settings: Any, uri: str) -> tuple[bytes, str]:
    """The bytes and media type of a report, card or record, by its store or MLflow ``runs:/`` URI.

    Raises:
        KeyError: the URI is not one of the files the page opens (:func:`ativo.store.reports.ref_of`), or does not
            exist.
    """
    ref = reports.ref_of(settings, uri)  # the one check of what the page opens
    if ref is None:
        raise KeyError(f"{uri} is not a report, card, record or receipt the page opens")
    if uri.startswith("runs:/"):
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="ativo-page-") as tmp:
            try:
                got = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=uri, dst_path=tmp, tracking_uri=settings.mlflow_tracking_uri
                    )
                )
            except Exception as err:
                raise KeyError(f"{uri}: {err}") from None
            if not got.is_file() or not got.resolve().is_relative_to(Path(tmp).resolve()):
                raise KeyError(f"{uri} is not a file of that run")
            data = got.read_bytes()
    else:
        from ativo.store.objects import open_store

        try:
            data = open_store(settings).get_bytes(ref.removeprefix("store/"))
        except (FileNotFoundError, IsADirectoryError, KeyError, ValueError) as err:
            raise KeyError(f"{uri} does not exist: {err}") from None
    kind = mimetypes.guess_type(uri.split("?")[0])[0] or "text/plain"
    return data, ("text/plain" if kind.startswith("application/octet") else kind)


def file_erasure(settings: Any, user: Any, body: dict[str, Any]) -> dict[str, Any]:
    """File an erasure request for an ``op`` user of the page; trigger the ERASURE DAG with its id when ``now``.

    The ids go to the platform DB only (the answer and the run's conf name the request, never a subject). Both the
    permission to operate the page and the auth manager's permission to trigger the spec's ERASURE DAG are needed
    (:class:`ativo.airflow.auth.AtivoAuthManager` gives the latter to ``op`` only).

    Raises:
        PermissionError: the user may not (audited as an ``erasure_refused`` entry).
        ValueError: no such spec, or not a valid request (nothing filed).
    """
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    from ativo.erasure.requests import InvalidRequest, file_request, refuse
    from ativo.hashing import platform_pepper
    from ativo.naming import erasure_dag_id
    from ativo.spec import load_specs
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    spec = str(body.get("spec") or "")
    specs = {s.name: s for s in load_specs(settings.specs_dir)[0]}
    if spec not in specs:
        raise ValueError(f"field 'spec': {spec[:60]!r} is not a spec of this platform ({', '.join(sorted(specs))})")
    dag_id = erasure_dag_id(spec)
    try:
        may = may_operate(user) and bool(
            get_auth_manager().is_authorized_dag(method="POST", user=user, details=DagDetails(id=dag_id))
        )
    except Exception:
        log.exception("could not ask the auth manager about %r", user)
        may = False
    if not may:
        raise PermissionError(
            str(
                refuse(
                    engine,
                    spec=spec,
                    actor=_name(user),
                    channel="page",
                    why=f"role {getattr(user, 'role', None)!r} on the page",
                )
            )
        )
    subjects = body.get("subjects")
    try:
        ack = file_request(
            engine,
            spec=spec,
            subjects=subjects,
            pepper=platform_pepper(settings),
            actor=_name(user),
            channel="page",
            request_id=body.get("request_id") or None,
            min_subject_length=specs[spec].erasure.min_subject_id_length,
        )
    except InvalidRequest as err:
        raise ValueError(str(err)) from None
    out = {
        **ack.to_dict(),
        "processing": f"with the other requests of its window (`ativo erasure status {ack.request_id}`)",
    }
    if body.get("now"):
        try:
            from airflow.api.common.trigger_dag import trigger_dag
            from airflow.utils.types import DagRunTriggeredByType

            run = trigger_dag(
                dag_id,
                triggered_by=DagRunTriggeredByType.UI,
                triggering_user_name=_name(user),
                conf={"request_id": ack.request_id, "force": True},
                note=f"erasure request {ack.request_id} (Ativo page)",
            )
            out["processing"] = f"run {run.run_id if run else '?'} of {dag_id} processes it now"
        except Exception as err:  # the request is recorded: the next scheduled run processes it
            log.warning("could not trigger %s for %s: %s", dag_id, ack.request_id, err)
            out["processing"] = f"recorded; {dag_id} could not be triggered now ({type(err).__name__}): its next run"
    return out


def page_app() -> Any:
    """The FastAPI app of the Ativo page (built on the api-server's first request to ``/ativo``)."""
    from ativo import runbooks
    from ativo.config import load_settings
    from ativo.ops import html, views

    app = FastAPI(title="Ativo", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException) -> Response:
        """A browser that is not signed in goes to Airflow's login and comes back; an API client gets the status."""
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code in (401, 403) and wants_html and request.method == "GET":
            try:
                return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
            except Exception:
                log.exception("no login URL from the auth manager")
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)

    @app.get("/", response_class=HTMLResponse)
    def index(
        user: CurrentUser, prediction_id: str = "", notice: str = "", ok: int = 1, at: int = 0, sig: str = ""
    ) -> HTMLResponse:
        settings = load_settings()
        notice = verified_notice(settings, _name(user), notice, ok, at, sig) or ""  # only what the page itself said
        lineage = views.lineage(settings, prediction_id) if prediction_id else None
        return HTMLResponse(
            html.page(
                views.overview(settings),
                user=_name(user),
                role=getattr(user, "role", None),
                can_operate=may_operate(user),
                notice=notice or None,
                notice_ok=bool(ok),
                lineage=lineage,
                prediction_id=prediction_id,
            )
        )

    @app.get("/api/overview")
    def overview(user: CurrentUser) -> JSONResponse:
        return JSONResponse(views.overview(load_settings()))

    @app.post("/actions/{action}")
    async def act(action: str, request: Request, user: CurrentUser) -> Response:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(403, f"cross-site request from {origin} refused")
        if not may_operate(user):
            from ativo import audit
            from ativo.hashing import platform_pepper
            from ativo.store.db import get_engine

            # the action is the caller's path: one the page does not have is audited as its keyed pseudonym only
            settings, known = load_settings(), action in PAGE_ACTIONS
            payload: dict[str, Any] = {"role": getattr(user, "role", None)}
            if not known:
                payload[audit.PSEUDONYMS] = audit.pseudonyms({"action": action}, platform_pepper(settings))
            audit.append(
                get_engine(settings.db_url),
                "page_refused",
                _name(user),
                action if known else "(no such action)",
                payload,
            )
            raise HTTPException(
                403,
                f"{action if known else 'this action'} needs the op role; {_name(user)} has "
                f"{getattr(user, 'role', None)!r}",
            )
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
        try:  # the registry, the store and the webhook block: off the api-server's event loop
            result = await run_in_threadpool(views.act, load_settings(), action, form, _name(user))
            shown = "; ".join(f"{k}: {v}" for k, v in result.items()) if isinstance(result, dict) else str(result)
            notice, ok = f"{action} done: {shown}", 1
        except views.ActionRefused as err:
            notice, ok = f"{action} refused: {err}", 0
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"ok": bool(ok), "notice": notice}, status_code=200 if ok else 422)
        return RedirectResponse(f"../?{notice_query(load_settings(), _name(user), notice, ok)}", status_code=303)

    @app.get("/files")
    def files(uri: str, user: CurrentUser) -> Response:
        """The retired ``?uri=`` links (alerts already sent carry them): to the report's page when it is one."""
        settings = load_settings()
        ref = reports.ref_of(settings, uri)
        try:
            if ref is None:
                raise KeyError(uri)
            read_file(settings, reports.uri_of(settings, ref))
        except KeyError:
            raise HTTPException(410, "this link form is retired and names no report the page opens") from None
        return RedirectResponse(f"reports/{quote(ref)}", status_code=307)

    @app.get("/reports/{ref:path}")
    def report(ref: str, request: Request, user: CurrentUser, format: str = "html") -> Response:
        """A stored report by reference: an HTML page for a person, its raw bytes at ``?format=json``."""
        from ativo.ops import report_html

        if format not in ("html", "json"):
            raise HTTPException(400, f"field 'format': 'html' or 'json', not {format[:20]!r}")
        settings = load_settings()
        try:
            data, media = read_file(settings, reports.uri_of(settings, ref))
        except KeyError:
            raise HTTPException(404, "no such report: the reference names no report the page opens") from None
        kind = reports.kind_of(ref)
        pages = {"gate_report", "validation_report", "erasure_receipt", "monitor_report", "deployment_record"}
        if format == "json" or kind not in pages:
            # a stored HTML document (the model card) may not run script on the api-server's origin
            return Response(data, media_type=media, headers={"Content-Security-Policy": "sandbox"})
        try:
            doc = json.loads(data)
        except ValueError:
            return Response(data, media_type="text/plain", headers={"Content-Security-Policy": "sandbox"})
        home = request.scope.get("root_path", "").rstrip("/") + "/"
        if kind == "gate_report" and isinstance(doc, dict):
            shown = report_html.gate_report(doc, home)
        elif kind == "validation_report" and isinstance(doc, dict):
            shown = report_html.validation_report(doc, home)
        elif kind == "erasure_receipt" and isinstance(doc, dict):
            shown = report_html.erasure_receipt(doc, None, home)
        else:
            shown = report_html.other(kind.replace("_", " "), doc, home)
        return HTMLResponse(shown, headers={"Content-Security-Policy": "sandbox"})

    @app.get("/datasets/{spec}/{tag}", response_class=HTMLResponse)
    def dataset(spec: str, tag: str, request: Request, user: CurrentUser) -> HTMLResponse:
        from ativo.store.db import get_engine

        settings = load_settings()
        data = views.dataset_version(get_engine(settings.db_url), settings, spec, tag)
        if data is None:
            raise HTTPException(404, f"{spec[:60]!r} has no dataset version {tag[:60]!r}")
        home = request.scope.get("root_path", "").rstrip("/") + "/"
        return HTMLResponse(html.dataset_page(data, home=home))

    @app.get("/erasure/receipts/{spec}/{request_id}")
    def receipt(spec: str, request_id: str, request: Request, user: CurrentUser, format: str = "") -> Response:
        from ativo import audit
        from ativo.erasure.process import verify_receipt
        from ativo.ops import report_html
        from ativo.store.db import get_engine

        settings = load_settings()
        rows = audit.entries(get_engine(settings.db_url), kind="erasure_receipt", ref=request_id)
        if not rows or rows[-1]["payload"]["receipt"].get("spec", spec) != spec:
            raise HTTPException(404, f"request {request_id[:80]!r} of {spec[:60]!r} has no receipt (it is not closed)")
        doc, verified = rows[-1]["payload"]["receipt"], verify_receipt(settings, request_id)
        accept = request.headers.get("accept", "")
        if format == "json" or (not format and "application/json" in accept and "text/html" not in accept):
            return JSONResponse({"receipt": doc, "verified": verified})
        home = request.scope.get("root_path", "").rstrip("/") + "/"
        return HTMLResponse(report_html.erasure_receipt(doc, verified, home))

    def audit_view(request: Request, user: Any) -> dict[str, Any]:
        """The audit view's data for ``user``, its filters checked (403 without the permission, 400 on a bad one)."""
        from ativo.store.db import get_engine

        if not may_read_audit(user):
            raise HTTPException(403, f"the audit log needs the permission to read audit logs; {_name(user)} lacks it")
        try:
            filters = views.audit_filters(dict(request.query_params))
        except views.BadFilter as err:
            raise HTTPException(400, str(err)) from None
        return views.audit_log(get_engine(load_settings().db_url), filters)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, user: CurrentUser) -> HTMLResponse:
        from airflow.settings import TIMEZONE  # the zone Airflow shows times in ([core] default_timezone)

        data = audit_view(request, user)
        return HTMLResponse(
            html.audit_page(data, user=_name(user), role=getattr(user, "role", None), tz=TIMEZONE),
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/api/audit")
    def audit_json(request: Request, user: CurrentUser) -> JSONResponse:
        return JSONResponse(audit_view(request, user), headers={"Cache-Control": "no-store"})

    @app.post("/erasure/requests")
    async def erase(request: Request, user: CurrentUser) -> Response:
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin and urlsplit(origin).netloc != request.url.netloc:
            raise HTTPException(403, f"cross-site request from {origin} refused")
        if "subjects" in request.query_params or "subject" in request.query_params:
            raise HTTPException(
                400,
                "field 'subjects': send subject ids in the request body, never in the URL "
                "(access logs keep URLs); nothing was filed",
            )
        if "application/json" in request.headers.get("content-type", ""):
            try:
                body = await request.json()
            except ValueError:
                raise HTTPException(400, "the body is not JSON; nothing was filed") from None
            if not isinstance(body, dict):
                raise HTTPException(400, "the body must be a JSON object; nothing was filed")
        else:
            form = {k: v[-1] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
            body = {
                **form,
                "subjects": [
                    ln.strip() for ln in form.get("subjects", "").replace(",", "\n").splitlines() if ln.strip()
                ],
                "now": form.get("now") not in (None, "", "0"),
            }
        try:
            ack = await run_in_threadpool(file_erasure, load_settings(), user, body)
        except PermissionError as err:
            raise HTTPException(403, str(err)) from None
        except ValueError as err:
            raise HTTPException(422, str(err)) from None
        if "application/json" in request.headers.get("accept", "") or "json" in request.headers.get("content-type", ""):
            return JSONResponse(ack, status_code=201)
        notice = f"erasure request {ack['request_id']} recorded ({ack['subjects']} subject(s)); {ack['processing']}"
        return RedirectResponse(f"../../?{notice_query(load_settings(), _name(user), notice, 1)}", status_code=303)

    @app.get("/runbooks/", response_class=HTMLResponse)
    def runbook_index() -> HTMLResponse:
        return runbook("index")

    @app.get("/runbooks/{slug}", response_class=HTMLResponse)
    def runbook(slug: str) -> HTMLResponse:
        try:
            text = runbooks.page(slug)
        except KeyError as err:
            raise HTTPException(404, str(err).strip("'\"")) from None
        title = text.splitlines()[0].lstrip("# ").strip() if text else slug
        body = f'<p><a href="./">all runbooks</a> · <a href="../">Ativo</a></p>{runbooks.to_html(text)}'
        return HTMLResponse(html.document(f"Runbook: {title}", body))

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        from ativo.ops.metrics import render
        from ativo.spec import load_specs
        from ativo.store.db import get_engine

        settings = load_settings()
        body = render(get_engine(settings.db_url), settings.prices, specs=load_specs(settings.specs_dir)[0])
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app
