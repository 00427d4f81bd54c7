"""Features: the validated batch, typed and ordered, written as one deterministic Parquet partition.

The same batch always produces the same bytes (rows sorted by record id, fixed writer settings), so a re-run of
an interval rewrites an identical partition and creates no new dataset version.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from ativo.spec import ModelSpec

if TYPE_CHECKING:
    import pandas as pd

LABEL = "label"


def to_features(df: pd.DataFrame, spec: ModelSpec) -> pd.DataFrame:
    """Type and order a validated batch: ids, event date, features in spec order, and a 0/1 ``label``."""
    import pandas as pd

    schema = spec.data_schema
    out = pd.DataFrame(
        {
            schema.record_id: df[schema.record_id].astype("str"),
            schema.subject: df[schema.subject].astype("str"),
            schema.event_time: df[schema.event_time].astype("str"),
        }
    )
    for f in schema.features:
        col = df[f.name]
        if f.type == "category":
            out[f.name] = col.astype("str").where(col.notna(), None)
        elif f.type == "int":
            out[f.name] = col.astype("Int64" if f.nullable else "int64")
        else:
            out[f.name] = col.astype("float64")
    out[LABEL] = (df[schema.target.column] == schema.target.positive).astype("int8")
    return out.sort_values(schema.record_id, kind="stable").reset_index(drop=True)


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    """Deterministic Parquet bytes for a feature frame."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", write_statistics=True, store_schema=True)
    return buf.getvalue()


def read_parquet_bytes(data: bytes) -> pd.DataFrame:
    """Inverse of :func:`to_parquet_bytes`."""
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data)).to_pandas()
