"""Bad Avro payloads raise the codec's own errors, naming the tensor at fault."""

from __future__ import annotations

import io
import struct

import fastavro
import numpy as np
import pytest

from engine.codec import (
    CodecError,
    ContentsMismatch,
    DuplicateTensor,
    InvalidShape,
    InvalidTensor,
    MalformedPayload,
    TensorNotFound,
    UnknownDatatype,
    decode_avro,
    encode_avro,
)
from engine.codec.avro import parsed_schema
from engine.errors import TensorfluxError
from engine.messages import InferenceMessage, Tensor


def _request(*tensors: dict) -> bytes:
    """A request written by plain fastavro, so malformed tensors can be built."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed_schema("request"), {"id": "r1", "inputs": list(tensors)})
    return out.getvalue()


TWO_INT32 = struct.pack("<2i", 1, 2)


def _tensor(name="x", datatype="INT32", shape=(2,), contents=TWO_INT32):
    return {"name": name, "datatype": datatype, "shape": list(shape), "contents": contents}


@pytest.mark.parametrize(
    ("tensor", "error", "match"),
    [
        (_tensor(shape=(3,)), ContentsMismatch, r"INT32 shape \[3\] needs 12 bytes .* got 8"),
        (_tensor(shape=()), ContentsMismatch, "needs 4 bytes"),
        (
            _tensor(datatype="INT128"),
            UnknownDatatype,
            "unknown datatype 'INT128'; known datatypes are: BOOL",
        ),
        (_tensor(shape=(-2, -1)), InvalidShape, "negative dimension"),
        (_tensor(shape=(1,) * 65, contents=b"\0\0\0\0"), InvalidShape, "cannot be built"),
        (_tensor(datatype="BOOL", contents=b"\x01\x02"), ContentsMismatch, "neither 0 nor 1"),
        (
            _tensor(datatype="BYTES", contents=b"\x05\x00\x00\x00ab"),
            ContentsMismatch,
            "says 5 bytes",
        ),
        (
            _tensor(datatype="BYTES", contents=b"\x01\x00"),
            ContentsMismatch,
            "truncated 4-byte length",
        ),
        (
            _tensor(datatype="BYTES", contents=b"\x00\x00\x00\x00"),
            ContentsMismatch,
            "needs 2 elements, contents hold 1",
        ),
    ],
)
def test_bad_tensors_name_the_tensor_and_the_problem(tensor, error, match):
    with pytest.raises(error, match=match) as raised:
        decode_avro(_request(_tensor(name="ok"), tensor), "request")
    assert raised.value.tensor == "x"
    assert str(raised.value).startswith("tensor 'x': ")


def test_truncated_payload_names_the_tensor_it_ends_in():
    payload = _request(_tensor(name="first"), _tensor(name="second"))
    cut = payload[: payload.index(b"second") + 12]
    with pytest.raises(MalformedPayload, match="ends inside this tensor") as raised:
        decode_avro(cut, "request")
    assert raised.value.tensor == "second"


@pytest.mark.parametrize("cut", [0, 1, 3])
def test_truncated_before_any_tensor(cut):
    with pytest.raises(MalformedPayload, match="payload ends in the middle"):
        decode_avro(_request(_tensor())[:cut], "request")


def test_non_utf8_tensor_name_is_named_by_position_and_bytes():
    payload = _request(_tensor(name="ok"), _tensor(name="zz"))
    payload = payload.replace(b"\x04zz", b"\x04\xff\xfe")
    with pytest.raises(
        MalformedPayload, match=r"tensor #1 has a name that is not UTF-8: b'\\xff\\xfe'"
    ):
        decode_avro(payload, "request")


def test_leftover_bytes_and_duplicates_are_rejected():
    with pytest.raises(MalformedPayload, match="1 bytes left over"):
        decode_avro(_request(_tensor()) + b"\x00", "request")
    with pytest.raises(DuplicateTensor, match="'x': appears twice"):
        decode_avro(_request(_tensor(), _tensor()), "request")


def test_errors_share_one_root():
    assert issubclass(CodecError, TensorfluxError)
    for error in (
        ContentsMismatch,
        UnknownDatatype,
        MalformedPayload,
        TensorNotFound,
        InvalidShape,
    ):
        assert issubclass(error, CodecError)


def test_tensor_not_found_lists_the_tensors_present():
    message = InferenceMessage(
        "r", (Tensor.from_array("a", [1]), Tensor.from_array("b", [2])), "request"
    )
    with pytest.raises(
        TensorNotFound, match=r"tensor 'c': not in this message; tensors present: 'a', 'b'"
    ):
        message.tensor("c")


def test_tensor_checks_its_parts():
    with pytest.raises(InvalidTensor, match="needs numpy dtype int32"):
        Tensor("t", "INT32", (1,), np.zeros(1, dtype=np.int64))
    with pytest.raises(InvalidTensor, match=r"shape \[2\] does not match"):
        Tensor("t", "INT64", (2,), np.zeros(1, dtype=np.int64))
    with pytest.raises(UnknownDatatype):
        Tensor("t", "FLOAT", (1,), np.zeros(1))
    with pytest.raises(ContentsMismatch, match="BYTES element 0 is int"):
        encode_avro(
            InferenceMessage(
                "r", (Tensor("t", "BYTES", (1,), np.array([3], dtype=object)),), "request"
            )
        )
