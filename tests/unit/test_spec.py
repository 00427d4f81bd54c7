from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import pytest
import yaml

from ativo.errors import SpecError
from ativo.spec import (
    SPEC_SCHEMA_FILE,
    XGBOOST_PARAMS,
    load_spec,
    load_specs,
    parse_spec,
    spec_json_schema,
    spec_paths,
)

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = yaml.safe_load((ROOT / "include" / "specs" / "adult_income.yaml").read_text())


def mutated(change) -> dict:
    doc = copy.deepcopy(REFERENCE)
    change(doc)
    return doc


def test_reference_spec_loads_with_its_contract():
    spec = load_spec(ROOT / "include" / "specs" / "adult_income.yaml")
    assert spec.name == "adult_income"
    assert spec.data_schema.target.column == "income"
    assert set(spec.protected_attributes) == {"sex", "race"}
    assert "customer_id" not in spec.data_schema.feature_names
    assert len(spec.content_hash()) == 64


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        pytest.param(lambda d: d.update(colour="blue"), "colour", "unknown key", id="unknown-top-level-key"),
        pytest.param(lambda d: d["split"].update(seeed=1), "split.seeed", "unknown key", id="unknown-nested-key"),
        pytest.param(lambda d: d["split"].update(seed="abc"), "split.seed", "integer", id="wrong-type"),
        pytest.param(lambda d: d["schema"].pop("target"), "schema.target", "Field required", id="missing-target"),
        pytest.param(
            lambda d: d.update(protected_attributes=["sex", "customer_id"]),
            "protected_attributes",
            "both a protected attribute and an identifier",
            id="protected-and-identifier",
        ),
        pytest.param(
            lambda d: d["schema"]["features"][0].update(min=100, max=1),
            "schema.features.0",
            "greater than max",
            id="min-above-max",
        ),
        pytest.param(
            lambda d: d["schema"]["features"].append({"name": "customer_id", "type": "int"}),
            "schema",
            "identifier/PII columns may not be features",
            id="identifier-as-feature",
        ),
    ],
)
def test_invalid_spec_names_file_and_field(change, field, reason):
    with pytest.raises(SpecError) as err:
        parse_spec(mutated(change), "include/specs/adult_income.yaml")
    msg = str(err.value)
    assert "include/specs/adult_income.yaml" in msg
    assert field in msg
    assert reason in msg


def test_name_must_match_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(REFERENCE))
    with pytest.raises(SpecError, match=r"other.yaml.*'name'.*must match the file name"):
        load_spec(path)


def test_not_yaml_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken.yaml: not valid YAML"):
        load_spec(path)


def test_one_invalid_spec_does_not_hide_the_valid_ones(tmp_path):
    (tmp_path / "adult_income.yaml").write_text(yaml.safe_dump(REFERENCE))
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(mutated(lambda d: d.update(name="broken", colour=1))))
    specs, errors = load_specs(tmp_path)
    assert [s.name for s in specs] == ["adult_income"]
    assert len(errors) == 1 and "broken.yaml" in str(errors[0]) and "'colour'" in str(errors[0])


SHIPPED = spec_paths(ROOT / "include" / "specs")
MODELINE = "# yaml-language-server: $schema="


def problems_of(change) -> list[str]:
    with pytest.raises(SpecError) as err:
        parse_spec(mutated(change), "include/specs/adult_income.yaml")
    return err.value.problems


@pytest.mark.parametrize(
    ("change", "line"),
    [
        pytest.param(
            lambda d: d["model"]["params"].update(max_dept=6),
            "field 'model.params.max_dept': 'max_dept' is not an XGBoost parameter of a tree booster for "
            "binary:logistic; did you mean 'max_depth'?",
            id="params-max_dept",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update(learning_rat=0.1),
            "field 'model.params.learning_rat': 'learning_rat' is not an XGBoost parameter of a tree booster for "
            "binary:logistic; did you mean 'learning_rate'?",
            id="params-learning_rat",
        ),
        pytest.param(
            lambda d: d["model"]["search"]["space"].update(max_dept={"type": "int", "low": 2, "high": 4}),
            "field 'model.search.space.max_dept': 'max_dept' is not an XGBoost parameter of a tree booster for "
            "binary:logistic; did you mean 'max_depth'?",
            id="search-space-max_dept",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update(objective="reg:squarederror"),
            "field 'model.params.objective': 'objective' does not belong here: it is model.objective",
            id="params-objective-belongs-to-model",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update(device="cuda"),
            "field 'model.params.device': 'device' does not belong here: it is compute.device (a GPU lease picks the "
            "card)",
            id="params-device-belongs-to-compute",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update(n_estimators=100),
            "field 'model.params.n_estimators': 'n_estimators' does not belong here: it is model.num_boost_round",
            id="params-n_estimators",
        ),
        pytest.param(
            lambda d: d["deploy"].update(canary_precent=10),
            "field 'deploy.canary_precent': unknown key; did you mean 'canary_percent'?",
            id="deploy-canary_precent",
        ),
        pytest.param(
            lambda d: d.update(schedul={}),
            "field 'schedul': unknown key; did you mean 'schedule'?",
            id="top-level",
        ),
        pytest.param(
            lambda d: d["schema"]["features"][0].update(nam="age"),
            "field 'schema.features.0.nam': unknown key; did you mean 'name'?",
            id="in-a-list-under-an-alias",
        ),
        pytest.param(
            lambda d: d["model"]["search"]["space"]["eta"].update(lowe=0.01),
            "field 'model.search.space.eta.lowe': unknown key; did you mean 'low'?",
            id="in-a-mapping",
        ),
        pytest.param(
            lambda d: d["source"]["ids"]["record_id"].update(prefx="a-"),
            "field 'source.ids.record_id.prefx': unknown key; did you mean 'prefix'?",
            id="in-an-optional-section",
        ),
        pytest.param(
            lambda d: d["deploy"].update(colour="blue"),
            "field 'deploy.colour': unknown key (check the spelling; see include/specs/adult_income.yaml)",
            id="no-close-key",
        ),
    ],
)
def test_a_misspelled_key_is_named_with_the_closest_one(change, line):
    assert line in problems_of(change)


def test_a_param_unlike_any_lists_the_known_ones():
    (line,) = problems_of(lambda d: d["model"]["params"].update(zzz=1))
    assert line.startswith("field 'model.params.zzz': 'zzz' is not an XGBoost parameter")
    assert "did you mean" not in line
    assert all(name in line for name in ("max_depth", "eta", "seed", "nthread", "max_cat_to_onehot"))


@pytest.mark.parametrize(
    ("change", "shown"),
    [
        pytest.param(
            lambda d: d["deploy"].update({"canary\npercent\x1b[2J": 1}),
            "field 'deploy.canary\\npercent\\x1b[2J': unknown key",
            id="control-characters",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update({"max\ndepth": 1}),
            "field 'model.params.max\\ndepth': 'max\\ndepth' is not an XGBoost parameter",
            id="control-characters-in-params",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update({"x" * 100_000: 1}),
            "field 'model.params." + "x" * 77 + "...': '" + "x" * 77 + "...' is not an XGBoost parameter",
            id="huge-key",
        ),
        pytest.param(
            lambda d: d["model"]["params"].update({7: 1}),
            "field 'model.params.7': Input should be a valid string",
            id="number-as-key",
        ),
        pytest.param(
            lambda d: d["model"].update(params=["max_depth"]),
            "field 'model.params': Input should be a valid dictionary",
            id="list-for-params",
        ),
    ],
)
def test_hostile_keys_stay_on_one_readable_line(change, shown):
    lines = problems_of(change)
    assert any(line.startswith(shown) for line in lines), lines
    assert all("\n" not in line and "\x1b" not in line and len(line) < 1000 for line in lines)


# a valid value for each parameter the spec accepts: a name added to XGBOOST_PARAMS needs one here
VALID = {
    **dict.fromkeys(["nthread", "n_jobs", "seed", "random_state", "verbosity", "max_depth", "num_parallel_tree"], 1),
    **dict.fromkeys(["seed_per_iteration", "validate_parameters", "disable_default_eval_metric", "refresh_leaf"], 0),
    **dict.fromkeys(["eta", "learning_rate", "subsample", "colsample_bytree", "colsample_bylevel"], 0.9),
    **dict.fromkeys(["colsample_bynode", "lambda", "reg_lambda", "scale_pos_weight", "min_child_weight"], 1.0),
    **dict.fromkeys(["gamma", "min_split_loss", "alpha", "reg_alpha", "max_delta_step", "max_leaves"], 0),
    "sampling_method": "uniform",
    "tree_method": "hist",
    "updater": "grow_quantile_histmaker",
    "process_type": "default",
    "grow_policy": "depthwise",
    "max_bin": 64,
    "monotone_constraints": "(0,0,0)",
    "interaction_constraints": "[[0,1],[2]]",
    "multi_strategy": "one_output_per_tree",
    "max_cached_hist_node": 4096,
    "max_cat_to_onehot": 1,
    "max_cat_threshold": 16,
    "base_score": 0.5,
}


def _unused_parameters(params: dict) -> list[str]:
    """What XGBoost warns it did not use when training 2 rounds on tiny data with ``params``."""
    import numpy as np
    import xgboost as xgb

    rng = np.random.default_rng(0)
    x = rng.random((64, 3))
    data = xgb.DMatrix(x, label=(x[:, 0] > 0.5).astype(int))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xgb.train(
            {"objective": "binary:logistic", "eval_metric": ["logloss", "auc"], **params},
            data,
            num_boost_round=2,
            evals=[(data, "valid")],
            verbose_eval=False,
        )
    return [str(w.message) for w in caught if "are not used" in str(w.message)]


def test_every_accepted_param_is_one_xgboost_uses():
    assert set(VALID) == XGBOOST_PARAMS
    assert _unused_parameters(VALID) == []


def test_xgboost_reports_a_misspelled_param_as_unused():
    # what the test above relies on: XGBoost says so when a parameter means nothing to it
    (unused,) = _unused_parameters({"max_dept": 3})
    assert '"max_dept"' in unused


def test_pinned_xgboost_is_the_one_the_params_were_checked_against():
    from importlib.metadata import version

    pinned = next(
        line.split("==", 1)[1].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.startswith("xgboost==")
    )
    assert version("xgboost") == pinned  # a new XGBoost: the test above checks the list against it


def test_shipped_schema_is_what_spec_schema_writes(capsys):
    from ativo.cli import main

    assert main(["spec", "schema"]) == 0
    written = capsys.readouterr().out
    assert json.loads(written) == spec_json_schema()
    assert SPEC_SCHEMA_FILE.read_text() == written, (
        "the shipped schema is out of date: run `ativo spec schema --output include/ativo/schemas/spec.schema.json`"
    )


def test_schema_is_draft_2020_12_with_descriptions():
    jsonschema = pytest.importorskip("jsonschema")
    schema = spec_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] and schema["title"] == "Ativo model spec"
    assert set(schema["properties"]) >= {"name", "schema", "source", "model", "deploy"}  # the alias, as a spec says
    deploy = schema["$defs"]["Deploy"]
    assert "canary" in deploy["description"]  # the model's docstring
    assert "await" not in deploy["properties"]["alpha"]["description"]
    assert "error rates" in deploy["properties"]["alpha"]["description"]  # the comment above the field
    assert "AUC" in deploy["properties"]["await_labels"]["description"]  # the comment beside it
    assert schema["$defs"]["ModelSection"]["properties"]["params"]["propertyNames"]["enum"] == sorted(XGBOOST_PARAMS)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spec_names_the_shipped_schema_on_its_first_line(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith(MODELINE)
    assert (path.parent / first.removeprefix(MODELINE)).resolve() == SPEC_SCHEMA_FILE.resolve()


def _as_editors_read(path: Path) -> dict:
    # YAML 1.2, which editors read, has no dates: a date is the string it is written as
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_spec_validates_against_the_shipped_schema(path):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SPEC_SCHEMA_FILE.read_text()))
    doc = _as_editors_read(path)
    assert [e.message for e in validator.iter_errors(doc)] == []
    doc["model"]["params"]["max_dept"] = 6
    doc["deploy"]["canary_precent"] = 10
    found = {(tuple(e.absolute_path), e.validator) for e in validator.iter_errors(doc)}
    assert found == {(("model", "params"), "enum"), (("deploy",), "additionalProperties")}


def test_spec_check_names_the_misspelling(tmp_path, capsys):
    from ativo.cli import main

    doc = mutated(lambda d: d["model"]["params"].update(max_dept=6) or d["deploy"].update(canary_precent=10))
    path = tmp_path / "adult_income.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["spec", "check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"invalid  {path}" in out
    assert "field 'model.params.max_dept': 'max_dept' is not an XGBoost parameter" in out
    assert "did you mean 'max_depth'?" in out
    assert "field 'deploy.canary_precent': unknown key; did you mean 'canary_percent'?" in out


def test_spec_check_passes_the_shipped_specs(capsys):
    from ativo.cli import main

    assert main(["spec", "check", "--offline", *map(str, SHIPPED)]) == 0
    assert capsys.readouterr().out.split() == [w for p in SHIPPED for w in ("ok", p.stem)]


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        (None, "no inference API answers at http://s"),
        ({"status": "ok", "model": "adult_income"}, "served by http://s"),
        ({"status": "ok", "model": "other"}, "serves only 'other': restart it with --all-specs"),
        ({"models": {"credit": {"versions": {"champion": "3"}}}}, "served by http://s (champion version 3)"),
        ({"models": {"credit": {"versions": {}}}}, "http://s serves it once it has a champion"),
        ({"models": {}, "specs_folder": {"refresh_s": 10.0}}, "follows the specs folder: it serves 'credit' within 10"),
        ({"models": {"a": {}}}, "http://s serves a: restart it with --all-specs to serve 'credit'"),
    ],
)
def test_spec_check_says_what_the_running_server_does_with_a_spec(doc, said):
    from ativo.cli import _serving_note

    model = "adult_income" if doc and "model" in doc else "credit"
    assert said in _serving_note("credit", model, "http://s", doc)


def test_spec_schema_output_is_written_whole_and_readable(tmp_path, capsys):
    from ativo.cli import main

    out = tmp_path / "new" / "spec.schema.json"
    assert main(["spec", "schema", "--output", str(out)]) == 0
    assert out.read_text() == SPEC_SCHEMA_FILE.read_text()
    assert out.stat().st_mode & 0o777 == 0o644  # no secret: editors and CI read it
    assert [p.name for p in out.parent.iterdir()] == ["spec.schema.json"]  # no temporary file left
    out.write_text("stale")
    out.chmod(0o640)
    assert main(["spec", "schema", "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == spec_json_schema()
    assert out.stat().st_mode & 0o777 == 0o640  # a file replaced keeps its mode
    assert "wrote the model spec's JSON Schema to" in capsys.readouterr().err


def test_spec_schema_output_replaces_a_link_not_its_target(tmp_path):
    from ativo.cli import main

    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "spec.schema.json"
    link.symlink_to(target)
    assert main(["spec", "schema", "--output", str(link)]) == 0
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and json.loads(link.read_text()) == spec_json_schema()


def test_spec_schema_output_refuses_a_directory_and_an_unwritable_place(tmp_path, capsys):
    from ativo.cli import main

    assert main(["spec", "schema", "--output", str(tmp_path)]) == 2
    assert f"--output {tmp_path} is a directory" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    assert main(["spec", "schema", "--output", str(a_file / "spec.schema.json")]) == 2
    assert f"cannot write {a_file / 'spec.schema.json'}" in capsys.readouterr().err
    assert a_file.read_text() == "keep me"
