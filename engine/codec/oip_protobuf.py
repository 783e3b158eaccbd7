"""OIP V2 gRPC protobuf messages (KServe's `inference` package) <-> InferenceMessage.

Inputs arrive either in `raw_input_contents` (one entry per input, the raw
layout of `raw.py`: what tritonclient.grpc sends) or in each tensor's typed
`contents`; outputs always go back in `raw_output_contents`, which every OIP
client reads and which carries FP16 and exact bits. Parameters map to the
`InferParameter` oneof: bool, int64 or string (other values as JSON text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from engine.codec.errors import ContentsMismatch, InvalidMessage, InvalidShape
from engine.codec.proto import grpc_predict_v2_pb2 as pb
from engine.codec.raw import array_from_raw, element_count, raw_from_array, reshaped
from engine.dtypes import BYTES, dtype_of
from engine.messages import EMPTY, InferenceMessage, Tensor, new_tensor

CONTENTS_FIELD: Final[dict[str, str]] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""Which typed field holds each datatype (FP16 has none: raw contents only)."""

_INT64_RANGE: Final = (-(2**63), 2**63 - 1)


def request_from_proto(request: pb.ModelInferRequest, *, request_id: str) -> InferenceMessage:
    """The message of `request`, with id `request_id` (the caller's Kafka key; the
    request's own `id` is the body id the answer echoes)."""
    raws = request.raw_input_contents
    if raws and len(raws) != len(request.inputs):
        raise InvalidMessage(
            f"raw_input_contents has {len(raws)} entries for {len(request.inputs)} inputs; "
            "give one per input, in the order of 'inputs'"
        )
    tensors = []
    for index, item in enumerate(request.inputs):
        raw = raws[index] if raws else None
        tensors.append(_input_tensor(item, raw))
    return InferenceMessage(
        request_id,
        tuple(tensors),
        "request",
        request.model_name,
        request.model_version,
        parameters_from_proto(request.parameters, where="the request"),
        tuple(output.name for output in request.outputs),
    )


def _input_tensor(item: pb.ModelInferRequest.InferInputTensor, raw: bytes | None) -> Tensor:
    name, datatype = item.name, item.datatype
    dtype = dtype_of(datatype, tensor=name)
    shape = tuple(item.shape)
    if any(d < 0 for d in shape):
        raise InvalidShape(f"shape {list(shape)} has a negative dimension", tensor=name)
    parameters = parameters_from_proto(item.parameters, where=f"tensor {name!r}")
    if raw is not None:
        if item.HasField("contents"):
            raise ContentsMismatch(
                "has typed 'contents' and raw_input_contents; give one of them", tensor=name
            )
        data = array_from_raw(raw, 0, len(raw), datatype, shape, tensor=name)
        return new_tensor(name, datatype, shape, data, parameters)
    field = CONTENTS_FIELD.get(datatype)
    if field is None:
        raise ContentsMismatch(
            f"{datatype} travels only in raw_input_contents (it has no typed contents field)",
            tensor=name,
        )
    values = getattr(item.contents, field)
    count = element_count(shape, tensor=name)
    if len(values) != count:
        raise ContentsMismatch(
            f"shape {list(shape)} needs {count} elements, contents.{field} holds {len(values)}",
            tensor=name,
        )
    if datatype == BYTES:
        data = np.empty(count, dtype=object)
        data[:] = list(values)
    else:
        data = _typed(values, datatype, dtype, field, name)
    return new_tensor(name, datatype, shape, reshaped(data, shape, tensor=name), parameters)


def _typed(values: Any, datatype: str, dtype: np.dtype, field: str, name: str) -> np.ndarray:
    if dtype.kind in "iu":
        wide = np.asarray(values, dtype=np.uint64 if field == "uint64_contents" else np.int64)
        info = np.iinfo(dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            bad = next(int(v) for v in wide if not info.min <= v <= info.max)
            raise ContentsMismatch(
                f"{datatype} holds values from {info.min} to {info.max}, contents has {bad}",
                tensor=name,
            )
        return wide.astype(dtype)
    return np.asarray(values, dtype=dtype)


def parameters_from_proto(
    parameters: Mapping[str, pb.InferParameter], *, where: str
) -> Mapping[str, Any]:
    if not parameters:
        return EMPTY
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        if choice is not None:  # a kind this proto does not know (Triton's double) is dropped
            values[key] = getattr(parameter, choice)
    return MappingProxyType(values) if values else EMPTY


def parameters_to_proto(parameters: Mapping[str, Any], target: Any) -> None:
    """Fill the protobuf map `target` with `parameters`."""
    for key, value in parameters.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int) and _INT64_RANGE[0] <= value <= _INT64_RANGE[1]:
            target[key].int64_param = value
        elif isinstance(value, str):
            target[key].string_param = value
        else:
            target[key].string_param = json.dumps(value, default=str)


def response_to_proto(message: InferenceMessage) -> pb.ModelInferResponse:
    """The ModelInferResponse of `message`, every output in raw_output_contents."""
    response = pb.ModelInferResponse(
        model_name=message.model_name, model_version=message.model_version, id=message.id
    )
    parameters_to_proto(message.parameters, response.parameters)
    for tensor in message.tensors:
        output = response.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape)
        )
        parameters_to_proto(tensor.parameters, output.parameters)
        response.raw_output_contents.append(
            raw_from_array(tensor.datatype, tensor.data, tensor=tensor.name)
        )
    return response


def response_from_proto(response: pb.ModelInferResponse) -> InferenceMessage:
    """The message of a ModelInferResponse: raw outputs (what `response_to_proto` writes;
    the CLI's `infer --grpc` and remote models read it), or typed `contents` in every
    output when `raw_output_contents` is empty (what some servers answer)."""
    raws = response.raw_output_contents
    tensors = []
    for index, item in enumerate(response.outputs):
        if not raws:
            # InferOutputTensor has the fields of InferInputTensor that matter here.
            tensors.append(_input_tensor(item, None))  # type: ignore[arg-type]
            continue
        if index >= len(raws):
            raise InvalidMessage(f"output {item.name!r} has no raw_output_contents entry")
        shape = tuple(item.shape)
        data = array_from_raw(raws[index], 0, len(raws[index]), item.datatype, shape, tensor=item.name)  # fmt: skip
        parameters = parameters_from_proto(item.parameters, where=f"tensor {item.name!r}")
        tensors.append(Tensor(item.name, item.datatype, shape, data, parameters))
    return InferenceMessage(
        response.id,
        tuple(tensors),
        "response",
        response.model_name,
        response.model_version,
        parameters_from_proto(response.parameters, where="the response"),
    )


__all__ = [
    "CONTENTS_FIELD",
    "parameters_from_proto",
    "parameters_to_proto",
    "request_from_proto",
    "response_from_proto",
    "response_to_proto",
]
