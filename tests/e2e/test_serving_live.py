"""`ativo serve` as a real process under load: blue/green, shadow, restarts, and canaries judged on live figures.

Servers are started with ``ativo serve`` on loopback against a real MLflow registry (SQLite, file artifacts);
traffic comes from :mod:`ativo_dev.loadgen` (keep-alive connections, 127.0.0.1 only). The deploy steps are the ones the
deploy DAG's tasks call.
"""

from __future__ import annotations

import json
import threading
import time

import pytest


@pytest.fixture(scope="module")
def split(adult_split):
    return adult_split


@pytest.fixture(scope="module")
def models(small_boosters):
    """Two sound models (different seeds), one whose scores are shifted, one that cannot score the schema."""
    return small_boosters


class _Registry(dict):
    """Model name → registered version, registering a model the first time a test asks for it."""

    def __init__(self, settings, spec, models, root):
        super().__init__()
        self.settings, self.spec, self.models, self.root = settings, spec, models, root

    def __missing__(self, name: str) -> str:
        from tests.support.harness import register_booster

        version = register_booster(self.settings, self.spec, self.models[name], artifact_root=self.root)
        self[name] = version
        return version


@pytest.fixture
def registry(settings, spec, models, tmp_path):
    """Each model registered when a test first asks for it (version numbers by name); the first good one is
    champion."""
    from ativo.deploy.promotion import promote

    versions = _Registry(settings, spec, models, tmp_path / "art")
    promote(spec, settings, versions["good"], reason="test champion")
    return versions


@pytest.fixture
def server(settings, registry):
    from tests.support.harness import start_server

    srv = start_server(settings, args=("--refresh-s", "0.2", "--flush-s", "0.5"))
    yield srv
    srv.stop()


def bodies(spec, split, n=200):
    from ativo.evaluate.suite import request_rows

    return [
        json.dumps({"features": r, "subject_id": f"c-{i}"}).encode()
        for i, r in enumerate(request_rows(spec, split.test, n))
    ]


def load(srv, payloads, seconds, warmup_s=0.3, **kw):
    from ativo_dev.loadgen import run_load

    return run_load(
        srv.url + "/predict",
        payloads,
        headers={"Authorization": f"Bearer {srv.key}"},
        duration_s=seconds,
        warmup_s=warmup_s,
        **kw,
    )


def wait_alias(srv, alias, version, timeout=20):
    from ativo.deploy.steps import wait_for_servers

    wait_for_servers([srv.url], srv.spec, alias, version, timeout)


def test_blue_green_switches_under_load_fail_no_request(settings, spec, split, registry, server):
    from ativo.deploy.promotion import promote, rollback

    blue, green = registry["good"], registry["good2"]
    result = {}
    t = threading.Thread(
        target=lambda: result.update(r=load(server, bodies(spec, split), 7, keep_bodies=True, concurrency=6))
    )
    t.start()
    time.sleep(1.5)
    promote(spec, settings, green, reason="green")
    wait_alias(server, "champion", green)
    time.sleep(1)
    rollback(spec, settings, reason="back to blue")
    wait_alias(server, "champion", blue)
    time.sleep(1)
    promote(spec, settings, green, reason="green again")
    t.join()
    r = result["r"]
    assert r.failed == 0, r.failures
    assert r.requests > 1000
    seen = [json.loads(b)["version"] for b in r.bodies]
    assert set(seen) == {blue, green}
    switches = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a != b)
    assert switches >= 2  # blue → green → blue → green, each without a failed request


def test_shadow_scoring_adds_no_response_latency_and_its_scores_are_logged(settings, spec, split, registry, server):
    from ativo.deploy.promotion import end_trial, start_trial
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    payloads = bodies(spec, split)
    before = load(server, payloads, 3, concurrency=2)
    start_trial(spec, settings, registry["good2"], shadow=True)
    wait_alias(server, "shadow", registry["good2"])
    during = load(server, payloads, 3, concurrency=2)
    end_trial(spec, settings, registry["good2"], reason="shadow test over")
    wait_alias(server, "shadow", None)
    after = load(server, payloads, 3, concurrency=2)
    base50 = max(before.percentile(50), after.percentile(50))
    base99 = max(before.percentile(99), after.percentile(99))
    summary = {"before": before.summary(), "during": during.summary(), "after": after.summary()}
    assert during.failed == 0
    assert during.percentile(50) <= base50 * 1.25 + 0.3, summary
    assert during.percentile(99) <= base99 * 1.5 + 1.0, summary
    server.stop()
    log = read_log(open_store(settings), "predictions", spec.name)
    shadowed = log[log["shadow_version"] == registry["good2"]]
    assert len(shadowed) >= during.requests * 0.9  # every row answered while the shadow was live, bar the edges
    assert shadowed["route"].eq("champion").all() and shadowed["shadow_score"].between(0, 1).all()
    assert (shadowed["shadow_score"] - shadowed["score"]).abs().max() > 0  # its own scores, not the champion's


def test_every_answered_request_has_exactly_one_log_row_across_a_restart_under_load(
    settings, spec, split, registry, server
):
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store
    from tests.support.harness import start_server

    payloads = bodies(spec, split)
    batch = json.dumps({"rows": [json.loads(p) for p in payloads[:10]]}).encode()
    result = {}
    t = threading.Thread(
        target=lambda: result.update(r=load(server, [*payloads, batch], 3, keep_bodies=True, timeout_s=5, warmup_s=0))
    )
    t.start()
    time.sleep(1.5)
    server.stop()  # SIGTERM while requests are in flight: a clean restart
    t.join()
    again = start_server(settings, key=server.key)
    try:
        second = load(again, payloads, 1.5, keep_bodies=True, warmup_s=0)
    finally:
        again.stop()
    answered = []
    for body in result["r"].bodies + second.bodies:
        doc = json.loads(body)
        answered += [p["prediction_id"] for p in doc.get("predictions", [doc])]
    assert len(answered) > 500 and second.failed == 0
    log = read_log(open_store(settings), "predictions", spec.name)
    counts = log["prediction_id"].value_counts()
    assert set(counts.index) == set(answered)  # no answered decision missing, none logged that was not answered
    assert counts.max() == 1


def _trial(settings, spec, split, server, version, **deploy):
    """begin → traffic and check until decided → conclude, as the deploy DAG does: (verdict, record, load)."""
    from ativo.deploy.steps import begin, check, conclude
    from ativo.waiting import wait_until

    spec = spec.model_copy(
        update={
            "deploy": spec.deploy.model_copy(
                update={"canary_percent": 20, "canary_window_minutes": 0.5, "min_canary_requests": 100, **deploy}
            )
        }
    )
    live = settings.model_copy(update={"serve_urls": (server.url,)})
    state = begin(spec, live, version)
    result = {}
    done = threading.Event()  # the traffic runs until the verdict is acted on (at most 8 s)
    t = threading.Thread(
        target=lambda: result.update(r=load(server, bodies(spec, split, 3000), 8, concurrency=3, stop=done))
    )
    t.start()
    verdict = wait_until(
        lambda: (v := check(spec, live, state)).decided and v, 120, 0.5, f"the watch's verdict on version {version}"
    )
    rec = conclude(spec, live, state, verdict)
    done.set()
    t.join()
    print(f"verdict on version {version}: {verdict.reason} {verdict.figures}")
    return verdict, rec, result["r"]


def test_a_canary_that_fails_to_score_is_rolled_back_and_callers_never_see_it(settings, spec, split, registry, server):
    from ativo.model.registry import aliases

    verdict, rec, traffic = _trial(settings, spec, split, server, registry["broken"])
    assert not verdict.promote and "error rate" in verdict.reason
    assert verdict.figures["elapsed_s"] < 5  # acted on the breach, did not wait for the 30 s window
    assert rec["action"] == "rollback" and aliases(spec, settings) == {"champion": registry["good"]}
    assert traffic.failed == 0  # the champion answered every row the canary could not


def test_a_canary_with_a_shifted_score_distribution_is_rolled_back(settings, spec, split, registry, server):
    from ativo.deploy.promotion import history
    from ativo.model.registry import aliases

    verdict, rec, traffic = _trial(settings, spec, split, server, registry["shifted"])
    assert not verdict.promote and "score distribution" in verdict.reason, verdict
    assert verdict.figures["score_psi"] > 0.2
    assert aliases(spec, settings) == {"champion": registry["good"]}
    last = history(spec, settings)[-1]
    assert last["action"] == "rollback" and last["figures"]["score_psi"] == verdict.figures["score_psi"]


def test_a_sound_canary_is_promoted_after_its_window_and_the_old_champion_stays_loaded(
    settings, spec, split, registry, server
):
    from ativo.deploy.steps import server_versions
    from ativo.model.registry import aliases

    verdict, rec, traffic = _trial(settings, spec, split, server, registry["good2"])
    assert verdict.promote, verdict
    assert verdict.figures["candidate_rows"] >= 100 and verdict.figures["score_psi"] < 0.2
    assert aliases(spec, settings) == {"champion": registry["good2"], "previous": registry["good"]}
    assert server_versions([server.url], spec.name)[0] == {"champion": registry["good2"], "previous": registry["good"]}
    assert traffic.failed == 0
