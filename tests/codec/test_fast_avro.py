"""The hand-written Avro codec against plain fastavro, its reference.

Byte-identical output, the same messages from the same bytes, the same
rejections; and the interoperability promise: plain fastavro with nothing but
the .avsc file writes what the engine reads, and reads what it writes.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import fastavro
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.codec import CodecError, MalformedPayload, decode_avro, encode_avro
from engine.codec.avro import reference_decode, reference_encode
from engine.codec.avro_wire import encode_string
from engine.codec.fast_avro import with_model_name
from engine.messages import InferenceMessage, Tensor

from .strategies import messages

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@given(messages())
def test_fast_encoding_is_byte_identical_to_fastavro(message):
    assert encode_avro(message) == reference_encode(message)


@given(messages())
def test_fast_decoding_reads_what_fastavro_writes(message):
    payload = reference_encode(message)
    decoded = decode_avro(payload, message.kind)
    assert decoded == message
    assert decoded == reference_decode(payload, message.kind)


def _outcome(decode, payload, kind):
    try:
        return decode(payload, kind), None
    except CodecError as exc:  # anything else escapes and fails the test
        return None, exc


def _mutations():
    @st.composite
    def mutate(draw):
        message = draw(messages())
        payload = bytearray(encode_avro(message))
        action = draw(st.sampled_from(["truncate", "flip", "insert", "append"]))
        if action == "truncate":
            del payload[draw(st.integers(0, max(len(payload) - 1, 0))) :]
        elif action == "flip" and payload:
            index = draw(st.integers(0, len(payload) - 1))
            payload[index] = draw(st.integers(0, 255))
        elif action == "insert":
            index = draw(st.integers(0, len(payload)))
            payload[index:index] = draw(st.binary(min_size=1, max_size=4))
        else:
            payload += draw(st.binary(min_size=1, max_size=4))
        return message.kind, bytes(payload)

    return mutate()


@settings(max_examples=400)
@given(_mutations())
# A flipped byte can make a double parameter NaN (found by hypothesis): NaN != NaN.
@example(("request", b"\x02a\x00\x00\x02\x02p\x06\x00\x00\x00\x00\x00\x00\xf8\x7f\x00\x00\x00"))
def test_fast_decoder_rejects_what_fastavro_rejects_and_agrees_on_the_rest(case):
    kind, payload = case
    fast, fast_error = _outcome(decode_avro, payload, kind)
    ref, ref_error = _outcome(reference_decode, payload, kind)
    if ref_error is not None:
        assert fast_error is not None, f"fastavro rejects ({ref_error}) but fast path accepted"
    elif fast_error is not None:
        # Stricter than fastavro only where fastavro accepts invalid Avro: it
        # wraps over-long varints, and a negative union index picks a branch
        # from the end of the union (Python list indexing).
        assert isinstance(fast_error, MalformedPayload)
        assert "varint" in str(fast_error) or "union branch -" in str(fast_error)
    else:
        # == cannot say for a NaN parameter: then what the two decodes write must
        # be the same bytes (NaN's bits included).
        assert fast == ref or reference_encode(fast) == reference_encode(ref)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.sampled_from(["request", "response"]))
@example(b"", "request")
@example(b"\x00\x00\x00\x00\x02\x02a\x0aINT32\x02\xff\x01", "request")
def test_random_bytes_raise_only_codec_errors(payload, kind):
    _outcome(decode_avro, payload, kind)


# ------------------------------------------------------- interoperability
# These tests use only json, fastavro, struct and numpy on the producer /
# consumer side: what a user in another process (or language) would do.


def _plain_schema(name):
    return fastavro.parse_schema(json.loads((SCHEMAS / f"{name}.avsc").read_text()))


def test_request_written_by_plain_fastavro_decodes_to_the_same_tensors():
    words = [b"hello", "wörld".encode(), b"\x00\xff"]
    record = {
        "id": "req-1",
        "model_name": "iris",
        "inputs": [
            {
                "name": "INPUT0",
                "datatype": "INT32",
                "shape": [1, 4],
                "contents": struct.pack("<4i", 1, -2, 3, 2**31 - 1),
            },
            {
                "name": "TEXT",
                "datatype": "BYTES",
                "shape": [3],
                "parameters": {"content_type": "str"},
                "contents": b"".join(struct.pack("<I", len(w)) + w for w in words),
            },
            {
                "name": "HALF",
                "datatype": "FP16",
                "shape": [],
                "contents": struct.pack("<e", 1.5),
            },
        ],
    }  # model_version, parameters and outputs left to the schema's defaults
    out = io.BytesIO()
    fastavro.schemaless_writer(out, _plain_schema("InferenceRequest"), record)

    message = decode_avro(out.getvalue(), "request")

    assert message.id == "req-1" and message.model_name == "iris"
    assert message.names() == ("INPUT0", "TEXT", "HALF")
    np.testing.assert_array_equal(message.tensor("INPUT0").data, [[1, -2, 3, 2**31 - 1]])
    assert message.tensor("INPUT0").data.dtype == np.int32
    assert message.tensor("TEXT").data.tolist() == words
    assert dict(message.tensor("TEXT").parameters) == {"content_type": "str"}
    assert message.tensor("HALF").shape == () and message.tensor("HALF").data == np.float16(1.5)


def test_response_written_by_the_engine_reads_with_plain_fastavro():
    scores = np.array([[0.25, float("nan")], [-0.0, 3e38]], dtype=np.float32)
    message = InferenceMessage(
        "req-2",
        (Tensor.from_array("scores", scores), Tensor.from_array("label", np.array([b"cat"]))),
        "response",
        model_name="clf",
        parameters={"batch": 2, "tags": ["a", "b"]},
    )

    record = fastavro.schemaless_reader(
        io.BytesIO(encode_avro(message)), _plain_schema("InferenceResponse"), None
    )

    assert record["id"] == "req-2" and record["model_name"] == "clf"
    assert record["parameters"] == {"batch": 2, "tags": {"json": '["a", "b"]'}}
    first, second = record["outputs"]
    assert (first["name"], first["datatype"], first["shape"]) == ("scores", "FP32", [2, 2])
    assert first["contents"] == scores.astype("<f4").tobytes()
    assert second["datatype"] == "BYTES" and second["contents"] == b"\x03\x00\x00\x00cat"


@given(messages(), st.text(max_size=40))
def test_renaming_the_model_keeps_every_other_byte(message, name):
    renamed = with_model_name(encode_avro(message), encode_string(name))
    assert renamed == reference_encode(message.replace(model_name=name))


def test_renaming_the_model_of_a_cut_off_payload_is_a_codec_error():
    with pytest.raises(MalformedPayload, match="model_name is cut off"):
        with_model_name(b"\x08ab", b"\x02x")
