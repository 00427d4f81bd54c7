"""Test support shared by the tests and the benchmarks (``bench/``): not part of the library, never in the wheel.

- :mod:`tests.support.harness`: a throw-away real platform (Airflow, MLflow, `ativo serve`) and registered models;
- :mod:`tests.support.serve_fork`: `ativo serve` processes forked from a parent that has imported what a server imports;
- :mod:`tests.support.scenarios`: the data and models a test and a benchmark both set up.
"""
