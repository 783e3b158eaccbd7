"""The Avro schemas and the reference codec built on plain fastavro.

`schemas/*.avsc` are the contract; any Avro library in any language can write
and read what tensorflux puts on Kafka with them (schemaless binary: no
container header, no registry magic byte). The engine's hot path uses the
hand-written `fast_avro` module instead; this module is what it is checked
against, and the codec for the rare error records.
"""

from __future__ import annotations

import io
import json
from functools import cache
from pathlib import Path
from typing import Any, Final

import fastavro

from engine.codec import parameters as params
from engine.codec.errors import CodecError, DuplicateTensor, MalformedPayload
from engine.codec.raw import array_from_raw, raw_from_array
from engine.messages import InferenceMessage, MessageKind, Tensor

SCHEMA_DIR: Final = Path(__file__).resolve().parents[2] / "schemas"

# Schema file per message kind; the tensors field name differs as in OIP.
SCHEMA_FILES: Final = {
    "request": "InferenceRequest.avsc",
    "response": "InferenceResponse.avsc",
    "error": "ErrorRecord.avsc",
}
TENSORS_FIELD: Final = {"request": "inputs", "response": "outputs"}


@cache
def schema_json(kind: str) -> dict[str, Any]:
    """The schema as written in its .avsc file (the dict, unparsed)."""
    path = SCHEMA_DIR / SCHEMA_FILES[kind]
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CodecError(f"cannot read Avro schema {path}: {exc}") from None


@cache
def parsed_schema(kind: str) -> Any:
    """The schema parsed by fastavro, ready for schemaless_writer/reader."""
    return fastavro.parse_schema(schema_json(kind))


def message_to_record(message: InferenceMessage) -> dict[str, Any]:
    """The dict fastavro writes for `message` (contents as raw bytes)."""
    record: dict[str, Any] = {
        "id": message.id,
        "model_name": message.model_name,
        "model_version": message.model_version,
        "parameters": params.to_record_values(message.parameters, tensor=None),
        TENSORS_FIELD[message.kind]: [
            {
                "name": t.name,
                "datatype": t.datatype,
                "shape": list(t.shape),
                "parameters": params.to_record_values(t.parameters, tensor=t.name),
                "contents": raw_from_array(t.datatype, t.data, tensor=t.name),
            }
            for t in message.tensors
        ],
    }
    if message.kind == "request":
        record["outputs"] = list(message.requested_outputs)
    return record


def record_to_message(record: dict[str, Any], kind: MessageKind) -> InferenceMessage:
    """The message a fastavro-read dict holds, with every tensor checked."""
    tensors = []
    seen: set[str] = set()
    for item in record[TENSORS_FIELD[kind]]:
        name = item["name"]
        if name in seen and kind == "request":  # a response may repeat a name (Seldon does)
            raise DuplicateTensor(f"appears twice in {kind} {record['id']!r}", tensor=name)
        seen.add(name)
        contents = item["contents"]
        shape = tuple(item["shape"])
        data = array_from_raw(contents, 0, len(contents), item["datatype"], shape, tensor=name)
        tensors.append(
            Tensor(
                name,
                item["datatype"],
                shape,
                data,
                params.from_record_values(item["parameters"], tensor=name),
            )
        )
    return InferenceMessage(
        id=record["id"],
        tensors=tuple(tensors),
        kind=kind,
        model_name=record["model_name"],
        model_version=record["model_version"],
        parameters=params.from_record_values(record["parameters"], tensor=None),
        requested_outputs=tuple(record["outputs"]) if kind == "request" else (),
    )


def write_record(record: dict[str, Any], kind: str) -> bytes:
    """Schemaless Avro of `record` written by plain fastavro."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed_schema(kind), record)
    return out.getvalue()


def read_record(payload: bytes, kind: str) -> dict[str, Any]:
    """The dict plain fastavro reads from `payload`; any failure, and bytes
    left over at the end, is a MalformedPayload."""
    stream = io.BytesIO(payload)
    try:
        record = fastavro.schemaless_reader(stream, parsed_schema(kind), None)
    except Exception as exc:  # fastavro raises many kinds for bad bytes; all mean malformed
        raise MalformedPayload(
            f"not a valid Avro {SCHEMA_FILES[kind].removesuffix('.avsc')}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if stream.tell() != len(payload):
        raise MalformedPayload(
            f"{len(payload) - stream.tell()} bytes left over after the "
            f"{SCHEMA_FILES[kind].removesuffix('.avsc')} record"
        )
    return record


def reference_encode(message: InferenceMessage) -> bytes:
    """encode_avro done by fastavro: slower, byte-identical."""
    return write_record(message_to_record(message), message.kind)


def reference_decode(payload: bytes, kind: MessageKind) -> InferenceMessage:
    """decode_avro done by fastavro: slower, same result."""
    return record_to_message(read_record(payload, kind), kind)
