"""Development tooling, not part of the library a user imports.

- :mod:`devtools.launcher`: `make run` / `make stop` (``python -m devtools up|down|status``);
- :mod:`devtools.supervisor`: the embedded platform's processes (start, PID files, stop);
- :mod:`devtools.airflow_api`: the Airflow REST client the launcher and the tests use;
- :mod:`devtools.lifecycle`: the demo lifecycle `make run` drives;
- :mod:`devtools.banner`: the summary printed at the end of `make run`;
- :mod:`devtools.harness`: a throw-away real platform for tests and benchmarks;
- :mod:`devtools.loadgen`: a keep-alive HTTP load generator (127.0.0.1 only);
- :mod:`devtools.alert_sink`: a webhook that writes on-call pages to a file (the local stand-in for Slack).
"""
