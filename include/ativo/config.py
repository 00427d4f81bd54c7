"""Settings: one place, read from the environment, with no side effects on import.

The embedded default keeps everything under ``var/`` of the project; the production shape points the same
settings at PostgreSQL, S3 and a remote MLflow. Switching is configuration only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("local", "compose", "k8s")
DEFAULT_PRICES = {"cpu": 0.10, "gpu": 2.50}  # USD per slot-hour, overridden by ATIVO_PRICES


@dataclass(frozen=True)
class Settings:
    """Where Ativo keeps its state.

    Attributes:
        profile: ``local`` (embedded default), ``compose`` or ``k8s``.
        home: runtime state directory (``var/``).
        store_uri: object store root, ``file:///…`` or ``s3://bucket/prefix``.
        db_url: SQLAlchemy URL of the platform database (SQLite or PostgreSQL).
        mlflow_tracking_uri: MLflow tracking server or store.
        registry_path: the git + DVC data registry working copy.
        dvc_remote: DVC remote for dataset versions: a local directory or ``s3://…``.
        s3_endpoint_url: S3 endpoint for MinIO or a local S3 server; None means AWS.
        specs_dir: where model specs (YAML) live.
        reference_dir: where the reference data is fetched to.
        prices: USD per resource-hour for each resource kind (``cpu``, ``gpu``), from ``ATIVO_PRICES`` (JSON).
        budget_poll_s: how often a task deferred on its budget checks it again (``ATIVO_BUDGET_POLL_S``).
        serve_urls: base URLs of the inference API's servers, which the deploy watch reads
            (``ATIVO_SERVE_URLS``, comma-separated).
    """

    profile: str
    home: Path
    store_uri: str
    db_url: str
    mlflow_tracking_uri: str
    registry_path: Path
    dvc_remote: str
    s3_endpoint_url: str | None
    specs_dir: Path
    reference_dir: Path
    prices: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PRICES))
    budget_poll_s: float = 30.0
    serve_urls: tuple[str, ...] = ("http://127.0.0.1:8000",)

    @property
    def airflow_home(self) -> Path:
        """AIRFLOW_HOME of the embedded platform."""
        return self.home / "airflow"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``ATIVO_*`` environment variables, falling back to the embedded default.

    Args:
        env: the environment to read; ``os.environ`` when omitted.

    Returns:
        The settings. Nothing is created on disk.

    Raises:
        ValueError: if ``ATIVO_PROFILE`` names an unknown profile.
    """
    env = os.environ if env is None else env
    profile = env.get("ATIVO_PROFILE", "local")
    if profile not in PROFILES:
        raise ValueError(f"ATIVO_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
    home = Path(env.get("ATIVO_HOME", PROJECT_ROOT / "var")).resolve()
    prices = dict(DEFAULT_PRICES)
    if env.get("ATIVO_PRICES"):
        try:
            prices.update({str(k): float(v) for k, v in json.loads(env["ATIVO_PRICES"]).items()})
        except (ValueError, AttributeError, TypeError):
            raise ValueError(
                f"ATIVO_PRICES must be a JSON object of resource → USD per hour, got {env['ATIVO_PRICES']!r}"
            ) from None
    try:
        budget_poll_s = float(env.get("ATIVO_BUDGET_POLL_S", "30"))
        if budget_poll_s <= 0:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"ATIVO_BUDGET_POLL_S must be a positive number of seconds, got {env['ATIVO_BUDGET_POLL_S']!r}"
        ) from None
    return Settings(
        profile=profile,
        home=home,
        store_uri=env.get("ATIVO_STORE_URI", (home / "store").as_uri()),
        db_url=env.get("ATIVO_DB_URL", f"sqlite:///{home / 'ativo.db'}"),
        mlflow_tracking_uri=env.get(
            "ATIVO_MLFLOW_TRACKING_URI",
            env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"),
        ),
        registry_path=Path(env.get("ATIVO_REGISTRY_PATH", home / "data-registry")),
        dvc_remote=env.get("ATIVO_DVC_REMOTE", str(home / "dvc-remote")),
        s3_endpoint_url=env.get("ATIVO_S3_ENDPOINT_URL") or None,
        specs_dir=Path(env.get("ATIVO_SPECS_DIR", PROJECT_ROOT / "include" / "specs")),
        reference_dir=Path(env.get("ATIVO_REFERENCE_DIR", PROJECT_ROOT / "var" / "reference")),
        prices=prices,
        budget_poll_s=budget_poll_s,
        serve_urls=tuple(
            u.strip().rstrip("/") for u in env.get("ATIVO_SERVE_URLS", "http://127.0.0.1:8000").split(",") if u.strip()
        ),
    )
