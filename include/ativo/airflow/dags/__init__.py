"""DAG builders, one module per DAG family, called by the thin files in ``dags/`` for every valid spec.

:mod:`~ativo.airflow.dags.common` decides every family's DAG arguments (:func:`~ativo.airflow.dags.common.dag_kwargs`)
and lists the valid specs; :mod:`~ativo.airflow.dags.etl`, :mod:`~ativo.airflow.dags.train`,
:mod:`~ativo.airflow.dags.deploy`, :mod:`~ativo.airflow.dags.reconcile` and :mod:`~ativo.airflow.dags.monitor` each
build one family (the erasure DAG is :mod:`ativo.airflow.erasure`). Task bodies import the heavy libraries they
need; at module level these modules import Airflow's SDK and a few light Ativo modules (the spec, the settings, the
names, the compute operators, the on-call notifier), not the data, training or evaluation stack.
"""
