"""What a test and a benchmark both set up: cheaper gates, a subject who comes back, decisions in the prediction log.

Each is what the test asserts on and what the benchmark measures: one definition, so the figures describe the
scenario the tests check.
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ativo.serve.predlog import PredictionLog
    from ativo.spec import ModelSpec
    from ativo.store.objects import ObjectStore


def cheap_gates(spec: ModelSpec) -> ModelSpec:
    """The spec with cheaper gates that a one-trial search passes.

    20 robustness attack samples and a counterfactual flip-rate bound of 0.2, 1,000 privacy samples, a champion
    tolerance of 0.02; every gate still runs. The gates' own bounds are tested (and benchmarked) elsewhere: a test or
    benchmark using this asks whether a loop closes, or what the rest of it costs.
    """
    gates = spec.gates.model_copy(
        update={
            "robustness": spec.gates.robustness.model_copy(
                update={"attack_samples": 20, "max_counterfactual_flip_rate": 0.2}
            ),
            "privacy": spec.gates.privacy.model_copy(update={"samples": 1000}),
            "champion": spec.gates.champion.model_copy(update={"tolerance": 0.02}),
        }
    )
    return spec.model_copy(update={"gates": gates})


def spread_subject(store: ObjectStore, spec: ModelSpec, days: Sequence[dt.date]) -> str:
    """Make one subject of the first day's landed batch appear in each later day's too, twice (a customer who comes
    back); returns its id.

    The batches must be landed already (:func:`ativo.data.landing.simulate`); they are rewritten in place.
    """
    import pandas as pd

    from ativo.data.landing import landing_key

    sid = spec.data_schema.subject
    frames = {
        d: pd.read_csv(io.BytesIO(store.get_bytes(landing_key(spec.name, d))), dtype=str, keep_default_na=False)
        for d in days
    }
    subject = frames[days[0]][sid].iloc[0]
    for d in days[1:]:
        frames[d].loc[frames[d].index[:2], sid] = subject
        store.put_bytes(landing_key(spec.name, d), frames[d].to_csv(index=False).encode())
    return str(subject)


def append_decisions(
    log: PredictionLog,
    spec: ModelSpec,
    model: Any,
    frame: pd.DataFrame,
    ts: float,
    *,
    subjects: Sequence[str | None] | None = None,
    request_id: str = "r",
) -> list[str]:
    """Append the frame's rows, answered by ``model`` at ``ts`` as the champion serves them, to a prediction log.

    Args:
        log: an open :class:`~ativo.serve.predlog.PredictionLog` (the caller closes it).
        spec: the spec the rows follow.
        model: the served model that scores them (:class:`~ativo.model.served.ServedModel`).
        frame: the rows (features; a label column is ignored).
        ts: when they were answered (epoch seconds).
        subjects: each row's subject id (none when omitted).
        request_id: the request they came in.

    Returns:
        The prediction ids of the rows, in order (for labels: :class:`~ativo.serve.predlog.LabelLog`).
    """
    import numpy as np

    from ativo.model.encoding import encode_frame
    from ativo.serve.predlog import Entry, prediction_id

    n = len(frame)
    matrix = encode_frame(spec, frame)
    scores = model.score(matrix)
    ids = [prediction_id(ts) for _ in range(n)]
    log.append(
        Entry(
            ts=ts,
            request_id=request_id,
            ids=ids,
            matrix=matrix,
            subjects=list(subjects) if subjects is not None else [None] * n,
            models=[model] * n,
            routes=["champion"] * n,
            fallback=[False] * n,
            scores=scores,
            decisions=(scores >= 0.5).astype(np.int8),
            latency_ms=1.0,
            shadow=None,
        )
    )
    return ids
