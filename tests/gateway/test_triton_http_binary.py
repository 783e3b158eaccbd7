"""Stock `tritonclient.http` with its defaults: binary tensor data both ways."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.gateway.conftest import Stack


@pytest.fixture(scope="module")
def client(stack: Stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(stack.url.removeprefix("http://"))


def inputs_of(**arrays: np.ndarray) -> list[triton.InferInput]:
    built = []
    for name, array in arrays.items():
        datatype = "BYTES" if array.dtype == object else triton.np_to_triton_dtype(array.dtype)
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)  # binary_data=True: the default
        built.append(tensor)
    return built


A = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
B = np.full((1, 16), 3, dtype=np.int32)


def test_defaults_on_the_tfsimples_pipeline_and_model(client) -> None:
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    result = client.infer("tfsimples", inputs_of(INPUT0=A, INPUT1=B))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), 2 * B)
    # The answer came binary (no `data` in the JSON header).
    assert all("data" not in o for o in result.get_response()["outputs"])

    result = client.infer("tfsimple1", inputs_of(INPUT0=A, INPUT1=B), request_id="bin-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), A + B)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)
    assert result.get_response()["id"] == "bin-1"
    # Seldon's addressing with binary bodies.
    result = client.infer("tfsimples.pipeline", inputs_of(INPUT0=A, INPUT1=A))
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * A)


def test_per_output_choice_and_requested_outputs(client) -> None:
    wanted = [
        triton.InferRequestedOutput("OUTPUT0", binary_data=False),
        triton.InferRequestedOutput("OUTPUT1"),
    ]
    result = client.infer("tfsimple1", inputs_of(INPUT0=A, INPUT1=B), outputs=wanted)
    items = {o["name"]: o for o in result.get_response()["outputs"]}
    assert items["OUTPUT0"]["data"] == (A + B).ravel().tolist()
    assert items["OUTPUT1"]["parameters"]["binary_data_size"] == 64
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), A - B)
    only = client.infer("tfsimple1", inputs_of(INPUT0=A, INPUT1=B), outputs=wanted[1:])
    assert [o["name"] for o in only.get_response()["outputs"]] == ["OUTPUT1"]


def test_every_datatype_round_trips_binary_through_a_model(client) -> None:
    arrays = {
        "F16": np.array([[1.5, -2.0]], dtype=np.float16),
        "F64": np.array([np.pi, -0.0]),
        "U8": np.array([0, 255], dtype=np.uint8),
        "I64": np.array([-(2**63), 2**63 - 1], dtype=np.int64),
        "FLAG": np.array([True, False]),
        "WORDS": np.array([b"hello", b"", "caf\u00e9".encode(), b"\xff\x00"], dtype=object),
    }
    result = client.infer("echo", inputs_of(**arrays))
    for name, array in arrays.items():
        got = result.as_numpy(name)
        assert got.dtype == array.dtype or array.dtype == object, name
        assert got.tolist() == array.tolist(), name


def test_sizes_that_do_not_add_up_are_400_naming_the_tensor(stack: Stack) -> None:
    header = json.dumps(
        {
            "inputs": [
                {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
                {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "parameters": {"binary_data_size": 64}},
            ]
        }
    ).encode()  # fmt: skip
    short = header + A.tobytes() + B.tobytes()[:40]
    reply = httpx.post(
        f"{stack.url}/v2/models/tfsimple1/infer",
        content=short,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert reply.status_code == 400
    assert "INPUT1" in reply.json()["error"] and "binary_data_size 64" in reply.json()["error"]
    reply = httpx.post(
        f"{stack.url}/v2/models/tfsimple1/infer",
        content=header + A.tobytes() + B.tobytes() + struct.pack("<I", 1),
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=30,
    )
    assert reply.status_code == 400
    assert "4 bytes after the last binary tensor" in reply.json()["error"]


def test_a_model_failure_reaches_a_binary_client(client) -> None:
    with pytest.raises(InferenceServerException, match="boom: this model always fails"):
        client.infer("boom", inputs_of(X=np.array([1.0], dtype=np.float32)))
