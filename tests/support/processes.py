"""Real processes for the tests that need several at once (leases, budgets, parallel trials, registry commits).

Each is forked from one server process per test worker that has imported the heavy libraries once: a spawned
process imports them again (2 to 4 s of CPU apiece, on 2 cores about a tenth of the suite's time went to it), while a
forked one starts from a process that has opened no database, holds no lock and started no thread — the state a
fresh process would have, which is what these tests rely on.
"""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.context import BaseContext

PRELOAD = [
    "pandas",
    "pyarrow.parquet",
    "sqlalchemy",
    "ativo.store.db",
    "ativo.compute.budget",
    "ativo.compute.leases",
    "ativo.compute.session",
    "ativo.data.features",
    "ativo.data.landing",
    "ativo.data.split",
    "ativo.train.search",
    "dvc.repo",
    # the tests' own modules, whose functions the processes run
    "tests.component.test_budget_concurrency",
    "tests.component.test_compute_session",
    "tests.component.test_leases",
    "tests.component.test_registry",
    "tests.model.test_search",
]
"""What the server imports before it forks: the union of what these tests' processes use (the server is started
once per test worker, by the first test that asks; a module missing here is imported by each process)."""


def context() -> BaseContext:
    """The ``forkserver`` context, with :data:`PRELOAD` imported by its server."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
