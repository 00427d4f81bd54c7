"""The ETL steps outside Airflow: quarantine of every malformed kind, idempotent partitions, missing batches."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ativo.data import etl, quarantine
from ativo.data.landing import MALFORMED_KINDS, simulate
from ativo.errors import BatchRejected, LandingMissing
from ativo.store.db import get_engine
from ativo.store.objects import open_store

DAY = dt.date(2026, 4, 1)


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_malformed_batch_is_quarantined_whole_and_the_lake_untouched(kind, settings, spec, reference_dir):
    store = open_store(settings)
    simulate(spec, store, reference_dir, DAY, 1, malformed={DAY: kind})
    original = store.get_bytes(f"landing/adult_income/{DAY}.csv")
    with pytest.raises(BatchRejected) as err:
        etl.validate_landing(spec, settings, str(DAY))
    assert err.value.reasons and all(isinstance(r, str) and len(r) > 10 for r in err.value.reasons)
    # the batch moved, byte for byte, next to its report; the landing copy is gone; the lake has nothing
    assert not store.exists(f"landing/adult_income/{DAY}.csv")
    [batch_key] = [k for k in store.list(f"quarantine/adult_income/{DAY}") if k.endswith("batch.csv")]
    assert store.get_bytes(batch_key) == original
    report = json.loads(store.get_bytes(batch_key.replace("batch.csv", "report.json")))
    assert report["reasons"] == err.value.reasons and report["partition"] == str(DAY)
    assert store.list("lake") == []
    assert quarantine.last(get_engine(settings.db_url), "adult_income", str(DAY)).reasons == err.value.reasons
    # asking again says why, instead of pretending the batch never came
    with pytest.raises(BatchRejected, match="quarantined"):
        etl.validate_landing(spec, settings, str(DAY))


def test_missing_batch_is_retryable_and_says_where_it_looked(settings, spec):
    with pytest.raises(LandingMissing, match=r"no landing batch for 2026-04-01 at file://.*2026-04-01.csv"):
        etl.validate_landing(spec, settings, str(DAY))


def test_rerun_rewrites_identical_bytes_and_no_new_version(settings, spec, reference_dir):
    simulate(spec, open_store(settings), reference_dir, DAY, 4)
    first = etl.run_interval(spec, settings, str(DAY))
    again = etl.run_interval(spec, settings, str(DAY))
    assert first["version"]["tag"] == again["version"]["tag"] == "adult_income-v0001"
    assert first["written"]["sha256"] == again["written"]["sha256"]
    assert again["written"]["rewritten"] is False and again["version"]["created"] is False


def test_batch_changed_after_validation_is_refused(settings, spec, reference_dir):
    store = open_store(settings)
    simulate(spec, store, reference_dir, DAY, 4)
    accepted = etl.validate_landing(spec, settings, str(DAY))
    store.put_bytes(
        f"landing/adult_income/{DAY}.csv", store.get_bytes(f"landing/adult_income/{DAY + dt.timedelta(days=1)}.csv")
    )
    with pytest.raises(LandingMissing, match="changed after validation"):
        etl.write_features(spec, settings, str(DAY), accepted["sha256"])
    assert store.list("lake") == []
