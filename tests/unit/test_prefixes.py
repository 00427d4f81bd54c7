"""Every object-store key is built by ativo.store.prefixes: the layouts it names, and no other module typing one."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import pytest

from ativo.store import prefixes

PACKAGE = Path(__file__).resolve().parents[2] / "include" / "ativo"
PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_the_layouts():
    day = dt.date(2026, 3, 1)
    assert prefixes.landing_batch("adult", day) == "landing/adult/2026-03-01.csv"
    assert (
        prefixes.quarantined_batch("adult", "2026-03-01", "ab" * 32)
        == f"quarantine/adult/2026-03-01/{'ab' * 8}/batch.csv"
    )
    assert prefixes.quarantined_report("adult", "2026-03-01", "ab" * 32).endswith(f"/{'ab' * 8}/report.json")
    assert prefixes.lake_partition("adult", "2026-03-01") == "lake/adult/ds=2026-03-01/part-0.parquet"
    assert prefixes.predictions("adult", "2026-03-01") == "predictions/adult/date=2026-03-01"
    assert prefixes.labels("adult") == "labels/adult"
    assert prefixes.log_part("labels/adult/date=2026-03-01", "host-1-ab", 7) == (
        "labels/adult/date=2026-03-01/part-host-1-ab-000007.parquet"
    )
    assert prefixes.deployment_record("adult", "20260301T000000.000000", "promote", "abcd1234") == (
        "deployments/adult/20260301T000000.000000-promote-abcd1234.json"
    )
    assert prefixes.erasure_receipt("adult", "R-1") == "erasure/receipts/adult/R-1.json"
    assert prefixes.mlflow_artifacts("adult") == "mlflow/adult"
    assert prefixes.monitor_report("w1") == "monitor/w1" and prefixes.MONITOR_PROFILE == "monitor/profile.json"
    assert prefixes.uri("file:///srv/store/", prefixes.lake("adult")) == "file:///srv/store/lake/adult"


def test_a_lake_key_names_its_partition_and_no_other_key_does():
    key = prefixes.lake_partition("adult", "2026-03-01")
    assert prefixes.lake_partition_of(key) == "2026-03-01"
    assert key.endswith(prefixes.lake_relpath("2026-03-01"))
    assert prefixes.lake_partition_of(prefixes.landing_batch("adult", dt.date(2026, 3, 1))) is None


def test_a_log_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be 'predictions' or 'labels'"):
        prefixes.serving_log("lake", "adult")  # type: ignore[arg-type]


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string literal of a module, and the literal start of every f-string, with its line."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
            out.append((node.lineno, str(node.values[0].value)))
    return out


def typed_prefixes(paths: list[Path]) -> list[str]:
    """``path:line: literal`` for each string that starts with an object-store prefix outside ativo.store.prefixes."""
    found = []
    for path in paths:
        if path == PACKAGE / "store" / "prefixes.py":
            continue
        for line, text in _strings(ast.parse(path.read_text())):
            if any(text.startswith(f"{root}/") for root in prefixes.ROOTS):
                found.append(f"{path.name}:{line}: {text[:60]!r}")
    return list(dict.fromkeys(found))  # an f-string's first part is also a literal of its own


def test_no_other_module_types_an_object_store_prefix():
    paths = sorted(PACKAGE.rglob("*.py")) + sorted(PLUGINS.rglob("*.py"))
    assert typed_prefixes(paths) == []


def test_the_check_sees_a_typed_prefix(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('KEY = "lake/x"\n\ndef k(s):\n    return f"predictions/{s}/date=1"\n\nOK = "a lake/x"\n')
    assert typed_prefixes([source]) == ["m.py:1: 'lake/x'", "m.py:4: 'predictions/'"]
