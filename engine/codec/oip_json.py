"""Open Inference Protocol V2 REST JSON <-> InferenceMessage.

Input topics accept this JSON (header `content-type: application/json`) so
kcat and any language can produce, and the HTTP gateway speaks it. `data` may
be flat or nested row-major; BYTES elements are UTF-8 strings, or base64 when
the tensor's `content_type` parameter says "base64" (MLServer's convention),
which is also how BYTES elements that are not UTF-8 are written.

JSON numbers carry every finite value bit-exactly (Python writes the shortest
float64 repr, which converts back to the same FP16/FP32/FP64 bits). NaN and
+-Infinity are written as the `NaN`/`Infinity` tokens Python, Triton and
MLServer clients read; a NaN's payload bits cannot survive JSON (use Avro).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from engine.codec import json_text
from engine.codec.errors import ContentsMismatch, DuplicateTensor, InvalidJson, InvalidShape
from engine.codec.raw import element_count, reshaped
from engine.dtypes import BOOL, BYTES, INTEGER_DATATYPES, dtype_of
from engine.messages import EMPTY, InferenceMessage, MessageKind, Tensor, new_message, new_tensor

CONTENT_TYPE_PARAMETER: Final = "content_type"
BASE64: Final = "base64"

_TENSORS_KEY: Final = {"request": "inputs", "response": "outputs"}
# Floats may arrive as strings from clients whose JSON cannot write NaN.
_FLOAT_WORDS: Final = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def decode_json(
    payload: bytes | str, kind: MessageKind = "request", *, default_id: str | None = None
) -> InferenceMessage:
    """The message in OIP V2 JSON `payload`. A request without `id` takes
    `default_id`, or a fresh uuid4 when there is none."""
    try:
        document = json_text.loads(payload)
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidJson(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise InvalidJson("payload nests JSON arrays/objects too deeply") from None
    if not isinstance(document, dict):
        raise InvalidJson(f"an OIP {kind} is a JSON object, got {type(document).__name__}")
    return message_from_document(document, kind, default_id=default_id)


def message_from_document(
    document: Mapping[str, Any], kind: MessageKind, *, default_id: str | None = None
) -> InferenceMessage:
    """The message held by an already-parsed OIP JSON object (the gateway's path)."""
    message_id = document.get("id")
    if message_id is None:
        message_id = default_id if default_id is not None else str(uuid.uuid4())
    elif not isinstance(message_id, str):
        raise InvalidJson(f"'id' must be a string, got {type(message_id).__name__}")
    key = _TENSORS_KEY.get(kind)
    if key is None:
        raise InvalidJson(f"kind must be 'request' or 'response', got {kind!r}")
    items = document.get(key)
    if not isinstance(items, list):
        raise InvalidJson(f"an OIP {kind} needs a list '{key}', got {type(items).__name__}")
    tensors = tuple(tensor_from_item(item, index, key) for index, item in enumerate(items))
    names = [t.name for t in tensors]
    if kind == "request" and len(set(names)) != len(names):  # responses may repeat one
        duplicate = next(n for n in names if names.count(n) > 1)
        raise DuplicateTensor(f"appears twice in {kind} {message_id!r}", tensor=duplicate)
    requested: tuple[str, ...] = ()
    if kind == "request":
        requested = _requested_outputs(document.get("outputs"))
    return new_message(
        message_id,
        tensors,
        kind,
        _optional_string(document, "model_name"),
        _optional_string(document, "model_version"),
        _parameters(document.get("parameters"), where="the message"),
        requested,
    )


def _optional_string(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidJson(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _parameters(value: Any, *, where: str, tensor: str | None = None) -> Mapping[str, Any]:
    if value is None or value == {}:
        return EMPTY
    if not isinstance(value, dict):
        raise InvalidJson(
            f"'parameters' of {where} must be an object, got {type(value).__name__}", tensor=tensor
        )
    return MappingProxyType(value)


def _requested_outputs(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidJson(f"'outputs' of a request must be a list, got {type(value).__name__}")
    names = []
    for index, item in enumerate(value):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            raise InvalidJson(f"requested output #{index} needs a string 'name'")
        names.append(name)
    return tuple(names)


def tensor_from_item(item: Any, index: int, key: str) -> Tensor:
    if not isinstance(item, dict):
        raise InvalidJson(f"{key}[{index}] must be an object, got {type(item).__name__}")
    name = item.get("name")
    if not isinstance(name, str):
        raise InvalidJson(f"{key}[{index}] needs a string 'name'")
    datatype = item.get("datatype")
    dtype = dtype_of(datatype, tensor=name)
    shape = _shape(item.get("shape"), tensor=name)
    parameters = _parameters(item.get("parameters"), where=f"tensor {name!r}", tensor=name)
    if "data" not in item:
        raise InvalidJson(
            "needs 'data' (or, for binary tensor data, 'parameters.binary_data_size' and "
            "the Inference-Header-Content-Length header)",
            tensor=name,
        )
    try:
        flat = _flatten(item["data"])
    except RecursionError:
        raise InvalidJson("'data' nests too deeply", tensor=name) from None
    count = element_count(shape, tensor=name)
    if len(flat) != count:
        raise ContentsMismatch(
            f"shape {list(shape)} needs {count} elements, 'data' holds {len(flat)}", tensor=name
        )
    if datatype == BYTES:
        base64_encoded = parameters.get(CONTENT_TYPE_PARAMETER) == BASE64
        data = _bytes_data(flat, base64_encoded, tensor=name)
        if base64_encoded:  # a transport encoding, not part of the tensor
            parameters = _parameters(
                {k: v for k, v in parameters.items() if k != CONTENT_TYPE_PARAMETER},
                where=f"tensor {name!r}",
            )
    else:
        data = _numeric_data(flat, datatype, dtype, tensor=name)
    return new_tensor(name, datatype, shape, reshaped(data, shape, tensor=name), parameters)


def _shape(value: Any, *, tensor: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(type(d) is int for d in value):
        raise InvalidShape(f"'shape' must be a list of integers, got {value!r}", tensor=tensor)
    if any(d < 0 for d in value):
        raise InvalidShape(f"shape {value} has a negative dimension", tensor=tensor)
    return tuple(value)


def _flatten(data: Any) -> list[Any]:
    """Row-major elements of flat or nested `data`; a bare value is one element."""
    if not isinstance(data, list):
        return [data]
    if not any(isinstance(element, list) for element in data):
        return data
    flat: list[Any] = []
    for element in data:
        flat.extend(_flatten(element) if isinstance(element, list) else (element,))
    return flat


def _numeric_data(flat: list[Any], datatype: str, dtype: np.dtype, *, tensor: str) -> np.ndarray:
    kinds = set(map(type, flat))
    if datatype == BOOL:
        allowed: set[type] = {bool}
    elif datatype in INTEGER_DATATYPES:
        allowed = {int}
    else:
        allowed = {int, float}
        if str in kinds:
            flat = [_FLOAT_WORDS.get(v, v) if type(v) is str else v for v in flat]
            kinds = set(map(type, flat))
    if not kinds <= allowed:
        bad = next(v for v in flat if type(v) not in allowed)
        raise ContentsMismatch(
            f"{datatype} data holds {bad!r} ({type(bad).__name__})", tensor=tensor
        )
    try:
        with np.errstate(over="ignore"):  # FP16 overflow becomes inf, as numpy casts
            return np.array(flat, dtype=dtype)
    except OverflowError:
        info = np.iinfo(dtype)
        bad = next(v for v in flat if not info.min <= v <= info.max)
        raise ContentsMismatch(
            f"{datatype} holds values from {info.min} to {info.max}, data has {bad}", tensor=tensor
        ) from None


def _bytes_data(flat: list[Any], base64_encoded: bool, *, tensor: str) -> np.ndarray:
    data = np.empty(len(flat), dtype=object)
    for index, element in enumerate(flat):
        if not isinstance(element, str):
            raise ContentsMismatch(
                f"BYTES element {index} is {type(element).__name__}; JSON BYTES are strings",
                tensor=tensor,
            )
        if base64_encoded:
            try:
                data[index] = base64.b64decode(element, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ContentsMismatch(
                    f"BYTES element {index} is not base64 ({exc})", tensor=tensor
                ) from None
        else:
            try:
                data[index] = element.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate from a \udXXX escape
                raise ContentsMismatch(
                    f"BYTES element {index} is not valid Unicode text", tensor=tensor
                ) from None
    return data


# ---------------------------------------------------------------- encoding


def encode_json(message: InferenceMessage) -> bytes:
    """OIP V2 REST JSON of `message` (a request or a response)."""
    return json_text.dumps(message_to_document(message))


def message_to_document(message: InferenceMessage) -> dict[str, Any]:
    """The OIP JSON object for `message`, before serialisation."""
    document: dict[str, Any] = {"id": message.id}
    if message.model_name:
        document["model_name"] = message.model_name
    if message.model_version:
        document["model_version"] = message.model_version
    if message.parameters:
        document["parameters"] = _json_parameters(message.parameters)
    document[_TENSORS_KEY[message.kind]] = [tensor_item(t) for t in message.tensors]
    if message.kind == "request" and message.requested_outputs:
        document["outputs"] = [{"name": name} for name in message.requested_outputs]
    return document


def tensor_item(tensor: Tensor) -> dict[str, Any]:
    parameters = dict(tensor.parameters)
    if tensor.datatype == BYTES:
        data, as_base64 = _bytes_elements(tensor)
        if as_base64:
            parameters[CONTENT_TYPE_PARAMETER] = BASE64
    else:
        data = tensor.data.ravel().tolist()
    item: dict[str, Any] = {
        "name": tensor.name,
        "shape": list(tensor.shape),
        "datatype": tensor.datatype,
    }
    if parameters:
        item["parameters"] = _json_parameters(parameters)
    item["data"] = data
    return item


def _bytes_elements(tensor: Tensor) -> tuple[list[str], bool]:
    """Elements as UTF-8 strings, or all as base64 when one is not UTF-8 (or
    the tensor already asks for base64)."""
    elements = [bytes(e) for e in tensor.data.ravel().tolist()]
    if tensor.parameters.get(CONTENT_TYPE_PARAMETER) != BASE64:
        try:
            return [e.decode("utf-8") for e in elements], False
        except UnicodeDecodeError:
            pass
    return [base64.b64encode(e).decode("ascii") for e in elements], True


def _json_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in parameters.items()}


__all__ = [
    "decode_json",
    "encode_json",
    "message_from_document",
    "message_to_document",
    "tensor_from_item",
    "tensor_item",
]
