"""Experiments through real HTTP: a worker serving add10/mul10 on the embedded broker,
a gateway whose catalog holds experiments over them."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient

from engine import headers as h
from engine.codec import avro_headers, decode_avro, encode_avro
from engine.config import KafkaSettings
from engine.gateway import ControlCatalog, ExperimentInfo, StaticCatalog, create_app
from engine.messages import InferenceMessage, Tensor
from engine.runtime.control import ControlPlane
from engine.runtime.worker import Worker
from engine.topology import TopicNames, compile_topology, load_files
from tests.gateway.conftest import EXAMPLES
from tests.gateway.test_experiment_routing import FakeRouter

README = (EXAMPLES.parent / "README.md").read_text()

EXPERIMENTS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: to-add}
spec:
  candidates: [{name: add10, weight: 1}, {name: mul10, weight: 0}]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: to-mul}
spec:
  candidates: [{name: add10, weight: 0}, {name: mul10, weight: 1}]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: mirrored}
spec:
  candidates: [{name: add10, weight: 1}]
  mirror: {name: mul10, percent: 100}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: calls-to-mul}
spec:
  steps: [{name: to-mul}]  # a step may name an experiment as its model
  output: {steps: [to-mul]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata: {name: add10-copy}
spec: {storageUri: EXAMPLES/models/add10}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: copy-split}
spec:  # splits add10-copy's own endpoint, over HTTP and on Kafka
  default: add10-copy
  candidates: [{name: add10-copy, weight: 1}, {name: mul10, weight: 1}]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: adds}
spec:
  steps: [{name: add10}]
  output: {steps: [add10]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: muls}
spec:
  steps: [{name: mul10}]
  output: {steps: [mul10]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: adds-or-muls}
spec:  # splits the adds pipeline's own endpoint, over HTTP and on Kafka
  resourceType: pipeline
  default: adds
  candidates: [{name: adds, weight: 1}, {name: muls, weight: 1}]
"""

BODY = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
ROUTE = "x-seldon-route"
FOUR = np.array([1, 2, 3, 4], dtype=np.float32)
ADDED, MULTIPLIED = [11.0, 12.0, 13.0, 14.0], [10.0, 20.0, 30.0, 40.0]


@pytest.fixture(scope="module")
def gateway_url(
    stack_settings: KafkaSettings,
    start_gateway: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    specs = tmp_path_factory.mktemp("experiments")
    (specs / "experiments.yaml").write_text(EXPERIMENTS.replace("EXAMPLES", str(EXAMPLES)))
    topics = TopicNames(stack_settings.topic_prefix, stack_settings.namespace)
    models = [EXAMPLES / "models" / f"{name}.yaml" for name in ("add10", "mul10")]
    readme_example = EXAMPLES / "experiments"
    topology = compile_topology(load_files([*models, readme_example, specs]), topics)
    worker = Worker(stack_settings)
    worker.apply(topology)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        url = start_gateway(StaticCatalog.from_topology(topology, topics))
        # Warm up: the worker's first group join takes seconds.
        reply = httpx.post(f"{url}/v2/models/add10/infer", json=BODY, timeout=30)
        assert reply.status_code == 200, reply.text
        yield url
    finally:
        stop.set()
        thread.join(15)


def infer(url: str, path: str, **kwargs: object) -> httpx.Response:
    reply = httpx.post(f"{url}{path}", json=BODY, timeout=30, **kwargs)
    assert reply.status_code == 200, reply.text
    return reply


def output(reply: httpx.Response) -> list[float]:
    return reply.json()["outputs"][0]["data"]


@pytest.mark.parametrize(
    ("experiment", "route", "expected"),
    [("to-add", "add10", ADDED), ("to-mul", "mul10", MULTIPLIED)],
)
def test_weight_zero_gets_no_traffic(gateway_url, experiment, route, expected) -> None:
    for path in (f"/v2/models/{experiment}/infer", f"/v2/models/{experiment}.experiment/infer"):
        for _ in range(3):
            reply = infer(gateway_url, path)
            assert reply.headers["x-seldon-route"] == route
            assert reply.json()["model_name"] == route
            assert output(reply) == expected


def test_a_mirror_gets_a_copy_with_the_same_request_id(
    gateway_url, stack_settings: KafkaSettings
) -> None:
    request_id = f"mirror-{uuid.uuid4().hex}"
    reply = infer(gateway_url, "/v2/models/mirrored/infer", headers={"x-request-id": request_id})
    assert reply.headers["x-seldon-route"] == "add10"
    assert output(reply) == ADDED  # the mirror's answer never reaches the caller
    topic = TopicNames(stack_settings.topic_prefix, stack_settings.namespace).model_inputs("mul10")
    assert request_id in keys_on(stack_settings, topic, request_id)


@pytest.mark.parametrize(
    ("path", "sent_back", "expected"),
    [
        ("/v2/models/copy-split/infer", ":mul10_1:", MULTIPLIED),
        ("/v2/models/copy-split/infer", ":add10-copy_3:", ADDED),
        ("/v2/pipelines/adds/infer", ":muls.pipeline:", MULTIPLIED),
    ],
)
def test_a_route_sent_back_in_seldons_spelling_keeps_its_candidate(
    gateway_url, path, sent_back, expected
) -> None:
    # Seldon Core 2 answers `x-seldon-route: :mul10_1:` (name_version between colons,
    # NAME.pipeline for a pipeline), and its clients send that back to stay sticky. On a
    # 50/50 split, eight requests all on one side happen by chance once in 128.
    for _ in range(8):
        assert output(infer(gateway_url, path, headers={ROUTE: sent_back})) == expected


def test_a_pipeline_step_naming_an_experiment_calls_its_candidate(gateway_url) -> None:
    reply = infer(gateway_url, "/v2/pipelines/calls-to-mul/infer")
    assert output(reply) == MULTIPLIED  # to-mul sends everything to mul10


def test_the_gateways_choice_for_a_default_is_not_split_again(gateway_url) -> None:
    seen = set()
    for _ in range(12):
        reply = infer(gateway_url, "/v2/models/add10-copy/infer")
        route = reply.headers[ROUTE]
        seen.add(route)
        assert output(reply) == (ADDED if route == "add10-copy" else MULTIPLIED), route
    assert seen <= {"add10-copy", "mul10"}


def test_requests_produced_to_a_defaults_kafka_inputs_are_split_as_over_http(
    gateway_url, stack_settings: KafkaSettings
) -> None:
    topics = TopicNames(stack_settings.topic_prefix, stack_settings.namespace)
    ids = [f"kafka-split-{n}" for n in range(8)]  # the module's namespace is its own
    producer = Producer(stack_settings.producer_config())
    for rid in ids:
        message = InferenceMessage(rid, (Tensor.from_array("INPUT", FOUR),), "request")
        producer.produce(
            topics.model_inputs("add10-copy"),
            encode_avro(message),
            rid,
            headers=avro_headers(message),
        )
    producer.flush(10)
    answers = records_on(stack_settings, topics.model_outputs("add10-copy"), set(ids))
    # Each answer, where the Kafka caller of add10-copy waits, says the route it took.
    routes = {rid: h.header_value(answers[rid].headers(), ROUTE) for rid in ids}
    # By weight, drawn from the request id (crc32): these ids fall on both, as computed.
    assert routes == {
        rid: "add10-copy" if zlib.crc32(rid.encode()) % 2 == 0 else "mul10" for rid in ids
    }
    assert set(routes.values()) == {"add10-copy", "mul10"}
    for rid in ids:
        data = decode_avro(answers[rid].value(), "response").tensors[0].data.tolist()
        assert data == (ADDED if routes[rid] == "add10-copy" else MULTIPLIED), rid


def test_requests_produced_to_a_default_pipelines_inputs_are_split_as_over_http(
    gateway_url, stack_settings: KafkaSettings
) -> None:
    for _ in range(6):  # over HTTP: the gateway's choice, not split again by the worker
        reply = infer(gateway_url, "/v2/pipelines/adds/infer")
        assert output(reply) == (ADDED if reply.headers[ROUTE] == "adds" else MULTIPLIED)
    topics = TopicNames(stack_settings.topic_prefix, stack_settings.namespace)
    ids = [f"pipeline-split-{n}" for n in range(8)]
    producer = Producer(stack_settings.producer_config())
    for rid in ids:
        message = InferenceMessage(rid, (Tensor.from_array("INPUT", FOUR),), "request")
        producer.produce(
            topics.pipeline_inputs("adds"), encode_avro(message), rid, headers=avro_headers(message)
        )
    producer.flush(10)
    answers = records_on(stack_settings, topics.pipeline_outputs("adds"), set(ids))
    chosen = {rid: "adds" if zlib.crc32(rid.encode()) % 2 == 0 else "muls" for rid in ids}
    assert set(chosen.values()) == {"adds", "muls"}
    for rid in ids:
        data = decode_avro(answers[rid].value(), "response").tensors[0].data.tolist()
        assert data == (ADDED if chosen[rid] == "adds" else MULTIPLIED), rid
        if chosen[rid] == "muls":  # an answer relayed from another candidate names it
            assert h.header_value(answers[rid].headers(), ROUTE) == "muls"


def records_on(
    settings: KafkaSettings, topic: str, wanted: set[str], within_s: float = 20.0
) -> dict:
    """The first record of each wanted key on `topic`, read from its start."""
    consumer = Consumer(settings.consumer_config(f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: dict = {}
        deadline = time.monotonic() + within_s
        while not wanted <= set(found) and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.1):
                if message.error() is None and message.key():
                    found.setdefault(message.key().decode(), message)
        assert wanted <= set(found), f"no answer on {topic} for {sorted(wanted - set(found))}"
        return found
    finally:
        consumer.close()


def keys_on(settings: KafkaSettings, topic: str, wanted: str, within_s: float = 20.0) -> set[str]:
    """Record keys on `topic` from its start, until `wanted` shows up or time runs out."""
    consumer = Consumer(settings.consumer_config(f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        keys: set[str] = set()
        deadline = time.monotonic() + within_s
        while wanted not in keys and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.1):
                if message.error() is None and message.key():
                    keys.add(message.key().decode())
        return keys
    finally:
        consumer.close()


def test_the_readme_experiment_example_answers_what_it_says(gateway_url) -> None:
    path, body = re.search(
        r"curl -si -X POST http://127.0.0.1:9000(\S+) .*?-d '(.*?)'\n# -> x-seldon-route",
        README.replace("\\\n", " "),
        flags=re.S,
    ).groups()
    # Sticky: sending the route back keeps the caller on that candidate.
    for route, expected in (("add10", ADDED), ("mul10", MULTIPLIED)):
        reply = httpx.post(
            f"{gateway_url}{path}",
            content=body,
            headers={"content-type": "application/json", "x-seldon-route": route},
            timeout=30,
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-seldon-route"] == route
        assert output(reply) == expected


def test_the_control_catalog_follows_experiments(kafka_bootstrap: str) -> None:
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"cc{uuid.uuid4().hex[:10]}", partitions=1
    )
    plane = ControlPlane(settings)
    models = [str(EXAMPLES / "models" / f"{name}.yaml") for name in ("add10", "mul10")]
    plane.load([*models, str(EXAMPLES / "experiments")])
    catalog = ControlCatalog(settings)
    try:
        assert catalog.experiment_names() == ["add-or-mul"]
        assert catalog.experiment("add-or-mul") == ExperimentInfo(
            "add-or-mul", "model", (("add10", 50), ("mul10", 50))
        )
        # No worker reported yet: the candidates are Pending, so the experiment is not active.
        app = create_app(settings, catalog, router=FakeRouter())  # type: ignore[arg-type]
        with TestClient(app) as client:
            reply = client.post("/v2/models/add-or-mul/infer", json=BODY)
        assert reply.status_code == 503
        assert "model 'add10' (Pending), model 'mul10' (Pending)" in reply.json()["error"]
    finally:
        catalog.close()
        plane.close()


def test_infer_sticky_stays_on_the_first_answers_candidate(gateway_url, capsys) -> None:
    from engine.cli import main

    def routes(*flags: str) -> list[str]:
        capsys.readouterr()
        argv = ["model", "infer", "add-or-mul", json.dumps(BODY), "--url", gateway_url,
                "-i", "12", "--show-headers", *flags]  # fmt: skip
        assert main(argv) == 0
        err = capsys.readouterr().err
        return [line.split(": ", 1)[1] for line in err.splitlines() if line.startswith(ROUTE)]

    sticky = routes("-s")
    assert len(sticky) == 12 and len(set(sticky)) == 1, sticky
    pinned = routes("--header", f"{ROUTE}=mul10")
    assert set(pinned) == {"mul10"}
