"""A subject id quoted in a client-chosen id of an older server's log rows cannot wedge its erasure.

Servers now replace a request id that is not their own and refuse a feedback id they never issued, but rows logged
before (or by an older server in a rolling upgrade) may still quote one. The purge redacts those ids, keeping the
rows, which are someone else's decisions.
"""

from __future__ import annotations

import io


def test_a_quoted_subject_in_an_old_request_id_or_feedback_id_is_redacted_and_the_row_kept(settings, spec):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ativo.erasure.purge import Targets, purge_logs
    from ativo.serve.predlog import parquet_bytes
    from ativo.store.objects import open_store

    store = open_store(settings)
    victim = "cust-0989f90e753b3d80"
    predictions = pa.table(
        {
            "prediction_id": ["p-1", "p-2", "p-3"],
            "subject": ["pseud-victim", "pseud-b", "pseud-c"],
            "request_id": ["r-1", f"retry {victim} please", "r-3"],
            "score": [0.1, 0.2, 0.3],
        }
    )
    labels = pa.table({"prediction_id": ["p-1", f"x-{victim}", "p-3"], "label": [1, 0, 1]})
    store.put_bytes(f"predictions/{spec.name}/2026-12-07/a.parquet", parquet_bytes(predictions))
    store.put_bytes(f"labels/{spec.name}/2026-12-07/a.parquet", parquet_bytes(labels))

    removed = purge_logs(spec, store, Targets([victim], ["pseud-victim"]))

    after = pq.read_table(io.BytesIO(store.get_bytes(f"predictions/{spec.name}/2026-12-07/a.parquet"))).to_pydict()
    assert after["prediction_id"] == ["p-2", "p-3"]  # the subject's own decision is gone, the others stay
    assert after["request_id"] == ["[erased]", "r-3"] and after["score"] == [0.2, 0.3]
    labels_after = pq.read_table(io.BytesIO(store.get_bytes(f"labels/{spec.name}/2026-12-07/a.parquet"))).to_pydict()
    assert labels_after == {"prediction_id": ["[erased]", "p-3"], "label": [0, 1]}  # p-1 was the subject's
    assert sum(removed.values()) == 4
    for key in store.list(f"predictions/{spec.name}") + store.list(f"labels/{spec.name}"):
        assert victim.encode() not in store.get_bytes(key), key
