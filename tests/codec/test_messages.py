"""Tensor and InferenceMessage: construction, dtype inference, accessors."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine.codec import (
    DATATYPE_TO_DTYPE,
    DuplicateTensor,
    InvalidTensor,
    datatype_of,
    decode_avro,
    decode_json,
    encode_avro,
    encode_json,
)
from engine.codec.avro import reference_decode
from engine.messages import InferenceMessage, Tensor


@pytest.mark.parametrize("datatype", [d for d in DATATYPE_TO_DTYPE if d != "BYTES"])
def test_from_array_infers_every_numeric_datatype(datatype):
    dtype = DATATYPE_TO_DTYPE[datatype]
    tensor = Tensor.from_array("t", np.zeros((2, 3), dtype=dtype))
    assert tensor.datatype == datatype and tensor.shape == (2, 3)
    assert datatype_of(dtype.newbyteorder(">")) == datatype  # either byte order maps


def test_from_array_converts_byte_order_strings_and_requested_datatypes():
    big = Tensor.from_array("b", np.array([1, 2], dtype=">i4"))
    assert big.data.dtype == np.dtype("<i4") and big.data.tolist() == [1, 2]
    text = Tensor.from_array("s", np.array([["a", "é"]]))
    assert text.datatype == "BYTES" and text.data.tolist() == [[b"a", "é".encode()]]
    assert Tensor.from_array("f", [1, 2], "FP16").data.dtype == np.float16
    with pytest.raises(InvalidTensor, match="cannot convert numpy dtype float64 to INT32"):
        Tensor.from_array("i", np.array([1.5]), "INT32")
    with pytest.raises(InvalidTensor, match="BYTES element 1 is int"):
        Tensor.from_array("x", np.array([b"a", 1], dtype=object))


def test_tensors_are_frozen_and_compare_bit_exactly():
    nan = Tensor.from_array("n", np.array([np.nan]))
    assert nan == Tensor.from_array("n", np.array([np.nan]))  # same bits
    assert Tensor.from_array("z", np.array([0.0])) != Tensor.from_array("z", np.array([-0.0]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        nan.name = "m"  # type: ignore[misc]
    with pytest.raises(TypeError):
        nan.parameters["k"] = 1  # type: ignore[index]


def test_message_accessors():
    a, b = Tensor.from_array("a", [1]), Tensor.from_array("b", [2.0])
    message = InferenceMessage("r", [a, b], "request", parameters={"p": 1})
    assert message.tensors == (a, b)  # lists become tuples
    assert message.names() == ("a", "b")
    assert message.tensor("b") is b
    assert list(message.as_arrays()) == ["a", "b"]
    renamed = message.replace(id="s", tensors=(a,))
    assert renamed.id == "s" and renamed.names() == ("a",) and message.id == "r"
    with pytest.raises(DuplicateTensor):
        message.replace(tensors=(a, a))


def test_a_response_may_repeat_a_name_in_every_encoding_but_a_request_may_not() -> None:
    first, second = Tensor.from_array("OUTPUT", [10.0]), Tensor.from_array("OUTPUT", [11.0])
    answer = InferenceMessage("r", (first, second), "response")  # as Seldon answers
    avro = encode_avro(answer)
    for decoded in (
        decode_avro(avro, "response"),
        reference_decode(avro, "response"),
        decode_json(encode_json(answer), "response"),
    ):
        assert [(t.name, t.data.tolist()) for t in decoded.tensors] == [
            ("OUTPUT", [10.0]),
            ("OUTPUT", [11.0]),
        ]
        assert decoded.tensor("OUTPUT") is decoded.tensors[0]  # by name: the first
    with pytest.raises(DuplicateTensor, match="'OUTPUT'"):
        InferenceMessage("r", (first, second), "request")
    as_request = avro + b"\x00"  # the same tensors as a request's inputs (no outputs asked)
    for decode in (decode_avro, reference_decode):
        with pytest.raises(DuplicateTensor, match="'OUTPUT'"):
            decode(as_request, "request")
    document = json.loads(encode_json(answer))
    document["inputs"] = document.pop("outputs")
    with pytest.raises(DuplicateTensor, match="'OUTPUT'"):
        decode_json(json.dumps(document).encode(), "request")
