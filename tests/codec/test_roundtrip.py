"""Every datatype and shape (scalars and zero-size included) round-trips
bit-exactly through Avro, and through OIP JSON as far as JSON can carry."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.codec import DATATYPES, decode_avro, decode_json, encode_avro, encode_json
from engine.messages import InferenceMessage, Tensor

from .strategies import messages, parameter_maps, tensors

# JSON cannot say which NaN: compare NaNs as NaNs, every other value bit-exactly.
FLOAT_BITS = {"FP16": np.uint16, "FP32": np.uint32, "FP64": np.uint64}


def _json_comparable(tensor: Tensor) -> Tensor:
    if tensor.datatype not in FLOAT_BITS or not tensor.data.size:
        return tensor
    canonical = np.where(np.isnan(tensor.data), np.nan, tensor.data).astype(tensor.data.dtype)
    return Tensor(tensor.name, tensor.datatype, tensor.shape, canonical, tensor.parameters)


# content_type is the JSON codec's own transport parameter for BYTES.
json_tensor_parameters = parameter_maps.map(
    lambda p: {k: v for k, v in p.items() if k != "content_type"}
)


@pytest.mark.parametrize("datatype", DATATYPES)
@given(data=st.data())
def test_every_datatype_round_trips_bit_exactly_through_avro(datatype, data):
    tensor = data.draw(tensors(datatype=datatype))
    message = InferenceMessage("r", (tensor,), "request")
    decoded = decode_avro(encode_avro(message), "request").tensor(tensor.name)
    assert decoded == tensor
    assert decoded.data.dtype == tensor.data.dtype
    if datatype != "BYTES":
        assert decoded.data.tobytes() == tensor.data.tobytes()


@given(messages())
def test_messages_round_trip_through_avro(message):
    assert decode_avro(encode_avro(message), message.kind) == message


@pytest.mark.parametrize("datatype", DATATYPES)
@given(data=st.data())
def test_every_datatype_round_trips_through_json(datatype, data):
    tensor = data.draw(tensors(datatype=datatype, parameters=json_tensor_parameters))
    message = InferenceMessage("r", (tensor,), "response", model_name="m")
    decoded = decode_json(encode_json(message), "response").tensor(tensor.name)
    assert _json_comparable(decoded) == _json_comparable(tensor)


@given(messages(tensor_parameters=json_tensor_parameters))
def test_messages_round_trip_through_json(message):
    decoded = decode_json(encode_json(message), message.kind)
    expected = message.replace(tensors=tuple(_json_comparable(t) for t in message.tensors))
    assert decoded.replace(tensors=tuple(_json_comparable(t) for t in decoded.tensors)) == expected


def test_nan_payloads_and_signed_zero_survive_avro():
    bits = np.array(
        [0x7E00, 0x7C01, 0xFE3F, 0x8000, 0x0001], dtype="<u2"
    )  # quiet, signalling, negative NaNs, -0, subnormal
    tensor = Tensor.from_array("h", bits.view("<f2"))
    decoded = decode_avro(encode_avro(InferenceMessage("r", (tensor,), "request")), "request")
    assert decoded.tensor("h").data.view("<u2").tolist() == bits.tolist()


def test_scalar_and_zero_size_shapes():
    scalar = Tensor.from_array("s", np.float64(2.5))
    empty = Tensor.from_array("e", np.zeros((3, 0, 2), dtype=np.int8))
    empty_bytes = Tensor("b", "BYTES", (0,), np.empty(0, dtype=object))
    message = InferenceMessage("r", (scalar, empty, empty_bytes), "response")
    for decoded in (
        decode_avro(encode_avro(message), "response"),
        decode_json(encode_json(message), "response"),
    ):
        assert decoded == message
        assert decoded.tensor("s").shape == () and decoded.tensor("s").data.shape == ()
        assert decoded.tensor("e").data.shape == (3, 0, 2)


def test_decoded_arrays_are_read_only_views_of_the_payload():
    payload = encode_avro(
        InferenceMessage("r", (Tensor.from_array("x", np.arange(4, dtype=np.int64)),), "request")
    )
    data = decode_avro(payload, "request").tensor("x").data
    assert not data.flags.writeable
    assert data.base is not None  # a view, not a copy
