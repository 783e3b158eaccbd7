"""The gRPC gateway fuzzed through real gRPC (issue 18): arbitrary bytes and near-valid
ModelInferRequests always get a gRPC status with a message, never UNKNOWN or INTERNAL
(a crash), and the gateway goes on answering."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.gateway.conftest import Stack

FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CRASHES = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
METHOD = "/inference.GRPCInferenceService/ModelInfer"

datatypes = st.sampled_from(
    ["INT32", "FP32", "BYTES", "BOOL", "UINT8", "FP16", "INT64", "UINT64", "NOPE", ""]
)
parameter = st.one_of(
    st.builds(service_pb2.InferParameter, bool_param=st.booleans()),
    st.builds(service_pb2.InferParameter, int64_param=st.integers(-(2**63), 2**63 - 1)),
    st.builds(service_pb2.InferParameter, string_param=st.text(max_size=10)),
    st.builds(service_pb2.InferParameter, double_param=st.floats()),  # Triton's, not KServe's
)
contents = st.builds(
    service_pb2.InferTensorContents,
    int_contents=st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20),
    fp32_contents=st.lists(st.floats(width=32), max_size=5),
    bytes_contents=st.lists(st.binary(max_size=5), max_size=5),
    uint64_contents=st.lists(st.integers(0, 2**64 - 1), max_size=3),
)


@st.composite
def near_requests(draw: st.DrawFn) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(
        model_name=draw(st.sampled_from(["tfsimple1", "tfsimples", "tfsimples.pipeline", "nope", ""])),
        id=draw(st.text(max_size=8)),
    )  # fmt: skip
    for key, value in draw(st.dictionaries(st.text(max_size=5), parameter, max_size=2)).items():
        request.parameters[key].CopyFrom(value)
    count = draw(st.integers(0, 3))
    for _ in range(count):
        tensor = request.inputs.add(
            name=draw(st.sampled_from(["INPUT0", "INPUT1", "X", ""])),
            datatype=draw(datatypes),
            shape=draw(st.lists(st.integers(-2, 20) | st.just(2**40), max_size=3)),
        )
        if draw(st.booleans()):
            tensor.contents.CopyFrom(draw(contents))
    if draw(st.booleans()):
        raws = draw(st.lists(st.binary(max_size=80), min_size=0, max_size=count + 1))
        request.raw_input_contents.extend(raws)
    for name in draw(st.lists(st.sampled_from(["OUTPUT0", "OUTPUT1", "Z"]), max_size=2)):
        request.outputs.add(name=name)
    return request


@pytest.fixture(scope="module")
def channel(stack: Stack):
    with grpc.insecure_channel(stack.grpc_target) as opened:
        yield opened


def _refused_cleanly(call) -> None:
    try:
        call()
    except grpc.RpcError as failure:
        assert failure.code() not in CRASHES, failure.details()
        assert failure.details(), failure.code()


@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(channel, body: bytes) -> None:
    raw = channel.unary_unary(METHOD)  # bytes as they are: no serializer
    _refused_cleanly(lambda: raw(body, timeout=30))


@FUZZ
@given(request=near_requests())
def test_near_valid_requests(channel, request) -> None:
    stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
    _refused_cleanly(lambda: stub.ModelInfer(request, timeout=30))


def test_it_answers_afterwards(channel) -> None:
    request = service_pb2.ModelInferRequest(model_name="tfsimples")
    a = np.arange(1, 17, dtype=np.int32)
    for name in ("INPUT0", "INPUT1"):
        request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        request.raw_input_contents.append(a.tobytes())
    reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert np.frombuffer(reply.raw_output_contents[0], np.int32).tolist() == (2 * a).tolist()
