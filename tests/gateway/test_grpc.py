"""The OIP gRPC gateway with stock `tritonclient.grpc`: tfsimple answers from pipelines
and models, metadata, readiness, Seldon addressing, errors as gRPC codes."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from tests.gateway.conftest import Stack
from tests.gateway.test_gateway_metrics import delta, scrape

A = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
B = np.full((1, 16), 3, dtype=np.int32)


@pytest.fixture(scope="module")
def client(stack: Stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(stack.grpc_target)


def inputs_of(**arrays: np.ndarray) -> list[triton.InferInput]:
    built = []
    for name, array in arrays.items():
        datatype = "BYTES" if array.dtype == object else triton.np_to_triton_dtype(array.dtype)
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        built.append(tensor)
    return built


def test_server_calls(client) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "tensorflux"
    assert "binary_tensor_data" in client.get_server_metadata().extensions
    for name in ("tfsimples", "tfsimple1"):
        assert client.is_model_ready(name)
        metadata = client.get_model_metadata(name, as_json=True)
        assert metadata["name"] == name
        assert [i["name"] for i in metadata["inputs"]] == ["INPUT0", "INPUT1"]
        assert [o["name"] for o in metadata["outputs"]] == ["OUTPUT0", "OUTPUT1"]
    with pytest.raises(InferenceServerException, match="'nope' is loaded"):
        client.is_model_ready("nope")


def test_tfsimple_answers_from_a_pipeline_and_a_model(client) -> None:
    result = client.infer("tfsimples", inputs_of(INPUT0=A, INPUT1=B), request_id="g-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), 2 * B)
    assert result.get_response().id == "g-1"
    assert result.get_response().model_name == "tfsimples"

    wanted = [triton.InferRequestedOutput("OUTPUT1")]
    result = client.infer("tfsimple1", inputs_of(INPUT0=A, INPUT1=B), outputs=wanted)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)
    assert result.as_numpy("OUTPUT0") is None


def test_duplicate_output_names_come_back_both_in_order(client) -> None:
    four = np.array([1, 2, 3, 4], dtype=np.float32)
    response = client.infer("both-outputs", inputs_of(INPUT=four)).get_response()
    assert [o.name for o in response.outputs] == ["OUTPUT", "OUTPUT"]
    answers = [
        np.frombuffer(raw, dtype=np.float32).tolist() for raw in response.raw_output_contents
    ]
    assert answers == [[10, 20, 30, 40], [11, 12, 13, 14]]


def test_seldon_addressing(client) -> None:
    for name, headers in (("tfsimples.pipeline", None), ("tfsimples", {"seldon-model": "tfsimples.pipeline"})):  # fmt: skip
        result = client.infer(name, inputs_of(INPUT0=A, INPUT1=A), headers=headers)
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)


def test_datatypes_round_trip_through_a_model(client) -> None:
    arrays = {
        "F16": np.array([[1.5, -2.0]], dtype=np.float16),
        "F64": np.array([np.pi, -0.0]),
        "I8": np.array([-128, 127], dtype=np.int8),
        "U64": np.array([0, 2**64 - 1], dtype=np.uint64),
        "FLAG": np.array([True, False]),
        "WORDS": np.array([b"hello", b"", b"\xff\x00"], dtype=object),
    }
    result = client.infer("echo", inputs_of(**arrays))
    for name, array in arrays.items():
        assert result.as_numpy(name).tolist() == array.tolist(), name


def test_typed_contents_are_read_too(stack: Stack) -> None:
    """A client that fills `contents` instead of raw_input_contents (as MLServer's may)."""
    request = service_pb2.ModelInferRequest(model_name="tfsimple1")
    for name, values in (("INPUT0", A), ("INPUT1", B)):
        tensor = request.inputs.add(name=name, datatype="INT32", shape=[1, 16])
        tensor.contents.int_contents.extend(values.ravel().tolist())
    with grpc.insecure_channel(stack.grpc_target) as channel:
        reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert [o.name for o in reply.outputs] == ["OUTPUT0", "OUTPUT1"]
    got = np.frombuffer(reply.raw_output_contents[0], dtype=np.int32)
    assert got.tolist() == (A + B).ravel().tolist()


def test_errors_answer_with_the_codes_of_their_statuses(client, stack: Stack) -> None:
    def code_of(name: str, inputs: list[triton.InferInput]) -> tuple[str, str]:
        with pytest.raises(InferenceServerException) as failure:
            client.infer(name, inputs)
        return failure.value.status(), failure.value.message()

    status, message = code_of("nope", inputs_of(INPUT0=A))
    assert status == "StatusCode.NOT_FOUND" and "'nope' is loaded" in message
    status, message = code_of("tfsimple1", inputs_of(INPUT0=A[:, :3], INPUT1=B[:, :3]))
    assert status == "StatusCode.INVALID_ARGUMENT"
    assert "INPUT0" in message or "INPUT1" in message
    status, message = code_of("boom", inputs_of(X=np.array([1.0], dtype=np.float32)))
    assert status == "StatusCode.INTERNAL" and "boom: this model always fails" in message
    # Sizes that do not add up name the tensor.
    request = service_pb2.ModelInferRequest(model_name="tfsimple1")
    request.inputs.add(name="INPUT0", datatype="INT32", shape=[1, 16])
    request.raw_input_contents.append(b"\0" * 10)
    with grpc.insecure_channel(stack.grpc_target) as channel, pytest.raises(grpc.RpcError) as bad:
        service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'INPUT0'" in bad.value.details() and "needs 64 bytes" in bad.value.details()


def test_an_experiment_names_its_route_and_keeps_a_caller_on_it(stack: Stack) -> None:
    request = service_pb2.ModelInferRequest(model_name="add-or-mul.experiment")
    request.inputs.add(name="INPUT", datatype="FP32", shape=[4])
    request.raw_input_contents.append(np.array([1, 2, 3, 4], dtype=np.float32).tobytes())
    expected = {"add10": [11, 12, 13, 14], "mul10": [10, 20, 30, 40]}
    with grpc.insecure_channel(stack.grpc_target) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        reply, call = stub.ModelInfer.with_call(request, timeout=30)
        route = dict(call.initial_metadata())["x-seldon-route"]
        assert np.frombuffer(reply.raw_output_contents[0], np.float32).tolist() == expected[route]
        for _ in range(3):
            reply, call = stub.ModelInfer.with_call(
                request, timeout=30, metadata=[("x-seldon-route", route)]
            )
            assert dict(call.initial_metadata())["x-seldon-route"] == route
            assert (
                np.frombuffer(reply.raw_output_contents[0], np.float32).tolist() == expected[route]
            )


def test_grpc_inferences_are_counted_as_grpc(client, stack: Stack) -> None:
    before = scrape(stack.url)
    client.infer("tfsimples", inputs_of(INPUT0=A, INPUT1=B))
    with pytest.raises(InferenceServerException):
        client.infer("tfsimples", inputs_of(INPUT0=A))
    after = scrape(stack.url)
    labels = {"pipeline": "tfsimples", "method_type": "grpc"}
    assert delta(before, after, "seldon_pipeline_infer_total", code="OK", **labels) == 1
    assert (
        delta(before, after, "seldon_pipeline_infer_total", code="INVALID_ARGUMENT", **labels) == 1
    )


def test_a_stream_answers_every_request_and_keeps_going_past_a_failure(stack: Stack) -> None:
    """tritonclient.grpc's stream (Triton's ModelStreamInfer): requests go out one after
    another on one stream; each answer comes back with its request's id; one for a model
    that does not exist is an error on the stream, and the requests after it are answered."""
    import queue

    answers: queue.Queue = queue.Queue()
    client = triton.InferenceServerClient(stack.grpc_target)
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        sent = {f"s-{i}": np.full((1, 16), i, dtype=np.int32) for i in range(20)}
        for index, (request_id, row) in enumerate(sent.items()):
            if index == 7:
                client.async_stream_infer("nope", inputs_of(INPUT0=row, INPUT1=row))
            client.async_stream_infer("tfsimples", inputs_of(INPUT0=row, INPUT1=B), request_id=request_id)  # fmt: skip
        results, failures = {}, []
        while len(results) + len(failures) < len(sent) + 1:
            result, error = answers.get(timeout=60)
            if error is not None:
                failures.append(str(error))
            else:
                results[result.get_response().id] = result
    finally:
        client.stop_stream()
        client.close()
    assert sorted(results) == sorted(sent)
    for request_id, row in sent.items():
        np.testing.assert_array_equal(results[request_id].as_numpy("OUTPUT0"), 2 * row)
        assert results[request_id].get_response().model_name == "tfsimples"
    assert len(failures) == 1 and "nope" in failures[0]
