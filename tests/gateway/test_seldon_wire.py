"""`--wire seldon`: a producer and a consumer written as for Seldon Core 2's Kafka
interface (topics `seldon.<ns>.pipeline.<p>.inputs|outputs`, OIP protobuf payloads,
only the classes generated from the proto) round-trip through a tfsimple pipeline."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from tritonclient.grpc import service_pb2  # Seldon's clients use these very messages

from engine.wire.seldon import SeldonBridge
from tests.gateway.conftest import EXAMPLES, Stack

A = np.arange(1, 17, dtype=np.int32)


@pytest.fixture(scope="module")
def bridge(stack: Stack) -> Iterator[SeldonBridge]:
    running = SeldonBridge(stack.settings).start()
    try:
        yield running
    finally:
        running.close()


def wait_topics(bootstrap: str, *names: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + 60
    while not set(names) <= set(admin.list_topics(timeout=5).topics):
        assert time.monotonic() < deadline, f"the bridge never created {names}"
        time.sleep(0.2)


def answers(bootstrap: str, topic: str, keys: set[str]) -> dict[str, tuple[bytes, dict]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"seldon-client-{uuid.uuid4().hex}",
         "auto.offset.reset": "earliest", "session.timeout.ms": 6000}
    )  # fmt: skip
    consumer.subscribe([topic])
    found: dict[str, tuple[bytes, dict]] = {}
    deadline = time.monotonic() + 90
    try:
        while not keys <= set(found) and time.monotonic() < deadline:
            record = consumer.poll(0.5)
            if record is None or record.error() is not None:
                continue
            key = record.key().decode()
            if key in keys:
                found[key] = (record.value(), dict(record.headers() or ()))
    finally:
        consumer.close()
    return found


def test_a_seldon_client_round_trips_through_a_pipeline(stack: Stack, bridge) -> None:
    ns = stack.settings.namespace
    inputs, outputs = (f"seldon.{ns}.pipeline.tfsimples.{end}" for end in ("inputs", "outputs"))
    wait_topics(stack.settings.bootstrap, inputs, outputs)
    producer = Producer({"bootstrap.servers": stack.settings.bootstrap})
    good, bad = f"seldon-{uuid.uuid4().hex[:8]}", f"seldon-bad-{uuid.uuid4().hex[:8]}"
    request = service_pb2.ModelInferRequest(model_name="tfsimples", id=good)
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(A.tobytes())
    producer.produce(
        inputs, request.SerializeToString(), good, headers=[("pipeline", b"tfsimples")]
    )
    producer.produce(inputs, b"\xffnot protobuf", bad, headers=[("pipeline", b"tfsimples")])
    producer.flush(10)

    found = answers(stack.settings.bootstrap, outputs, {good, bad})
    value, headers = found[good]
    response = service_pb2.ModelInferResponse.FromString(value)
    assert headers["pipeline"] == b"tfsimples"
    assert response.model_name == "tfsimples" and response.id == good
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    got = np.frombuffer(response.raw_output_contents[0], dtype=np.int32)
    assert got.tolist() == (2 * A).tolist()
    # One bad record gets an answer naming the problem, and the stream goes on.
    value, headers = found[bad]
    refused = service_pb2.ModelInferResponse.FromString(value)
    assert "not a valid ModelInferRequest" in refused.parameters["error"].string_param
    assert headers["tensorflux-error"] == b"bad-input"


def test_up_with_wire_seldon_serves_seldon_clients(kafka_bootstrap: str) -> None:
    """The flag as users give it: `tensorflux up --wire seldon`, no gateway at all."""
    ns = f"wire{uuid.uuid4().hex[:8]}"
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "up", "-f", str(EXAMPLES), "--bootstrap", kafka_bootstrap,
         "--namespace", ns, "--no-gateway", "--wire", "seldon"],
        cwd=EXAMPLES.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        inputs, outputs = (f"seldon.{ns}.model.tfsimple1.{end}" for end in ("inputs", "outputs"))
        wait_topics(kafka_bootstrap, inputs, outputs)
        request = service_pb2.ModelInferRequest(model_name="tfsimple1")
        for name, values in (("INPUT0", A), ("INPUT1", A)):
            tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
            tensor.contents.int_contents.extend(values.tolist())
        producer = Producer({"bootstrap.servers": kafka_bootstrap})
        producer.produce(inputs, request.SerializeToString(), "wire-up-1")
        producer.flush(10)
        value, _ = answers(kafka_bootstrap, outputs, {"wire-up-1"})["wire-up-1"]
        response = service_pb2.ModelInferResponse.FromString(value)
        assert np.frombuffer(response.raw_output_contents[0], np.int32).tolist() == (2 * A).tolist()
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
