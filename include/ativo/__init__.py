"""Ativo: an Airflow-native MLOps platform where models are assets of the product."""

__version__ = "0.1.0"
