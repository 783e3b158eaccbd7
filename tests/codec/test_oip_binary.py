"""The binary tensor data extension (Triton/KServe): bodies both ways, sizes checked."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from engine.codec import CodecError, InferenceMessage
from engine.codec.oip_binary import (
    BinaryOutputs,
    binary_outputs,
    decode_binary_request,
    encode_response,
    header_length,
    without_transport_parameters,
)
from engine.messages import Tensor


def body_of(header: dict, *raws: bytes) -> tuple[bytes, int]:
    text = json.dumps(header).encode()
    return text + b"".join(raws), len(text)


def length_prefixed(*elements: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def test_binary_and_json_inputs_keep_their_order() -> None:
    a = np.arange(6, dtype=np.float32)
    words = length_prefixed(b"hi", b"", b"\xff\x00")
    header = {
        "id": "7",
        "inputs": [
            {"name": "A", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": 24}},
            {"name": "J", "datatype": "INT64", "shape": [2], "data": [5, 6]},
            {"name": "W", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": len(words)}},
        ],
        "parameters": {"binary_data_output": True},
    }  # fmt: skip
    body, length = body_of(header, a.tobytes(), words)
    message, document = decode_binary_request(body, length, default_id="rid")
    assert message.id == "7" and document["id"] == "7"
    assert message.names() == ("A", "J", "W")
    np.testing.assert_array_equal(message.tensor("A").data, a.reshape(2, 3))
    assert message.tensor("A").parameters == {}
    assert message.tensor("J").data.tolist() == [5, 6]
    assert message.tensor("W").data.tolist() == [b"hi", b"", b"\xff\x00"]
    assert "binary_data_output" not in without_transport_parameters(message).parameters
    assert binary_outputs(document) == BinaryOutputs(True, {})


@pytest.mark.parametrize(
    ("sizes", "raw", "problem"),
    [
        ((8, 8), b"\0" * 12, "'B'.*runs past the end of the body: 4 bytes"),
        ((8, 4), b"\0" * 12, "'B'.*needs 8 bytes of contents"),
        ((8, 8), b"\0" * 20, "4 bytes after the last binary tensor"),
        ((8, -1), b"\0" * 8, "'B'.*must be a byte count"),
    ],
)
def test_sizes_that_do_not_add_up_name_the_tensor(sizes, raw, problem) -> None:
    header = {
        "inputs": [
            {"name": n, "datatype": "INT32", "shape": [2], "parameters": {"binary_data_size": s}}
            for n, s in zip("AB", sizes, strict=True)
        ]
    }
    body, length = body_of(header, raw)
    with pytest.raises(CodecError, match=problem):
        decode_binary_request(body, length, default_id="rid")


def test_a_bytes_tensor_with_a_short_length_prefix_is_refused() -> None:
    raw = struct.pack("<I", 9) + b"abc"
    header = {"inputs": [{"name": "W", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(raw)}}]}  # fmt: skip
    body, length = body_of(header, raw)
    with pytest.raises(CodecError, match="'W'.*says 9 bytes but only 3 remain"):
        decode_binary_request(body, length, default_id="rid")


def test_header_length_must_fit_the_body() -> None:
    assert header_length("10", 12) == 10
    for bad in ("x", "-1", "13"):
        with pytest.raises(CodecError, match="Inference-Header-Content-Length"):
            header_length(bad, 12)
    with pytest.raises(CodecError, match="not a JSON inference request"):
        decode_binary_request(b"{nope", 5, default_id="rid")


def test_output_choices_per_output_win_over_the_default() -> None:
    document = {
        "parameters": {"binary_data_output": True},
        "outputs": [{"name": "A", "parameters": {"binary_data": False}}, {"name": "B"}],
    }
    choice = binary_outputs(document)
    assert not choice.wants("A") and choice.wants("B") and choice.wants("C")
    assert not binary_outputs({}).any()
    with pytest.raises(CodecError, match="binary_data_output"):
        binary_outputs({"parameters": {"binary_data_output": "yes"}})
    with pytest.raises(CodecError, match="requested output 'A'"):
        binary_outputs({"outputs": [{"name": "A", "parameters": {"binary_data": 1}}]})


def test_a_response_with_binary_and_json_outputs() -> None:
    a = np.arange(4, dtype=np.int32).reshape(2, 2)
    message = InferenceMessage(
        "r1",
        (
            Tensor("A", "INT32", (2, 2), a),
            Tensor("W", "BYTES", (2,), np.array([b"x", b"yz"], dtype=object)),
            Tensor("J", "FP64", (1,), np.array([0.5])),
        ),
        "response",
        model_name="m",
    )
    body, length = encode_response(message, BinaryOutputs(True, {"J": False}))
    header = json.loads(body[:length])
    assert header["id"] == "r1" and header["model_name"] == "m"
    items = {o["name"]: o for o in header["outputs"]}
    assert items["A"]["parameters"] == {"binary_data_size": 16} and "data" not in items["A"]
    assert items["W"]["parameters"] == {"binary_data_size": 11}
    assert items["J"]["data"] == [0.5]
    assert body[length:] == a.tobytes() + length_prefixed(b"x", b"yz")
    plain, none = encode_response(message, BinaryOutputs())
    assert none is None and json.loads(plain)["outputs"][0]["data"] == [0, 1, 2, 3]
