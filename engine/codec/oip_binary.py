"""The binary tensor data extension of OIP V2 REST (Triton's, which KServe documents).

A body is a JSON header of `Inference-Header-Content-Length` bytes followed by
the tensors' raw bytes, one after another in the order of `inputs` (or
`outputs`). A tensor sent that way has `parameters.binary_data_size` (its byte
count) and no `data`; its bytes are the flattened row-major elements,
little-endian, with a BYTES element as a 4-byte little-endian length and then
its bytes: the layout of `raw.py`, so a binary tensor is read in place.

Which outputs come back binary: a requested output's `parameters.binary_data`
(true/false) decides for it; otherwise the request's
`parameters.binary_data_output` (default false), so a plain JSON client gets
JSON. Both are transport choices and do not travel to the model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from engine.codec import json_text
from engine.codec.errors import ContentsMismatch, InvalidJson, InvalidShape
from engine.codec.oip_json import message_from_document, message_to_document, tensor_item
from engine.codec.raw import array_from_raw, raw_from_array
from engine.dtypes import dtype_of
from engine.messages import EMPTY, InferenceMessage, Tensor, new_tensor

HEADER_LENGTH: Final = "inference-header-content-length"
"""The HTTP header giving the JSON header's length in bytes (lower case, as ASGI has it)."""
BINARY_DATA_SIZE: Final = "binary_data_size"
BINARY_DATA: Final = "binary_data"
"""Per requested output: answer this one binary (true) or as JSON (false)."""
BINARY_DATA_OUTPUT: Final = "binary_data_output"
"""Request parameter: the default of `binary_data` for every output."""


@dataclass(frozen=True)
class BinaryOutputs:
    """Which outputs of the answer go binary."""

    default: bool = False
    per_output: Mapping[str, bool] = field(default_factory=dict)

    def wants(self, name: str) -> bool:
        return self.per_output.get(name, self.default)

    def any(self) -> bool:
        return self.default or any(self.per_output.values())


JSON_OUTPUTS: Final = BinaryOutputs()


def header_length(value: str, body_size: int) -> int:
    """The `Inference-Header-Content-Length` value, checked against the body."""
    try:
        length = int(value)
    except ValueError:
        raise InvalidJson(
            f"the Inference-Header-Content-Length header must be an integer, got {value!r}"
        ) from None
    if not 0 <= length <= body_size:
        raise InvalidJson(
            f"Inference-Header-Content-Length {length} does not fit the body "
            f"({body_size} bytes); it is the length of the JSON header in bytes"
        )
    return length


def decode_binary_request(
    body: bytes, length: int, *, default_id: str
) -> tuple[InferenceMessage, dict[str, Any]]:
    """The request in `body` whose first `length` bytes are its JSON header, and
    that header. Binary inputs are views of `body`."""
    try:
        document = json.loads(body[:length])
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(
            f"the first {length} bytes of the body (Inference-Header-Content-Length) "
            f"are not a JSON inference request: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidJson(f"an inference request is a JSON object, got {type(document).__name__}")
    items = document.get("inputs")
    if not isinstance(items, list):
        return message_from_document(document, "request", default_id=default_id), document
    binary: dict[int, Tensor] = {}
    position = length
    for index, item in enumerate(items):
        size = _binary_size(item)
        if size is None:
            continue
        binary[index] = _binary_tensor(item, index, body, position, size)
        position += size
    if position != len(body):
        raise InvalidJson(
            f"the body holds {len(body) - position} bytes after the last binary tensor: "
            f"the inputs' binary_data_size ({position - length} bytes in all) must add up to "
            f"the {len(body) - length} bytes after the JSON header"
        )
    plain = [item for index, item in enumerate(items) if index not in binary]
    message = message_from_document({**document, "inputs": plain}, "request", default_id=default_id)
    if binary:
        decoded = iter(message.tensors)
        ordered = [binary[i] if i in binary else next(decoded) for i in range(len(items))]
        message = message.replace(tensors=tuple(ordered))
    return message, document


def _binary_size(item: Any) -> int | None:
    if not isinstance(item, dict) or not isinstance(item.get("parameters"), dict):
        return None
    if BINARY_DATA_SIZE not in item["parameters"]:
        return None
    size = item["parameters"][BINARY_DATA_SIZE]
    name = item.get("name") if isinstance(item.get("name"), str) else None
    if type(size) is not int or size < 0:
        raise InvalidJson(
            f"'parameters.binary_data_size' must be a byte count, got {size!r}", tensor=name
        )
    if "data" in item:
        raise InvalidJson("has both 'data' and 'parameters.binary_data_size'", tensor=name)
    return size


def _binary_tensor(item: dict[str, Any], index: int, body: bytes, start: int, size: int) -> Tensor:
    name = item.get("name")
    if not isinstance(name, str):
        raise InvalidJson(f"inputs[{index}] needs a string 'name'")
    if start + size > len(body):
        raise ContentsMismatch(
            f"binary_data_size {size} runs past the end of the body: "
            f"{len(body) - start} bytes of binary data are left for it",
            tensor=name,
        )
    datatype = item.get("datatype")
    dtype_of(datatype, tensor=name)
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise InvalidShape(f"'shape' must be a list of sizes, got {shape!r}", tensor=name)
    data = array_from_raw(body, start, start + size, datatype, tuple(shape), tensor=name)
    parameters = {k: v for k, v in item["parameters"].items() if k != BINARY_DATA_SIZE}
    return new_tensor(name, datatype, tuple(shape), data, MappingProxyType(parameters) or EMPTY)


def binary_outputs(document: Mapping[str, Any]) -> BinaryOutputs:
    """What the request `document` asks of its answer's encoding."""
    parameters = document.get("parameters")
    default = False
    if isinstance(parameters, dict) and BINARY_DATA_OUTPUT in parameters:
        default = parameters[BINARY_DATA_OUTPUT]
        if type(default) is not bool:
            raise InvalidJson(f"'parameters.binary_data_output' must be true or false, got {default!r}")  # fmt: skip
    per_output: dict[str, bool] = {}
    requested = document.get("outputs")
    for item in requested if isinstance(requested, list) else ():
        wanted = item.get("parameters") if isinstance(item, dict) else None
        if isinstance(wanted, dict) and BINARY_DATA in wanted:
            choice = wanted[BINARY_DATA]
            if type(choice) is not bool:
                raise InvalidJson(
                    f"'parameters.binary_data' of requested output {item.get('name')!r} "
                    f"must be true or false, got {choice!r}"
                )
            per_output[str(item.get("name"))] = choice
    return BinaryOutputs(default, per_output)


def without_transport_parameters(message: InferenceMessage) -> InferenceMessage:
    """`message` without `binary_data_output`, which is for the gateway, not the model."""
    if BINARY_DATA_OUTPUT not in message.parameters:
        return message
    kept = {k: v for k, v in message.parameters.items() if k != BINARY_DATA_OUTPUT}
    return message.replace(parameters=kept)


def encode_response(message: InferenceMessage, binary: BinaryOutputs) -> tuple[bytes, int | None]:
    """The body of the answer and, when some outputs are binary, the length of its
    JSON header (the value of Inference-Header-Content-Length); None for plain JSON."""
    if not binary.any():
        # orjson where it writes the standard library's exact bytes (json_text.py): the
        # stdlib encoder was ~5% of the gateway's CPU at 64 connections (py-spy).
        return json_text.dumps(message_to_document(message)), None
    document = message_to_document(message.replace(tensors=()))
    items, raws = [], []
    for tensor in message.tensors:
        if not binary.wants(tensor.name):
            items.append(tensor_item(tensor))
            continue
        raw = raw_from_array(tensor.datatype, tensor.data, tensor=tensor.name)
        raws.append(raw)
        items.append(_binary_item(tensor, len(raw)))
    document["outputs"] = items
    header = json_text.dumps(document)
    return header + b"".join(raws), len(header)


def _binary_item(tensor: Tensor, size: int) -> dict[str, Any]:
    parameters = {k: v.item() if hasattr(v, "item") else v for k, v in tensor.parameters.items()}
    parameters[BINARY_DATA_SIZE] = size
    return {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
        "parameters": parameters,
    }


__all__ = [
    "BINARY_DATA",
    "BINARY_DATA_OUTPUT",
    "BINARY_DATA_SIZE",
    "HEADER_LENGTH",
    "JSON_OUTPUTS",
    "BinaryOutputs",
    "binary_outputs",
    "decode_binary_request",
    "encode_response",
    "header_length",
    "without_transport_parameters",
]
