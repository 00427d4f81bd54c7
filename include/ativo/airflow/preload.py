"""What Airflow's forkserver imports once (``[core] mp_forkserver_preload=ativo.airflow.preload``).

The libraries of :mod:`ativo.airflow.warm`, plus Airflow's task runner and Ativo's DAG builders and operators, so that a
task process forked from a LocalExecutor worker starts with all of them imported: each trial task used to spend
about 1.5 s importing and filling caches before its first useful line.
"""

from __future__ import annotations

import airflow.sdk.execution_time.task_runner  # noqa: F401

import ativo.airflow.compute  # noqa: F401
import ativo.airflow.dags.deploy  # noqa: F401
import ativo.airflow.dags.etl  # noqa: F401
import ativo.airflow.dags.monitor  # noqa: F401
import ativo.airflow.dags.reconcile  # noqa: F401
import ativo.airflow.dags.train  # noqa: F401
import ativo.airflow.notifier  # noqa: F401
import ativo.airflow.warm  # noqa: F401
