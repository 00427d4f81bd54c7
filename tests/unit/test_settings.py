"""Settings: every ATIVO_* variable, typed and validated in one place (explicit env mappings, no side effects)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import SecretStr

from ativo.config import DEFAULT_PRICES, PROJECT_ROOT, Ports, Settings, load_settings
from ativo.errors import AtivoError, SettingsError


def test_defaults_are_derived_from_home(tmp_path):
    s = load_settings({"ATIVO_HOME": str(tmp_path)})
    home = tmp_path.resolve()
    assert s.home == home and s.airflow_home == home / "airflow"
    assert s.store_uri == (home / "store").as_uri()
    assert s.db_url == f"sqlite:///{home / 'ativo.db'}"
    assert s.mlflow_tracking_uri == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    assert s.registry_path == home / "data-registry"
    assert s.dvc_remote == str(home / "dvc-remote")
    assert s.s3_endpoint_url is None
    # not under home: the code's own specs and the shared reference data
    assert s.specs_dir == PROJECT_ROOT / "include" / "specs"
    assert s.reference_dir == PROJECT_ROOT / "var" / "reference"
    assert dict(s.prices) == DEFAULT_PRICES and s.budget_poll_s == 30.0
    assert s.serve_urls == ("http://127.0.0.1:8000",)
    assert s.ports == Ports(airflow=8080, mlflow=5000, serve=8000, alert=8099, pg=55432)
    assert (s.serve.specs, s.serve.keys, s.serve.config) == ([], None, {})
    assert s.subject_pepper is None and s.api_key is None and s.git_commit is None and s.gpu_count is None


def test_empty_env_is_the_embedded_default():
    s = load_settings({})
    assert s.home == (PROJECT_ROOT / "var").resolve()
    assert s.store_uri == (PROJECT_ROOT / "var" / "store").resolve().as_uri()


def test_explicit_values_win_over_derived_ones(tmp_path):
    s = load_settings(
        {
            "ATIVO_HOME": str(tmp_path),
            "ATIVO_STORE_URI": "s3://bucket/ativo",
            "ATIVO_DB_URL": "postgresql+psycopg2://u@db/ativo",
            "ATIVO_REGISTRY_PATH": "/srv/registry",
            "ATIVO_DVC_REMOTE": "s3://bucket/dvc",
            "ATIVO_S3_ENDPOINT_URL": "http://minio:9000",
            "ATIVO_SPECS_DIR": "/srv/specs",
            "ATIVO_REFERENCE_DIR": "/srv/reference",
            "ATIVO_PRICES": '{"gpu": 3.0, "tpu": 4}',
            "ATIVO_BUDGET_POLL_S": "0.5",
            "ATIVO_GIT_COMMIT": "abc123",
            "ATIVO_GPU_COUNT": "2",
        }
    )
    assert (s.store_uri, s.db_url, s.dvc_remote) == (
        "s3://bucket/ativo",
        "postgresql+psycopg2://u@db/ativo",
        "s3://bucket/dvc",
    )
    assert (s.registry_path, s.specs_dir, s.reference_dir) == (
        Path("/srv/registry"),
        Path("/srv/specs"),
        Path("/srv/reference"),
    )
    assert s.s3_endpoint_url == "http://minio:9000"
    assert dict(s.prices) == {"cpu": 0.10, "gpu": 3.0, "tpu": 4.0}  # merged over the defaults
    assert s.budget_poll_s == 0.5 and s.git_commit == "abc123" and s.gpu_count == 2


def test_only_the_given_mapping_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("ATIVO_DB_URL", "postgresql+psycopg2://from-the-process/env")
    monkeypatch.setenv("ATIVO_BUDGET_POLL_S", "-1")  # would fail if it were read
    s = load_settings({"ATIVO_HOME": str(tmp_path)})
    assert s.db_url == f"sqlite:///{tmp_path.resolve() / 'ativo.db'}"
    monkeypatch.setenv("ATIVO_BUDGET_POLL_S", "5")
    assert load_settings().db_url == "postgresql+psycopg2://from-the-process/env"  # None: os.environ
    assert load_settings().budget_poll_s == 5


def test_empty_variables_count_as_unset(tmp_path):
    s = load_settings(
        {
            "ATIVO_HOME": str(tmp_path),
            "ATIVO_S3_ENDPOINT_URL": "",
            "ATIVO_PRICES": "",
            "ATIVO_BUDGET_POLL_S": "",
            "ATIVO_AIRFLOW_PORT": "",
            "ATIVO_SUBJECT_PEPPER": "",
        }
    )
    assert s.s3_endpoint_url is None and dict(s.prices) == DEFAULT_PRICES and s.budget_poll_s == 30.0
    assert s.ports.airflow == 8080 and s.subject_pepper is None


def test_mlflow_tracking_uri_falls_back_to_mlflows_own_variable():
    assert load_settings({"MLFLOW_TRACKING_URI": "http://mlflow:5000"}).mlflow_tracking_uri == "http://mlflow:5000"
    both = {"ATIVO_MLFLOW_TRACKING_URI": "http://ativo:5000", "MLFLOW_TRACKING_URI": "http://mlflow:5000"}
    assert load_settings(both).mlflow_tracking_uri == "http://ativo:5000"


@pytest.mark.parametrize(
    ("raw", "urls"),
    [
        ("http://a:8000", ("http://a:8000",)),
        (" http://a:8000/ , https://b/api/ ,", ("http://a:8000", "https://b/api")),
        ("http://a,,http://b", ("http://a", "http://b")),
    ],
    ids=["one", "strip-and-trailing-slash", "empty-items-dropped"],
)
def test_serve_urls_are_comma_separated(raw, urls):
    assert load_settings({"ATIVO_SERVE_URLS": raw}).serve_urls == urls


def test_ports_and_serve_options():
    s = load_settings(
        {
            "ATIVO_AIRFLOW_PORT": "8180",
            "ATIVO_MLFLOW_PORT": "5100",
            "ATIVO_SERVE_PORT": " 8100 ",
            "ATIVO_ALERT_PORT": "8199",
            "ATIVO_PG_PORT": "55999",
            "ATIVO_SERVE_SPEC": "other",
            "ATIVO_SERVE_KEYS": "/k/keys.json",
            "ATIVO_SERVE_CONFIG": '{"refresh_s": 0.5, "contributions": "exact"}',
        }
    )
    assert s.ports == Ports(airflow=8180, mlflow=5100, serve=8100, alert=8199, pg=55999)
    assert s.serve.spec == "other" and s.serve.keys == Path("/k/keys.json")
    assert s.serve.config == {"refresh_s": 0.5, "contributions": "exact"}


def test_supervisor_ports_come_from_settings(monkeypatch):
    from devtools import supervisor

    s = load_settings({"ATIVO_MLFLOW_PORT": "5123"})
    assert supervisor.port("mlflow", s) == 5123 and supervisor.url("mlflow", s) == "http://127.0.0.1:5123"
    monkeypatch.setenv("ATIVO_SERVE_PORT", "8123")
    assert supervisor.port("serve") == 8123  # no settings given: the environment's
    assert supervisor.platform_env(s)["ATIVO_MLFLOW_PORT"] == "5123"  # children see the same ports
    with pytest.raises(KeyError, match="no embedded service"):
        supervisor.port("nope", s)


def test_secrets_are_secret_and_not_in_repr():
    s = load_settings({"ATIVO_SUBJECT_PEPPER": "pepper-value-1", "ATIVO_API_KEY": "key-value-2"})
    assert isinstance(s.subject_pepper, SecretStr) and isinstance(s.api_key, SecretStr)
    assert s.subject_pepper.get_secret_value() == "pepper-value-1"
    assert s.api_key.get_secret_value() == "key-value-2"
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "pepper-value-1" not in text and "key-value-2" not in text


def test_settings_are_immutable():
    s = load_settings({})
    with pytest.raises(ValueError, match="frozen"):
        s.home = Path("/elsewhere")  # type: ignore[misc]
    assert not dataclasses.is_dataclass(s)
    assert isinstance(s, Settings)


BAD_VALUES = [
    ({"ATIVO_BUDGET_POLL_S": "-1"}, "ATIVO_BUDGET_POLL_S", "must be a positive number of seconds, got '-1'"),
    ({"ATIVO_BUDGET_POLL_S": "0"}, "ATIVO_BUDGET_POLL_S", "positive number of seconds"),
    ({"ATIVO_BUDGET_POLL_S": "soon"}, "ATIVO_BUDGET_POLL_S", "positive number of seconds"),
    ({"ATIVO_BUDGET_POLL_S": "nan"}, "ATIVO_BUDGET_POLL_S", "positive number of seconds"),
    ({"ATIVO_PRICES": "cpu=1"}, "ATIVO_PRICES", "must be a JSON object of resource → USD per hour"),
    ({"ATIVO_PRICES": "[1, 2]"}, "ATIVO_PRICES", "JSON object"),
    ({"ATIVO_PRICES": '{"cpu": "cheap"}'}, "ATIVO_PRICES", "JSON object"),
    ({"ATIVO_PRICES": '{"cpu": -1}'}, "ATIVO_PRICES", "non-negative"),
    ({"ATIVO_AIRFLOW_PORT": "80a"}, "ATIVO_AIRFLOW_PORT", "must be a TCP port"),
    ({"ATIVO_MLFLOW_PORT": "5000.5"}, "ATIVO_MLFLOW_PORT", "must be a TCP port"),
    ({"ATIVO_SERVE_PORT": "70000"}, "ATIVO_SERVE_PORT", "from 1 to 65535"),
    ({"ATIVO_ALERT_PORT": "0"}, "ATIVO_ALERT_PORT", "from 1 to 65535"),
    ({"ATIVO_GPU_COUNT": "-1"}, "ATIVO_GPU_COUNT", "non-negative integer"),
    ({"ATIVO_GPU_COUNT": "two"}, "ATIVO_GPU_COUNT", "non-negative integer"),
    ({"ATIVO_SERVE_URLS": " , "}, "ATIVO_SERVE_URLS", "http(s)://"),
    ({"ATIVO_SERVE_URLS": "localhost:8000"}, "ATIVO_SERVE_URLS", "http(s)://"),
    ({"ATIVO_SERVE_CONFIG": "[1]"}, "ATIVO_SERVE_CONFIG", "JSON object"),
    ({"ATIVO_SERVE_CONFIG": "{"}, "ATIVO_SERVE_CONFIG", "JSON object"),
]


@pytest.mark.parametrize(("env", "var", "reason"), BAD_VALUES, ids=[f"{var}={env[var]}" for env, var, _ in BAD_VALUES])
def test_a_bad_value_is_rejected_naming_the_variable(env, var, reason):
    with pytest.raises(SettingsError) as err:
        load_settings(env)
    assert isinstance(err.value, ValueError) and isinstance(err.value, AtivoError)
    assert var in str(err.value) and reason in str(err.value)


def test_every_bad_variable_is_named_at_once():
    with pytest.raises(SettingsError) as err:
        load_settings({"ATIVO_BUDGET_POLL_S": "-1", "ATIVO_SERVE_PORT": "x"})
    assert "ATIVO_BUDGET_POLL_S" in str(err.value) and "ATIVO_SERVE_PORT" in str(err.value)


def test_unknown_ativo_variables_are_ignored():
    assert load_settings({"ATIVO_PROFILE": "compose", "ATIVO_REQUIRE_SERVICES": "1"}).home.name == "var"
