"""Live traffic from the reference data: real rows sent to the inference API, and their true labels fed back.

`make run` uses it so a canary has callers and labelled rows to be judged on; ``ativo traffic`` does it by hand.
Rows are sent in batches to ``/predict`` (each with its own subject, so the canary share is per caller) and their
labels to ``/feedback``, as an application that learns the outcome later would.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from ativo.http import new_client, post_json
from ativo.spec import ModelSpec


def reference_rows(spec: ModelSpec, reference_dir: Path, n: int, seed: int = 0) -> list[tuple[dict[str, Any], int]]:
    """``n`` rows of the reference data as (request row, true label), sampled with ``seed``."""
    from ativo.data.landing import reference_records

    raw = reference_records(spec, reference_dir)
    raw = raw.sample(n=min(n, len(raw)), random_state=seed)
    target = spec.data_schema.target
    out = []
    for rec in raw.to_dict("records"):
        features: dict[str, Any] = {}
        for f in spec.data_schema.features:
            v = rec[f.name]
            v = v.item() if hasattr(v, "item") else v
            missing = v is None or (isinstance(v, float) and math.isnan(v))
            features[f.name] = None if missing else (int(v) if f.type == "int" else v)
        label = 1 if str(rec[target.column]).strip() == target.positive else 0
        out.append(({"features": features, "subject_id": str(rec[spec.data_schema.subject])}, label))
    return out


def _post(url: str, key: str, doc: dict[str, Any], client: httpx.Client | None = None) -> dict[str, Any]:
    # Tried once: a /predict or /feedback the API may have taken already is not sent twice.
    return dict(post_json(url, doc, timeout=60, headers={"Authorization": f"Bearer {key}"}, client=client))


def replay(base_url: str, key: str, spec: ModelSpec, reference_dir: Path, rows: int = 3000, *, labels: bool = True,
           batch: int = 100, seed: int = 0) -> dict[str, Any]:  # fmt: skip
    """Send ``rows`` reference rows to ``/predict`` (and their labels to ``/feedback``); returns what answered them.

    Raises:
        ativo.http.HttpError: the API is not reachable (``status`` None), or refused a call (with its status).
    """
    sample = reference_rows(spec, reference_dir, rows, seed)
    routes: Counter[str] = Counter()
    answered = 0
    with new_client() as client:  # one keep-alive connection for every batch
        for i in range(0, len(sample), batch):
            chunk = sample[i : i + batch]
            preds = _post(f"{base_url}/predict", key, {"rows": [r for r, _ in chunk]}, client)["predictions"]
            answered += len(preds)
            routes.update(f"{p['route']} v{p['version']}" for p in preds)
            if labels:
                fed = [{"prediction_id": p["prediction_id"], "label": y}
                       for p, (_, y) in zip(preds, chunk, strict=True)]  # fmt: skip
                _post(f"{base_url}/feedback", key, {"labels": fed}, client)
    return {"rows": answered, "routes": dict(routes), "labels": answered if labels else 0}
