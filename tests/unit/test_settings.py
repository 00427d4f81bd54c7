"""Settings: every ATIVO_* variable, typed and validated in one place (explicit env mappings, no side effects)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from ativo.config import (
    DEFAULT_PRICES,
    PROJECT_ROOT,
    Ports,
    Settings,
    load_settings,
    settings_file,
    write_settings_file,
)
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
    assert s.ports == Ports(airflow=8080)
    assert s.airflow_password is None and s.airflow_url == "http://127.0.0.1:8080"
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
            "ATIVO_AIRFLOW_PORT": " 8180 ",
            "ATIVO_MLFLOW_PORT": "5100",  # the launcher's, not the library's: ignored here
            "ATIVO_SERVE_SPEC": "other",
            "ATIVO_SERVE_KEYS": "/k/keys.json",
            "ATIVO_SERVE_CONFIG": '{"refresh_s": 0.5, "contributions": "exact"}',
        }
    )
    assert s.ports == Ports(airflow=8180) and s.airflow_url == "http://127.0.0.1:8180"
    assert s.serve.spec == "other" and s.serve.keys == Path("/k/keys.json")
    assert s.serve.config == {"refresh_s": 0.5, "contributions": "exact"}


def test_the_library_reads_only_the_ports_it_uses():
    """Airflow's is the library's (its API's default address); the other services' ports are the launcher's."""
    assert set(Ports.model_fields) == {"airflow"}


def test_launcher_ports_come_from_the_environment(monkeypatch):
    from ativo_dev import supervisor
    from ativo_dev.ports import EmbeddedPorts, embedded_ports

    assert embedded_ports({}) == EmbeddedPorts(airflow=8080, mlflow=5000, serve=8000, alert=8099, pg=55432, dask=8786)
    given = {"ATIVO_MLFLOW_PORT": "5100", "ATIVO_SERVE_PORT": " 8100 ", "ATIVO_ALERT_PORT": "8199", "ATIVO_PG_PORT": ""}
    assert embedded_ports(given).model_dump() == {
        "airflow": 8080,
        "mlflow": 5100,
        "serve": 8100,
        "alert": 8199,
        "pg": 55432,  # empty: unset
        "dask": 8786,
    }
    monkeypatch.setenv("ATIVO_MLFLOW_PORT", "5123")
    monkeypatch.setenv("ATIVO_AIRFLOW_PORT", "8181")
    s = load_settings()
    assert supervisor.port("mlflow", s) == 5123 and supervisor.url("mlflow", s) == "http://127.0.0.1:5123"
    monkeypatch.setenv("ATIVO_SERVE_PORT", "8123")
    assert supervisor.port("serve") == 8123 and supervisor.port("airflow") == 8181  # no settings given
    assert supervisor.port("airflow", load_settings({"ATIVO_AIRFLOW_PORT": "8282"})) == 8282  # Airflow's: the library's
    env = supervisor.platform_env(s)
    assert (env["ATIVO_MLFLOW_PORT"], env["ATIVO_AIRFLOW_PORT"]) == ("5123", "8181")  # children see the same ports
    assert env["AIRFLOW__API__PORT"] == "8181" and env["ATIVO_MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5123"
    with pytest.raises(KeyError, match="no embedded service"):
        supervisor.port("nope", s)


@pytest.mark.parametrize(
    ("var", "raw", "reason"),
    [
        ("ATIVO_MLFLOW_PORT", "5000.5", "must be a TCP port"),
        ("ATIVO_SERVE_PORT", "70000", "from 1 to 65535"),
        ("ATIVO_ALERT_PORT", "0", "from 1 to 65535"),
        ("ATIVO_PG_PORT", "x", "must be a TCP port"),
    ],
    ids=["mlflow-float", "serve-too-high", "alert-zero", "pg-not-a-number"],
)
def test_a_bad_launcher_port_is_rejected_naming_the_variable(var, raw, reason):
    from ativo_dev.ports import embedded_ports

    with pytest.raises(SettingsError) as err:
        embedded_ports({var: raw})
    assert var in str(err.value) and reason in str(err.value)


def test_the_settings_file_of_the_home_is_read_and_the_environment_wins(tmp_path):
    home = tmp_path / "home"
    assert not settings_file(home).exists() and load_settings({"ATIVO_HOME": str(home)}).airflow_password is None
    path = write_settings_file(home, {"ATIVO_AIRFLOW_PASSWORD": "from-the-file", "ATIVO_BUDGET_POLL_S": "7"})
    assert path == home.resolve() / "ativo.env" and oct(path.stat().st_mode & 0o777) == oct(0o600)
    s = load_settings({"ATIVO_HOME": str(home)})
    assert s.airflow_password is not None and s.airflow_password.get_secret_value() == "from-the-file"
    assert s.budget_poll_s == 7
    both = load_settings({"ATIVO_HOME": str(home), "ATIVO_AIRFLOW_PASSWORD": "from-the-env", "ATIVO_BUDGET_POLL_S": ""})
    assert both.airflow_password is not None and both.airflow_password.get_secret_value() == "from-the-env"
    assert both.budget_poll_s == 7  # an empty variable is unset: the file's value stands
    write_settings_file(home, {"ATIVO_AIRFLOW_PASSWORD": "rotated"})  # one key set, the others kept
    again = load_settings({"ATIVO_HOME": str(home)})
    assert again.airflow_password is not None and again.airflow_password.get_secret_value() == "rotated"
    assert again.budget_poll_s == 7
    assert "rotated" not in repr(again)
    # another home's file is not read
    assert load_settings({"ATIVO_HOME": str(tmp_path / "other")}).airflow_password is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ATIVO_AIRFLOW_PASSWORD\n", "expected KEY=VALUE"),
        ("ATIVO_NO_SUCH=1\n", "'ATIVO_NO_SUCH' is no Ativo setting"),
        ("ATIVO_HOME=/elsewhere\n", "'ATIVO_HOME' is no Ativo setting"),
        ("# a comment\n\nATIVO_BUDGET_POLL_S=-1\n", "ATIVO_BUDGET_POLL_S must be a positive number"),
    ],
    ids=["no-equals", "unknown", "home", "bad-value"],
)
def test_a_bad_settings_file_is_rejected_naming_the_line(tmp_path, text, words):
    settings_file(tmp_path).write_text(text)
    with pytest.raises(SettingsError) as err:
        load_settings({"ATIVO_HOME": str(tmp_path)})
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"ATIVO_HOME": "/x"}, "'ATIVO_HOME' is no Ativo setting"),
        ({"ATIVO_PG_PORT": "1"}, "'ATIVO_PG_PORT' is no Ativo setting"),
        ({"ATIVO_AIRFLOW_PASSWORD": "a\nATIVO_DB_URL=x"}, "must fit on one line"),
    ],
    ids=["home", "a-launcher-port", "newline"],
)
def test_the_settings_file_writer_refuses_what_the_reader_would(tmp_path, values, words):
    with pytest.raises(SettingsError, match=words):
        write_settings_file(tmp_path, values)
    assert not settings_file(tmp_path).exists()


def test_the_airflow_api_needs_a_password_setting_and_reads_no_airflow_file(tmp_path):
    from ativo.orchestrator import AirflowAPI

    home = tmp_path / "home"
    (home / "airflow").mkdir(parents=True)
    (home / "airflow" / "passwords.json").write_text('{"admin": "from-airflows-file"}')
    with pytest.raises(SettingsError, match="ATIVO_AIRFLOW_PASSWORD") as err:
        AirflowAPI.from_settings(load_settings({"ATIVO_HOME": str(home)}))
    assert str(settings_file(home)) in str(err.value)
    write_settings_file(home, {"ATIVO_AIRFLOW_PASSWORD": "p"})
    api = AirflowAPI.from_settings(load_settings({"ATIVO_HOME": str(home), "ATIVO_AIRFLOW_PORT": "8181"}))
    assert (api.base, api.username, api.password) == ("http://127.0.0.1:8181", "admin", "p")


def test_the_launcher_hands_the_library_the_airflow_password(tmp_path, monkeypatch):
    from ativo_dev import supervisor

    monkeypatch.setenv("ATIVO_HOME", str(tmp_path / "home"))
    s = load_settings()
    password = supervisor.admin_password(s)
    passwords = json.loads((s.airflow_home / "passwords.json").read_text())
    assert set(passwords) == {"admin", "operator", "analyst"} and passwords["admin"] == password
    assert len(set(passwords.values())) == 3 and all(len(p) >= 16 for p in passwords.values())
    live = load_settings()
    assert live.airflow_password is not None and live.airflow_password.get_secret_value() == password
    assert supervisor.admin_password(s) == password  # generated once
    assert "ATIVO_AIRFLOW_PASSWORD" not in supervisor.platform_env(s)  # in the settings file, not every environment


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
    ({"ATIVO_AIRFLOW_PORT": "8080.5"}, "ATIVO_AIRFLOW_PORT", "must be a TCP port"),
    ({"ATIVO_AIRFLOW_PORT": "70000"}, "ATIVO_AIRFLOW_PORT", "from 1 to 65535"),
    ({"ATIVO_AIRFLOW_PORT": "0"}, "ATIVO_AIRFLOW_PORT", "from 1 to 65535"),
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
        load_settings({"ATIVO_BUDGET_POLL_S": "-1", "ATIVO_AIRFLOW_PORT": "x"})
    assert "ATIVO_BUDGET_POLL_S" in str(err.value) and "ATIVO_AIRFLOW_PORT" in str(err.value)


def test_unknown_ativo_variables_are_ignored():
    assert load_settings({"ATIVO_PROFILE": "compose", "ATIVO_REQUIRE_SERVICES": "1"}).home.name == "var"
