"""ErrorRecord <-> schemaless Avro (schemas/ErrorRecord.avsc).

Error records are rare, so plain fastavro is fast enough here.
"""

from __future__ import annotations

from dataclasses import asdict

from engine.codec.avro import read_record, write_record
from engine.codec.errors import MalformedPayload
from engine.messages import ERROR_KINDS, ErrorRecord


def encode_error(record: ErrorRecord) -> bytes:
    """Schemaless Avro of an error record."""
    return write_record(asdict(record), "error")


def decode_error(payload: bytes) -> ErrorRecord:
    """The error record in `payload`; anything wrong raises a CodecError."""
    fields = read_record(payload, "error")
    if fields["kind"] not in ERROR_KINDS:
        raise MalformedPayload(
            f"error record kind {fields['kind']!r} is not one of {', '.join(ERROR_KINDS)}"
        )
    return ErrorRecord(**fields)
