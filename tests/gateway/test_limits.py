"""Request size limit and gzip bodies (issues 18 and 14), through real HTTP and gRPC.

A second gateway with a small `max_request_bytes` serves the module's stack; the
records on the pipeline's inputs topic show that a refused body produced nothing.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from confluent_kafka import Consumer, TopicPartition
from tritonclient.grpc import service_pb2, service_pb2_grpc

from engine.admin import watermark_offsets
from engine.broker import free_port
from engine.gateway.limits import default_max_request_bytes
from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors

pytestmark = pytest.mark.broker

LIMIT = 4096
A = np.arange(1, 17, dtype=np.int32)


@pytest.fixture(scope="module")
def small(stack: Stack, start_gateway) -> tuple[str, str]:
    """(HTTP URL, gRPC target) of a gateway over the same stack that takes LIMIT bytes."""
    grpc_port = free_port()
    url = start_gateway(stack.catalog, grpc_port=grpc_port, max_request_bytes=LIMIT)
    return url, f"127.0.0.1:{grpc_port}"


@pytest.fixture(scope="module")
def produced(stack: Stack) -> Iterator:
    """Records produced so far to the inputs topic of `tfsimples`."""
    topic = stack.catalog.pipeline("tfsimples").inputs_topic
    consumer = Consumer(stack.settings.consumer_config("limits-probe"))

    def count() -> int:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(watermark_offsets(consumer, TopicPartition(topic, p))[1] for p in partitions)

    yield count
    consumer.close()


def _binary(a: np.ndarray, b: np.ndarray) -> tuple[bytes, int]:
    """A binary-extension body for INPUT0/INPUT1 and its JSON header's length."""
    header = json.dumps(
        {
            "inputs": [
                {"name": n, "datatype": "INT32", "shape": [1, t.size], "parameters": {"binary_data_size": t.nbytes}}
                for n, t in (("INPUT0", a), ("INPUT1", b))
            ]
        }
    ).encode()  # fmt: skip
    return header + a.tobytes() + b.tobytes(), len(header)


def _refused(reply: httpx.Response, status: int, *words: str) -> None:
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    for word in words:
        assert word in error, error


def test_bodies_over_the_limit_get_413_and_nothing_is_produced(small, produced) -> None:
    url, target = small
    infer = f"{url}/v2/pipelines/tfsimples/infer"
    big = list(range(LIMIT))
    before = produced()
    # Content-Length over the limit: refused before a byte of the body is read.
    _refused(httpx.post(infer, json=tensors(big, big), timeout=30), 413, f"{LIMIT} bytes", "--max-request-bytes")  # fmt: skip
    # No Content-Length (chunked): counted as it streams in.
    body = json.dumps(tensors(big, big)).encode()
    chunks = (body[i : i + 1000] for i in range(0, len(body), 1000))
    _refused(httpx.post(infer, content=chunks, timeout=30), 413, "streaming")
    # A gzip bomb: 1 kB on the wire, a megabyte inflated.
    bomb = gzip.compress(b"[" + b" " * 1_000_000 + b"]")
    assert len(bomb) < LIMIT
    _refused(httpx.post(infer, content=bomb, headers={"content-encoding": "gzip"}, timeout=30), 413, "decompressed")  # fmt: skip
    # The binary extension.
    content, length = _binary(np.zeros(2048, np.int32), np.zeros(2048, np.int32))
    reply = httpx.post(infer, content=content, headers={"Inference-Header-Content-Length": str(length)}, timeout=30)  # fmt: skip
    _refused(reply, 413, f"{LIMIT} bytes")
    # gRPC: the server's largest receive.
    request = service_pb2.ModelInferRequest(model_name="tfsimples")
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 2048])
        request.raw_input_contents.append(np.zeros(2048, np.int32).tobytes())
    with grpc.insecure_channel(target) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
    assert produced() == before
    # A body within the limit goes through the same gateway.
    reply = httpx.post(infer, json=tensors(ONES_TO_16, ONES_TO_16), timeout=30)
    assert reply.status_code == 200, reply.text
    assert produced() == before + 1


def test_gzip_bodies_are_read(small) -> None:
    url, _ = small
    infer = f"{url}/v2/pipelines/tfsimples/infer"
    body = gzip.compress(json.dumps(tensors(ONES_TO_16, ONES_TO_16)).encode())
    reply = httpx.post(infer, content=body, headers={"content-encoding": "gzip", "content-type": "application/json"}, timeout=30)  # fmt: skip
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == DOUBLED
    content, length = _binary(A, A)
    reply = httpx.post(
        infer,
        content=gzip.compress(content),
        headers={"content-encoding": "gzip", "Inference-Header-Content-Length": str(length)},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["outputs"][0]["data"] == DOUBLED
    # What cannot be read is the caller's mistake, named.
    _refused(httpx.post(infer, content=b"not gzip", headers={"content-encoding": "gzip"}, timeout=30), 400, "not valid gzip")  # fmt: skip
    _refused(httpx.post(infer, content=body[:-12], headers={"content-encoding": "gzip"}, timeout=30), 400, "truncated")  # fmt: skip
    _refused(httpx.post(infer, content=body, headers={"content-encoding": "br"}, timeout=30), 415, "'br'")  # fmt: skip


def test_the_default_limit_is_the_kafka_message_limit(stack: Stack) -> None:
    assert default_max_request_bytes({}) == 1_000_000
    assert default_max_request_bytes({"message.max.bytes": "5000000"}) == 5_000_000
    too_big = b'{"inputs": []}' + b" " * 1_000_000
    reply = httpx.post(f"{stack.url}/v2/pipelines/tfsimples/infer", content=too_big, timeout=30)
    _refused(reply, 413, "1000000 bytes")
