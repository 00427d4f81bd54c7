"""The Dask cluster a ``compute.engine: dask`` spec runs on: one ``distributed.Client`` per process and cluster.

The cluster is the scheduler at ``ATIVO_DASK_SCHEDULER`` when set, else a ``LocalCluster`` of the spec's
``compute.dask`` shape, started once per process and closed when the process ends. Training on it is
:mod:`ativo.train.distributed`; reading a dataset version's sample on it is :mod:`ativo.data.training`.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any

from ativo.config import Settings
from ativo.errors import AtivoError
from ativo.spec import ModelSpec

log = logging.getLogger(__name__)


class DaskTrainingError(AtivoError):
    """The cluster could not be reached or the data could not be read for distributed training."""


WORKER_WAIT_S = 120.0
"""How long training waits for a standing scheduler's first worker before it fails saying so."""

_CLIENTS: dict[str, Any] = {}
_CLUSTERS: dict[str, Any] = {}  # the LocalCluster each local client runs on
_LOCK = threading.Lock()


def require_dask() -> None:
    """Check that Dask is installed, which ``compute.engine: dask`` needs and a plain install of Ativo leaves out.

    Raises:
        DaskTrainingError: ``dask`` or ``distributed`` is missing; the message says to install the ``dask`` extra.
    """
    import importlib.util

    missing = [m for m in ("dask", "distributed") if importlib.util.find_spec(m) is None]
    if missing:
        raise DaskTrainingError(
            f"compute.engine dask needs {' and '.join(missing)}, which are not installed: "
            "install Ativo's dask extra (pip install 'ativo[dask]') on the workers that train"
        )


def client_for(spec: ModelSpec, settings: Settings) -> Any:
    """A ``distributed.Client`` on the settings' scheduler, else on this process's ``LocalCluster`` (started once).

    Raises:
        DaskTrainingError: Dask is not installed, or the scheduler named by ``ATIVO_DASK_SCHEDULER`` does not answer.
    """
    require_dask()
    from distributed import Client, LocalCluster

    shape = spec.compute.dask
    key = settings.dask_scheduler or f"local:{shape.workers}x{shape.threads_per_worker}:{shape.memory_limit}"
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is not None and client.status == "running":
            return client
        if settings.dask_scheduler:
            try:
                client = Client(settings.dask_scheduler, timeout="30s", set_as_default=False)
            except OSError as err:
                raise DaskTrainingError(
                    f"compute.engine dask: the scheduler ATIVO_DASK_SCHEDULER="
                    f"{settings.dask_scheduler} does not answer: {err}"
                ) from None
            try:
                client.wait_for_workers(1, timeout=WORKER_WAIT_S)
            except TimeoutError:
                client.close()
                raise DaskTrainingError(
                    f"compute.engine dask: the scheduler {settings.dask_scheduler} has had no "
                    f"worker for {WORKER_WAIT_S:.0f} s; start `dask worker "
                    f"{settings.dask_scheduler}` on a host that reads the DVC remote"
                ) from None
        else:
            local_dir = settings.home / "dask"
            local_dir.mkdir(parents=True, exist_ok=True)
            cluster = LocalCluster(
                n_workers=shape.workers,
                threads_per_worker=shape.threads_per_worker,
                memory_limit=shape.memory_limit,
                processes=True,
                dashboard_address=None,
                worker_dashboard_address=None,
                local_directory=str(local_dir),
                silence_logs=logging.WARNING,
            )
            client = Client(cluster, set_as_default=False)
            _CLUSTERS[key] = cluster
            log.info(
                "dask: started a LocalCluster of %d worker(s) x %d thread(s), %s each",
                shape.workers,
                shape.threads_per_worker,
                shape.memory_limit,
            )
        _CLIENTS[key] = client
        return client


def close_clients() -> None:
    """Close every client (and the LocalCluster it started) of this process."""
    with _LOCK:
        for key, client in _CLIENTS.items():
            client.close()
            if key in _CLUSTERS:
                _CLUSTERS.pop(key).close()
        _CLIENTS.clear()


atexit.register(close_clients)
