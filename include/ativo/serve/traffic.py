"""Live traffic from the reference data: real rows sent to the inference API, and their true labels fed back.

`make run` uses it so a canary has callers and labelled rows to be judged on; ``ativo traffic`` does it by hand.
Rows are sent in batches to ``/predict`` (each with its own subject, so the canary share is per caller) and their
labels to ``/feedback``, as an application that learns the outcome later would.

Traffic can be drifted, to watch drift detection and retraining happen (``ativo traffic --drift SHIFT``, repeated
for several). Shifts apply, in the order given, to the sampled rows before anything is sent, so the served model sees
the shifted rows as a caller would send them:

- ``FEATURE=+X`` / ``FEATURE=-X``: X is added to a numeric feature; ``FEATURE=*X``: it is multiplied by X. The
  covariate shift the landing simulator's ``source.drift`` declares, by hand: an int feature stays an int (rounded),
  every value is clipped to the feature's declared ``min``/``max`` (the API refuses a value beyond them), and a
  missing value stays missing.
- ``FEATURE=CATEGORY:SHARE``: rows of the other categories are moved to CATEGORY (or, for a smaller share, from it
  to the others) until CATEGORY holds SHARE (0..1) of the rows that have a value. Rows are taken from each category
  in proportion to its size and picked at random (seeded); missing values stay missing, and nothing else in a moved
  row changes.
- ``label=flip:P``: each label sent to ``/feedback`` is flipped with probability P (seeded). The features are not
  touched: concept drift, which only the labels show (a falling live AUC, never a feature's PSI).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx

from ativo.errors import AtivoError
from ativo.http import new_client, post_json
from ativo.spec import Feature, ModelSpec

Sample = list[tuple[dict[str, Any], int]]  # (request row, true label)

SHIFT_FORMS = "FEATURE=+X, FEATURE=-X, FEATURE=*X, FEATURE=CATEGORY:SHARE or label=flip:P"


class ShiftInvalid(AtivoError, ValueError):
    """A ``--drift`` shift cannot be applied to the spec; the message names the field and the reason."""


@dataclass(frozen=True)
class Shift:
    """One drift applied to sent traffic; ``str()`` gives it back in the form it is written in.

    Attributes:
        field: the feature shifted, or ``"label"``.
        kind: ``add`` (X added), ``scale`` (multiplied by X), ``share`` (``category``'s share set to X) or ``flip``
            (labels flipped with probability X).
        value: X.
        category: the category whose share is set (``share`` only).
    """

    field: str
    kind: Literal["add", "scale", "share", "flip"]
    value: float
    category: str = ""

    def __str__(self) -> str:
        if self.kind == "add":
            return f"{self.field}={'-' if self.value < 0 else '+'}{_number(abs(self.value))}"
        if self.kind == "scale":
            return f"{self.field}=*{_number(self.value)}"
        if self.kind == "share":
            return f"{self.field}={self.category}:{_number(self.value)}"
        return f"{self.field}=flip:{_number(self.value)}"


def _number(x: float) -> str:
    return str(int(x)) if x.is_integer() else repr(x)


def _parse_number(text: str, what: str, where: str, *, signed: bool = True) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or (not signed and text[0] in "+-"):  # no sign after the +, - or * that is the operator
        raise ShiftInvalid(f"{where}: {what} {text!r} is not a number")
    return x


def parse_shift(spec: ModelSpec, text: str) -> Shift:
    """The shift ``text`` writes (``age=+10``, ``hours_per_week=*1.2``, ``sex=Female:0.8``, ``label=flip:0.3``).

    Raises:
        ShiftInvalid: malformed text, a feature the spec does not have, ``+X``/``-X``/``*X`` on a category or a
            share on a number, a category the feature does not have, or a share or probability outside [0, 1].
    """
    where = f"drift {text!r}"
    name, eq, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not eq or not name or not value:
        raise ShiftInvalid(f"{where}: expected {SHIFT_FORMS}")
    if name == "label":
        kind, colon, p = value.partition(":")
        if kind.strip() != "flip" or not colon:
            raise ShiftInvalid(f"{where}: label: the label takes label=flip:P (P between 0 and 1), got {value!r}")
        prob = _parse_number(p.strip(), "flip probability", f"{where}: label")
        if not 0 <= prob <= 1:
            raise ShiftInvalid(f"{where}: label: flip probability {_number(prob)} is outside [0, 1]")
        return Shift(field="label", kind="flip", value=prob)
    schema = spec.data_schema
    if name not in schema.feature_names:
        raise ShiftInvalid(
            f"{where}: {name!r} is not a feature of {spec.name} (features: "
            f"{', '.join(schema.feature_names)}; or label=flip:P for the labels)"
        )
    f = schema.feature(name)
    if f.type == "category":
        cats = f.categories or ()
        category, colon, share_text = value.rpartition(":")
        category = category.strip()
        if not colon or not category:
            form = "+X, -X and *X are for numeric features" if value[0] in "+-*" else f"got {value!r}"
            raise ShiftInvalid(
                f"{where}: {name} is a category: give {name}=CATEGORY:SHARE (SHARE between 0 and 1; {form})"
            )
        if category not in cats:
            raise ShiftInvalid(f"{where}: {name}: {category!r} is not one of its categories ({', '.join(cats)})")
        share = _parse_number(share_text.strip(), "share", f"{where}: {name}")
        if not 0 <= share <= 1:
            raise ShiftInvalid(f"{where}: {name}: share {_number(share)} of {category!r} is outside [0, 1]")
        if len(cats) == 1 and share < 1:
            raise ShiftInvalid(f"{where}: {name}: {category!r} is its only category, so its share is always 1")
        return Shift(field=name, kind="share", value=share, category=category)
    op, amount = value[0], value[1:].strip()
    if op not in "+-*":
        raise ShiftInvalid(
            f"{where}: {name} is numeric: give {name}=+X, {name}=-X or {name}=*X (X a number), got {value!r}"
        )
    x = _parse_number(amount, "factor" if op == "*" else "amount", f"{where}: {name}", signed=False)
    if op == "*":
        return Shift(field=name, kind="scale", value=x)
    return Shift(field=name, kind="add", value=-x if op == "-" else x)


def apply_shifts(spec: ModelSpec, sample: Sample, shifts: Sequence[Shift], seed: int = 0) -> Sample:
    """``sample`` (request rows with their labels) with ``shifts`` applied in order; ``sample`` itself is not changed.

    Each shift draws from its own generator, seeded with ``seed`` and its place in ``shifts``: the same shifts and
    seed always move and flip the same rows.
    """
    rows = [{**r, "features": dict(r["features"])} for r, _ in sample]
    labels = [y for _, y in sample]
    for i, s in enumerate(shifts):
        rng = random.Random(f"{seed}:{i}:{s}")
        if s.kind == "flip":
            labels = [1 - y if rng.random() < s.value else y for y in labels]
        elif s.kind == "share":
            _set_share(spec.data_schema.feature(s.field), [r["features"] for r in rows], s, rng)
        else:
            f = spec.data_schema.feature(s.field)
            for r in rows:
                r["features"][s.field] = _moved(f, r["features"][s.field], s)
    return list(zip(rows, labels, strict=True))


def _moved(f: Feature, v: Any, s: Shift) -> Any:
    if v is None:
        return None
    x = v + s.value if s.kind == "add" else v * s.value
    lo: float | None = f.min
    hi: float | None = f.max
    if f.type == "int":
        x = round(x)
        lo = None if lo is None else math.ceil(lo)  # the nearest ints the API accepts
        hi = None if hi is None else math.floor(hi)
    if lo is not None and x < lo:
        x = lo
    if hi is not None and x > hi:
        x = hi
    return x if f.type == "int" else float(x)


def _quotas(n: int, sizes: dict[str, int]) -> dict[str, int]:
    # n split in proportion to sizes, by largest remainder (ties to the earlier category).
    total = sum(sizes.values())
    exact = {c: n * k / total for c, k in sizes.items()}
    out = {c: math.floor(q) for c, q in exact.items()}
    by_remainder = sorted(sizes, key=lambda c: out[c] - exact[c])
    for c in by_remainder[: n - sum(out.values())]:
        out[c] += 1
    return out


def _set_share(f: Feature, features: list[dict[str, Any]], s: Shift, rng: random.Random) -> None:
    cats = f.categories or ()
    held = [i for i, r in enumerate(features) if r[f.name] is not None]
    want = round(s.value * len(held))
    by_cat: dict[str, list[int]] = {c: [] for c in cats}
    for i in held:
        by_cat.setdefault(features[i][f.name], []).append(i)
    have = by_cat[s.category]
    others = {c: len(ix) for c, ix in by_cat.items() if c != s.category and ix}
    if want > len(have):  # take rows from the other categories
        for c, k in _quotas(want - len(have), others).items():
            for i in rng.sample(by_cat[c], k):
                features[i][f.name] = s.category
    elif want < len(have):  # give rows to the other categories (to every other one when none is in the sample)
        weights = {c: k for c, k in others.items() if c in cats} or {c: 1 for c in cats if c != s.category}
        moving = rng.sample(have, len(have) - want)
        for c, k in _quotas(len(moving), weights).items():
            for i in moving[:k]:
                features[i][f.name] = c
            moving = moving[k:]


def reference_rows(spec: ModelSpec, reference_dir: Path, n: int, seed: int = 0) -> Sample:
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


def replay(
    base_url: str,
    key: str,
    spec: ModelSpec,
    reference_dir: Path,
    rows: int = 3000,
    *,
    labels: bool = True,
    batch: int = 100,
    seed: int = 0,
    drift: Sequence[Shift] = (),
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Send ``rows`` reference rows to ``/predict`` (and their labels to ``/feedback``); returns what answered them.

    ``drift`` shifts the rows (and labels) before they are sent (see :func:`apply_shifts`); the result lists them.
    ``on_progress`` is called with (rows answered, rows to send) after each batch (a command line's progress bar).

    Raises:
        ativo.http.HttpError: the API is not reachable (``status`` None), or refused a call (with its status).
    """
    sample = apply_shifts(spec, reference_rows(spec, reference_dir, rows, seed), drift, seed)
    routes: Counter[str] = Counter()
    answered = 0
    with new_client() as client:  # one keep-alive connection for every batch
        for i in range(0, len(sample), batch):
            chunk = sample[i : i + batch]
            preds = _post(f"{base_url}/predict", key, {"rows": [r for r, _ in chunk]}, client)["predictions"]
            answered += len(preds)
            routes.update(f"{p['route']} v{p['version']}" for p in preds)
            if labels:
                fed = [
                    {"prediction_id": p["prediction_id"], "label": y} for p, (_, y) in zip(preds, chunk, strict=True)
                ]
                _post(f"{base_url}/feedback", key, {"labels": fed}, client)
            if on_progress is not None:
                on_progress(answered, len(sample))
    return {
        "rows": answered,
        "routes": dict(routes),
        "labels": answered if labels else 0,
        "drift": [str(s) for s in drift],
    }
