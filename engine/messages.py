"""The engine's immutable inference messages: what every topic carries.

`InferenceMessage` is an Open Inference Protocol V2 request or response whose
tensors hold numpy arrays; the codecs in `engine.codec` turn it into Avro or
OIP JSON and back. `ErrorRecord` is a failure turned into data.

Decoded numeric tensors are read-only views of the payload bytes (zero-copy);
treat every array as read-only, and build new tensors instead of mutating.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal, get_args

import numpy as np

from engine.dtypes import BYTES, datatype_of, dtype_of
from engine.tensor_errors import (
    CodecError,
    DuplicateTensor,
    InvalidMessage,
    InvalidTensor,
    TensorNotFound,
)

MessageKind = Literal["request", "response"]
MESSAGE_KINDS: Final[tuple[str, ...]] = get_args(MessageKind)

ErrorKind = Literal["bad-input", "model-failure", "timeout", "internal"]
"""Who should act on an error record (schemas/ErrorRecord.avsc); checked on build and decode."""
ERROR_KINDS: Final[tuple[str, ...]] = get_args(ErrorKind)

Stage = Literal["decode", "join", "revisits", "model", "model-output", "produce"]
"""What the engine was doing when a request failed, as the runtime writes it. Not
checked when records are read: the schema keeps it a string, so records written
by other versions stay readable."""
STAGES: Final[tuple[str, ...]] = get_args(Stage)

# One shared empty read-only mapping: the default parameters of everything.
EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


def _empty() -> Mapping[str, Any]:
    return EMPTY


def _read_only(parameters: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if not parameters:
        return EMPTY
    if type(parameters) is MappingProxyType:
        return parameters
    return MappingProxyType(dict(parameters))


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named tensor: OIP datatype, shape and a numpy array of that shape.

    Equality is bit-exact: same name, datatype, shape, parameters and the same
    bytes (so NaNs with equal payloads are equal, 0.0 and -0.0 are not).
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray
    parameters: Mapping[str, Any] = field(default_factory=_empty)  # read-only

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise InvalidTensor(f"name must be a str, got {type(self.name).__name__}", tensor=None)
        dtype = dtype_of(self.datatype, tensor=self.name)
        if type(self.shape) is not tuple:
            object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if type(self.parameters) is not MappingProxyType:
            object.__setattr__(self, "parameters", _read_only(self.parameters))
        if not isinstance(self.data, np.ndarray):
            raise InvalidTensor(
                f"data must be a numpy array, got {type(self.data).__name__}; "
                f"use Tensor.from_array to convert",
                tensor=self.name,
            )
        if self.data.dtype != dtype:
            raise InvalidTensor(
                f"{self.datatype} needs numpy dtype {dtype}, data has {self.data.dtype}; "
                f"use Tensor.from_array to convert",
                tensor=self.name,
            )
        if self.data.shape != self.shape:
            raise InvalidTensor(
                f"shape {list(self.shape)} does not match the data's shape {list(self.data.shape)}",
                tensor=self.name,
            )

    @staticmethod
    def from_array(name: str, array: Any, datatype: str | None = None) -> Tensor:
        """A tensor holding `array` (anything numpy can turn into an array).

        The datatype is inferred from the dtype unless given; the array is
        converted (little-endian, the table's dtype) only when it must be.
        str elements of BYTES tensors are encoded as UTF-8.
        """
        array = np.asarray(array)
        if datatype is None:
            datatype = datatype_of(array.dtype, tensor=name)
        dtype = dtype_of(datatype, tensor=name)
        if datatype == BYTES:
            array = _as_bytes_array(array, tensor=name)
        elif array.dtype != dtype:
            try:
                array = array.astype(dtype, casting="same_kind")
            except TypeError as exc:
                raise InvalidTensor(
                    f"cannot convert numpy dtype {array.dtype} to {datatype}: {exc}", tensor=name
                ) from None
        return Tensor(name, datatype, array.shape, array)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Tensor:
            return NotImplemented
        if (
            self.name != other.name
            or self.datatype != other.datatype
            or self.shape != other.shape
            or self.parameters != other.parameters
        ):
            return False
        if self.datatype == BYTES:
            return self.data.tolist() == other.data.tolist()
        return self.data.tobytes() == other.data.tobytes()

    def __repr__(self) -> str:
        params = f", parameters={dict(self.parameters)!r}" if self.parameters else ""
        return f"Tensor({self.name!r}, {self.datatype}, shape={list(self.shape)}{params})"


def _as_bytes_array(array: np.ndarray, *, tensor: str) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    flat_out = out.reshape(-1)
    for index, element in enumerate(array.flat):
        if isinstance(element, bytes):
            flat_out[index] = element
        elif isinstance(element, str):
            flat_out[index] = element.encode("utf-8")
        elif isinstance(element, bytearray | memoryview):
            flat_out[index] = bytes(element)
        else:
            raise InvalidTensor(
                f"BYTES element {index} is {type(element).__name__}; give bytes or str",
                tensor=tensor,
            )
    return out


@dataclass(frozen=True, slots=True)
class InferenceMessage:
    """An OIP V2 inference request (`tensors` are its inputs) or response
    (`tensors` are its outputs)."""

    id: str
    tensors: tuple[Tensor, ...]
    kind: MessageKind
    model_name: str = ""
    model_version: str = ""
    parameters: Mapping[str, Any] = field(default_factory=_empty)  # read-only
    requested_outputs: tuple[str, ...] = ()  # requests only: OIP `outputs[].name`

    def __post_init__(self) -> None:
        if self.kind not in MESSAGE_KINDS:
            raise InvalidMessage(f"kind must be 'request' or 'response', got {self.kind!r}")
        if type(self.tensors) is not tuple:
            object.__setattr__(self, "tensors", tuple(self.tensors))
        if type(self.requested_outputs) is not tuple:
            object.__setattr__(self, "requested_outputs", tuple(self.requested_outputs))
        if type(self.parameters) is not MappingProxyType:
            object.__setattr__(self, "parameters", _read_only(self.parameters))
        # A request's names must be unique (a model reads its inputs by name); a response
        # may repeat one, as Seldon answers a pipeline whose output steps both say OUTPUT.
        seen: set[str] = set()
        request = self.kind == "request"
        for tensor in self.tensors:
            if type(tensor) is not Tensor:
                raise InvalidMessage(f"tensors must be Tensor objects, got {type(tensor).__name__}")
            if request:
                if tensor.name in seen:
                    raise DuplicateTensor(
                        f"appears twice in {self.kind} {self.id!r}", tensor=tensor.name
                    )
                seen.add(tensor.name)

    def tensor(self, name: str) -> Tensor:
        """The (first) tensor called `name`; TensorNotFound lists the names present."""
        for tensor in self.tensors:
            if tensor.name == name:
                return tensor
        raise TensorNotFound(name, self.names())

    def names(self) -> tuple[str, ...]:
        return tuple(tensor.name for tensor in self.tensors)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Tensor name -> array, the shape a Python model's `predict` takes (requests only
        are sure to have distinct names: a response's repeated name keeps its last array)."""
        return {tensor.name: tensor.data for tensor in self.tensors}

    def replace(self, **changes: Any) -> InferenceMessage:
        return dataclasses.replace(self, **changes)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """A failure as data (schemas/ErrorRecord.avsc documents every field)."""

    pipeline: str
    step: str
    request_id: str
    stage: Stage
    reason: str
    payload: bytes | None = None
    kind: ErrorKind = "internal"
    error_type: str = ""
    timestamp_ms: int = field(default_factory=_now_ms)
    source_topic: str = ""
    source_partition: int = -1
    source_offset: int = -1
    payload_content_type: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ERROR_KINDS:
            raise InvalidMessage(
                f"error kind must be one of {', '.join(ERROR_KINDS)}; got {self.kind!r}"
            )

    @staticmethod
    def from_exception(
        exc: BaseException,
        *,
        pipeline: str,
        step: str,
        request_id: str,
        stage: Stage,
        payload: bytes | None = None,
        kind: ErrorKind | None = None,
        **source: Any,
    ) -> ErrorRecord:
        """An error record for `exc`; codec errors are 'bad-input' unless `kind` says otherwise."""
        if kind is None:
            kind = "bad-input" if isinstance(exc, CodecError) else "internal"
        return ErrorRecord(
            pipeline=pipeline,
            step=step,
            request_id=request_id,
            stage=stage,
            reason=str(exc) or type(exc).__name__,
            payload=payload,
            kind=kind,
            error_type=type(exc).__name__,
            **source,
        )


def new_tensor(
    name: str,
    datatype: str,
    shape: tuple[int, ...],
    data: np.ndarray,
    parameters: Mapping[str, Any] = EMPTY,
) -> Tensor:
    """A Tensor without `__post_init__`'s checks, for decoders that already made
    them (the checks cost about as much as decoding a small tensor)."""
    tensor = object.__new__(Tensor)
    _set(tensor, "name", name)
    _set(tensor, "datatype", datatype)
    _set(tensor, "shape", shape)
    _set(tensor, "data", data)
    _set(tensor, "parameters", parameters)
    return tensor


def new_message(
    id: str,
    tensors: tuple[Tensor, ...],
    kind: MessageKind,
    model_name: str,
    model_version: str,
    parameters: Mapping[str, Any],
    requested_outputs: tuple[str, ...],
) -> InferenceMessage:
    """An InferenceMessage without `__post_init__`'s checks (see `new_tensor`);
    the caller guarantees unique tensor names."""
    message = object.__new__(InferenceMessage)
    _set(message, "id", id)
    _set(message, "tensors", tensors)
    _set(message, "kind", kind)
    _set(message, "model_name", model_name)
    _set(message, "model_version", model_version)
    _set(message, "parameters", parameters)
    _set(message, "requested_outputs", requested_outputs)
    return message


_set = object.__setattr__
