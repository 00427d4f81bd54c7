"""The versions a server keeps live, by registry alias, and how a request is routed among them.

A background thread reads the registered model's aliases (``champion``, ``canary``, ``shadow``, ``previous``)
every ``refresh_s`` seconds, loads any version it does not hold yet through :func:`ativo.model.artifact.load_version`
(native file, sha256 checked, never unpickled), and only then swaps in a new immutable :class:`Routing`. A request
reads the routing once and keeps that object to the end, so moving an alias never drops or fails a request in
flight, and a version that fails to load never replaces one that serves.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ativo.hashing import bucket
from ativo.model.artifact import load_with_policy
from ativo.model.served import ServedModel
from ativo.spec import ModelSpec

log = logging.getLogger(__name__)

ALIASES = ("champion", "canary", "shadow", "previous")
CANARY_PERCENT_TAG = "ativo.canary_percent"
RETRY_LOAD_S = 30.0


def routes_to_canary(key: str, percent: float, salt: str = "") -> bool:
    """Whether a request with this key goes to the canary at ``percent`` % (stable per key)."""
    return percent > 0 and bucket(key, salt) < percent


@dataclass(frozen=True)
class Routing:
    """One consistent view of the live versions; replaced as a whole, never changed."""

    champion: ServedModel | None = None
    canary: ServedModel | None = None
    shadow: ServedModel | None = None
    previous: ServedModel | None = None
    canary_percent: float = 0.0
    loaded_at: float = field(default_factory=time.time)

    def versions(self) -> dict[str, str]:
        """Alias → version number of every live version."""
        return {a: m.version for a in ALIASES if (m := getattr(self, a)) is not None}


class LiveModels:
    """Keeps the aliased versions of one spec's model loaded and current.

    Args:
        spec: the model spec.
        tracking_uri: the MLflow registry.
        refresh_s: how often the aliases are read again.
        loader: loads a version (``load_version`` by default; a test may count calls).
    """

    def __init__(self, spec: ModelSpec, tracking_uri: str, refresh_s: float = 2.0,
                 loader: Callable[..., ServedModel] | None = None) -> None:  # fmt: skip
        self.spec = spec
        self.tracking_uri = tracking_uri
        self.refresh_s = refresh_s
        self.routing = Routing()
        self.errors: dict[str, str] = {}  # version → why it could not be loaded
        self._failed_at: dict[str, float] = {}  # version → when; retried after RETRY_LOAD_S (a transient S3 error)
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self._loader = loader or load_with_policy
        self._cache: dict[str, ServedModel] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.on_change: Callable[[Routing], None] | None = None

    def read_aliases(self) -> tuple[dict[str, str], dict[str, str]]:
        """The registered model's aliases (alias → version) and tags, straight from the registry."""
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        try:
            rm = MlflowClient(self.tracking_uri).get_registered_model(self.spec.registered_model_name)
        except MlflowException as err:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(err, "error_code", "")) or "not found" in str(err).lower():
                return {}, {}
            raise
        return {str(k): str(v) for k, v in (rm.aliases or {}).items()}, dict(rm.tags or {})

    def refresh(self) -> bool:
        """Read the aliases, load what is new, swap the routing; returns whether anything changed."""
        with self._lock:
            aliases, tags = self.read_aliases()
            wanted = {a: aliases[a] for a in ALIASES if a in aliases}
            models: dict[str, ServedModel | None] = {}
            for alias, version in wanted.items():
                model = self._cache.get(version)
                if model is None and time.time() - self._failed_at.get(version, 0.0) > RETRY_LOAD_S:
                    try:
                        model = self._loader(self.spec, self.tracking_uri, version)
                    except Exception as err:  # a bad version must never take down the ones that serve
                        self.errors[version] = f"{type(err).__name__}: {err}"
                        self._failed_at[version] = time.time()
                        log.error("cannot load %s version %s (%s): %s", self.spec.name, version, alias, err)
                    else:
                        self._cache[version] = model
                        self.errors.pop(version, None)
                        log.info("loaded %s version %s as %s", self.spec.name, version, alias)
                models[alias] = model
            current = self.routing
            if models.get("champion") is None and current.champion is not None and "champion" in wanted:
                models["champion"] = current.champion  # the new champion failed to load: keep serving the old one
            percent = self.spec.deploy.canary_percent
            if tags.get(CANARY_PERCENT_TAG):
                try:
                    percent = min(100.0, max(0.0, float(tags[CANARY_PERCENT_TAG])))
                except ValueError:
                    log.error("registry tag %s=%r is not a number; using the spec's %s %%", CANARY_PERCENT_TAG,
                              tags[CANARY_PERCENT_TAG], percent)  # fmt: skip
            new = Routing(**{a: models.get(a) for a in ALIASES}, canary_percent=percent)  # type: ignore[arg-type]
            changed = new.versions() != current.versions() or new.canary_percent != current.canary_percent
            if changed:
                self.routing = new  # one reference assignment: a request sees the old routing or the new one
                live = set(new.versions().values())
                self._cache = {v: m for v, m in self._cache.items() if v in live}
                log.info("routing now %s (canary %.1f %%)", new.versions(), new.canary_percent)
                if self.on_change is not None:
                    self.on_change(new)
            self.last_refresh = time.time()
            self.last_error = None
            return changed

    def start(self) -> None:
        """Load now (errors are reported, not raised) and keep refreshing in a daemon thread."""
        self._safe_refresh()
        self._thread = threading.Thread(target=self._loop, name="ativo-live-models", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as err:  # registry unreachable: keep serving what is loaded, say so on /health
            self.last_error = f"{type(err).__name__}: {err}"
            log.warning("cannot read the registry (%s); serving %s", err, self.routing.versions())

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self._safe_refresh()

    def status(self) -> dict[str, Any]:
        """What /health reports."""
        r = self.routing
        return {
            "versions": r.versions(),
            "canary_percent": r.canary_percent if r.canary is not None else 0.0,
            "last_refresh": self.last_refresh,
            "registry_error": self.last_error,
            "load_errors": dict(self.errors),
        }
