"""The versions a server keeps live, as the platform's signed promotion records say, and how a request is routed.

A background thread reads the newest valid promotion record of the spec's model (:func:`ativo.model.registry.current`:
``champion``, ``canary``, ``shadow``, ``previous``, each with its model file's sha256 and decision policy's sha256,
and the canary share) every ``refresh_s`` seconds, loads any version it does not hold yet (native file, checked
against the *record's* sha256, never unpickled), and only then swaps in a new immutable :class:`Routing`. A request
reads the routing once and keeps that object to the end, so a move never drops or fails a request in flight, and a
version that fails to load never replaces one that serves.

MLflow's aliases and tags are not read to route: a change made there directly (an alias moved or deleted, the
canary tag, a policy or dataset tag rewritten) is ignored, the server keeps the authorized routing, and on-call is
paged once per distinct difference ("registry tampering: …"; ``/health`` shows it too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ativo.hashing import bucket
from ativo.model.artifact import load_with_policy
from ativo.model.registry import CANARY_PERCENT_TAG, LIVE, Authorized, Routed
from ativo.model.served import ServedModel
from ativo.spec import ModelSpec

if TYPE_CHECKING:
    from ativo.config import Settings

log = logging.getLogger(__name__)

ALIASES = LIVE
__all__ = ["ALIASES", "CANARY_PERCENT_TAG", "LiveModels", "Routing", "routes_to_canary"]
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
    """Keeps the versions the signed promotion records route for one spec loaded and current.

    Args:
        spec: the model spec.
        settings: where the platform DB (the records), its key and the MLflow registry (the files) are.
        refresh_s: how often the records are read again.
        watch_s: how often MLflow is compared with them (at least every ``refresh_s``).
        loader: loads a version given what the record says of it (a test may count calls).
        page: called with a message when MLflow differs from the signed routing (default: the on-call webhook).
    """

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        refresh_s: float = 2.0,
        loader: Callable[..., ServedModel] | None = None,
        page: Callable[[str], None] | None = None,
        watch_s: float = 10.0,
    ) -> None:
        self.spec = spec
        self.settings = settings
        self.tracking_uri = settings.mlflow_tracking_uri
        self.refresh_s = refresh_s
        self.routing = Routing()
        self.errors: dict[str, str] = {}  # version → why it could not be loaded
        self._failed_at: dict[str, float] = {}  # version → when; retried after RETRY_LOAD_S (a transient S3 error)
        self.last_refresh: float | None = None
        self.last_error: str | None = None
        self.tampering: list[str] = []  # how MLflow differs from the signed routing now
        self._paged: tuple[str, ...] = ()
        self._seen: tuple[str, ...] = ()
        self.watch_s = max(watch_s, refresh_s)
        self._watched_at = 0.0
        self._loader = loader or self._load
        self._page = page or self._page_oncall
        self._cache: dict[tuple[str, str, str | None], ServedModel] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.on_change: Callable[[Routing], None] | None = None

    def _load(self, spec: ModelSpec, tracking_uri: str, routed: Routed) -> ServedModel:
        return load_with_policy(
            spec,
            tracking_uri,
            routed.version,
            expected_sha256=routed.model_sha256,
            policy_uri=routed.decision_policy_uri,
            policy_sha256=routed.decision_policy_sha256,
        )

    def authorized(self) -> Authorized:
        """The routing the newest valid signed promotion record authorizes."""
        from ativo.model.registry import current

        return current(self.spec, self.settings)

    def refresh(self) -> bool:
        """Read the signed routing, load what is new, swap the routing; returns whether anything changed."""
        with self._lock:
            authorized = self.authorized()
            models: dict[str, ServedModel | None] = {}
            for alias, routed in authorized.routes.items():
                key = (routed.version, routed.model_sha256, routed.decision_policy_sha256)
                model = self._cache.get(key)
                if model is None and time.time() - self._failed_at.get(routed.version, 0.0) > RETRY_LOAD_S:
                    try:
                        model = self._loader(self.spec, self.tracking_uri, routed)
                    except Exception as err:  # a bad version must never take down the ones that serve
                        self.errors[routed.version] = f"{type(err).__name__}: {err}"
                        self._failed_at[routed.version] = time.time()
                        log.error("cannot load %s version %s (%s): %s", self.spec.name, routed.version, alias, err)
                    else:
                        self._cache[key] = model
                        self.errors.pop(routed.version, None)
                        log.info("loaded %s version %s as %s", self.spec.name, routed.version, alias)
                models[alias] = model
            current = self.routing
            still_routed = {r.version for r in authorized.routes.values()}
            if (
                models.get("champion") is None
                and current.champion is not None
                and "champion" in authorized.routes
                and current.champion.version in still_routed
            ):
                # The new champion failed to load: keep serving the old one while the record still routes it (as
                # previous); one an erasure switch replaced is never served again (503 rather than erased data).
                models["champion"] = current.champion
            percent = authorized.canary_percent
            percent = self.spec.deploy.canary_percent if percent is None else min(100.0, max(0.0, float(percent)))
            new = Routing(**{a: models.get(a) for a in ALIASES}, canary_percent=percent)  # type: ignore[arg-type]
            changed = new.versions() != current.versions() or new.canary_percent != current.canary_percent
            if changed:
                self.routing = new  # one reference assignment: a request sees the old routing or the new one
                live = {m.version for m in (getattr(new, a) for a in ALIASES) if m is not None}
                self._cache = {k: m for k, m in self._cache.items() if k[0] in live}
                log.info("routing now %s (canary %.1f %%)", new.versions(), new.canary_percent)
                if self.on_change is not None:
                    self.on_change(new)
            self.last_refresh = time.time()
            self.last_error = None
        if changed or time.time() - self._watched_at >= self.watch_s:
            self._watched_at = time.time()
            self._watch_registry(authorized)
        return changed

    def _watch_registry(self, authorized: Authorized) -> None:
        """Compare MLflow with the signed routing; page once for each new set of differences.

        A difference counts when two checks in a row find it: a move signs its record first and mirrors MLflow a
        moment later, and a server that looks in between must not page.
        """
        from ativo.model.registry import drift

        try:
            found = tuple([*authorized.invalid, *drift(self.spec, self.settings, authorized)])
        except Exception as err:  # MLflow down: serving goes on from the records; nothing to compare
            log.warning("cannot compare the registry with the signed routing: %s", err)
            return
        seen, self._seen = self._seen, found
        if found and found != seen:
            self._watched_at = 0.0  # look again at the next refresh, not a whole watch interval later
            return
        self.tampering = list(found)
        if found and found != self._paged:
            message = (
                f"registry tampering: {self.spec.registered_model_name} in MLflow differs from what the "
                f"platform authorized; still serving {authorized.aliases() or 'nothing'} — " + "; ".join(found)
            )
            log.error("%s", message)
            try:
                self._page(message)
            except Exception:  # the page is best effort; the log line and /health stand
                log.exception("could not page on-call about registry tampering")
        self._paged = found

    def _page_oncall(self, message: str) -> None:
        import os

        from ativo.paging import bounded, oncall_url_from_env, post_webhook, with_runbook

        url = oncall_url_from_env(dict(os.environ))
        if url:
            kind = {"kind": "registry_tampering", "model": self.spec.registered_model_name}
            post_webhook(url, bounded(with_runbook({"text": message, "ativo": kind}, self.settings.link_url)))

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
            "registry_tampering": list(self.tampering),
            "load_errors": dict(self.errors),
        }
