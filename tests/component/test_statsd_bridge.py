"""The StatsD bridge and deploy/statsd/mapping.yml: real UDP packets in, Prometheus text scraped over HTTP.

The packets use Airflow 3.3's legacy names (as its metrics registry spells them, with prefix ``airflow``); one test
drives Airflow's own ``stats`` module, which sends each metric under its legacy and its new name.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.util
import re
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ativo_dev.statsd_bridge import (
    MappingError,
    StatsdBridge,
    escape_metric_name,
    load_mapping,
    parse_line,
    parse_mapping,
)
from tests.metrics_text import samples

ROOT = Path(__file__).resolve().parents[2]
MAPPING = ROOT / "deploy" / "statsd" / "mapping.yml"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
DASHBOARDS = ROOT / "deploy"  # any dashboard JSON under deploy/ (Grafana) counts as a user of the names


@pytest.fixture
def bridge():
    with StatsdBridge(load_mapping(MAPPING), udp=("127.0.0.1", 0), http=("127.0.0.1", 0)) as b:
        yield b


def send(bridge: StatsdBridge, *packets: str) -> None:
    """Send each packet (lines joined by newlines) as one UDP datagram and wait until the bridge applied them."""
    expected = bridge.lines_applied + sum(1 for p in packets for line in p.splitlines() if line.strip())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for packet in packets:
            sock.sendto(packet.encode(), bridge.udp_address)
    assert bridge.wait_for_lines(expected, timeout=5), f"{bridge.lines_applied} of {expected} lines applied"


def scrape(bridge: StatsdBridge) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(bridge.metrics_url, timeout=5) as resp:
        assert resp.status == 200
        return samples(resp.read().decode())


def value(metrics: dict[tuple[str, frozenset], float], name: str, **labels: str) -> float | None:
    return metrics.get((name, frozenset(labels.items())))


def names(metrics: dict[tuple[str, frozenset], float]) -> set[str]:
    return {name for name, _ in metrics}


# --- the bridge over UDP and HTTP ---------------------------------------------------------------------------------


def test_task_instance_finish_and_heartbeats(bridge):
    send(
        bridge,
        "airflow.ti.finish.ETL_adult_income.validate.failed:1|c\n"
        "airflow.ti.finish.ETL_adult_income.validate.failed:1|c\n"
        "airflow.ti.finish.TRAIN_adult_income.search__fit.up_for_retry:1|c\n"
        "airflow.scheduler_heartbeat:1|c\nairflow.scheduler_heartbeat:1|c\nairflow.scheduler_heartbeat:1|c\n"
        "airflow.triggerer_heartbeat:1|c",
    )
    m = scrape(bridge)
    assert value(m, "airflow_ti_finish_total", dag_id="ETL_adult_income", task_id="validate", state="failed") == 2
    # a task in a task group: Airflow writes group.task as group__task in the legacy name
    assert (
        value(m, "airflow_ti_finish_total", dag_id="TRAIN_adult_income", task_id="search__fit", state="up_for_retry")
        == 1
    )
    assert value(m, "airflow_scheduler_heartbeat_total") == 3
    assert value(m, "airflow_triggerer_heartbeat_total") == 1


def test_sample_rate_scales_counters(bridge):
    send(bridge, "airflow.ti_successes:1|c|@0.5", "airflow.ti_failures:1|c|@0.1")
    m = scrape(bridge)
    assert value(m, "airflow_ti_successes_total") == 2
    assert value(m, "airflow_ti_failures_total") == pytest.approx(10)


def test_dagrun_duration_timer_is_a_histogram_in_seconds(bridge):
    # dagrun.duration.{state}.{dag_id}: the state comes first; 1500 ms is 1.5 s, in the 5 s bucket and not the 1 s one
    send(bridge, "airflow.dagrun.duration.success.ETL_adult_income:1500.000000|ms")
    m = scrape(bridge)
    series = {"state": "success", "dag_id": "ETL_adult_income"}
    assert value(m, "airflow_dagrun_duration_seconds_bucket", le="1", **series) == 0
    assert value(m, "airflow_dagrun_duration_seconds_bucket", le="5", **series) == 1
    assert value(m, "airflow_dagrun_duration_seconds_bucket", le="3600", **series) == 1
    assert value(m, "airflow_dagrun_duration_seconds_bucket", le="+Inf", **series) == 1
    assert value(m, "airflow_dagrun_duration_seconds_count", **series) == 1
    assert value(m, "airflow_dagrun_duration_seconds_sum", **series) == pytest.approx(1.5)
    buckets = sorted(float(dict(lb)["le"]) for name, lb in m if name == "airflow_dagrun_duration_seconds_bucket")
    assert buckets == [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")]


def test_task_duration_uses_the_default_buckets(bridge):
    send(
        bridge,
        "airflow.dag.ETL_adult_income.validate.duration:250|ms",
        "airflow.dag.ETL_adult_income.validate.duration:250|ms|@0.5",
    )  # a sampled timer counts 1/rate times
    m = scrape(bridge)
    series = {"dag_id": "ETL_adult_income", "task_id": "validate"}
    assert value(m, "airflow_task_duration_seconds_bucket", le="0.1", **series) == 0
    assert value(m, "airflow_task_duration_seconds_bucket", le="0.5", **series) == 3
    assert value(m, "airflow_task_duration_seconds_count", **series) == 3
    assert value(m, "airflow_task_duration_seconds_sum", **series) == pytest.approx(0.75)


def test_pool_and_executor_gauges_set_and_move(bridge):
    send(
        bridge,
        "airflow.pool.open_slots.default_pool:128|g\nairflow.pool.running_slots.default_pool:0|g\n"
        "airflow.pool.queued_slots.training:4|g\nairflow.executor.open_slots.LocalExecutor:32|g",
    )
    send(bridge, "airflow.pool.open_slots.default_pool:-2|g", "airflow.pool.running_slots.default_pool:+2|g")
    m = scrape(bridge)
    assert value(m, "airflow_pool_open_slots", pool="default_pool") == 126
    assert value(m, "airflow_pool_running_slots", pool="default_pool") == 2
    assert value(m, "airflow_pool_queued_slots", pool="training") == 4
    assert value(m, "airflow_executor_open_slots", executor="LocalExecutor") == 32
    send(bridge, "airflow.pool.open_slots.default_pool:7|g")  # no sign: set
    assert value(scrape(bridge), "airflow_pool_open_slots", pool="default_pool") == 7


def test_dogstatsd_and_influxdb_tags_become_labels(bridge):
    send(
        bridge,
        "airflow.ti_failures:1|c|#dag_id:ETL_adult_income,task_id:validate",
        "airflow.ti_failures,dag_id=ETL_adult_income,task_id=validate:1|c",
        # a mapping's own labels win over a tag of the same name
        "airflow.pool.open_slots.default_pool:5|g|#pool:other,team_name:fraud",
    )
    m = scrape(bridge)
    assert value(m, "airflow_ti_failures_total", dag_id="ETL_adult_income", task_id="validate") == 2
    assert value(m, "airflow_pool_open_slots", pool="default_pool", team_name="fraud") == 5


def test_unmapped_metrics_keep_their_name(bridge):
    send(
        bridge,
        "airflow.dag_processing.total_parse_time:2.5|g",
        "ativo.custom-thing.done:3|c",
        "airflow.dagrun.schedule_delay.ETL_adult_income:40|ms",
    )
    m = scrape(bridge)
    assert value(m, "airflow_dag_processing_total_parse_time") == 2.5
    assert value(m, "ativo_custom_thing_done_total") == 3  # '.' and '-' become '_'; a counter's samples end in _total
    # an unmapped timer: a histogram with the default buckets, in seconds
    assert value(m, "airflow_dagrun_schedule_delay_ETL_adult_income_bucket", le="0.1") == 1
    assert value(m, "airflow_dagrun_schedule_delay_ETL_adult_income_sum") == pytest.approx(0.04)
    assert value(m, "statsd_exporter_events_unmapped_total") == 3


def test_new_name_duplicates_are_dropped(bridge):
    # what Airflow sends beside each legacy name (the variables only as tags, which plain StatsD loses)
    send(
        bridge,
        "airflow.ti.finish:1|c",
        "airflow.pool.open_slots:128|g",
        "airflow.executor.open_slots:32|g",
        "airflow.dagrun.duration.success:1500|ms",
        "airflow.task.duration:250|ms",
    )
    m = scrape(bridge)
    assert not {n for n in names(m) if n.startswith("airflow_")}
    assert value(m, "statsd_exporter_events_actions_total", action="drop") == 5


def test_bad_lines_are_counted_and_the_bridge_goes_on(bridge):
    send(
        bridge,
        "no colon here\nairflow.scheduler_heartbeat:x|c\nairflow.scheduler_heartbeat:-1|c\n"
        "airflow.thing:1|s\nairflow.scheduler_heartbeat:1|c",
    )
    send(bridge, "airflow.scheduler_heartbeat:1|g")  # the name is a counter already: a conflict, refused
    m = scrape(bridge)
    assert value(m, "airflow_scheduler_heartbeat_total") == 1
    assert value(m, "statsd_exporter_sample_errors_total", reason="malformed_line") == 1
    assert value(m, "statsd_exporter_sample_errors_total", reason="malformed_value") == 1
    assert value(m, "statsd_exporter_sample_errors_total", reason="illegal_negative_counter") == 1
    assert value(m, "statsd_exporter_sample_errors_total", reason="illegal_event") == 1
    assert value(m, "statsd_exporter_events_conflict_total", type="gauge") == 1
    assert value(m, "statsd_exporter_lines_total") == 6


def test_airflow_stats_module_through_the_mapping(bridge, monkeypatch):
    """Airflow's own stats code: each metric with a legacy name goes out twice; the mapping keeps one, labelled."""
    from airflow._shared.observability.metrics import stats
    from airflow._shared.observability.metrics.statsd_logger import get_statsd_logger

    wire = _StatsdWire(bridge.udp_address)
    for attr in ("_factory", "_backend", "_export_legacy_names"):
        monkeypatch.setattr(stats, attr, getattr(stats, attr))
    stats.initialize(
        factory=lambda: get_statsd_logger(
            stats_class=wire.client, host="127.0.0.1", port=bridge.udp_address[1], prefix="airflow"
        ),
        export_legacy_names=True,
    )

    ti = {"dag_id": "ETL_adult_income", "task_id": "checks.validate"}  # a task in a task group
    stats.incr("ti.finish", tags={**ti, "state": "failed"})
    stats.incr("ti_failures", tags=ti)
    stats.incr("scheduler_heartbeat", 1, 1)
    stats.incr("triggerer_heartbeat", 1, 1)
    stats.timing(
        "dagrun.duration.success",
        dt.timedelta(seconds=1.5),
        tags={"dag_id": "ETL_adult_income", "run_type": "scheduled"},
    )
    stats.timing("task.duration", 250.0, tags=ti)
    stats.gauge("pool.open_slots", 127, tags={"pool_name": "default_pool"})
    stats.gauge("executor.open_slots", 32, tags={"status": "open", "executor_class_name": "LocalExecutor"})
    stats.gauge("dag_processing.import_errors", 0)
    assert bridge.wait_for_lines(wire.sent, timeout=5), f"{bridge.lines_applied} of {wire.sent} lines applied"
    assert wire.sent == 14  # the five with a legacy name twice

    m = scrape(bridge)
    task = {"dag_id": "ETL_adult_income", "task_id": "checks__validate"}
    assert value(m, "airflow_ti_finish_total", state="failed", **task) == 1
    assert value(m, "airflow_ti_failures_total") == 1
    assert value(m, "airflow_scheduler_heartbeat_total") == 1
    assert value(m, "airflow_triggerer_heartbeat_total") == 1
    assert value(m, "airflow_dagrun_duration_seconds_bucket", state="success", dag_id="ETL_adult_income", le="5") == 1
    assert value(m, "airflow_task_duration_seconds_count", **task) == 1
    assert value(m, "airflow_pool_open_slots", pool="default_pool") == 127
    assert value(m, "airflow_executor_open_slots", executor="LocalExecutor") == 32
    assert value(m, "airflow_dag_import_errors") == 0
    # every airflow_* series is one of the mapped ones: the new-name twins were dropped, nothing came out unmapped
    assert value(m, "statsd_exporter_events_actions_total", action="drop") == 5
    assert value(m, "statsd_exporter_events_unmapped_total") is None


class _StatsdWire:
    """Airflow's StatsD client, counting the lines it sends: the ``statsd`` package (pystatsd) Airflow sends through.

    Where the package is not installed (it is Airflow's optional ``statsd`` extra), a copy of its wire format stands
    in (every sample sent: no random sampling).
    """

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sent = 0
        wire = self
        try:
            from statsd import StatsClient
        except ImportError:
            self.client: type = self._copy()
            return

        class Counting(StatsClient):
            def _send(self, data: str) -> None:
                super()._send(data)
                wire.sent += data.count("\n") + 1

        self.client = Counting

    def _copy(self) -> type:
        wire = self

        class Client:
            def __init__(self, host: str, port: int, prefix: str | None = None, *args: Any) -> None:
                self.prefix = prefix

            def _send(self, stat: str, value: str, rate: float = 1) -> None:
                if rate < 1:
                    value = f"{value}|@{rate}"
                if self.prefix:
                    stat = f"{self.prefix}.{stat}"
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(f"{stat}:{value}".encode(), wire.address)
                wire.sent += 1

            def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
                self._send(stat, f"{count}|c", rate)

            def decr(self, stat: str, count: int = 1, rate: float = 1) -> None:
                self.incr(stat, -count, rate)

            def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
                if value < 0 and not delta:
                    self._send(stat, "0|g")
                    self._send(stat, f"{value}|g")
                else:
                    self._send(stat, f"{'+' if delta and value >= 0 else ''}{value}|g", rate)

            def timing(self, stat: str, delta: Any, rate: float = 1) -> None:
                if isinstance(delta, dt.timedelta):
                    delta = delta.total_seconds() * 1000.0
                self._send(stat, "%0.6f|ms" % delta, rate)  # noqa: UP031 - pystatsd's own format

        return Client


# --- the mapping file -----------------------------------------------------------------------------------------------


def test_every_mapping_parses():
    raw = yaml.safe_load(MAPPING.read_text())
    config = load_mapping(MAPPING)
    assert len(config.mappings) == len(raw["mappings"])
    for m in config.mappings:
        if m.drop:
            continue
        assert m.name.startswith("airflow_") and escape_metric_name(m.name) == m.name, m.match
        assert m.kind is not None, f"{m.match}: match_metric_type keeps each name to one type"
        if m.kind == "counter":
            assert m.name.endswith("_total"), f"{m.name}: a counter ends in _total (the same name from both exporters)"
        if m.kind == "observer":
            assert m.name.endswith("_seconds"), f"{m.name}: timers are observed in seconds"
    assert config.default_buckets == (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


@functools.cache
def _airflow_registry() -> list[dict[str, Any]]:
    """Airflow's metrics registry (the YAML its stats module reads), found without importing Airflow."""
    spec = importlib.util.find_spec("airflow")
    assert spec is not None and spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "_shared/observability/metrics/metrics_template.yaml"
    return yaml.safe_load(path.read_text())["metrics"]


# (registry name, its variables) → (Prometheus name, labels); the legacy name is formatted as Airflow formats it
REGISTRY_CASES = [
    (
        "ti.finish",
        {"dag_id": "ETL_adult_income", "task_id": "grp.validate", "state": "failed"},
        "airflow_ti_finish_total",
        {"dag_id": "ETL_adult_income", "task_id": "grp__validate", "state": "failed"},
    ),
    (
        "dagrun.duration.success",
        {"dag_id": "ETL_adult_income"},
        "airflow_dagrun_duration_seconds",
        {"state": "success", "dag_id": "ETL_adult_income"},
    ),
    (
        "dagrun.duration.failed",
        {"dag_id": "TRAIN_adult_income"},
        "airflow_dagrun_duration_seconds",
        {"state": "failed", "dag_id": "TRAIN_adult_income"},
    ),
    (
        "task.duration",
        {"dag_id": "ETL_adult_income", "task_id": "load"},
        "airflow_task_duration_seconds",
        {"dag_id": "ETL_adult_income", "task_id": "load"},
    ),
    ("pool.running_slots", {"pool_name": "default_pool"}, "airflow_pool_running_slots", {"pool": "default_pool"}),
    ("pool.open_slots", {"pool_name": "default_pool"}, "airflow_pool_open_slots", {"pool": "default_pool"}),
    ("pool.queued_slots", {"pool_name": "training"}, "airflow_pool_queued_slots", {"pool": "training"}),
    (
        "executor.open_slots",
        {"executor_class_name": "LocalExecutor"},
        "airflow_executor_open_slots",
        {"executor": "LocalExecutor"},
    ),
    (
        "executor.queued_tasks",
        {"executor_class_name": "LocalExecutor"},
        "airflow_executor_queued_tasks",
        {"executor": "LocalExecutor"},
    ),
    (
        "executor.running_tasks",
        {"executor_class_name": "LocalExecutor"},
        "airflow_executor_running_tasks",
        {"executor": "LocalExecutor"},
    ),
    ("ti_failures", {}, "airflow_ti_failures_total", {}),
    ("ti_successes", {}, "airflow_ti_successes_total", {}),
    ("scheduler_heartbeat", {}, "airflow_scheduler_heartbeat_total", {}),
    ("triggerer_heartbeat", {}, "airflow_triggerer_heartbeat_total", {}),
    ("dag_processing.import_errors", {}, "airflow_dag_import_errors", {}),
]
KINDS = {"counter": "counter", "gauge": "gauge", "timer": "observer"}


@pytest.mark.parametrize(
    ("metric", "variables", "prom_name", "labels"), REGISTRY_CASES, ids=[c[0] for c in REGISTRY_CASES]
)
def test_mapping_matches_what_airflow_sends(metric, variables, prom_name, labels):
    entry = next(e for e in _airflow_registry() if e["name"] == metric)
    kind = KINDS[entry["type"]]
    config = load_mapping(MAPPING)
    legacy = entry.get("legacy_name", "-")
    if legacy == "-":
        sent = metric
    else:
        assert sorted(entry["name_variables"]) == sorted(variables)
        sent = legacy.format(**{k: str(v).replace(".", "__") for k, v in variables.items()})
        # the new name goes out too (its variables as tags only): dropped, or it would count twice
        twin = config.find(f"airflow.{metric}", kind)
        assert twin is not None and twin[0].drop, f"airflow.{metric} is not dropped"
    hit = config.find(f"airflow.{sent}", kind)
    assert hit is not None and not hit[0].drop, f"airflow.{sent} is not mapped"
    assert (hit[1], hit[2]) == (prom_name, labels)


def _rule_metric_names() -> set[str]:
    """The airflow_* metric names the alert rules (and any dashboard under deploy/) query."""
    found: set[str] = set()
    for doc in yaml.safe_load_all("\n---\n".join(p.read_text() for p in sorted(RULES_DIR.glob("*.yml")))):
        for group in (doc or {}).get("groups", []):
            for rule in group["rules"]:
                found |= set(re.findall(r"\bairflow_[a-zA-Z0-9_]+", rule["expr"]))
    for dashboard in DASHBOARDS.rglob("*.json"):
        found |= set(re.findall(r"\bairflow_[a-zA-Z0-9_]+", dashboard.read_text()))
    return found


def test_every_airflow_metric_the_rules_use_is_mapped():
    used = _rule_metric_names()
    assert {"airflow_ti_finish_total", "airflow_scheduler_heartbeat_total", "airflow_triggerer_heartbeat_total"} <= used
    produced: set[str] = set()
    for m in load_mapping(MAPPING).mappings:
        if m.drop:
            continue
        produced.add(m.name)
        if m.kind == "observer":
            produced |= {m.name + suffix for suffix in ("_bucket", "_count", "_sum")}
    assert used - produced == set(), "queried but produced by no mapping"


# --- parsing, without sockets ---------------------------------------------------------------------------------------


def test_parse_line_reads_the_protocol():
    events, error = parse_line("a.b:1|c:2|c")  # several samples on one line
    assert error is None and [e.value for e in events] == [1, 2]
    events, error = parse_line("a.b:1|c|#k:v|@0.25")
    assert error is None and events[0].value == 4 and events[0].labels == (("k", "v"),)
    assert parse_line("a.b,x=1:1|c|#k:v")[1] == "mixed_tagging_styles"
    assert parse_line("a.b:1|c|x")[1] == "invalid_sample_factor"
    events, _ = parse_line("a.b:-1|g")
    assert events[0].relative and events[0].value == -1


@pytest.mark.parametrize(
    ("doc", "why"),
    [
        ({"defaults": {"observer_type": "summary"}, "mappings": []}, "histogram"),
        ({"mappings": [{"match": "a.*", "name": "x"}]}, "summaries|histogram"),
        (
            {"defaults": {"observer_type": "histogram"}, "mappings": [{"match": "a.*", "name": "x", "ttl": "1m"}]},
            "does not implement",
        ),
        (
            {
                "defaults": {"observer_type": "histogram"},
                "mappings": [{"match": "a\\.(.*)", "match_type": "regex", "name": "x"}],
            },
            "glob",
        ),
        (
            {
                "defaults": {"observer_type": "histogram"},
                "mappings": [{"match": "a.*", "name": "x", "match_metric_type": "set"}],
            },
            "match_metric_type",
        ),
        ({"defaults": {"observer_type": "histogram"}, "mappings": [{"match": "a.*"}]}, "name"),
        ({"defaults": {"observer_type": "histogram"}, "mappings": [{"match": "a..b", "name": "x"}]}, "glob"),
    ],
    ids=["summary-default", "no-observer-type", "ttl", "regex", "bad-metric-type", "no-name", "bad-glob"],
)
def test_mapping_features_the_bridge_lacks_are_refused(doc, why):
    with pytest.raises(MappingError, match=why):
        parse_mapping(doc)


def test_deprecated_keys_read_as_statsd_exporter_v0_30_reads_them():
    config = parse_mapping(
        {
            "defaults": {"timer_type": "histogram", "buckets": [1, 2]},
            "mappings": [{"match": "a.*", "name": "t_${1}_seconds", "match_metric_type": "timer"}],
        }
    )
    assert config.default_buckets == (1, 2)
    mapping, name, labels = config.find("a.b", "observer") or (None, None, None)
    assert mapping is not None and name == "t_b_seconds" and mapping.buckets == (1, 2) and labels == {}
    assert config.find("a.b", "counter") is None
