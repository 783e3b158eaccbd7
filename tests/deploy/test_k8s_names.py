"""The names in deploy/k8s agree with the code: consumer group, topics, ports, probe
paths, environment variables, specs and model roots. A rename on either side fails here."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from engine import health
from engine.cli import build_parser
from engine.config import ENV_PREFIX, KAFKA_ENV_PREFIX, KafkaSettings
from engine.gateway.app import create_app
from engine.gateway.catalog import StaticCatalog
from engine.runtime.worker import group_id
from engine.runtimes.roots import ROOTS_VARIABLE, ModelRoots
from engine.topology import compile_topology, load_text

from .manifests import (
    IMAGE_ROOT,
    OVERLAYS,
    ROOT,
    Object,
    container,
    environment,
    expand,
    find,
    kinds,
    render_overlay,
    render_with_component,
    workloads,
)

# The kafka scaler's trigger parameters in KEDA v2.16 (keda.sh docs, "Apache Kafka" scaler).
KEDA_KAFKA_PARAMETERS = {
    "bootstrapServers",
    "consumerGroup",
    "topic",
    "lagThreshold",
    "activationLagThreshold",
    "offsetResetPolicy",
    "allowIdleConsumers",
    "scaleToZeroOnInvalidOffset",
    "excludePersistentLag",
    "limitToPartitionsWithLag",
    "version",
    "partitionLimitation",
    "sasl",
    "tls",
    "unsafeSsl",
}
# Its authentication parameters (TriggerAuthentication), same source.
KEDA_KAFKA_AUTH_PARAMETERS = {
    "sasl",
    "username",
    "password",
    "tls",
    "ca",
    "cert",
    "key",
    "keyPassword",
}
# librdkafka's sasl.mechanism as KEDA's `sasl` parameter names it.
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
    "OAUTHBEARER": "oauthbearer",
    "GSSAPI": "gssapi",
}
# Variables the engine reads by name (engine/config.py KafkaSettings.load; model roots).
SETTINGS_VARIABLES = {
    ENV_PREFIX + field.upper()
    for field in ("bootstrap", "topic_prefix", "namespace", "partitions", "replication_factor")
} | {ROOTS_VARIABLE}


def settings_of(objects: list[Object]) -> KafkaSettings:
    config = find(objects, "ConfigMap", "tensorflux-config")["data"]
    return KafkaSettings.load(environ=config)


def kafka_triggers(objects: list[Object]) -> list[dict[str, str]]:
    return [t["metadata"] for s in kinds(objects, "ScaledObject") for t in s["spec"]["triggers"]]


def pipelines_loaded(objects: list[Object]) -> list[str]:
    specs = find(objects, "ConfigMap", "tensorflux-specs")["data"]
    return [name for text in specs.values() for name in load_text(text).pipelines]


def all_overlays(tmp_path: Path) -> dict[str, list[Object]]:
    found = {overlay: render_overlay(overlay) for overlay in OVERLAYS}
    found["prod+gateway-hpa"] = render_with_component(tmp_path, "prod", "gateway-hpa")
    return found


def test_the_autoscaler_watches_the_workers_consumer_group_and_topics(tmp_path: Path) -> None:
    checked = 0
    for overlay, objects in all_overlays(tmp_path).items():
        settings = settings_of(objects)
        inputs = {settings.topics().pipeline_inputs(p) for p in pipelines_loaded(objects)}
        for trigger in kafka_triggers(objects):
            assert set(trigger) <= KEDA_KAFKA_PARAMETERS, overlay
            assert trigger["consumerGroup"] == group_id(settings), overlay
            assert trigger["bootstrapServers"] == settings.bootstrap, overlay
            if "topic" in trigger:
                # Only where callers write counts while no worker runs.
                assert trigger["topic"] in inputs, (overlay, trigger["topic"], inputs)
            assert int(trigger["lagThreshold"]) > 0
            checked += 1
    assert checked >= 3  # base's, prod's, and the scale-to-zero topic trigger
    zero = render_overlay("prod-scale-to-zero")
    assert find(zero, "ScaledObject", "tensorflux-worker")["spec"]["minReplicaCount"] == 0
    assert any("topic" in t for t in kafka_triggers(zero))


def test_keda_authenticates_with_the_workers_secret_keys() -> None:
    objects = render_overlay("prod")
    (auth,) = kinds(objects, "TriggerAuthentication")
    scaled = find(objects, "ScaledObject", "tensorflux-worker")
    assert {t["authenticationRef"]["name"] for t in scaled["spec"]["triggers"]} == {
        auth["metadata"]["name"]
    }
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert set(refs) <= KEDA_KAFKA_AUTH_PARAMETERS
    # The Secret's keys are the workers' own variables: each means the same librdkafka key.
    for parameter, librdkafka_key in (("username", "sasl.username"), ("password", "sasl.password")):
        ref = refs[parameter]
        assert ref["name"] == "tensorflux-kafka"
        assert librdkafka_key in KafkaSettings.load(environ={ref["key"]: "x"}).librdkafka
    config = find(objects, "ConfigMap", "tensorflux-config")["data"]
    mechanism = KEDA_SASL[config["TENSORFLUX_KAFKA_SASL_MECHANISM"]]
    for trigger in kafka_triggers(objects):
        assert trigger["sasl"] == mechanism
        assert trigger["tls"] == "enable"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_tensorflux_variable_is_one_the_engine_reads(overlay: str) -> None:
    objects = render_overlay(overlay)
    seen = set()
    for workload in workloads(objects):
        for entry in workload["spec"]["template"]["spec"]["containers"]:
            seen |= {k for k in environment(objects, entry) if k.startswith(ENV_PREFIX)}
    assert SETTINGS_VARIABLES <= seen
    for name in seen - SETTINGS_VARIABLES:
        assert name.startswith(KAFKA_ENV_PREFIX), f"{name} is read by nothing"
        key = name[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")
        assert_librdkafka_knows(key, name)


def assert_librdkafka_knows(key: str, variable: str) -> None:
    """librdkafka itself says whether `key` is one of its settings."""
    try:
        Producer({"bootstrap.servers": "127.0.0.1:1", key: "x"})
    except KafkaException as error:
        # A known key may refuse the dummy value; an unknown one says so by name.
        assert "No such configuration property" not in str(error), f"{variable}: {error}"


def test_the_validators_of_names_can_fail() -> None:
    with pytest.raises(AssertionError, match="No such configuration property"):
        assert_librdkafka_knows("sasl.usernme", "TENSORFLUX_KAFKA_SASL_USERNME")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_specs_load_and_their_models_lie_in_the_workers_model_roots(overlay: str) -> None:
    objects = render_overlay(overlay)
    settings = settings_of(objects)
    worker = container(find(objects, "Deployment", "tensorflux-worker"), "worker")
    roots = environment(objects, worker)[ROOTS_VARIABLE]
    # The image holds the repository's examples/ at /app/examples (deploy/Dockerfile).
    in_repo = ModelRoots.of(
        ROOT / Path(root).relative_to(IMAGE_ROOT) for root in roots.split(":") if root
    )
    specs = find(objects, "ConfigMap", "tensorflux-specs")["data"]
    assert specs, "no specs to load"
    for name, text in specs.items():
        loaded = load_text(text, source=name)
        compile_topology(loaded, settings.topics())
        for model in loaded.models.values():
            path = ROOT / Path(model.storage_uri).relative_to(IMAGE_ROOT)
            assert path.is_dir(), f"{name}: {model.name}'s {model.storage_uri} is not in the image"
            assert in_repo.allows(path), f"{name}: {model.name} lies outside {roots}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_and_ports_are_the_ones_the_processes_serve(overlay: str) -> None:
    objects = render_overlay(overlay)
    gateway = container(find(objects, "Deployment", "tensorflux-gateway"), "gateway")
    routes = {r.path for r in create_app(KafkaSettings(), StaticCatalog()).routes}
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/v2/health/gateway" in routes
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/v2/health/live" in routes
    assert "/metrics" in routes
    worker_deployment = find(objects, "Deployment", "tensorflux-worker")
    worker = container(worker_deployment, "worker")
    assert worker["readinessProbe"]["httpGet"]["path"] == health.READY_PATH
    assert worker["livenessProbe"]["httpGet"]["path"] == health.LIVE_PATH
    assert worker["startupProbe"]["httpGet"]["path"] == health.LIVE_PATH
    ports = {p["name"]: p["containerPort"] for p in worker["ports"]}
    assert ports["health"] == health.DEFAULT_PORT
    args = worker["args"]
    assert int(args[args.index("--health-port") + 1]) == health.DEFAULT_PORT
    annotations = worker_deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == health.METRICS_PATH
    assert int(annotations["prometheus.io/port"]) == health.DEFAULT_PORT


def worker_args(objects: list[Object]) -> list[str]:
    worker = container(find(objects, "Deployment", "tensorflux-worker"), "worker")
    return expand(worker["args"], {"POD_NAME": "tensorflux-worker-abc12-xyz34"})


def without_health_port(args: list[str]) -> list[str]:
    at = args.index("--health-port")
    return args[:at] + args[at + 2 :]


def test_the_worker_command_is_a_tensorflux_worker_command() -> None:
    parser = build_parser()
    for overlay in OVERLAYS:
        args = parser.parse_args(without_health_port(worker_args(render_overlay(overlay))))
        assert args.handler.__name__ == "run_worker", overlay
        assert args.worker_id == "tensorflux-worker-abc12-xyz34"
        assert not args.files, "workers take their specs from the control topic (the Job)"


def test_the_worker_command_serves_health_on_the_probed_port() -> None:
    args = build_parser().parse_args(worker_args(render_overlay("prod")))
    assert args.health_port == health.DEFAULT_PORT


def test_the_gateway_hpa_scales_the_gateway_on_a_per_pod_rate(tmp_path: Path) -> None:
    objects = render_with_component(tmp_path, "prod", "gateway-hpa")
    (hpa,) = kinds(objects, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "tensorflux-gateway")
    assert "replicas" not in find(objects, "Deployment", "tensorflux-gateway")["spec"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "tensorflux_gateway_requests_per_second"
