"""The data plane's language: inference messages <-> Avro and OIP V2 JSON.

Avro (schemas/*.avsc, schemaless binary) is what every topic carries; the
hand-written `fast_avro` codec is the hot path and `avro` (plain fastavro) the
reference it is tested against. OIP JSON is accepted on input topics and
spoken by the HTTP gateway. Every failure is a `CodecError`.
"""

from __future__ import annotations

from engine.codec import fast_avro
from engine.codec.envelope import (
    SCHEMA_VERSION,
    SUPPORTED_SCHEMA_VERSIONS,
    avro_headers,
    check_schema_version,
    decode_payload,
)
from engine.codec.error_record import decode_error, encode_error
from engine.codec.errors import (
    CodecError,
    ContentsMismatch,
    DuplicateTensor,
    InvalidJson,
    InvalidMessage,
    InvalidShape,
    InvalidTensor,
    MalformedPayload,
    TensorNotFound,
    UnknownDatatype,
    UnsupportedSchemaVersion,
)
from engine.codec.oip_json import (
    decode_json,
    encode_json,
    message_from_document,
    message_to_document,
)
from engine.codec.parameters import InvalidParameter
from engine.dtypes import DATATYPE_TO_DTYPE, DATATYPES, datatype_of, dtype_of
from engine.messages import ErrorRecord, InferenceMessage, MessageKind

encode_avro = fast_avro.encode
decode_avro = fast_avro.decode

__all__ = [
    "DATATYPES",
    "DATATYPE_TO_DTYPE",
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_VERSIONS",
    "CodecError",
    "ContentsMismatch",
    "DuplicateTensor",
    "ErrorRecord",
    "InferenceMessage",
    "InvalidJson",
    "InvalidMessage",
    "InvalidParameter",
    "InvalidShape",
    "InvalidTensor",
    "MalformedPayload",
    "MessageKind",
    "TensorNotFound",
    "UnknownDatatype",
    "UnsupportedSchemaVersion",
    "avro_headers",
    "check_schema_version",
    "datatype_of",
    "decode_avro",
    "decode_error",
    "decode_json",
    "decode_payload",
    "dtype_of",
    "encode_avro",
    "encode_error",
    "encode_json",
    "message_from_document",
    "message_to_document",
]
