"""The local platform behind `make run`: development tooling, kept in the repository, never in the wheel or the image.

- :mod:`ativo_dev.launcher`: `make run` / `make stop` / `make status`
  (``python -m ativo_dev up|down|status|env|watch``);
- :mod:`ativo_dev.supervisor`: the embedded platform's processes (start, PID files, restart, stop) and the settings
  it hands the library (``var/ativo.env``);
- :mod:`ativo_dev.ports`: the loopback ports of its services;
- :mod:`ativo_dev.pg`: the embedded PostgreSQL behind Airflow's metadata DB;
- :mod:`ativo_dev.watchdog`: restarts a dead or hung component and pages on-call;
- :mod:`ativo_dev.lifecycle`: the demo lifecycle `make run` drives; :mod:`ativo_dev.demo_drift` and
  :mod:`ativo_dev.demo_erasure`: `make demo-drift` / `make demo-erasure`;
- :mod:`ativo_dev.banner`: the summary printed at the end of `make run`;
- :mod:`ativo_dev.statsd_bridge`: StatsD → Prometheus where no statsd-exporter runs;
- :mod:`ativo_dev.loadgen`, :mod:`ativo_dev.wrk`: HTTP load generators (127.0.0.1 only);
- :mod:`ativo_dev.faultproxy`: a loopback TCP proxy that can take its upstream down (fault tests).

The alert sink it starts is the library's (:mod:`ativo.ops.alert_sink`); the tests' and benchmarks' fixtures are in
``tests/support``.
"""
