"""Stored reports by reference: the page's links name a report, never where it lies on a host.

A reference is ``run/<run id>/<artifact path>`` (a gate report, model card or monitor report of an MLflow run) or
``store/<key>`` (a validation report, deployment record or erasure receipt in the object store, by its key under
the store's root). :func:`ref_of` turns a stored URI into one and :func:`uri_of` turns one back, each refusing
anything that is not one of the reports the page opens (:data:`RUN_ARTIFACTS`, :data:`STORE_FILES`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from ativo.store import prefixes

if TYPE_CHECKING:
    from ativo.config import Settings

RUN_ARTIFACTS = (f"{prefixes.RUN_GATES}/", f"{prefixes.RUN_MONITOR}/")
"""The MLflow run artifacts the page opens: gate reports, model cards, decision policies, monitor reports."""

STORE_FILES = (
    (f"{prefixes.QUARANTINE}/", prefixes.QUARANTINE_REPORTS),
    (f"{prefixes.DEPLOYMENTS}/", (".json",)),
    (f"{prefixes.ERASURE_RECEIPTS}/", (".json",)),
)
"""The object-store files the page opens, by prefix and ending: validation reports (never the quarantined batch
itself, which holds raw rows), deployment records and erasure receipts. Landing batches, the lake and the
prediction log are never served."""

REF_MAX = 400
"""The longest reference taken (a run id and a report's path, or a store key, are far shorter)."""


SAFE_PATH = re.compile(r"[A-Za-z0-9._:+-]+(/[A-Za-z0-9._:+-]+)*")
"""What a reference's path may hold: the characters run ids, store keys and report names are made of. No ``%``
(an artifact store may decode it once more into ``..``), no ``?`` or ``#`` (a store client may cut the key there),
no space, backslash or control character."""


def _clean(path: str) -> bool:
    """Whether ``path`` is a plain relative path of :data:`SAFE_PATH` characters, with no ``..`` or ``.`` segment."""
    return (
        len(path) <= REF_MAX
        and SAFE_PATH.fullmatch(path) is not None
        and all(p not in (".", "..") for p in path.split("/"))
    )


def _store_key_allowed(key: str) -> bool:
    return _clean(key) and any(key.startswith(prefix) and key.endswith(ends) for prefix, ends in STORE_FILES)


def _run_path_allowed(run_id: str, path: str) -> bool:
    return run_id.isascii() and run_id.isalnum() and _clean(path) and path.startswith(RUN_ARTIFACTS)


def ref_of(settings: Settings, uri: str | None) -> str | None:
    """The reference of a stored report's URI, or None when the page does not open that file."""
    return ref_in(settings.store_uri, uri)


def ref_in(store_uri: str | None, uri: str | None) -> str | None:
    """:func:`ref_of` given the object store's root alone (None: only an MLflow run's reports have one)."""
    if not uri:
        return None
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        return f"run/{run_id}/{path}" if _run_path_allowed(run_id, path) else None
    if not store_uri:
        return None
    root = store_uri.rstrip("/") + "/"
    key = uri[len(root) :] if uri.startswith(root) else ""
    return f"store/{key}" if _store_key_allowed(key) else None


def uri_of(settings: Settings, ref: str) -> str:
    """The stored URI a reference names.

    Raises:
        KeyError: ``ref`` is not a reference to one of the reports the page opens (a ``..`` or empty segment, a
            path outside a run's reports, a store key outside the report prefixes, or another scheme).
    """
    kind, _, rest = ref.partition("/")
    if kind == "run":
        run_id, _, path = rest.partition("/")
        if _run_path_allowed(run_id, path):
            return f"runs:/{run_id}/{path}"
    elif kind == "store" and _store_key_allowed(rest):
        return settings.store_uri.rstrip("/") + "/" + rest
    raise KeyError(
        "not a report the page opens: a reference is run/<run id>/{gates,monitor}/<file> or "
        "store/{quarantine,deployments,erasure/receipts}/<key>"
    )


def kind_of(ref: str) -> str:
    """What a reference names.

    One of gate_report, model_card, monitor_report, validation_report, deployment_record,
    erasure_receipt, or file (another report the page opens as it is).
    """
    name = ref.rsplit("/", 1)[-1]
    if ref.startswith("run/"):
        if f"/{prefixes.RUN_GATES}/" in ref:
            return {"gate_report.json": "gate_report", "model_card.html": "model_card"}.get(name, "file")
        return "monitor_report" if name == "report.json" else "file"
    key = ref.removeprefix("store/")
    if key.startswith(f"{prefixes.QUARANTINE}/"):
        return "validation_report" if name == "report.json" else "file"
    if key.startswith(f"{prefixes.DEPLOYMENTS}/"):
        return "deployment_record"
    if key.startswith(f"{prefixes.ERASURE_RECEIPTS}/"):
        return "erasure_receipt"
    return "file"


def href(settings: Settings, uri: str | None, base: str = "") -> str | None:
    """The page's link to a stored report (``<base>reports/<ref>``), or None when the page does not open it."""
    ref = ref_of(settings, uri)
    return None if ref is None else f"{base}reports/{quote(ref)}"
