"""The Kubernetes shape (deploy/helm/) without `helm template`: each part is checked by what reads it.

Debian ships no helm and no reachable registry publishes the Airflow chart, so nothing renders the chart here.
Instead: the values
validate against deploy/helm/values.schema.json (the chart's own types for the keys Ativo sets); every airflow.cfg
option they set is one Airflow 3.3.2 and its Kubernetes provider know; the two pod templates become worker pods
through the provider's PodGenerator, the way the KubernetesExecutor builds them; the commands the chart runs are
ones this image has; and the values carry docker-compose.yaml's settings, so the two production shapes cannot
drift apart silently.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "deploy" / "helm"
VALUES = HELM / "values.yaml"
SCHEMA = HELM / "values.schema.json"
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
TEMPLATES = ("default", "gpu")
TASK_ARGS = ["python", "-m", "airflow.sdk.execution_time.execute_workload", "--json-string", "{}"]


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def dockerfile() -> tuple[str, dict[str, str], set[str]]:
    """The image's WORKDIR, its ENV and the directories it COPYs into the WORKDIR."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    [workdir] = re.findall(r"^WORKDIR\s+(\S+)", text, re.M)
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(re.findall(r"^ENV\s+(.*)$", text, re.M))))
    copied = {dst for src, dst in re.findall(r"^COPY\s+(\S+)\s+(\S+)$", text, re.M) if src == dst}
    return workdir, env, copied


def in_repo(image_path: str) -> Path:
    """The repository file that the image has at ``image_path`` (the Dockerfile COPYs its directory)."""
    workdir, _, copied = dockerfile()
    rel = PurePosixPath(image_path).relative_to(workdir)
    assert rel.parts[0] in copied, f"{image_path}: the Dockerfile does not copy {rel.parts[0]}/ into {workdir}"
    path = ROOT / rel
    assert path.is_file(), f"{image_path} is not in the image: {path} does not exist"
    return path


def template_path(name: str) -> str:
    """Where the image has the pod template ``name``: default from the values' config, gpu from the DAG code."""
    from ativo.airflow.compute import GPU_POD_TEMPLATE

    if name == "gpu":
        return GPU_POD_TEMPLATE
    return str(values()["config"]["kubernetes_executor"]["pod_template_file"])


def image() -> str:
    airflow = values()["images"]["airflow"]
    return f"{airflow['repository']}:{airflow['tag']}"


def compose_airflow_env() -> dict[str, str]:
    """docker-compose.yaml's x-airflow-common environment (anchors and merge keys resolved)."""
    return {k: str(v) for k, v in yaml.safe_load(COMPOSE.read_text())["x-airflow-common"]["environment"].items()}


def values_env() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The values' plain variables (name -> value) and secret ones (name -> (Secret, key))."""
    doc = values()
    plain = {e["name"]: e["value"] for e in doc["env"]}
    secret = {s["envName"]: (s["secretName"], s.get("secretKey", "value")) for s in doc["secret"]}
    return plain, secret


def cuda(spec):
    return spec.model_copy(update={"compute": spec.compute.model_copy(update={"device": "cuda", "pool": "gpu"})})


def worker_pod(executor_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """The pod the KubernetesExecutor would create for a task with ``executor_config``, under the values' config.

    The values' ``config`` becomes the executor's configuration (environment variables here, airflow.cfg in the
    cluster), with what the chart adds to it (the image, the namespace); image paths point at this repository.
    Then, as ``KubernetesExecutor.execute_async`` and ``_build_pod_request`` do: the executor_config's
    pod_template_file (else the configured one) is the base pod, and ``PodGenerator.construct_pod`` builds on it.
    """
    from airflow.providers.cncf.kubernetes.executors.kubernetes_executor_utils import get_base_pod_from_template
    from airflow.providers.cncf.kubernetes.kube_config import KubeConfig
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    doc = values()
    for section, options in doc["config"].items():
        for key, value in options.items():
            monkeypatch.setenv(f"AIRFLOW__{section.upper()}__{key.upper()}", str(value))
    airflow = doc["images"]["airflow"]
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_REPOSITORY", airflow["repository"])
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__WORKER_CONTAINER_TAG", airflow["tag"])
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE", "ativo")
    default = doc["config"]["kubernetes_executor"]["pod_template_file"]
    monkeypatch.setenv("AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE", str(in_repo(default)))
    executor_config = dict(executor_config)
    if "pod_template_file" in executor_config:
        executor_config["pod_template_file"] = str(in_repo(executor_config["pod_template_file"]))

    kube_config = KubeConfig()
    base = get_base_pod_from_template(executor_config.get("pod_template_file"), kube_config)
    assert base is not None and base.spec is not None, "the pod template did not deserialize into a pod"
    return PodGenerator.construct_pod(
        dag_id="adult_income__train",
        task_id="trials",
        pod_id="adult-income-train-trials",
        try_number=1,
        kube_image=kube_config.kube_image,
        date=None,
        args=TASK_ARGS,
        pod_override_object=PodGenerator.from_obj(executor_config),
        base_worker_pod=base,
        namespace=kube_config.kube_namespace,
        scheduler_job_id="1",
        run_id="manual__1",
        map_index=0,
        with_mutation_hook=True,
    )


# --- the values against the chart's types -----------------------------------------------------------------------


def test_values_validate_against_the_chart_schema_subset():
    from jsonschema import Draft7Validator

    schema = json.loads(SCHEMA.read_text())
    Draft7Validator.check_schema(schema)
    errors = [
        f"{'.'.join(map(str, e.absolute_path)) or '<top>'}: {e.message}"
        for e in Draft7Validator(schema).iter_errors(values())
    ]
    assert errors == []


def _rename(doc: dict[str, Any], path: tuple[str, ...], new: str) -> None:
    *parents, key = path
    for part in parents:
        doc = doc[part]
    doc[new] = doc.pop(key)


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "misspelt top-level key": (lambda v: _rename(v, ("executor",), "exectuor"), "exectuor"),
    "misspelt nested key": (lambda v: _rename(v, ("scheduler", "livenessProbe", "command"), "comand"), "comand"),
    "misspelt env field": (lambda v: v["env"][0].update(valeu=v["env"][0].pop("value")), "valeu"),
    "another executor": (lambda v: v.update(executor="CeleryExecutor"), "CeleryExecutor"),
    "unknown pull policy": (lambda v: v["images"]["airflow"].update(pullPolicy="Sometimes"), "Sometimes"),
    "a list in airflow.cfg": (lambda v: v["config"]["core"].update(dags_folder=["/a"]), "['/a']"),
}


@pytest.mark.parametrize("mutate,needle", BROKEN.values(), ids=BROKEN.keys())
def test_the_schema_catches_a_broken_values_file(mutate, needle):
    from jsonschema import Draft7Validator

    broken = copy.deepcopy(values())
    mutate(broken)
    messages = [e.message for e in Draft7Validator(json.loads(SCHEMA.read_text())).iter_errors(broken)]
    assert any(needle in m for m in messages), messages


def test_every_config_option_is_one_airflow_knows():
    from airflow.configuration import conf

    known = conf.configuration_description  # core's config.yml and every installed provider's
    assert "kubernetes_executor" in known, "the Kubernetes provider's configuration is not loaded"
    unknown, mistyped = [], []
    for section, options in values()["config"].items():
        for key, value in options.items():
            option = known.get(section, {}).get("options", {}).get(key)
            if option is None:
                unknown.append(f"[{section}] {key}")
            elif option.get("type") == "integer" and not re.fullmatch(r"-?\d+", str(value)):
                mistyped.append(f"[{section}] {key} = {value!r} (an integer)")
            elif option.get("type") == "float" and not re.fullmatch(r"-?\d+(\.\d*)?", str(value)):
                mistyped.append(f"[{section}] {key} = {value!r} (a number)")
            elif option.get("type") == "boolean" and str(value).lower() not in ("true", "false"):
                mistyped.append(f"[{section}] {key} = {value!r} (True or False)")
    assert unknown == [], f"options Airflow 3.3.2 does not have: {unknown}"
    assert mistyped == []


# --- the pod templates, as the KubernetesExecutor reads them ----------------------------------------------------


@pytest.mark.parametrize("name", TEMPLATES)
def test_pod_templates_become_worker_pods_of_the_values_image(name, spec, monkeypatch):
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator

    from ativo.airflow.compute import compute_kwargs

    # The executor merges its task container into the template's first one, and reads the task's log from the
    # container named `base`: the template's only container must have that name.
    template = PodGenerator.deserialize_model_file(str(in_repo(template_path(name))))
    assert [c.name for c in template.spec.containers] == ["base"]
    executor_config = compute_kwargs(cuda(spec) if name == "gpu" else spec).get("executor_config", {})
    assert executor_config.get("pod_template_file") == (template_path(name) if name == "gpu" else None)
    pod = worker_pod(executor_config, monkeypatch)
    [container] = pod.spec.containers
    assert container.name == "base"
    assert container.image == image() and container.args == TASK_ARGS
    assert pod.spec.restart_policy == "Never"
    assert pod.metadata.labels["kubernetes_executor"] == "True" and pod.metadata.namespace == "ativo"
    assert container.resources.requests["cpu"] and container.resources.requests["memory"]


def test_gpu_tasks_get_one_gpu_on_a_gpu_node(spec, monkeypatch):
    from ativo.airflow.compute import compute_kwargs

    pod = worker_pod(compute_kwargs(cuda(spec))["executor_config"], monkeypatch)
    [container] = pod.spec.containers
    assert str(container.resources.limits["nvidia.com/gpu"]) == "1"
    assert [(t.key, t.operator, t.effect) for t in pod.spec.tolerations] == [("nvidia.com/gpu", "Exists", "NoSchedule")]
    assert pod.spec.node_selector == {"nvidia.com/gpu.present": "true"}
    assert {e.name: e.value for e in container.env}["ATIVO_GPU_COUNT"] == "1"


def test_other_tasks_get_no_gpu(spec, monkeypatch):
    pod = worker_pod({}, monkeypatch)
    [container] = pod.spec.containers
    assert "nvidia.com/gpu" not in (container.resources.limits or {})
    assert not pod.spec.tolerations and not pod.spec.node_selector
    assert "ATIVO_GPU_COUNT" not in {e.name for e in container.env}


@pytest.mark.parametrize("name", TEMPLATES)
def test_pod_templates_carry_the_values_environment_and_volumes(name):
    doc = values()
    pod = yaml.safe_load(in_repo(template_path(name)).read_text())
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"] if "value" in e}
    secret = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container["env"]
        if "valueFrom" in e
    }
    plain, secrets = values_env()
    assert {k: env.get(k) for k in plain} == plain
    assert {k: secret.get(k) for k in secrets} == secrets
    assert container["image"] == image()

    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for volume in doc["volumes"]:
        assert volumes.get(volume["name"]) == volume
    for mount in doc["volumeMounts"]:
        assert mounts.get(mount["mountPath"]) == mount
    _, image_env, _ = dockerfile()
    logs, cfg = mounts[f"{image_env['AIRFLOW_HOME']}/logs"], mounts[f"{image_env['AIRFLOW_HOME']}/airflow.cfg"]
    assert volumes[logs["name"]]["persistentVolumeClaim"]["claimName"] == doc["logs"]["persistence"]["existingClaim"]
    assert doc["useStandardNaming"] and cfg["subPath"] == "airflow.cfg"
    assert volumes[cfg["name"]]["configMap"]["name"] == f"{doc['fullnameOverride']}-config"  # the chart's airflow.cfg


def test_a_cuda_spec_trials_carry_the_gpu_pool_and_template_through_dag_serialization(spec):
    from airflow.serialization.serialized_objects import DagSerialization

    from ativo.airflow.compute import GPU_POD_TEMPLATE
    from ativo.airflow.dags.train import build_train_dag

    dag = build_train_dag(cuda(spec))
    stored = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(dag))))
    for trial in (dag.task_dict["trials"], stored.task_dict["trials"]):
        assert trial.pool == "gpu"
        assert trial.executor_config == {"pod_template_file": GPU_POD_TEMPLATE}
    assert build_train_dag(spec).task_dict["trials"].executor_config == {}  # CPU trials: the default template
    in_repo(GPU_POD_TEMPLATE)


# --- what the chart runs in this image --------------------------------------------------------------------------


def airflow_commands(script: str) -> Iterator[list[str]]:
    """The ``airflow ...`` commands of a shell script (``a && b; c``), without env assignments and ``exec``."""
    for part in re.split(r"&&|;", script):
        words = shlex.split(part)
        while words and (re.fullmatch(r"\w+=\S*", words[0]) or words[0] == "exec"):
            words = words[1:]
        if words and words[0] == "airflow":
            yield words[1:]


def scripts() -> dict[str, str]:
    """Every shell script the values give the chart to run: probes, the migrate job, the log groomer."""
    doc, out = values(), {}
    for component in ("scheduler", "triggerer", "dagProcessor"):
        for probe in ("livenessProbe", "startupProbe"):
            if command := doc[component].get(probe, {}).get("command"):
                out[f"{component}.{probe}"] = command
        if args := doc[component].get("logGroomerSidecar", {}).get("args"):
            out[f"{component}.logGroomerSidecar"] = args
    out["migrateDatabaseJob"] = doc["migrateDatabaseJob"]["args"]
    for where, argv in out.items():
        assert argv[:2] in (["sh", "-c"], ["bash", "-c"]) and len(argv) == 3, f"{where}: {argv}"
    return {where: argv[2] for where, argv in out.items()}


def test_the_chart_runs_only_airflow_commands_this_image_has():
    from airflow.cli.cli_parser import get_parser

    found = scripts()
    assert {"scheduler.livenessProbe", "triggerer.livenessProbe", "dagProcessor.livenessProbe"} <= set(found)
    for where, script in found.items():
        # the chart's defaults call the apache/airflow image's scripts; this image is python:3.11-slim
        assert "/entrypoint" not in script and "/clean-logs" not in script, where
        for argv in airflow_commands(script):
            try:
                get_parser().parse_args(argv)
            except SystemExit:
                pytest.fail(f"{where}: `airflow {shlex.join(argv)}` is not an Airflow 3.3.2 command")
    probes = [list(airflow_commands(s)) for w, s in found.items() if "Probe" in w]
    assert all(cmds and cmds[0][:2] == ["jobs", "check"] for cmds in probes), probes


def test_the_migrate_job_imports_the_pools_file_of_the_image():
    imports = [argv for argv in airflow_commands(scripts()["migrateDatabaseJob"]) if argv[:2] == ["pools", "import"]]
    commands = list(airflow_commands(scripts()["migrateDatabaseJob"]))
    assert commands.index(["db", "migrate"]) < commands.index(imports[0])  # the pool table exists first
    pools = json.loads(in_repo(imports[0][2]).read_text())
    assert {"gpu", "cpu_train", "etl"} <= set(pools)
    assert pools["gpu"]["slots"] >= 1


def test_the_migrate_job_upgrades_the_platform_db():
    """`ativo db upgrade` (the platform DB's migrations) runs in the pre-upgrade hook, with the platform DB's URL."""
    from ativo.cli import build_parser

    commands = [words for part in re.split(r"&&|;", scripts()["migrateDatabaseJob"]) if (words := shlex.split(part))]
    assert [c for c in commands if c[0] == "ativo"] == [["ativo", "db", "upgrade"]]
    build_parser().parse_args(["db", "upgrade"])  # a command the CLI has
    assert "ATIVO_DB_URL" in {s["envName"] for s in values()["secret"]}  # every Airflow container, jobs too


def test_the_migrate_job_hands_ativo_the_airflow_password_on_the_shared_volume():
    """As compose's airflow-init: after the migration, the passwords file for every user and the admin's password in
    Ativo's settings file (ATIVO_HOME/ativo.env), both on the volume every pod mounts, before the API server starts."""
    from ativo.config import load_settings, settings_file

    steps = [step.split() for step in scripts()["migrateDatabaseJob"].split("&&")]
    assert ["python", "-m", "ativo.airflow.passwords"] in steps
    assert steps.index(["airflow", "db", "migrate"]) < steps.index(["python", "-m", "ativo.airflow.passwords"])
    doc, (plain, _) = values(), values_env()
    mounts = [PurePosixPath(m["mountPath"]) for m in doc["volumeMounts"]]
    home = load_settings({"ATIVO_HOME": plain["ATIVO_HOME"]}).home
    for path in (PurePosixPath(doc["config"]["core"]["simple_auth_manager_passwords_file"]), settings_file(home)):
        assert any(PurePosixPath(path).is_relative_to(m) for m in mounts), f"{path} is not on a shared volume"
    assert "ATIVO_AIRFLOW_PASSWORD" not in plain  # from the settings file the job writes


def test_the_values_match_the_image():
    doc = values()
    _, env, _ = dockerfile()
    core = doc["config"]["core"]
    assert (core["dags_folder"], core["plugins_folder"]) == (
        env["AIRFLOW__CORE__DAGS_FOLDER"],
        env["AIRFLOW__CORE__PLUGINS_FOLDER"],
    )
    requirements = (ROOT / "requirements.txt").read_text()
    assert f"\napache-airflow=={doc['airflowVersion']}\n" in requirements
    assert re.search(r"^apache-airflow-providers-cncf-kubernetes==", requirements, re.M), "no KubernetesExecutor"
    assert doc["executor"] == "KubernetesExecutor" and not doc["dags"]["gitSync"]["enabled"]


# --- the same platform as docker-compose.yaml ---------------------------------------------------------------------

# docker-compose's Airflow settings that the chart sets from a value of its own (that value, which must be set).
CHART_SETS = {
    "AIRFLOW__CORE__EXECUTOR": ("executor",),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": ("data", "metadataSecretName"),
    "AIRFLOW__API_AUTH__JWT_SECRET": ("jwtSecretName",),
    "AIRFLOW__CORE__FERNET_KEY": ("fernetKeySecretName",),
    "AIRFLOW__API__SECRET_KEY": ("apiSecretKeySecretName",),
    "AIRFLOW__METRICS__STATSD_ON": ("statsd", "enabled"),
    "AIRFLOW__METRICS__STATSD_HOST": ("statsd", "enabled"),
    "AIRFLOW__METRICS__STATSD_PORT": ("statsd", "enabled"),
    "AIRFLOW__METRICS__STATSD_PREFIX": ("statsd", "enabled"),
}
CELERY_ONLY = {"AIRFLOW__CELERY__RESULT_BACKEND", "AIRFLOW__CELERY__BROKER_URL"}
# Set on both shapes, to a different value by design: Kubernetes Service names. (The passwords file is at one path on
# both, on the shared volume; Ativo's tasks read the admin password from ATIVO_HOME/ativo.env, never from that file.)
DIFFERENT = {"AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "ATIVO_AIRFLOW_URL"}


def test_the_values_set_every_ativo_setting_docker_compose_sets():
    compose = compose_airflow_env()
    plain, secret = values_env()
    ours = set(plain) | set(secret)
    ativo = {name for name in compose if name.startswith("ATIVO_")}
    assert ativo and {n for n in ours if n.startswith("ATIVO_")} == ativo
    others = {name for name in compose if not name.startswith(("ATIVO_", "AIRFLOW__"))}  # AWS_, MLFLOW_, AIRFLOW_CONN_
    assert others - ours == set()
    changed = {n: (compose[n], plain[n]) for n in plain.keys() & compose.keys() - DIFFERENT if plain[n] != compose[n]}
    assert changed == {}, "the values set a compose setting to another value: (compose, values)"


def test_the_values_set_every_airflow_setting_docker_compose_sets():
    doc, compose = values(), compose_airflow_env()
    missing, changed = [], {}
    for name, value in compose.items():
        if not name.startswith("AIRFLOW__") or name in CELERY_ONLY:
            continue
        if name in CHART_SETS:
            where: Any = doc
            for key in CHART_SETS[name]:
                where = where.get(key) if isinstance(where, dict) else None
            if not where:
                missing.append(f"{name} (the chart sets it from {'.'.join(CHART_SETS[name])}, which is not set)")
            continue
        _, section, key = name.lower().split("__", 2)
        ours = doc["config"].get(section, {}).get(key)
        if ours is None:
            missing.append(f"{name} ([{section}] {key})")
        elif name not in DIFFERENT and str(ours).lower() != value.lower():
            changed[name] = (value, ours)
    assert missing == []
    assert changed == {}, "the values set a compose setting to another value: (compose, values)"


def test_statsd_maps_metrics_as_the_compose_exporter_does():
    """The chart renders ``mappings:`` only: the file's ``defaults`` must be written into its timer mappings."""
    doc = yaml.safe_load((ROOT / "deploy" / "statsd" / "mapping.yml").read_text())
    expected = []
    for mapping in doc["mappings"]:
        mapping = dict(mapping)
        if mapping.get("match_metric_type") == "observer" and mapping.get("action") != "drop":
            for key, default in doc["defaults"].items():
                mapping.setdefault(key, default)
        expected.append(mapping)
    statsd = values()["statsd"]
    assert statsd["enabled"]
    assert statsd["overrideMappings"] == expected, "deploy/statsd/mapping.yml and values.yaml's statsd mappings differ"
