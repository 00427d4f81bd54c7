"""`ativo serve --all-specs` follows its specs folder: a spec added while it runs is served once it has a champion,
an edited one is re-served with its new limits, a removed one is dropped, one edited into an invalid spec goes on
as it last was valid (and says why), and the others answer throughout."""

from __future__ import annotations

import shutil

import pytest

from tests.support.harness import register_booster


def _second(folder, spec, name: str, **deploy) -> object:
    """Write a copy of the reference spec under another name (and deploy limits) into ``folder``; its model."""
    import yaml

    from ativo.spec import load_spec

    doc = yaml.safe_load((folder / f"{spec.name}.yaml").read_text())
    doc["name"] = name
    doc.setdefault("deploy", {}).update(deploy)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_spec(path)


@pytest.fixture
def served(settings, spec, small_boosters, tmp_path):
    """A server of every spec of its own folder (read every 0.2 s), the reference spec's champion live."""
    from starlette.testclient import TestClient

    from ativo.api.app import ServeConfig, SpecFolder, build_app, create_services
    from ativo.deploy.promotion import promote
    from ativo.serve.keys import create_key

    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copyfile(settings.specs_dir / f"{spec.name}.yaml", folder / f"{spec.name}.yaml")
    live = settings.model_copy(update={"specs_dir": folder})
    promote(
        spec, live, register_booster(live, spec, small_boosters["good"], artifact_root=tmp_path / "art"), reason="t"
    )
    key = create_key(live.home / "serve" / "api_keys.json", "app", ("predict",))
    config = ServeConfig(refresh_s=0.2, flush_s=60, all_specs=True, specs_refresh_s=0.2)
    services = create_services([spec], live, config)
    app = build_app(services, SpecFolder(live, config, services[0].keys, services[0].metrics.registry))
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client, live, folder


def _row(spec, adult_split):
    from ativo.evaluate.suite import request_rows

    return request_rows(spec, adult_split.test, 1)[0]


def test_a_spec_added_while_serving_is_served_once_it_has_a_champion(
    served, spec, small_boosters, adult_split, tmp_path
):
    from ativo.deploy.promotion import promote
    from ativo.waiting import wait_until

    client, live, folder = served
    row = _row(spec, adult_split)
    assert client.post("/models/credit_b/predict", json={"features": row}).status_code == 404
    new = _second(folder, spec, "credit_b")
    wait_until(lambda: client.get("/models/credit_b/health").status_code != 404, 10, 0.1, "the new spec mounted")
    assert client.get("/models/credit_b/health").json()["status"] != "ok"  # no champion yet: said so, not 404
    promote(new, live, register_booster(live, new, small_boosters["good2"], artifact_root=tmp_path / "a2"), reason="t")
    wait_until(
        lambda: client.post("/models/credit_b/predict", json={"features": row}).status_code == 200,
        10,
        0.1,
        "the new spec's champion answering",
    )
    answer = client.post("/models/credit_b/predict", json={"features": row}).json()
    assert (answer["model"], answer["route"]) == ("credit_b", "champion")  # its own champion answered
    health = client.get("/health").json()
    assert health["specs_folder"] == {"refresh_s": 0.2}  # what `ativo spec check` tells a user to expect
    assert set(health["models"]) == {spec.name, "credit_b"}
    assert client.post(f"/models/{spec.name}/predict", json={"features": row}).status_code == 200
    assert 'model="credit_b"' in client.get("/metrics").text


def test_an_edited_spec_is_re_served_with_its_new_limits_and_a_removed_one_is_dropped(served, spec, adult_split):
    from ativo.waiting import wait_until

    client, live, folder = served
    row = _row(spec, adult_split)
    _second(folder, spec, "credit_b", max_batch_rows=1000)
    wait_until(lambda: client.get("/models/credit_b/health").status_code != 404, 10, 0.1, "the new spec mounted")
    two = {"rows": [{"features": row}, {"features": row}]}
    assert client.post("/models/credit_b/predict", json=two).status_code != 422
    _second(folder, spec, "credit_b", max_batch_rows=1)  # a batch of two is now refused: the new limit holds
    wait_until(
        lambda: client.post("/models/credit_b/predict", json=two).status_code == 422, 10, 0.1, "the edited limit"
    )
    (folder / "credit_b.yaml").unlink()
    wait_until(lambda: client.get("/models/credit_b/health").status_code == 404, 10, 0.1, "the removed spec dropped")
    assert client.post(f"/models/{spec.name}/predict", json={"features": row}).status_code == 200
    (folder / f"{spec.name}.yaml").unlink()  # the last one gone: nothing is served, the server still answers
    wait_until(lambda: client.get(f"/models/{spec.name}/health").status_code == 404, 10, 0.1, "every spec dropped")
    assert client.get("/health").status_code == 503


def test_a_spec_edited_into_an_invalid_one_keeps_its_last_valid_version_and_says_why_once_per_edit(
    served, spec, small_boosters, adult_split, caplog, tmp_path
):
    import time

    from ativo.deploy.promotion import promote
    from ativo.waiting import wait_until

    client, live, folder = served
    row = _row(spec, adult_split)
    two = {"rows": [{"features": row}, {"features": row}]}
    new = _second(folder, spec, "credit_b", max_batch_rows=1)
    promote(new, live, register_booster(live, new, small_boosters["good2"], artifact_root=tmp_path / "a2"), reason="t")
    wait_until(
        lambda: client.post("/models/credit_b/predict", json={"features": row}).status_code == 200,
        10,
        0.1,
        "the new spec's champion answering",
    )
    caplog.set_level("ERROR", logger="ativo.api.app")

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if "credit_b.yaml" in r.getMessage()]

    for n, broken in enumerate(["name: credit_b\ndeploy: [unclosed\n", "name: credit_b\nnot: a spec\n"], 1):
        (folder / "credit_b.yaml").write_text(broken)  # bad YAML, then a schema error
        wait_until(lambda n=n: len(said()) == n, 10, 0.1, "the broken file reported")
        time.sleep(1.0)  # five more reads of the folder: the same broken file is not logged again
        assert len(said()) == n, said()
        assert "invalid" in said()[-1] and "last valid version is still served" in said()[-1]
        [problem] = client.get("/health").json()["spec_problems"]
        assert problem["file"] == "credit_b.yaml" and problem["serving"] == "last valid version"
        assert ("YAML" in problem["reason"]) if n == 1 else ("'not': unknown key" in problem["reason"])
        assert "credit_b.yaml" in client.get("/models/credit_b/health").json()["spec_problem"]
        assert 'ativo_spec_file_invalid{file="credit_b.yaml"} 1.0' in client.get("/metrics").text
        # served as before: its champion answers and its last valid limit (one row a request) still holds
        answer = client.post("/models/credit_b/predict", json={"features": row})
        assert answer.status_code == 200 and answer.json()["model"] == "credit_b"
        assert client.post("/models/credit_b/predict", json=two).status_code == 422

    _second(folder, spec, "credit_b", max_batch_rows=1000)  # fixed: the new version is served like any edit
    wait_until(lambda: client.post("/models/credit_b/predict", json=two).status_code == 200, 10, 0.1, "the fix")
    assert client.get("/health").json()["spec_problems"] == []
    assert "spec_problem" not in client.get("/models/credit_b/health").json()
    assert "ativo_spec_file_invalid{" not in client.get("/metrics").text
