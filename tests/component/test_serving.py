"""The inference API in process: routing, validation, keys, explanations, the prediction log, promotion records.

The app runs with its lifespan (Starlette's TestClient) against a real MLflow registry (SQLite, file artifacts)
holding real XGBoost boosters trained on the UCI Adult reference data.
"""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_canary_share_is_within_two_points_over_10000_keys_and_stable_per_key():
    from ativo.serve.live import routes_to_canary

    keys = [f"customer-{i}" for i in range(10_000)]
    for percent in (1, 10, 25, 50):
        share = 100 * sum(routes_to_canary(k, percent, "adult_income") for k in keys) / len(keys)
        assert abs(share - percent) <= 2, (percent, share)
    first = [routes_to_canary(k, 10, "adult_income") for k in keys]
    assert first == [routes_to_canary(k, 10, "adult_income") for k in keys]  # stable per key
    # Raising the percent only adds callers: nobody on the canary at 10 % leaves it at 25 %.
    assert all(routes_to_canary(k, 25, "adult_income") for k, c in zip(keys, first, strict=True) if c)
    assert not any(routes_to_canary(k, 0, "adult_income") for k in keys)


@pytest.fixture(scope="module")
def split(adult_split):
    return adult_split


@pytest.fixture(scope="module")
def boosters(small_boosters):
    return [small_boosters["good"], small_boosters["good2"]]


def _platform(settings, spec, boosters, root):
    """A registry with two versions, the first one champion, and an API key for each role."""
    from ativo.deploy.promotion import promote
    from ativo.serve.keys import create_key
    from tests.support.harness import register_booster

    versions = [register_booster(settings, spec, b, artifact_root=root / "art") for b in boosters]
    promote(spec, settings, versions[0], reason="test")
    keys = settings.home / "serve" / "api_keys.json"
    return {
        "versions": versions,
        "predict": create_key(keys, "app", ("predict",)),
        "feedback": create_key(keys, "labeller", ("feedback",)),
    }


def _client(settings, spec, platform):
    from starlette.testclient import TestClient

    from ativo.api.app import ServeConfig, build_app, create_service

    service = create_service(spec, settings, ServeConfig(refresh_s=0.2, flush_s=60))
    with TestClient(build_app(service)) as c:
        c.headers["Authorization"] = f"Bearer {platform['predict']}"
        c.service = service
        yield c


@pytest.fixture
def platform(settings, spec, boosters, tmp_path):
    """A platform of the test's own: for tests that move aliases or read the prediction log."""
    return _platform(settings, spec, boosters, tmp_path)


@pytest.fixture
def client(settings, spec, platform):
    yield from _client(settings, spec, platform)


@pytest.fixture(scope="module")
def shared(spec, boosters, tmp_path_factory, mlflow_db_template):
    """One platform for the tests that only ask (validation, keys, answers): (settings, platform)."""
    import os
    import shutil

    from ativo.config import load_settings

    home = tmp_path_factory.mktemp("serving")
    shutil.copyfile(mlflow_db_template, home / "mlflow.db")  # a new MLflow DB, without running its migrations
    settings = load_settings(
        {
            "ATIVO_HOME": str(home / "ativo"),
            "ATIVO_SPECS_DIR": os.environ["ATIVO_SPECS_DIR"],
            "ATIVO_REFERENCE_DIR": os.environ["ATIVO_REFERENCE_DIR"],
            "ATIVO_MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
        }
    )
    return settings, _platform(settings, spec, boosters, home)


@pytest.fixture(scope="module")
def reader(spec, shared):
    """A client of the shared platform; the tests using it change nothing it serves."""
    yield from _client(*shared[:1], spec, shared[1])


@pytest.fixture(scope="module")
def shared_platform(shared):
    return shared[1]


def rows(spec, split, n=20):
    from ativo.evaluate.suite import request_rows

    return request_rows(spec, split.test, n)


def test_predict_answers_one_row_and_a_batch_with_the_champion_and_scores_like_training(
    reader, spec, split, boosters, shared_platform
):
    client, platform = reader, shared_platform
    import xgboost as xgb

    from ativo.model.encoding import design_matrix

    batch = rows(spec, split)
    one = client.post("/predict", json={"features": batch[0], "subject_id": "c-1"})
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["version"] == platform["versions"][0] and body["route"] == "champion"
    assert body["decision"] == int(body["score"] >= 0.5) and body["label"] in ("<=50K", ">50K")
    many = client.post("/predict", json={"rows": [{"features": r} for r in batch]}).json()["predictions"]
    assert len(many) == len(batch) and len({p["prediction_id"] for p in many}) == len(batch)
    expected = boosters[0].predict(
        xgb.DMatrix(design_matrix(split.test.head(len(batch)), spec), enable_categorical=True)
    )
    np.testing.assert_allclose([p["score"] for p in many], expected, atol=1e-6)


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        ({"features": {"age": 30}}, "features.education", "required"),
        (lambda r: {"features": {**r, "age": "thirty"}}, "features.age", "expected a number, got string"),
        (lambda r: {"features": {**r, "age": 39.5}}, "features.age", "expected an integer"),
        (lambda r: {"features": {**r, "age": 250}}, "features.age", "above the maximum 90"),
        (lambda r: {"features": {**r, "capital_loss": -1}}, "features.capital_loss", "below the minimum 0"),
        (lambda r: {"features": {**r, "sex": "Robot"}}, "features.sex", "unknown category 'Robot'"),
        (lambda r: {"features": {**r, "sex": None}}, "features.sex", "may not be null"),
        (lambda r: {"features": {**r, "salary": 1}}, "features.salary", "not a feature of adult_income"),
        (lambda r: {"features": r, "colour": "red"}, "colour", "unknown field"),
        (lambda r: {"rows": [{"features": r}] * 1001}, "rows", "more than the 1000 a batch may hold"),
        (lambda r: {"rows": [{"features": r}, {"features": {**r, "age": 5}}]}, "rows[1].features.age", "below"),
        ({"rows": []}, "rows", "the batch is empty"),
        ([1, 2], "(body)", "expected a JSON object"),
    ],
)
def test_bad_payloads_get_422_naming_the_field_and_the_reason(reader, spec, split, payload, field, words):
    client = reader
    body = payload(rows(spec, split, 1)[0]) if callable(payload) else payload
    resp = client.post("/predict", json=body)
    assert resp.status_code == 422, resp.text
    errors = resp.json()["errors"]
    assert any(e["field"] == field and words in e["reason"] for e in errors), errors


def test_malformed_json_and_an_empty_body_get_422(reader):
    client = reader
    for raw in (b'{"features": {"age": 3', b"", b"\xff\xfe"):
        resp = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "(body)", resp.text


def test_every_problem_of_a_row_is_reported_at_once(reader, spec, split):
    client = reader
    bad = {**rows(spec, split, 1)[0], "age": 5, "sex": "X", "hours_per_week": "many"}
    bad.pop("race")
    fields = {e["field"] for e in client.post("/predict", json={"features": bad}).json()["errors"]}
    assert fields == {"features.age", "features.sex", "features.hours_per_week", "features.race"}


def test_keys_401_without_or_with_an_unknown_key_and_403_without_the_role(reader, spec, split, shared_platform):
    client, platform = reader, shared_platform
    row = {"features": rows(spec, split, 1)[0]}
    assert client.post("/predict", json=row, headers={"Authorization": ""}).status_code == 401
    assert client.post("/predict", json=row, headers={"Authorization": "Bearer ak_wrong"}).status_code == 401
    resp = client.post("/predict", json=row, headers={"Authorization": f"Bearer {platform['feedback']}"})
    assert resp.status_code == 403 and "lacks the role 'predict'" in resp.json()["detail"]
    assert client.post("/predict", json=row, headers={"Authorization": "", "X-API-Key": platform["predict"]}).is_success
    assert client.get("/health").status_code == 200  # health and metrics need no key


def test_explain_returns_contributions_that_sum_to_the_margin(reader, spec, split):
    client = reader
    body = client.post("/explain", json={"features": rows(spec, split, 1)[0]}).json()
    ex = body["explanation"]
    total = ex["base_value"] + sum(c["contribution"] for c in ex["contributions"])
    assert abs(total - ex["margin"]) < 1e-4
    assert abs(1 / (1 + np.exp(-ex["margin"])) - body["score"]) < 1e-5
    assert len(ex["contributions"]) == len(spec.data_schema.features)
    too_many = client.post("/explain", json={"rows": [{"features": rows(spec, split, 1)[0]}] * 101})
    assert too_many.status_code == 422 and "101 rows is more than the 100" in too_many.json()["errors"][0]["reason"]


def test_canary_takes_its_share_of_callers_and_a_failing_canary_falls_back_to_the_champion(
    client, settings, spec, split, platform, tmp_path
):

    import xgboost as xgb

    from ativo.deploy.promotion import start_trial
    from ativo.waiting import wait_until
    from tests.support.harness import register_booster

    v1, v2 = platform["versions"]
    start_trial(spec, settings, v2, percent=30)
    wait_until(lambda: client.service.live.routing.versions().get("canary") == v2, 10, 0.1, f"canary v{v2} loaded")
    sample = rows(spec, split, 1)[0]
    got = client.post("/predict", json={"rows": [{"features": sample, "key": f"k{i}"} for i in range(1000)]})
    routes = [p["route"] for p in got.json()["predictions"]]
    assert 250 <= routes.count("canary") <= 350, routes.count("canary")
    assert {p["version"] for p in got.json()["predictions"] if p["route"] == "canary"} == {v2}
    # A canary that cannot score (trained on another schema): callers still get the champion's answer.
    broken = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(np.random.rand(50, 3), label=[0, 1] * 25), 3)
    v3 = register_booster(settings, spec, broken, artifact_root=tmp_path / "art")
    start_trial(spec, settings, v3, percent=30)
    wait_until(lambda: client.service.live.routing.versions().get("canary") == v3, 20, 0.1, f"canary v{v3} loaded")
    got = client.post("/predict", json={"rows": [{"features": sample, "key": f"k{i}"} for i in range(200)]})
    assert got.status_code == 200
    answers = got.json()["predictions"]
    assert {p["version"] for p in answers} == {v1} and sum(p.get("fallback", False) for p in answers) > 30
    from prometheus_client.parser import text_string_to_metric_families

    counted = {
        (s.name, s.labels["version"], s.labels["route"]): s.value
        for f in text_string_to_metric_families(client.get("/metrics").text)
        for s in f.samples
        if s.name in ("ativo_predictions_total", "ativo_prediction_errors_total", "ativo_failed_calls_total")
    }
    fell_back = sum(p.get("fallback", False) for p in answers)
    assert counted == {  # every row counted once, on the version and route that answered or failed it
        ("ativo_predictions_total", v2, "canary"): routes.count("canary"),
        ("ativo_predictions_total", v1, "champion"): 1000 - routes.count("canary") + 200,
        ("ativo_prediction_errors_total", v3, "canary"): fell_back,
        ("ativo_failed_calls_total", v3, "canary"): 1,  # the batch's canary rows failed in one call: one failure
    }


def test_prediction_log_holds_each_decision_with_a_pseudonymised_subject(client, settings, spec, split):
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    batch = rows(spec, split, 5)
    answers = client.post(
        "/predict", json={"rows": [{"features": r, "subject_id": f"cust-{i}"} for i, r in enumerate(batch)]}
    ).json()["predictions"]
    client.service.predictions.flush()
    log = read_log(open_store(settings), "predictions", spec.name)
    assert sorted(log["prediction_id"]) == sorted(a["prediction_id"] for a in answers)
    row = log.set_index("prediction_id").loc[answers[0]["prediction_id"]]
    assert row["f_age"] == batch[0]["age"] and row["f_workclass"] == batch[0]["workclass"]
    assert row["score"] == pytest.approx(answers[0]["score"], abs=1e-6) and row["version"] == answers[0]["version"]
    assert "cust-0" not in row["subject"] and len(row["subject"]) == 32  # keyed hash, never the id
    assert row["top_contributions"] == "" and row["contributions_method"] == "none"  # the default: computed on lookup
    blob = b"".join(open_store(settings).get_bytes(k) for k in open_store(settings).list("predictions"))
    assert b"cust-0" not in blob


def test_lineage_explains_a_logged_decision_exactly_from_its_features_and_version(client, settings, spec, split):
    from ativo.model.artifact import load_version
    from ativo.ops.lineage import trace

    batch = rows(spec, split, 40)
    answers = client.post("/predict", json={"rows": [{"features": r} for r in batch]}).json()["predictions"]
    client.service.predictions.flush()
    i = next(i for i, r in enumerate(batch) if any(v is None for v in r.values()))  # a row with a missing value
    chain = trace(settings, answers[i]["prediction_id"], spec.name)
    model = load_version(spec, settings.mlflow_tracking_uri, answers[i]["version"])
    shap = model.booster.predict(model.dmatrix(model.encode([batch[i]])), pred_contribs=True)[0]
    names = spec.data_schema.feature_names
    expected = sorted(range(len(names)), key=lambda j: -abs(shap[j]))[:3]
    assert [t["feature"] for t in chain["top_contributions"]] == [names[j] for j in expected]
    assert [t["contribution"] for t in chain["top_contributions"]] == pytest.approx([shap[j] for j in expected])
    assert chain["contributions_method"].startswith("exact TreeSHAP")


def test_a_server_asked_for_contributions_writes_them_with_each_row(settings, spec, split, platform):
    from starlette.testclient import TestClient

    from ativo.api.app import ServeConfig, build_app, create_service
    from ativo.ops.lineage import trace
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    service = create_service(spec, settings, ServeConfig(flush_s=60, contributions="approx"))
    with TestClient(build_app(service)) as c:
        c.headers["Authorization"] = f"Bearer {platform['predict']}"
        answers = c.post("/predict", json={"rows": [{"features": r} for r in rows(spec, split, 5)]}).json()
        service.predictions.flush()
    log = read_log(open_store(settings), "predictions", spec.name).set_index("prediction_id")
    pid = answers["predictions"][0]["prediction_id"]
    top = json.loads(log.loc[pid, "top_contributions"])
    assert len(top) == 3 and {t["feature"] for t in top} <= set(spec.data_schema.feature_names)
    assert abs(top[0]["contribution"]) >= abs(top[1]["contribution"]) >= abs(top[2]["contribution"])
    chain = trace(settings, pid, spec.name)
    assert chain["top_contributions"] == top and chain["contributions_method"] == "approx"


def test_a_store_outage_keeps_the_log_rows_and_writes_them_when_it_is_back(client, settings, spec, split):
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    log = client.service.predictions
    real = log.store.put_bytes
    calls = {"n": 0}

    def down(key, data):
        calls["n"] += 1
        raise OSError("store unreachable")

    log.store.put_bytes = down
    try:
        client.post("/predict", json={"features": rows(spec, split, 1)[0]})
        assert log.flush() == 0 and calls["n"] == 1 and log.unwritten_rows == 1
    finally:
        log.store.put_bytes = real
    assert log.flush() == 1
    assert len(read_log(open_store(settings), "predictions", spec.name)) == 1


def test_feedback_takes_labels_and_refuses_bad_ones(client, settings, spec, split, platform):
    from ativo.serve.predlog import read_log
    from ativo.store.objects import open_store

    pid = client.post("/predict", json={"features": rows(spec, split, 1)[0]}).json()["prediction_id"]
    hdr = {"Authorization": f"Bearer {platform['feedback']}"}
    assert client.post("/feedback", json={"prediction_id": pid, "label": ">50K"}, headers=hdr).status_code == 200
    bad = client.post("/feedback", json={"labels": [{"prediction_id": "x", "label": 7}]}, headers=hdr)
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {
        "labels[0].prediction_id",
        "labels[0].label",
    }
    assert client.post("/feedback", json={"prediction_id": pid, "label": 1}).status_code == 403
    client.service.feedback_log.flush()
    labels = read_log(open_store(settings), "labels", spec.name)
    assert labels["prediction_id"].tolist() == [pid] and labels["label"].tolist() == [1]


def test_promote_and_rollback_move_aliases_and_record_why(settings, spec, platform):
    from ativo.deploy.promotion import DeployError, history, promote, rollback, start_trial
    from ativo.model.registry import aliases

    v1, v2 = platform["versions"]
    start_trial(spec, settings, v2)
    rollback(spec, settings, reason="looked wrong")
    assert aliases(spec, settings) == {"champion": v1}
    promote(spec, settings, v2, reason="blue/green switch")
    assert aliases(spec, settings) == {"champion": v2, "previous": v1}
    rollback(spec, settings, reason="instant rollback")
    assert aliases(spec, settings) == {"champion": v1}
    with pytest.raises(DeployError, match="nothing to roll back"):
        rollback(spec, settings, reason="again")
    actions = [(r["action"], r["version"], r["reason"]) for r in history(spec, settings)]
    assert actions[-4:] == [
        ("start_canary", v2, "canary on 10 % of callers"),
        ("rollback", v2, "looked wrong"),
        ("promote", v2, "blue/green switch"),
        ("rollback", v2, "instant rollback"),
    ]
    with pytest.raises(DeployError, match="has no version '99'"):
        promote(spec, settings, "99", reason="typo")


def test_a_version_with_a_mitigation_policy_decides_by_its_per_group_thresholds(
    settings, spec, split, boosters, tmp_path
):
    from starlette.testclient import TestClient

    from ativo.api.app import ServeConfig, build_app, create_service
    from ativo.deploy.promotion import promote
    from ativo.evaluate.fairness import mitigate
    from ativo.model.policy import DecisionPolicy
    from ativo.model.served import ServedModel
    from ativo.serve.keys import create_key
    from tests.support.harness import register_booster

    booster = boosters[0]
    _, policy = mitigate(spec, ServedModel(spec=spec, name=spec.name, version="0", booster=booster, sha256=""), split)
    version = register_booster(settings, spec, booster, artifact_root=tmp_path / "art", policy=policy)
    promote(spec, settings, version, reason="mitigated")
    key = create_key(settings.home / "serve" / "api_keys.json", "app", ("predict",))
    batch = rows(spec, split, 400)
    service = create_service(spec, settings, ServeConfig(flush_s=60))
    with TestClient(build_app(service)) as c:
        got = c.post(
            "/predict",
            json={"rows": [{"features": r, "key": f"k{i}"} for i, r in enumerate(batch)]},
            headers={"Authorization": f"Bearer {key}"},
        ).json()["predictions"]
    rule_of = DecisionPolicy(spec, policy)
    groups = policy["groups"]
    differs = 0
    for r, p in zip(batch, got, strict=True):
        assert p["policy"] == "threshold_optimizer"
        group = " & ".join(str(r[a]) for a in policy["attributes"])
        assert group in groups, group
        allowed = {float(groups[group][op]["threshold"]) for op in ("operation0", "operation1")}
        assert p["threshold"] in allowed  # the threshold of one of its group's two rules
        differs += p["decision"] != int(p["score"] >= 0.5)
    assert differs > 0  # the policy really moved decisions away from the global threshold
    assert rule_of.attributes == list(spec.fairness_attributes)
