"""Choosing the codec from a Kafka record's headers, and the schema version.

A record's value is OIP JSON when its content-type header says JSON, and
tensorflux Avro otherwise. The Avro schema version travels in the
`tensorflux-schema-version` header; a record without it is version 1, so plain
Avro producers that know nothing of tensorflux headers work unchanged.
"""

from __future__ import annotations

from typing import Final

from engine import headers as h
from engine.codec import fast_avro
from engine.codec.errors import UnsupportedSchemaVersion
from engine.codec.oip_json import decode_json
from engine.messages import InferenceMessage, MessageKind

SCHEMA_VERSION: Final = 1  # the version the .avsc files carry as "tensorflux_schema_version"
SUPPORTED_SCHEMA_VERSIONS: Final = frozenset({"1"})


def check_schema_version(headers: h.Headers) -> None:
    """UnsupportedSchemaVersion unless the record's schema version is one we read."""
    version = h.header_value(headers, h.SCHEMA_VERSION)
    if version is not None and version.strip() not in SUPPORTED_SCHEMA_VERSIONS:
        raise UnsupportedSchemaVersion(version, h.SCHEMA_VERSION, sorted(SUPPORTED_SCHEMA_VERSIONS))


def decode_payload(
    payload: bytes, headers: h.Headers, kind: MessageKind, *, default_id: str | None = None
) -> InferenceMessage:
    """The message in a record value: JSON when content-type says so, else Avro
    of the version the headers name. A JSON request without an id takes
    `default_id`, else the x-request-id header, else a fresh uuid."""
    if h.is_json(headers):
        if default_id is None:
            default_id = h.header_value(headers, h.REQUEST_ID)
        return decode_json(payload, kind, default_id=default_id)
    check_schema_version(headers)
    return fast_avro.decode(payload, kind)


def avro_headers(message: InferenceMessage, **more: str | None) -> list[tuple[str, bytes]]:
    """Headers for an Avro record of `message`: request id, schema version,
    and any of pipeline/step/traceparent given."""
    return h.build_headers(
        request_id=message.id,
        schema_version=SCHEMA_VERSION,
        pipeline=more.get("pipeline"),
        step=more.get("step"),
        traceparent=more.get("traceparent"),
    )
