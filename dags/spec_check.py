"""Spec check (Airflow DAG parsing): fails with one clear message naming each invalid spec file and field.

The DAG families skip invalid specs so the valid ones keep loading; this file makes the problem visible as an
import error in the Airflow UI ("Broken DAG") and in `airflow dags list-import-errors`.
"""

from ativo.airflow.dags.common import raise_for_invalid_specs

raise_for_invalid_specs()
