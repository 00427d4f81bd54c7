"""Every object-store prefix and key the platform uses, in one place.

The object store (:mod:`ativo.store.objects`) is addressed by ``/``-separated keys below its root. Each prefix has
one owner, the module that writes its format; every other module (readers, the page, the erasure purge, the
summary) builds its keys here and asks the owner to change what is under them.

========================================================  =========================  ================================
Layout                                                    Owner (writer)             Forgets an erased subject
========================================================  =========================  ================================
``landing/<spec>/<YYYY-MM-DD>.csv``                       :mod:`ativo.data.landing`  its lines
``quarantine/<spec>/<YYYY-MM-DD>/<sha256[:16]>/…``        :mod:`ativo.data.etl`      its lines; report values redacted
``lake/<spec>/ds=<YYYY-MM-DD>/part-0.parquet``            :mod:`ativo.data.lake`     its rows (partition rewritten)
``predictions/<spec>/date=<YYYY-MM-DD>/part-….parquet``   :mod:`ativo.serve.predlog` its decisions
``labels/<spec>/date=<YYYY-MM-DD>/part-….parquet``        :mod:`ativo.serve.predlog` the labels of its decisions
``deployments/<spec>/<stamp>-<action>-<nonce>.json``      :mod:`ativo.deploy.promotion`  (no subject in it)
``erasure/receipts/<spec>/<request_id>.json``             :mod:`ativo.erasure.process`   (references only)
``mlflow/<spec>/…``                                       MLflow (artifact location set by :mod:`ativo.train.tracking`)
========================================================  =========================  ================================

Inside an MLflow run's artifacts (below ``mlflow/<spec>/<run id>/artifacts/``): ``gates/`` (gate report, model card,
decision policy: :mod:`ativo.evaluate.suite`, the approval's card :mod:`ativo.deploy.approvals`) and ``monitor/``
(the training profile, :mod:`ativo.train.tracking`; each monitored window's report, :mod:`ativo.monitor.run`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final, Literal

LANDING = "landing"
QUARANTINE = "quarantine"
LAKE = "lake"
PREDICTIONS: Final = "predictions"
LABELS: Final = "labels"
DEPLOYMENTS = "deployments"
ERASURE_RECEIPTS = "erasure/receipts"
MLFLOW = "mlflow"

ROOTS = (LANDING, QUARANTINE, LAKE, PREDICTIONS, LABELS, DEPLOYMENTS, ERASURE_RECEIPTS, MLFLOW)
"""Every top-level prefix of the object store."""

LogKind = Literal["predictions", "labels"]


# --- landing: ativo.data.landing -----------------------------------------------------------------------------------


def landing(spec: str) -> str:
    """Prefix of a spec's landing area (owner :mod:`ativo.data.landing`): one CSV per delivered day."""
    return f"{LANDING}/{spec}"


def landing_batch(spec: str, day: dt.date) -> str:
    """Key of a day's landing batch: ``landing/<spec>/<YYYY-MM-DD>.csv``."""
    return f"{landing(spec)}/{day.isoformat()}.csv"


# --- quarantine: ativo.data.etl -------------------------------------------------------------------------------------


def quarantine(spec: str) -> str:
    """Prefix of a spec's quarantine (owner :mod:`ativo.data.etl`): one folder per rejected batch."""
    return f"{QUARANTINE}/{spec}"


def quarantined(spec: str, partition: str, sha256: str) -> str:
    """Folder of one rejected batch: ``quarantine/<spec>/<partition>/<sha256[:16]>``.

    It holds ``batch.csv`` (the batch as delivered) and ``report.json`` (the validation report).
    """
    return f"{quarantine(spec)}/{partition}/{sha256[:16]}"


def quarantined_batch(spec: str, partition: str, sha256: str) -> str:
    """Key of a rejected batch's bytes (raw rows: never served by the page)."""
    return f"{quarantined(spec, partition, sha256)}/batch.csv"


def quarantined_report(spec: str, partition: str, sha256: str) -> str:
    """Key of a rejected batch's validation report."""
    return f"{quarantined(spec, partition, sha256)}/report.json"


QUARANTINE_REPORTS = ("/report.json", "/report.html")
"""How the files of a quarantine folder that hold no raw row end."""


# --- lake: ativo.data.lake ------------------------------------------------------------------------------------------


def lake(spec: str) -> str:
    """Prefix of a spec's lake (owner :mod:`ativo.data.lake`, written by the ETL): one Parquet file per interval."""
    return f"{LAKE}/{spec}"


def lake_partition(spec: str, partition: str) -> str:
    """Key of a lake partition: ``lake/<spec>/ds=<YYYY-MM-DD>/part-0.parquet`` (``partition`` is the date)."""
    return f"{lake(spec)}/ds={partition}/part-0.parquet"


LAKE_PARTITION = re.compile(r"ds=(\d{4}-\d{2}-\d{2})/part-0\.parquet$")
"""The end of a lake partition's key (and of its path in a dataset version); group 1 is its date."""


def lake_partition_of(key: str) -> str | None:
    """The date of the lake partition ``key`` names; None for any other key."""
    m = LAKE_PARTITION.search(key)
    return m.group(1) if m else None


def lake_relpath(partition: str) -> str:
    """A partition's path below the lake prefix (as a dataset version's directory holds it)."""
    return f"ds={partition}/part-0.parquet"


# --- prediction and label logs: ativo.serve.predlog -----------------------------------------------------------------


def predictions(spec: str, date: str | None = None) -> str:
    """Prefix of a spec's prediction log (owner :mod:`ativo.serve.predlog`), or of one UTC day of it.

    Layout: ``predictions/<spec>/date=<YYYY-MM-DD>/part-<writer>-<seq>.parquet``; a server only adds objects.
    """
    return serving_log(PREDICTIONS, spec, date)


def labels(spec: str, date: str | None = None) -> str:
    """Prefix of a spec's label log (delayed ground truth; owner :mod:`ativo.serve.predlog`), or of one UTC day.

    Layout: ``labels/<spec>/date=<YYYY-MM-DD>/part-<writer>-<seq>.parquet``.
    """
    return serving_log(LABELS, spec, date)


def serving_log(kind: LogKind, spec: str, date: str | None = None) -> str:
    """Prefix of the prediction (``kind="predictions"``) or label log of a spec, or of one day of it."""
    if kind not in (PREDICTIONS, LABELS):
        raise ValueError(f"kind must be {PREDICTIONS!r} or {LABELS!r}, not {kind!r}")
    return f"{kind}/{spec}" + (f"/date={date}" if date else "")


def log_part(folder: str, writer: str, seq: int) -> str:
    """Key of one object a log writer flushes into a day's folder: ``<folder>/part-<writer>-<seq>.parquet``."""
    return f"{folder}/part-{writer}-{seq:06d}.parquet"


# --- deployment records: ativo.deploy.promotion ---------------------------------------------------------------------


def deployments(spec: str) -> str:
    """Prefix of a spec's deployment records (owner :mod:`ativo.deploy.promotion`): one JSON per move."""
    return f"{DEPLOYMENTS}/{spec}"


def deployment_record(spec: str, stamp: str, action: str, nonce: str) -> str:
    """Key of one deployment record; ``stamp`` first, so the keys sort in the order the moves happened."""
    return f"{deployments(spec)}/{stamp}-{action}-{nonce}.json"


# --- erasure receipts: ativo.erasure.process ------------------------------------------------------------------------


def erasure_receipts(spec: str) -> str:
    """Prefix of a spec's erasure receipts (owner :mod:`ativo.erasure.process`)."""
    return f"{ERASURE_RECEIPTS}/{spec}"


def erasure_receipt(spec: str, request_id: str) -> str:
    """Key of a closed request's receipt: ``erasure/receipts/<spec>/<request_id>.json``."""
    return f"{erasure_receipts(spec)}/{request_id}.json"


# --- MLflow ---------------------------------------------------------------------------------------------------------


def mlflow_artifacts(spec: str) -> str:
    """Prefix of a spec's MLflow artifacts (its experiment's artifact location; MLflow writes below it)."""
    return f"{MLFLOW}/{spec}"


RUN_GATES = "gates"
"""A run's gate report, model card and decision policy (an MLflow artifact path inside the run)."""

RUN_MONITOR = "monitor"
"""A run's monitoring artifacts (an MLflow artifact path inside the run)."""

MONITOR_PROFILE = f"{RUN_MONITOR}/profile.json"
"""The training profile the monitor compares windows with, inside the run that trained the version."""


def monitor_report(tag: str) -> str:
    """Folder of one monitored window's report inside the champion's run: ``monitor/<window tag>``."""
    return f"{RUN_MONITOR}/{tag}"


def uri(store_uri: str, key: str) -> str:
    """The full URI of ``key`` in the store rooted at ``store_uri`` (without opening it)."""
    return f"{store_uri.rstrip('/')}/{key.strip('/')}"
