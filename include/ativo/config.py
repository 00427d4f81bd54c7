"""Settings: one object that owns every ``ATIVO_*`` variable, read from the environment, with no side effects on import.

The embedded default keeps everything under ``var/`` of the project; the production shape points the same
settings at PostgreSQL, S3 and a remote MLflow. Switching is configuration only.

:func:`load_settings` is the one entry point: it reads the process environment (or a mapping it is given) once,
and the settings file ``<home>/ativo.env`` when there is one (the environment wins), and validates them into an
immutable :class:`Settings`. A bad value fails there, with the variable's name and why. An empty variable counts as
unset. :func:`write_settings_file` is the settings file's one writer.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ativo.errors import SettingsError
from ativo.files import replace_file

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SETTINGS_FILE = "ativo.env"  # under ATIVO_HOME: settings a platform hands the library (see Settings)
DEFAULT_PRICES = {"cpu": 0.10, "gpu": 2.50}  # USD per slot-hour, overridden by ATIVO_PRICES


def _var(model: type[BaseModel], info: ValidationInfo) -> str:
    """The environment variable of the field being validated."""
    alias = model.model_fields[str(info.field_name)].validation_alias
    if isinstance(alias, AliasChoices):
        alias = alias.choices[0]
    return str(alias or info.field_name)


class Ports(BaseModel):
    """Loopback ports the library reads (``ATIVO_<SERVICE>_PORT``): Airflow's API server's, for ``airflow_url``.

    The ports of the other services of the local platform (MLflow, the inference API, the alert sink, PostgreSQL,
    Dask) belong to the launcher that starts them (``ativo_dev``, in the repository), which extends this model; the
    library reaches those services through URLs (``ATIVO_MLFLOW_TRACKING_URI``, ``ATIVO_SERVE_URLS``, …).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    airflow: int = Field(8080, validation_alias="ATIVO_AIRFLOW_PORT")

    @field_validator("*", mode="before")
    @classmethod
    def _port(cls, value: Any, info: ValidationInfo) -> int:
        try:
            if isinstance(value, bool) or not str(value).strip().isdigit():
                raise ValueError
            port = int(str(value).strip())
            if not 1 <= port <= 65535:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{_var(cls, info)} must be a TCP port (an integer from 1 to 65535), got {value!r}"
            ) from None
        return port


class ServeOptions(BaseModel):
    """What ``ativo serve`` hands its uvicorn workers (it exports these variables; each worker reads them back)."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True)

    spec: str = Field("", validation_alias="ATIVO_SERVE_SPEC")  # comma-separated spec names
    keys: Path | None = Field(None, validation_alias="ATIVO_SERVE_KEYS")
    config: dict[str, Any] = Field(default_factory=dict, validation_alias="ATIVO_SERVE_CONFIG")

    @property
    def specs(self) -> list[str]:
        """The specs to serve."""
        return [n.strip() for n in self.spec.split(",") if n.strip()]

    @field_validator("config", mode="before")
    @classmethod
    def _config(cls, value: Any, info: ValidationInfo) -> Any:
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, dict):
                raise ValueError
        except ValueError:
            raise ValueError(
                f"{_var(cls, info)} must be a JSON object of the server's options (ServeConfig), got {value!r}"
            ) from None
        return parsed


class Settings(BaseSettings):
    """Where Ativo keeps its state, and every other ``ATIVO_*`` setting; immutable, built by :func:`load_settings`.

    Sources, the first that sets a variable (to a non-empty value) wins:

    1. the environment (or the mapping given to :func:`load_settings`);
    2. the settings file ``<home>/ativo.env`` (``home`` as the environment names it), when it exists: ``KEY=VALUE``
       lines of the variables below (``#`` comments and blank lines ignored; no quoting: the value is the rest of
       the line), readable by the platform's owner only (0600). A platform writes there what every process of the
       library needs but should not put in every process's environment, such as ``ATIVO_AIRFLOW_PASSWORD``: the
       local platform (``make run``) writes it when it starts Airflow, docker-compose's ``airflow-init`` and the Helm
       chart's migrate job write it on the shared volume (:func:`write_settings_file`, the file's one writer);
    3. the defaults below (locations derived from ``home``).

    Attributes:
        home: runtime state directory (``ATIVO_HOME``, default ``var/``).
        store_uri: object store root, ``file:///…`` or ``s3://bucket/prefix`` (``ATIVO_STORE_URI``, default
            ``<home>/store``).
        db_url: SQLAlchemy URL of the platform database, SQLite or PostgreSQL (``ATIVO_DB_URL``, default
            ``<home>/ativo.db``).
        mlflow_tracking_uri: MLflow tracking server or store (``ATIVO_MLFLOW_TRACKING_URI``, else
            ``MLFLOW_TRACKING_URI``, default ``<home>/mlflow/mlflow.db``).
        registry_path: the git + DVC data registry working copy (``ATIVO_REGISTRY_PATH``, default
            ``<home>/data-registry``).
        dvc_remote: DVC remote for dataset versions: a local directory or ``s3://…`` (``ATIVO_DVC_REMOTE``, default
            ``<home>/dvc-remote``).
        s3_endpoint_url: S3 endpoint for MinIO or a local S3 server; None means AWS (``ATIVO_S3_ENDPOINT_URL``).
        erasure_queue_url: an SQS queue of erasure requests that the ERASURE DAGs watch (``ATIVO_ERASURE_QUEUE_URL``;
            Airflow connection ``ativo_erasure_queue`` for its credentials and endpoint); None: no queue.
        specs_dir: where model specs (YAML) live (``ATIVO_SPECS_DIR``, default ``include/specs``).
        reference_dir: where the reference data is fetched to (``ATIVO_REFERENCE_DIR``, default ``var/reference``).
        prices: USD per resource-hour for each resource kind (``cpu``, ``gpu``), from ``ATIVO_PRICES`` (a JSON
            object, merged over the defaults).
        budget_poll_s: how often a task deferred on its budget checks it again (``ATIVO_BUDGET_POLL_S``).
        serve_urls: base URLs of the inference API's servers that serve every spec (``ATIVO_SERVE_URLS``:
            comma-separated, or a JSON object of spec name → URLs, with ``"*"`` for the servers of the rest);
            a deploy run waits on and reads only :meth:`servers_of` its spec, at ``<url>/models/<spec>/…``.
        serve_by_spec: the per-spec entries of ``ATIVO_SERVE_URLS`` (spec name → URLs).
        ports: loopback ports the library reads: ``ports.airflow`` (``ATIVO_AIRFLOW_PORT``), the default Airflow API.
        serve: the options ``ativo serve`` passes to its workers (``ATIVO_SERVE_{SPEC,KEYS,CONFIG}``).
        subject_pepper: the secret that pseudonymises subjects in the prediction log (``ATIVO_SUBJECT_PEPPER``;
            None: the key file under ``<home>/serve``).
        promotion_key: the platform key that signs gate and promotion records (``ATIVO_PROMOTION_KEY``; None: the
            key file ``<home>/keys/promotion.key``, created 0600). MLflow never holds it.
        promotion_keys_previous: retired promotion keys, comma-separated, whose records still verify while a key
            is rotated (``ATIVO_PROMOTION_KEYS_PREVIOUS``).
        api_key: the inference API key ``ativo traffic`` sends (``ATIVO_API_KEY``).
        op_key: an Ativo key with the ``op`` role, which every state-changing ``ativo`` command presents
            (``ATIVO_OP_KEY``; only keys in the platform's own key file count).
        git_commit: the code version training records, instead of asking git (``ATIVO_GIT_COMMIT``).
        airflow_api: Airflow's API server, which ``ativo backfill`` calls (``ATIVO_AIRFLOW_URL``, default the
            embedded one on ``ports.airflow``); ``airflow_username`` / ``airflow_password``
            (``ATIVO_AIRFLOW_USERNAME``, default ``admin`` / ``ATIVO_AIRFLOW_PASSWORD``, no default: a platform
            writes it to the settings file) sign in to it.
        public_airflow_url: the Airflow address people open, where alerts, run notes and log lines link runbooks,
            reports and model cards (``ATIVO_PUBLIC_AIRFLOW_URL``, default ``airflow_url``; set it when tasks reach
            the API server by an internal name).
        gpu_count: GPUs on this host, instead of asking ``nvidia-smi`` (``ATIVO_GPU_COUNT``).
        dask_scheduler: the ``dask.distributed`` scheduler that ``compute.engine: dask`` specs train on, e.g.
            ``tcp://dask-scheduler:8786`` (``ATIVO_DASK_SCHEDULER``); unset, each training step starts a
            ``LocalCluster`` of the spec's ``compute.dask`` shape.
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="forbid", case_sensitive=True, validate_by_name=True, validate_by_alias=True
    )

    home: Path = Field(PROJECT_ROOT / "var", validation_alias="ATIVO_HOME")
    store_uri: str = Field(validation_alias="ATIVO_STORE_URI")
    db_url: str = Field(validation_alias="ATIVO_DB_URL")
    mlflow_tracking_uri: str = Field(validation_alias=AliasChoices("ATIVO_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"))
    registry_path: Path = Field(validation_alias="ATIVO_REGISTRY_PATH")
    dvc_remote: str = Field(validation_alias="ATIVO_DVC_REMOTE")
    s3_endpoint_url: str | None = Field(None, validation_alias="ATIVO_S3_ENDPOINT_URL")
    erasure_queue_url: str | None = Field(None, validation_alias="ATIVO_ERASURE_QUEUE_URL")
    specs_dir: Path = Field(PROJECT_ROOT / "include" / "specs", validation_alias="ATIVO_SPECS_DIR")
    reference_dir: Path = Field(PROJECT_ROOT / "var" / "reference", validation_alias="ATIVO_REFERENCE_DIR")
    prices: Mapping[str, float] = Field(default_factory=lambda: dict(DEFAULT_PRICES), validation_alias="ATIVO_PRICES")
    budget_poll_s: float = Field(30.0, validation_alias="ATIVO_BUDGET_POLL_S")
    serve_urls: tuple[str, ...] = Field(("http://127.0.0.1:8000",), validation_alias="ATIVO_SERVE_URLS")
    serve_by_spec: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    ports: Ports = Ports()
    serve: ServeOptions = ServeOptions()
    subject_pepper: SecretStr | None = Field(None, validation_alias="ATIVO_SUBJECT_PEPPER")
    promotion_key: SecretStr | None = Field(None, validation_alias="ATIVO_PROMOTION_KEY")
    promotion_keys_previous: SecretStr | None = Field(None, validation_alias="ATIVO_PROMOTION_KEYS_PREVIOUS")
    api_key: SecretStr | None = Field(None, validation_alias="ATIVO_API_KEY")
    op_key: SecretStr | None = Field(None, validation_alias="ATIVO_OP_KEY")
    git_commit: str | None = Field(None, validation_alias="ATIVO_GIT_COMMIT")
    airflow_api: str | None = Field(None, validation_alias="ATIVO_AIRFLOW_URL")
    public_airflow_url: str | None = Field(None, validation_alias="ATIVO_PUBLIC_AIRFLOW_URL")
    airflow_username: str = Field("admin", validation_alias="ATIVO_AIRFLOW_USERNAME")
    airflow_password: SecretStr | None = Field(None, validation_alias="ATIVO_AIRFLOW_PASSWORD")
    gpu_count: int | None = Field(None, validation_alias="ATIVO_GPU_COUNT")
    dask_scheduler: str | None = Field(None, validation_alias="ATIVO_DASK_SCHEDULER")

    @property
    def airflow_url(self) -> str:
        """Airflow's API server: ``ATIVO_AIRFLOW_URL``, else the embedded one."""
        return (self.airflow_api or f"http://127.0.0.1:{self.ports.airflow}").rstrip("/")

    @property
    def link_url(self) -> str:
        """The Airflow address that links in alerts and logs point at: ``ATIVO_PUBLIC_AIRFLOW_URL``, else the API's."""
        return (self.public_airflow_url or self.airflow_url).rstrip("/")

    def servers_of(self, spec: str) -> tuple[str, ...]:
        """Base URLs of the servers that serve ``spec`` (its own entry of ``ATIVO_SERVE_URLS``, else the shared one).

        Raises:
            SettingsError: ``ATIVO_SERVE_URLS`` is a JSON object that names neither ``spec`` nor ``"*"``.
        """
        urls = tuple(self.serve_by_spec.get(spec, self.serve_by_spec.get("*", self.serve_urls)))
        if not urls:
            raise SettingsError(
                f'ATIVO_SERVE_URLS names no server for spec {spec!r} (and no "*" entry): add '
                f'"{spec}": ["http://…"] to it'
            )
        return urls

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the embedded platform."""
        return self.home / "airflow"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what :func:`load_settings` passes: it reads the environment, so a given mapping is not mixed with it."""
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _derive_from_home(cls, data: Any) -> Any:
        """Drop empty values, and derive the unset locations under ``home`` (as the embedded default does)."""
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if v is not None and v != ""}
        home = Path(data.get("ATIVO_HOME", data.get("home", PROJECT_ROOT / "var"))).resolve()
        data.pop("ATIVO_HOME", None)
        data["home"] = home
        derived: dict[str, Any] = {
            "store_uri": (home / "store").as_uri(),
            "db_url": f"sqlite:///{home / 'ativo.db'}",
            "mlflow_tracking_uri": f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
            "registry_path": home / "data-registry",
            "dvc_remote": str(home / "dvc-remote"),
        }
        for name, value in derived.items():
            if not any(key in data for key in _input_names(cls, name)):
                data[name] = value
        return data

    @field_validator("prices", mode="before")
    @classmethod
    def _prices(cls, value: Any) -> dict[str, float]:
        try:
            parsed = json.loads(value) if isinstance(value, str) else value
            if not isinstance(parsed, Mapping):
                raise ValueError
            prices = dict(DEFAULT_PRICES)
            for resource, price in parsed.items():
                if isinstance(price, bool) or not math.isfinite(float(price)) or float(price) < 0:
                    raise ValueError
                prices[str(resource)] = float(price)
        except (ValueError, TypeError):
            raise ValueError(
                "ATIVO_PRICES must be a JSON object of resource → USD per hour (non-negative numbers), "
                f"e.g. '{json.dumps(DEFAULT_PRICES)}', got {value!r}"
            ) from None
        return prices

    @field_validator("budget_poll_s", mode="before")
    @classmethod
    def _budget_poll_s(cls, value: Any) -> float:
        try:
            if isinstance(value, bool):
                raise ValueError
            seconds = float(value)
            if not math.isfinite(seconds) or seconds <= 0:
                raise ValueError
        except (ValueError, TypeError):
            raise ValueError(f"ATIVO_BUDGET_POLL_S must be a positive number of seconds, got {value!r}") from None
        return seconds

    @model_validator(mode="before")
    @classmethod
    def _split_serve_urls(cls, data: Any) -> Any:
        """``ATIVO_SERVE_URLS`` as JSON: the ``"*"`` entry is ``serve_urls``, the others ``serve_by_spec``."""
        if not isinstance(data, dict):
            return data
        raw = data.get("ATIVO_SERVE_URLS", data.get("serve_urls"))
        if not (isinstance(raw, str) and raw.strip().startswith("{")):
            return data
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not doc:
                raise ValueError
            by_spec = {str(k): _urls(v, raw) for k, v in doc.items()}
        except ValueError as err:
            raise ValueError(str(err) if "ATIVO_SERVE_URLS" in str(err) else _SERVE_URLS_HELP.format(raw)) from None
        data = {k: v for k, v in data.items() if k not in ("ATIVO_SERVE_URLS", "serve_urls")}
        shared = by_spec.pop("*", None)
        if shared:
            data["serve_urls"] = shared
        else:
            by_spec["*"] = ()  # no shared servers: a spec the object does not name has none (servers_of says so)
        data["serve_by_spec"] = by_spec
        return data

    @field_validator("serve_urls", mode="before")
    @classmethod
    def _serve_urls(cls, value: Any) -> tuple[str, ...]:
        return _urls(value, value)

    @field_validator("gpu_count", mode="before")
    @classmethod
    def _gpu_count(cls, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not str(value).strip().isdigit():
            raise ValueError(f"ATIVO_GPU_COUNT must be a non-negative integer (GPUs on this host), got {value!r}")
        return int(str(value).strip())


_SERVE_URLS_HELP = (
    "ATIVO_SERVE_URLS must be one or more comma-separated http(s):// base URLs, or a JSON object of spec name → "
    'URLs (e.g. \'{{"adult_income": ["http://127.0.0.1:8000"], "*": ["http://127.0.0.1:8001"]}}\'), got {!r}'
)


def _urls(value: Any, raw: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    try:
        urls = tuple(str(u).strip().rstrip("/") for u in items if str(u).strip())
    except TypeError:
        urls = ()
    if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
        raise ValueError(_SERVE_URLS_HELP.format(raw))
    return urls


def _input_names(model: type[BaseModel], name: str) -> tuple[str, ...]:
    """The keys a field may be given by: its name and its environment variable(s)."""
    alias = model.model_fields[name].validation_alias
    if isinstance(alias, AliasChoices):
        return (name, *(str(choice) for choice in alias.choices))
    return (name, str(alias)) if alias else (name,)


def _variables(model: type[BaseModel]) -> dict[str, str]:
    """Environment variable → field name, for a model's fields that have one."""
    return {var: name for name in model.model_fields for var in _input_names(model, name)[1:]}


def _message(exc: ValidationError) -> str:
    """One line per bad variable, each naming it (a message of ours already does)."""
    lines = []
    for err in exc.errors(include_url=False):
        var = next((str(p) for p in reversed(err["loc"]) if str(p).isupper()), ".".join(map(str, err["loc"])))
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(msg if var in msg else f"{var}: {msg}")
    return "; ".join(lines)


def settings_file(home: Path | str) -> Path:
    """The settings file of an Ativo home: ``<home>/ativo.env`` (see :class:`Settings`)."""
    return Path(home).resolve() / SETTINGS_FILE


def read_settings_file(path: Path) -> dict[str, str]:
    """The ``KEY=VALUE`` lines of a settings file; empty when there is no file.

    Raises:
        SettingsError: a line is not ``KEY=VALUE``, or names a variable that is no setting (or ``ATIVO_HOME``: the
            file is found through the home, so it cannot move it).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise SettingsError(f"cannot read the settings file {path}: {err}; make it readable by this user") from None
    known = _settable()
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):  # only "\n" ends a line: a value may hold any other character
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or key not in known:
            what = f"{key!r} is no Ativo setting" if sep else "expected KEY=VALUE"
            raise SettingsError(
                f"{path}:{number}: {what} (settings: {', '.join(sorted(known))}); fix or remove the line"
            )
        values[key] = value.strip(" \t")
    return values


def write_settings_file(home: Path | str, values: Mapping[str, str]) -> Path:
    """Set variables in the settings file of ``home``, keeping the others it holds; returns its path.

    The file is replaced whole (a reader never sees half of it) and is readable by its owner only (0600).

    Raises:
        SettingsError: a key is no setting (or ``ATIVO_HOME``), or a value would not read back as written: it
            holds a line break (of any kind ``str.splitlines`` knows) or another control character, or begins or
            ends with a space.
    """
    known = _settable()
    for key, value in values.items():
        if key not in known:
            raise SettingsError(f"{key!r} is no Ativo setting a settings file may hold (one of {', '.join(known)})")
        if len(value.splitlines()) > 1 or any(c in value for c in "\n\r\x85\u2028\u2029"):
            raise SettingsError(f"{key}: a value in the settings file must fit on one line")
        if any(ord(c) < 32 or ord(c) == 127 for c in value) or value != value.strip(" \t"):
            raise SettingsError(
                f"{key}: a value in the settings file may hold no control character nor begin or end with a space"
            )
    path = settings_file(home)
    merged = {**read_settings_file(path), **values}
    header = "# Ativo settings for the processes of this home (see ativo.config.Settings); the environment wins.\n"
    replace_file(path, header + "".join(f"{key}={value}\n" for key, value in sorted(merged.items())))
    return path


def _settable() -> list[str]:
    """The variables a settings file may set: every setting's, but ``ATIVO_HOME``."""
    names = [*_variables(Settings), *_variables(Ports), *_variables(ServeOptions)]
    return sorted(n for n in dict.fromkeys(names) if n != "ATIVO_HOME")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``ATIVO_*`` environment variables and the home's settings file, else the embedded default.

    Args:
        env: the environment to read; ``os.environ`` when omitted. Only this mapping, and the settings file of the
            home it names (``<ATIVO_HOME>/ativo.env``, when it exists), are read; the mapping wins.

    Returns:
        The settings. Nothing is created on disk.

    Raises:
        SettingsError: (a ``ValueError``) if a variable has a bad value, or the settings file a bad line; the message
            names it and says why.
    """
    env = os.environ if env is None else env
    from_file = read_settings_file(settings_file(env.get("ATIVO_HOME") or PROJECT_ROOT / "var"))
    if from_file:
        env = {**from_file, **{k: v for k, v in env.items() if v}}
    values: dict[str, Any] = {var: env[var] for var in _variables(Settings) if var in env}
    for group, model in (("ports", Ports), ("serve", ServeOptions)):
        values[group] = {var: env[var] for var in _variables(model) if env.get(var)}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(_message(exc)) from None
