"""Headers, codec choice by content-type, schema versions, error records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import headers as h
from engine.codec import (
    SCHEMA_VERSION,
    CodecError,
    ErrorRecord,
    MalformedPayload,
    UnsupportedSchemaVersion,
    decode_error,
    decode_payload,
    encode_avro,
    encode_error,
)
from engine.codec.avro import schema_json
from engine.codec.envelope import avro_headers
from engine.messages import InferenceMessage, Tensor

MESSAGE = InferenceMessage(
    "r-1", (Tensor.from_array("x", np.arange(3, dtype=np.int64)),), "request"
)
JSON_BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [3], "datatype": "INT64", "data": [0, 1, 2]}]}
)


def test_header_helpers():
    headers = [
        ("Content-Type", b"application/json; charset=utf-8"),
        ("x-request-id", b"a"),
        ("x-request-id", b"b"),
    ]
    assert h.is_json(headers)
    assert h.header_value(headers, h.REQUEST_ID) == "b"  # the last one wins
    assert h.header_value(None, h.STEP, "none") == "none"
    assert not h.is_json(None) and not h.is_json([("content-type", b"application/avro")])
    assert h.build_headers(request_id="r", step="s", error="bad-input") == [
        ("x-request-id", b"r"),
        ("step", b"s"),
        ("tensorflux-error", b"bad-input"),
    ]
    assert h.is_error(h.build_headers(error="internal"))
    replaced = h.with_headers(headers, x_request_id="c", content_type=None)
    assert replaced == [("x-request-id", b"c")]


def test_content_type_selects_json_and_request_id_header_names_it():
    message = decode_payload(
        JSON_BODY.encode(),
        [("content-type", b"application/json"), ("x-request-id", b"hdr-7")],
        "request",
    )
    assert message.id == "hdr-7" and message.tensor("x") == MESSAGE.tensor("x")


def test_avro_is_the_default_and_schema_versions_are_checked():
    payload = encode_avro(MESSAGE)
    assert decode_payload(payload, None, "request") == MESSAGE
    assert decode_payload(payload, avro_headers(MESSAGE, step="s"), "request") == MESSAGE
    with pytest.raises(
        UnsupportedSchemaVersion, match="schema version '2' in header 'tensorflux-schema-version'"
    ):
        decode_payload(payload, [(h.SCHEMA_VERSION, b"2")], "request")


def test_schema_files_declare_the_version_the_code_reads():
    for kind in ("request", "response", "error"):
        assert schema_json(kind)["tensorflux_schema_version"] == SCHEMA_VERSION


def _every_field_documented(schema):
    if isinstance(schema, dict):
        if schema.get("type") == "record":
            assert schema.get("doc"), schema["name"]
            for field in schema["fields"]:
                assert field.get("doc"), f"{schema['name']}.{field['name']}"
        for value in schema.values():
            _every_field_documented(value)
    elif isinstance(schema, list):
        for item in schema:
            _every_field_documented(item)


@pytest.mark.parametrize("kind", ["request", "response", "error"])
def test_every_schema_field_has_a_doc(kind):
    _every_field_documented(schema_json(kind))


def test_error_records_round_trip():
    record = ErrorRecord.from_exception(
        CodecError("bad shape", tensor="x"),
        pipeline="p",
        step="s",
        request_id="r-1",
        stage="decode",
        payload=b"\x00\xff",
        source_topic="t",
        source_offset=42,
    )
    assert record.kind == "bad-input" and record.error_type == "CodecError"
    assert record.reason == "tensor 'x': bad shape"
    assert decode_error(encode_error(record)) == record
    bare = ErrorRecord("p", "s", "r-2", "model", "boom", kind="model-failure", timestamp_ms=5)
    assert decode_error(encode_error(bare)) == bare


@pytest.mark.parametrize("payload", [b"", b"\x02", b"\xff" * 20])
def test_bad_error_records_raise_codec_errors(payload):
    with pytest.raises(MalformedPayload):
        decode_error(payload)


@given(st.binary(max_size=80))
def test_random_error_record_bytes_raise_only_codec_errors(payload):
    try:
        decode_error(payload)
    except CodecError:
        pass


def test_a_route_in_seldons_spelling_names_the_candidate() -> None:
    names = {"iris", "iris2", "adds"}
    assert h.route_candidate("iris2", names) == "iris2"  # tensorflux's own
    assert h.route_candidate(":iris2_1:", names) == "iris2"  # Seldon Core 2's, versioned
    assert h.route_candidate(":prep_1::iris_12:", names) == "iris"  # several models
    assert h.route_candidate(":adds.pipeline:", names) == "adds"
    assert h.route_candidate(":other_1:", names) is None
    assert h.route_candidate(None, names) is None and h.route_candidate("", names) is None
