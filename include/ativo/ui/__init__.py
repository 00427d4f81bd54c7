"""The Ativo page: what it shows (views) and how (html), with no Airflow import."""
