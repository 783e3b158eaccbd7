"""Experiments through real HTTP: a worker serving add10/mul10 on the embedded broker,
a gateway whose catalog holds experiments over them."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient

from engine.config import KafkaSettings
from engine.gateway import ControlCatalog, ExperimentInfo, StaticCatalog, create_app
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
"""

BODY = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
ROUTE = "x-seldon-route"
ADDED, MULTIPLIED = [11.0, 12.0, 13.0, 14.0], [10.0, 20.0, 30.0, 40.0]


@pytest.fixture(scope="module")
def gateway_url(
    stack_settings: KafkaSettings,
    start_gateway: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    specs = tmp_path_factory.mktemp("experiments")
    (specs / "experiments.yaml").write_text(EXPERIMENTS)
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
    settings = KafkaSettings(bootstrap=kafka_bootstrap, namespace=f"cc{uuid.uuid4().hex[:10]}")
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
