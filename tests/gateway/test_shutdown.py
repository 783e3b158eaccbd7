"""Graceful shutdown (issue 18): SIGTERM to `tensorflux up` with a request in flight.

The request in flight gets its answer, one sent during the grace gets a 503 in the
OIP JSON error shape, the log has no traceback, and the worker committed the offset
of what it answered. A request nobody answers within the grace gets a 503 then.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from tritonclient.grpc import service_pb2, service_pb2_grpc

from engine.admin import watermark_offsets
from engine.broker import free_port
from engine.config import KafkaSettings
from engine.gateway import StaticCatalog, run_gateway
from engine.runtime.worker import group_id
from engine.topology import compile_topology, load_files
from tests.gateway.conftest import wait_ready

pytestmark = pytest.mark.broker

GRACE_S = 5.0
"""Long enough for the gRPC call made during it, whatever the load."""

NAP_MODEL = """
from pathlib import Path
import time

import numpy as np


class Model:
    def predict(self, inputs):
        Path(__file__).with_name("started").touch()
        time.sleep(float(np.asarray(inputs["SECONDS"]).ravel()[0]))
        return dict(inputs)
"""

NAP_SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: nap
spec:
  storageUri: ./nap
  requirements: [python]
"""


def _nap(seconds: float) -> dict:
    return {"inputs": [{"name": "SECONDS", "datatype": "FP32", "shape": [1], "data": [seconds]}]}


def _specs(directory: Path) -> Path:
    (directory / "nap").mkdir()
    (directory / "nap" / "model.py").write_text(NAP_MODEL)
    (directory / "nap.yaml").write_text(NAP_SPECS)
    return directory / "nap" / "started"


def _produced(settings: KafkaSettings, topic: str) -> int:
    """Records on every partition of `topic` (0 while it does not exist yet)."""
    consumer = Consumer(settings.consumer_config("shutdown-probe"))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(watermark_offsets(consumer, TopicPartition(topic, p))[1] for p in partitions)
    finally:
        consumer.close()


def _committed(settings: KafkaSettings, topic: str) -> int:
    """Committed offsets summed over every partition (one never committed counts 0)."""
    consumer = Consumer(settings.consumer_config(group_id(settings)))
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        wanted = [TopicPartition(topic, p) for p in partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(wanted, timeout=10))
    finally:
        consumer.close()


def test_sigterm_answers_in_flight_requests_and_refuses_new_ones(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    started = _specs(tmp_path)
    namespace = f"stop{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=kafka_bootstrap, namespace=namespace, partitions=1)
    port = free_port()
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "up", "-f", str(tmp_path), "--bootstrap", kafka_bootstrap,
             "--namespace", namespace, "--http-port", str(port), "--shutdown-grace", "20"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, timeout_s=60)
        answers: list[httpx.Response] = []
        in_flight = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v2/models/nap/infer", json=_nap(2.0), timeout=60)
            )
        )
        in_flight.start()
        deadline = time.monotonic() + 60
        while not started.exists():  # the model is answering it now
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        refused = None
        while refused is None:  # until the signal has arrived, requests are still served
            reply = httpx.post(f"{url}/v2/models/nap/infer", json=_nap(0.0), timeout=60)
            if reply.status_code != 200:
                refused = reply
        assert refused.status_code == 503, refused.text
        assert "shutting down" in refused.json()["error"]
        in_flight.join(60)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["outputs"][0]["data"] == [2.0]
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    text = log.read_text()
    assert "Traceback" not in text and "CancelledError" not in text, text
    topic = settings.topics().model_inputs("nap")
    assert _committed(settings, topic) == _produced(settings, topic)


def test_a_request_unanswered_within_the_grace_gets_503(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """No worker serves this namespace: the request waits until the grace is up, and
    a gRPC call during the grace is refused UNAVAILABLE."""
    _specs(tmp_path)
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"grace{uuid.uuid4().hex[:8]}", partitions=1
    )
    topics = settings.topics()
    catalog = StaticCatalog.from_topology(compile_topology(load_files([tmp_path]), topics), topics)
    port, grpc_port, stop = free_port(), free_port(), threading.Event()
    gateway = threading.Thread(
        target=run_gateway,
        args=(settings, catalog, "127.0.0.1", port, stop),
        kwargs={"shutdown_grace_s": GRACE_S, "grpc_port": grpc_port},
    )
    gateway.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url)
        answers: list[httpx.Response] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v2/models/nap/infer", json=_nap(0.0), timeout=60)
            )
        )
        waiting.start()
        deadline = time.monotonic() + 30
        while _produced(settings, topics.model_inputs("nap")) == 0:  # it waits for its reply
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop.set()
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while stub.ServerReady(service_pb2.ServerReadyRequest(), timeout=10).ready:
                time.sleep(0.02)  # until the drain has begun
            with pytest.raises(grpc.RpcError) as refused:
                stub.ModelInfer(service_pb2.ModelInferRequest(model_name="nap"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in refused.value.details()
        waiting.join(60)
        assert answers and answers[0].status_code == 503, answers and answers[0].text
        assert f"grace {GRACE_S:g}s" in answers[0].json()["error"]
    finally:
        stop.set()
        gateway.join(30)
    assert not gateway.is_alive()
