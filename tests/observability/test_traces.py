"""One trace per request, exported over OTLP to a real receiver (gRPC and HTTP/protobuf).

A worker and the gateway run on the embedded broker with tracing configured by
the OTEL_* variables. One request through `tfsimples-join` (three steps, the
third joins the first two) must give one trace: the gateway's span, under it a
span per step (the join's with a join wait, each with its model call) and the
output's. A request produced straight to Kafka with a traceparent hangs its
steps from the producer's span.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine import headers as h
from engine.broker import free_port
from engine.codec import avro_headers, encode_avro
from engine.config import KafkaSettings
from engine.gateway import StaticCatalog, run_gateway
from engine.messages import InferenceMessage, Tensor
from engine.observability import tracing
from engine.runtime.worker import Worker
from engine.topology import TopicNames, compile_topology, load_files
from tests.gateway.conftest import ONES_TO_16, tensors, wait_ready
from tests.observability.otlp_receiver import GrpcReceiver, HttpReceiver, ReceivedSpan

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PIPELINE = "tfsimples-join"
STEPS = ("tfsimple1", "tfsimple2", "tfsimple3")


class Stack:
    def __init__(self, url: str, settings: KafkaSettings, topics: TopicNames, receiver) -> None:
        self.url, self.settings, self.topics, self.receiver = url, settings, topics, receiver
        self.grpc_target = ""


@pytest.fixture(scope="module", params=["grpc", "http/protobuf"])
def stack(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[Stack]:
    receiver = (GrpcReceiver() if request.param == "grpc" else HttpReceiver()).start()
    request.addfinalizer(receiver.stop)
    request.addfinalizer(tracing.shutdown)  # other tests run with tracing off
    tracing.configure(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol,
            "OTEL_SERVICE_NAME": "tensorflux-test",
        }
    )
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"tr{uuid.uuid4().hex[:10]}", partitions=1
    )
    topics = TopicNames(settings.topic_prefix, settings.namespace)
    topology = compile_topology(load_files([str(EXAMPLES)]), topics)
    worker = Worker(settings)
    worker.apply(topology)
    stop = threading.Event()
    threads = [threading.Thread(target=worker.run, args=(stop,), daemon=True)]
    port = free_port()
    catalog = StaticCatalog.from_topology(topology, topics)
    threads.append(
        threading.Thread(
            target=run_gateway,
            args=(settings, catalog, "127.0.0.1", port, stop),
            kwargs={"timeout_s": 30.0, "grpc_port": (grpc_port := free_port())},
            daemon=True,
        )
    )
    for thread in threads:
        thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        infer(url)  # warm up: the worker's first group join takes seconds
        served = Stack(url, settings, topics, receiver)
        served.grpc_target = f"127.0.0.1:{grpc_port}"
        yield served
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)


def infer(url: str, request_id: str | None = None) -> httpx.Response:
    headers = {h.REQUEST_ID: request_id} if request_id else {}
    reply = httpx.post(
        f"{url}/v2/pipelines/{PIPELINE}/infer",
        json=tensors(ONES_TO_16, ONES_TO_16),
        headers=headers,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply


def spans_of(spans: list[ReceivedSpan], request_id: str) -> list[ReceivedSpan]:
    """The request's spans: those naming it, and their children."""
    named = {s.span_id for s in spans if s.attributes.get("tensorflux.request_id") == request_id}
    return [s for s in spans if s.span_id in named or s.parent_id in named]


def tree(spans: list[ReceivedSpan], root: str) -> dict[str, list[str]]:
    """Each span under `root` (by name), with its children's names."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_parent.setdefault(span.parent_id, []).append(span)
    return {
        child.name: sorted(c.name for c in by_parent.get(child.span_id, []))
        for child in by_parent.get(root, [])
    }


EXPECTED_STEPS = {
    "step tfsimple1": ["model call"],
    "step tfsimple2": ["model call"],
    "step tfsimple3": ["join wait", "model call"],
    f"output {PIPELINE}": [],
}


def test_a_request_through_three_steps_is_one_trace(stack: Stack) -> None:
    request_id = f"trace-{uuid.uuid4().hex[:8]}"
    infer(stack.url, request_id)
    tracing.current().flush()

    def complete(spans: list[ReceivedSpan]) -> bool:
        return len(spans_of(spans, request_id)) >= 1 + 4 + 4

    mine = spans_of(stack.receiver.wait_for(complete), request_id)
    roots = [s for s in mine if s.name == "POST /v2/pipelines/{name}/infer"]
    assert len(roots) == 1, [s.name for s in mine]
    root = roots[0]
    assert root.parent_id == "" and root.kind == 2  # SERVER, the trace's root
    assert root.attributes["http.response.status_code"] == 200
    assert root.attributes["tensorflux.pipeline"] == PIPELINE
    assert {s.trace_id for s in mine} == {root.trace_id}, "one trace per request"
    assert {s.service for s in mine} == {"tensorflux-test"}
    assert tree(mine, root.span_id) == EXPECTED_STEPS

    steps = {s.name: s for s in mine if s.parent_id == root.span_id}
    for name in STEPS:
        span = steps[f"step {name}"]
        assert span.attributes["tensorflux.pipeline"] == PIPELINE
        assert span.attributes["tensorflux.step"] == name
        assert span.attributes["tensorflux.model"] == name
        assert span.attributes["tensorflux.request_id"] == request_id
        assert span.attributes["messaging.destination.partition.id"] == "0"
        assert span.attributes["messaging.kafka.offset"] >= 0
        assert span.attributes["tensorflux.batch_size"] >= 1
        assert root.start_ns <= span.start_ns <= span.end_ns <= root.end_ns + 10**9
        assert not span.error
    # The join waits for both upstream answers: it starts when the first arrived.
    join = next(s for s in mine if s.name == "join wait")
    assert join.parent_id == steps["step tfsimple3"].span_id
    assert join.start_ns <= join.end_ns


def test_a_request_produced_to_kafka_hangs_from_the_producers_span(
    stack: Stack, producer_factory
) -> None:
    request_id = f"kafka-{uuid.uuid4().hex[:8]}"
    trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    traceparent = f"00-{trace_id}-{parent_id}-01"
    message = InferenceMessage(
        request_id,
        (
            Tensor.from_array("INPUT0", np.array([ONES_TO_16], dtype="int32")),
            Tensor.from_array("INPUT1", np.array([ONES_TO_16], dtype="int32")),
        ),
        "request",
        model_name=PIPELINE,
    )
    producer = producer_factory()
    producer.produce(
        stack.topics.pipeline_inputs(PIPELINE),
        key=request_id,
        value=encode_avro(message),
        headers=avro_headers(message, pipeline=PIPELINE, traceparent=traceparent),
    )
    producer.flush(10)

    def complete(spans: list[ReceivedSpan]) -> bool:
        tracing.current().flush(1000)
        return len(spans_of(spans, request_id)) >= 4 + 4

    mine = spans_of(stack.receiver.wait_for(complete), request_id)
    assert {s.trace_id for s in mine} == {trace_id}
    assert tree(mine, parent_id) == EXPECTED_STEPS


def test_a_grpc_request_is_one_trace_from_the_gateways_span(stack: Stack) -> None:
    from engine.cli.infer_grpc import infer_grpc

    request_id = f"grpc-{uuid.uuid4().hex[:8]}"
    infer_grpc(
        stack.grpc_target, "pipeline", PIPELINE, tensors(ONES_TO_16, ONES_TO_16), request_id, 30
    )
    tracing.current().flush()

    def complete(spans: list[ReceivedSpan]) -> bool:
        return len(spans_of(spans, request_id)) >= 1 + 4 + 4

    mine = spans_of(stack.receiver.wait_for(complete), request_id)
    (root,) = [s for s in mine if s.name == "inference.GRPCInferenceService/ModelInfer"]
    assert root.parent_id == "" and root.kind == 2  # SERVER, the trace's root
    assert root.attributes["rpc.system"] == "grpc"
    assert root.attributes["rpc.grpc.status_code"] == 0
    assert root.attributes["tensorflux.pipeline"] == PIPELINE
    assert {s.trace_id for s in mine} == {root.trace_id}
    assert tree(mine, root.span_id) == EXPECTED_STEPS
