"""The compose file and Kubernetes manifests parse, and every image, port, path, command and
setting they name matches the code (Settings fields, queue names, model repository, layout)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.metrics import RQ_QUEUE_PREFIX
from earthsignature.models.repository import SHIPPED
from earthsignature.queue.stages import QUEUES, parse_queues
from earthsignature.settings import ENV_PREFIX, Settings, load_settings
from earthsignature.storage import layout
from tests.infra.conftest import INFRA, K8S, ROOT, load_all

PROJECT_IMAGE = "earthsignature:0.1.0"
COMPOSE_SERVICES = {
    "minio",
    "minio-init",
    "redis",
    "triton",
    "api",
    "worker-cpu",
    "worker-gpu",
    "scheduler",
    "rq-dashboard",
}
#: Keys a compose service may use here (a subset of the Compose Specification's service keys).
SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "environment", "ports", "volumes",
    "depends_on", "healthcheck", "deploy", "restart", "shm_size",
}  # fmt: skip
TRITON_IMAGE = re.compile(r"^nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3$")
TRITON_GRPC_PORT = 8001  # the official image's gRPC port


def aliases() -> set[str]:
    """Unprefixed environment names Settings accepts (REDIS_URL, TRITON_URL)."""
    out = set()
    for field in Settings.model_fields.values():
        choices = getattr(field.validation_alias, "choices", [])
        out |= {c for c in choices if isinstance(c, str) and not c.startswith(ENV_PREFIX)}
    return out


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings as a process started with ``env`` would load them (raises when invalid)."""
    unknown = [
        k for k in env if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower()
        not in Settings.model_fields
    ]  # fmt: skip
    assert not unknown, f"not Settings fields: {unknown}"
    assert not {k for k in env if not k.startswith(ENV_PREFIX)} - aliases()
    fields = {k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(ENV_PREFIX)}
    for alias in aliases() & set(env):
        fields[alias.lower()] = env[alias]
    return load_settings(**fields)


def interpolate(value: Any) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR:?message}`` with no variables set."""
    text = str(value)
    text = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)
    return re.sub(r"\$\{\w+:\?[^}]*\}", "test-secret", text)


def earthsig_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("image") == PROJECT_IMAGE}


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict)
    return {k: interpolate(v) for k, v in env.items()}


def by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def check_earthsig_args(args: list[str]) -> None:
    """The arguments parse as the `earthsig` command line (without running the command)."""
    command = cli.commands.get(args[0])
    assert command is not None, f"no earthsig command {args[0]!r}"
    command.make_context(args[0], list(args[1:]))


# --- compose ------------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed here",
)
def test_docker_compose_config_accepts_the_file() -> None:
    done = subprocess.run(
        ["docker", "compose", "-f", str(INFRA / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        env={"MINIO_ROOT_PASSWORD": "x", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr


def test_compose_structure(compose: dict[str, Any]) -> None:
    assert set(compose) <= {"name", "services", "volumes", "networks"} | {
        k for k in compose if k.startswith("x-")
    }
    assert set(compose["services"]) == COMPOSE_SERVICES
    for name, service in compose["services"].items():
        assert set(service) <= SERVICE_KEYS, f"{name}: {set(service) - SERVICE_KEYS}"
        assert "image" in service, name
        for port in service.get("ports", []):
            assert re.fullmatch(r"\d+:\d+", port), f"{name}: port {port!r}"
        for dep in service.get("depends_on", {}):
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (INFRA / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in compose["volumes"], f"{name}: undeclared volume {source}"


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} names no tag"
    assert TRITON_IMAGE.match(compose["services"]["triton"]["image"])
    assert set(earthsig_services(compose)) == {"api", "worker-cpu", "worker-gpu", "scheduler"}
    build = compose["services"]["api"]["build"]
    assert (INFRA / build["context"] / build["dockerfile"]).resolve() == INFRA / "Dockerfile"


@pytest.mark.parametrize("service", ["api", "worker-cpu", "worker-gpu", "scheduler"])
def test_compose_settings_are_real_and_valid(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    settings = settings_from_env(service_env(spec))
    check_earthsig_args(spec["command"])
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.store == "s3://earthsig" and settings.s3_endpoint == "http://minio:9000"
    assert settings.metrics_port and settings.log_format == "json"
    if service == "api":
        assert spec["ports"] == [f"{settings.api_port}:{settings.api_port}"]


def test_compose_workers_cover_every_queue_and_gpu_uses_triton(compose: dict[str, Any]) -> None:
    services = compose["services"]
    queues: list[str] = []
    for name in ("worker-cpu", "worker-gpu"):
        command = services[name]["command"]
        queues += parse_queues(command[command.index("--queues") + 1])
    assert sorted(queues) == sorted(QUEUES)  # each queue exactly once
    gpu = settings_from_env(service_env(services["worker-gpu"]))
    assert gpu.triton_url == f"triton:{TRITON_GRPC_PORT}"
    assert "triton" in services["worker-gpu"]["depends_on"]
    assert settings_from_env(service_env(services["worker-cpu"])).triton_url is None


def test_compose_triton_serves_the_model_repository(compose: dict[str, Any]) -> None:
    triton = compose["services"]["triton"]
    mounts = dict(v.split(":")[:2] for v in triton["volumes"])
    by_target = {target: (INFRA / source).resolve() for source, target in mounts.items()}
    assert by_target["/repository"] == SHIPPED
    assert by_target["/gpu-configs"] == INFRA / "triton"
    script = triton["command"][0]
    assert "--model-repository=/models" in script and "/gpu-configs/" in script
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    model = load_settings().model_name
    assert (INFRA / "triton" / model / "config.pbtxt").is_file()


def test_compose_redis_persists_and_minio_gets_bucket_and_lifecycle(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    script = services["minio-init"]["command"][0]
    bucket = settings_from_env(service_env(services["api"])).store.removeprefix("s3://")
    assert f"mc mb --ignore-existing local/{bucket}" in script
    assert f"mc ilm import local/{bucket}" in script
    assert services["minio-init"]["volumes"] == [
        "./minio/lifecycle.json:/etc/earthsig/lifecycle.json:ro"
    ]
    dashboard = services["rq-dashboard"]
    assert dashboard["environment"]["RQ_DASHBOARD_REDIS_URL"] == "redis://redis:6379/0"


# --- store lifecycle ----------------------------------------------------------------------


def test_lifecycle_expires_exactly_the_work_prefix() -> None:
    rules = json.loads((INFRA / "minio" / "lifecycle.json").read_text())["Rules"]
    assert len(rules) == 1 and rules[0]["Status"] == "Enabled"
    assert rules[0]["Filter"]["Prefix"] == f"{layout.WORK}/"
    assert rules[0]["Expiration"]["Days"] >= 1
    # a work key of a real product lives under the prefix; nothing else does
    key = layout.work_prefix("S2A_MSIL2A_20260301T105031_N0510_R051_T31TCJ_20260301T140001", "r1")
    assert key.startswith(rules[0]["Filter"]["Prefix"])
    for other in (layout.CATALOG, layout.RAW, layout.SEGMENTATIONS, layout.RECORDS):
        assert not f"{other}/".startswith(rules[0]["Filter"]["Prefix"])


# --- Kubernetes ---------------------------------------------------------------------------


def test_manifests_are_well_formed(manifests: list[dict[str, Any]]) -> None:
    listed = set(
        load_all(K8S / "kustomization.yaml")[0]["resources"]
    )  # every manifest file is part of the kustomization
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    seen = set()
    for doc in manifests:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "earthsignature"
        ident = (doc["kind"], doc["metadata"]["name"])
        assert ident not in seen, f"duplicate {ident}"
        seen.add(ident)
    for deployment in [
        *by_kind(manifests, "Deployment").values(),
        *by_kind(manifests, "StatefulSet").values(),
    ]:
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]


def k8s_env(manifests: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment: its ConfigMap/Secret refs and env entries."""
    config_maps, secrets = by_kind(manifests, "ConfigMap"), by_kind(manifests, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]]["stringData"])
    env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
    return env


def project_containers(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: c
        for name, d in by_kind(manifests, "Deployment").items()
        for c in d["spec"]["template"]["spec"]["containers"]
        if c["image"] == PROJECT_IMAGE
    }


def test_k8s_settings_are_real_and_valid(manifests: list[dict[str, Any]]) -> None:
    containers = project_containers(manifests)
    assert set(containers) == {"api", "scheduler"} | {f"worker-{q}" for q in QUEUES}
    for name, container in containers.items():
        settings = settings_from_env(k8s_env(manifests, container))
        check_earthsig_args(container["args"])
        assert settings.redis_url and settings.store.startswith("s3://")
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        if name != "scheduler":
            assert ports["metrics"] == settings.metrics_port, name
        if name == "api":
            assert ports["grpc"] == settings.api_port


def test_k8s_one_worker_deployment_per_queue_scaled_by_keda(
    manifests: list[dict[str, Any]],
) -> None:
    deployments = by_kind(manifests, "Deployment")
    scaled = by_kind(manifests, "ScaledObject")
    covered = []
    for name, scaler in scaled.items():
        target = deployments[scaler["spec"]["scaleTargetRef"]["name"]]
        args = target["spec"]["template"]["spec"]["containers"][0]["args"]
        queues = parse_queues(args[args.index("--queues") + 1])
        assert len(queues) == 1, name
        trigger = scaler["spec"]["triggers"][0]
        assert trigger["type"] == "redis"
        # KEDA watches the very list RQ pushes the queue's job ids to
        assert trigger["metadata"]["listName"] == f"{RQ_QUEUE_PREFIX}{queues[0]}"
        assert int(trigger["metadata"]["listLength"]) >= 1
        assert 0 <= scaler["spec"]["minReplicaCount"] <= scaler["spec"]["maxReplicaCount"]
        redis_host = trigger["metadata"]["address"]
        env = k8s_env(manifests, target["spec"]["template"]["spec"]["containers"][0])
        assert settings_from_env(env).redis_url == f"redis://{redis_host}/0"
        covered += queues
    assert sorted(covered) == sorted(QUEUES)


def test_k8s_triton_has_a_gpu_and_the_infer_workers_reach_it(
    manifests: list[dict[str, Any]],
) -> None:
    triton = by_kind(manifests, "Deployment")["triton"]["spec"]["template"]["spec"]
    server = triton["containers"][0]
    assert TRITON_IMAGE.match(server["image"])
    assert int(server["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert "--model-repository=/models" in server["args"]
    init = triton["initContainers"][0]
    assert init["image"] == PROJECT_IMAGE and "SHIPPED" in init["args"][0]
    assert "/opt/earthsig/triton/" in init["args"][0]  # where the Dockerfile puts the configs
    service = by_kind(manifests, "Service")["triton"]
    grpc_port = {p["name"]: p["port"] for p in service["spec"]["ports"]}["grpc"]
    assert grpc_port == TRITON_GRPC_PORT
    infer = project_containers(manifests)["worker-infer"]
    assert settings_from_env(k8s_env(manifests, infer)).triton_url == (
        f"triton.earthsignature.svc:{grpc_port}"
    )
    for other in QUEUES:
        if other != "infer":
            worker = project_containers(manifests)[f"worker-{other}"]
            assert settings_from_env(k8s_env(manifests, worker)).triton_url is None


def test_k8s_api_service_and_minio_lifecycle(manifests: list[dict[str, Any]]) -> None:
    service = by_kind(manifests, "Service")["api"]
    assert service["spec"]["selector"] == {"app": "api"}
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    settings = settings_from_env(k8s_env(manifests, project_containers(manifests)["api"]))
    assert ports["grpc"]["port"] == settings.api_port
    lifecycle = by_kind(manifests, "ConfigMap")["minio-lifecycle"]["data"]["lifecycle.json"]
    assert json.loads(lifecycle) == json.loads((INFRA / "minio" / "lifecycle.json").read_text())
    redis_args = by_kind(manifests, "StatefulSet")["redis"]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    assert redis_args[redis_args.index("--appendonly") + 1] == "yes"


# --- image --------------------------------------------------------------------------------


def test_dockerfile_copies_real_paths_and_exposes_the_ports() -> None:
    text = (INFRA / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    exposed = {int(p) for line in text.splitlines() if line.startswith("EXPOSE ") for p in
               line.split()[1:]}  # fmt: skip
    assert Settings().api_port in exposed
    assert int(load_all(K8S / "settings.yaml")[0]["data"]["EARTHSIG_METRICS_PORT"]) in exposed
    assert 'ENTRYPOINT ["earthsig"]' in text
    assert CliRunner().invoke(cli, ["--help"]).exit_code == 0


def test_env_example_names_every_required_compose_variable() -> None:
    required = set(re.findall(r"\$\{(\w+):\?", (INFRA / "compose.yaml").read_text()))
    example = {
        line.split("=")[0]
        for line in (INFRA / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    assert required and required <= example


def test_rendered_paths_point_into_the_repository() -> None:
    assert SHIPPED.is_relative_to(ROOT) and (INFRA / "triton" / "render.py").is_file()
    assert Path(SHIPPED).is_dir()
