"""Ativo as an Airflow provider: what ``airflow providers list`` shows and the connection form offers.

Airflow calls :func:`get_provider_info` through the package's ``apache_airflow_provider`` entry point. It names the
connection types of the platform DB, MLflow and the inference API with their hooks (:mod:`ativo.airflow.hooks`),
and the operators, triggers and notifier the DAGs use. The Ativo page is a plugin, registered by its own
``airflow.plugins`` entry point (:mod:`ativo.airflow.plugin`), not listed here: Airflow would load it a second
time from the provider and record the duplicate as a plugin import error. Nothing is imported here but the version:
Airflow imports the classes named only when it needs them.
"""

from __future__ import annotations

from typing import Any

import ativo

INTEGRATION = "Ativo"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata in the shape of Airflow's ``provider_info.schema.json``."""
    return {
        "package-name": "ativo",
        "name": "Ativo",
        "description": "Airflow-native MLOps: models as assets of the product (training, gates, serving, drift, "
        "erasure), on the Airflow a team already runs.",
        "versions": [ativo.__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["ativo.airflow.compute", "ativo.airflow.erasure"],
            }
        ],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["ativo.airflow.triggers"]}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["ativo.airflow.hooks"]}],
        "connection-types": [
            {
                "connection-type": "ativo_db",
                "hook-class-name": "ativo.airflow.hooks.AtivoDatabaseHook",
                "hook-name": "Ativo platform DB",
            },
            {
                "connection-type": "ativo_mlflow",
                "hook-class-name": "ativo.airflow.hooks.MlflowHook",
                "hook-name": "Ativo MLflow",
            },
            {
                "connection-type": "ativo_inference",
                "hook-class-name": "ativo.airflow.hooks.InferenceApiHook",
                "hook-name": "Ativo inference API",
            },
        ],
        "notifications": ["ativo.airflow.notifier.WebhookFailureNotifier"],
    }
