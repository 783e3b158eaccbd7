"""deploy/k8s, checked offline: every overlay renders, every object validates (Kubernetes'
schemas, strict; KEDA's for its kinds), and what the manifests name agrees with the code."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

from engine.cli import build_parser
from engine.config import DEV_CONSUMER_DEFAULTS

from .manifests import (
    COMPONENTS,
    OVERLAYS,
    KedaSchemas,
    Object,
    container,
    containers,
    find,
    kinds,
    pod_spec,
    render_overlay,
    render_with_component,
    workloads,
)

# The oldest release with native sidecars on by default (the dev overlay's broker), and the newest
# kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
KEDA_KINDS = ("ScaledObject", "TriggerAuthentication")


def rendered() -> dict[str, list[Object]]:
    return {overlay: render_overlay(overlay) for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def keda() -> KedaSchemas:
    return KedaSchemas.load()


def kubernetes_problems(obj: Object, version: str) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{error.path}: {error.message}" if hasattr(error, "path") else str(error)
    return None


def keda_problems(obj: Object, keda: KedaSchemas) -> list[str]:
    validator = jsonschema.Draft202012Validator(keda.for_kind(obj["kind"]))
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(obj)
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_an_overlay_validates(overlay: str, keda: KedaSchemas) -> None:
    objects = render_overlay(overlay)
    assert {"Deployment", "Service", "PodDisruptionBudget", "Job", "ConfigMap"} <= {
        o["kind"] for o in objects
    }
    problems = []
    for obj in objects:
        where = f"{overlay}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] in KEDA_KINDS:
            problems += [f"{where}: {p}" for p in keda_problems(obj, keda)]
            continue
        for version in KUBERNETES_VERSIONS:
            problem = kubernetes_problems(obj, version)
            if problem:
                problems.append(f"{where} (Kubernetes {version}): {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_component_on_prod_renders_and_validates(
    component: str, tmp_path: Path, keda: KedaSchemas
) -> None:
    objects = render_with_component(tmp_path, "prod", component)
    for obj in objects:
        if obj["kind"] in KEDA_KINDS:
            assert not keda_problems(obj, keda), obj["metadata"]["name"]
        else:
            assert kubernetes_problems(obj, KUBERNETES_VERSIONS[-1]) is None, obj["kind"]


def test_the_validators_reject_a_misspelt_field(keda: KedaSchemas) -> None:
    # A check that cannot fail proves nothing: a typo in each kind of object is caught.
    objects = render_overlay("prod")
    deployment = copy.deepcopy(find(objects, "Deployment", "tensorflux-worker"))
    pod_spec(deployment)["terminationGracePeriod"] = 60
    assert kubernetes_problems(deployment, KUBERNETES_VERSIONS[-1]) is not None
    scaled = copy.deepcopy(find(objects, "ScaledObject", "tensorflux-worker"))
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    assert any("maxReplicas" in p for p in keda_problems(scaled, keda))
    scaled = copy.deepcopy(find(objects, "ScaledObject", "tensorflux-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 200  # KEDA wants strings
    assert keda_problems(scaled, keda)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_as_non_root_on_a_read_only_root_with_requests(overlay: str) -> None:
    objects = render_overlay(overlay)
    for workload in workloads(objects):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert spec["automountServiceAccountToken"] is False
        for entry in containers(workload):
            where = f"{workload['metadata']['name']}/{entry['name']}"
            context = entry["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            assert {"cpu", "memory"} <= set(entry["resources"]["requests"]), where
            assert "memory" in entry["resources"]["limits"], where
        # Python, onnxruntime and librdkafka may want a scratch directory: /tmp is one.
        mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
        assert "/tmp" in mounts, workload["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_services_select_the_pods_they_mean(overlay: str) -> None:
    objects = render_overlay(overlay)
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
        for d in kinds(objects, "Deployment")
    }

    def selected(selector: dict[str, str]) -> set[str]:
        return {name for name, labels in pods.items() if selector.items() <= labels.items()}

    budgets = {p["metadata"]["name"]: p for p in kinds(objects, "PodDisruptionBudget")}
    for name in ("tensorflux-worker", "tensorflux-gateway"):
        assert selected(budgets[name]["spec"]["selector"]["matchLabels"]) == {name}
        assert budgets[name]["spec"]["maxUnavailable"] == 1
    gateway = find(objects, "Service", "tensorflux-gateway")
    assert selected(gateway["spec"]["selector"]) == {"tensorflux-gateway"}
    for port in gateway["spec"]["ports"]:
        named = {
            p["name"]
            for p in container(find(objects, "Deployment", "tensorflux-gateway"), "gateway")[
                "ports"
            ]
        }
        assert port["targetPort"] in named


def test_dev_runs_one_of_each_with_the_broker_as_the_workers_sidecar() -> None:
    objects = render_overlay("dev")
    worker = find(objects, "Deployment", "tensorflux-worker")
    assert worker["spec"]["replicas"] == 1
    assert find(objects, "Deployment", "tensorflux-gateway")["spec"]["replicas"] == 1
    assert not kinds(objects, "ScaledObject"), "one broker per worker pod: dev must not scale"
    broker = container(worker, "broker")
    assert broker["restartPolicy"] == "Always"  # a native sidecar: up before the worker
    args = dict(zip(broker["args"][::2], broker["args"][1::2], strict=True))
    service = find(objects, "Service", "tensorflux-kafka")
    assert service["spec"]["clusterIP"] == "None"
    assert (
        service["spec"]["selector"].items()
        <= worker["spec"]["template"]["metadata"]["labels"].items()
    )
    port = service["spec"]["ports"][0]
    assert port["targetPort"] in {p["name"] for p in broker["ports"]}
    # What the broker advertises is the Service, and is what every client is told to use.
    advertised = args["--advertised-listener-url"].removeprefix("tcp://")
    assert advertised == f"{service['metadata']['name']}:{port['port']}"
    config = find(objects, "ConfigMap", "tensorflux-config")["data"]
    assert config["TENSORFLUX_BOOTSTRAP"] == advertised


def test_prod_reads_kafka_credentials_from_secrets() -> None:
    objects = render_overlay("prod")
    config = find(objects, "ConfigMap", "tensorflux-config")["data"]
    assert config["TENSORFLUX_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    for workload in workloads(objects):
        entry = pod_spec(workload)["containers"][0]
        secrets = [s["secretRef"] for s in entry["envFrom"] if "secretRef" in s]
        assert secrets == [{"name": "tensorflux-kafka", "optional": False}]
        mounts = {m["name"]: m["mountPath"] for m in entry["volumeMounts"]}
        assert config["TENSORFLUX_KAFKA_SSL_CA_LOCATION"].startswith(mounts["kafka-tls"] + "/")
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes["kafka-tls"]["secret"]["secretName"] == "tensorflux-kafka-tls"
    # No credential is written in the manifests.
    assert not kinds(objects, "Secret")
    assert not any("PASSWORD" in key for key in config)


def test_grace_periods_cover_each_components_shutdown() -> None:
    objects = render_overlay("prod")
    gateway = pod_spec(find(objects, "Deployment", "tensorflux-gateway"))
    pause = int(gateway["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
    # After the preStop pause, uvicorn's graceful shutdown takes up to 5 s.
    assert gateway["terminationGracePeriodSeconds"] >= pause + 5
    # A worker's flush before its last commit (30 s), then its producer and status flushes.
    worker = pod_spec(find(objects, "Deployment", "tensorflux-worker"))
    assert worker["terminationGracePeriodSeconds"] >= 30 + 10 + 10


def test_the_worker_and_gateway_commands_are_tensorflux_commands() -> None:
    parser = build_parser()
    for overlay, objects in rendered().items():
        gateway = container(find(objects, "Deployment", "tensorflux-gateway"), "gateway")
        args = parser.parse_args(gateway["args"])
        assert args.handler.__name__ == "run_gateway_command", overlay
        assert args.host == "0.0.0.0"
        ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
        assert (args.port, args.grpc_port) == (ports["http"], ports["grpc"]), overlay
        service = {p["name"]: p for p in find(objects, "Service", "tensorflux-gateway")["spec"]["ports"]}  # fmt: skip
        assert {"http", "grpc"} <= service.keys(), overlay  # both protocols reach the pods


def test_the_autoscaler_never_wants_more_workers_than_partitions() -> None:
    for overlay, objects in rendered().items():
        for scaled in kinds(objects, "ScaledObject"):
            config = find(objects, "ConfigMap", "tensorflux-config")["data"]
            spec = scaled["spec"]
            assert spec["scaleTargetRef"]["name"] == "tensorflux-worker"
            assert find(objects, "Deployment", "tensorflux-worker")
            assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
            assert spec["maxReplicaCount"] == int(config["TENSORFLUX_PARTITIONS"]), overlay
            for trigger in spec["triggers"]:
                assert trigger["type"] == "kafka"
                assert trigger["metadata"]["allowIdleConsumers"] == "false"
                assert (
                    trigger["metadata"]["offsetResetPolicy"]
                    == DEV_CONSUMER_DEFAULTS["auto.offset.reset"]
                )
