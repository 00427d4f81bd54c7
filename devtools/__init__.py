"""Development tooling, not part of the library a user imports.

- :mod:`devtools.launcher`: `make run` / `make stop` / `make status` (``python -m devtools up|down|status|env|watch``);
- :mod:`devtools.supervisor`: the embedded platform's processes (start, PID files, restart, stop);
- :mod:`devtools.pg`: the embedded PostgreSQL behind Airflow's metadata DB;
- :mod:`devtools.watchdog`: restarts a dead or hung component and pages on-call;
- :mod:`devtools.lifecycle`: the demo lifecycle `make run` drives;
- :mod:`devtools.banner`: the summary printed at the end of `make run`;
- :mod:`devtools.harness`: a throw-away real platform for tests and benchmarks;
- :mod:`devtools.loadgen`: a keep-alive HTTP load generator (127.0.0.1 only);
- :mod:`devtools.alert_sink`: a webhook that writes on-call pages to a file (the local stand-in for Slack).
"""
