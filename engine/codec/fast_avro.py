"""Hand-written Avro binary codec for exactly the InferenceRequest and
InferenceResponse schemas: the engine's hot path.

fastavro's generic schemaless reader/writer walk the schema for every record
(about 11 and 14 us for two small tensors); this module knows the field order
and reads with bytes indexing, slices and `np.frombuffer` (tensor contents are
views of the payload, not copies). Its output is byte-identical to fastavro's
`schemaless_writer` and it reads everything fastavro reads; the tests in
tests/codec/test_fast_avro.py prove both against `engine.codec.avro`.

The wire primitives (longs, strings, maps, shapes) are `engine.codec.avro_wire`'s;
this module lays out whole messages and reads tensors inline for speed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from engine.codec.avro_wire import (
    DATATYPE_WIRE,
    END,
    MEMO_LIMIT,
    Truncated,
    encode_long,
    encode_name,
    encode_parameters,
    encode_shape,
    encode_string,
    read_count,
    read_parameters,
    read_shape,
    read_span,
    read_string,
    read_strings,
)
from engine.codec.errors import (
    ContentsMismatch,
    DuplicateTensor,
    InvalidMessage,
    InvalidShape,
    MalformedPayload,
    UnknownDatatype,
)
from engine.codec.raw import bytes_array, raw_from_array
from engine.dtypes import BOOL, BYTES, DATATYPE_TO_DTYPE, DATATYPES
from engine.messages import EMPTY, InferenceMessage, MessageKind, Tensor

# ---------------------------------------------------------------- encoding


def _tensors(tensors: tuple[Tensor, ...]) -> list[bytes]:
    if not tensors:
        return [END]
    parts = [encode_long(len(tensors))]
    append = parts.append
    for tensor in tensors:
        append(encode_name(tensor.name))
        append(DATATYPE_WIRE[tensor.datatype])
        append(encode_shape(tensor.shape))
        append(encode_parameters(tensor.parameters, tensor.name) if tensor.parameters else END)
        data = tensor.data
        if tensor.datatype == BYTES:
            contents = raw_from_array(BYTES, data, tensor=tensor.name)
        else:
            contents = data.tobytes()
        append(encode_long(len(contents)))
        append(contents)
    append(END)
    return parts


def encode(message: InferenceMessage) -> bytes:
    """Schemaless Avro of `message` (InferenceRequest or InferenceResponse by kind)."""
    parts = [
        encode_string(message.id),
        encode_string(message.model_name),
        encode_string(message.model_version),
        encode_parameters(message.parameters, None),
    ]
    parts += _tensors(message.tensors)
    if message.kind == "request":
        outputs = message.requested_outputs
        if outputs:
            parts.append(encode_long(len(outputs)))
            parts.extend(map(encode_string, outputs))
        parts.append(END)
    return b"".join(parts)


# ---------------------------------------------------------------- decoding

# Wire datatype bytes -> (datatype, dtype, itemsize): one lookup, no decode.
_DATATYPE_BY_WIRE: Final = {
    datatype.encode(): (datatype, dtype, dtype.itemsize)
    for datatype, dtype in DATATYPE_TO_DTYPE.items()
}
# Per tensor name (its raw bytes): the bytes that followed it last time
# (datatype, shape, empty parameters) and what they decode to. Producers send
# the same tensors again and again, so the common case checks one
# `startswith` instead of parsing three fields. Bounded, like the encoder's memos.
_header_memo: dict[bytes, tuple[bytes, int, str, str, np.dtype, int, tuple[int, ...], int]] = {}

_Header = tuple[str, str, np.dtype, int, tuple[int, ...], int, Mapping[str, Any], int]


def _read_header(
    buf: bytes, start: int, end: int, size: int, raw_name: bytes, index: int
) -> _Header:
    """Name (at buf[start:end]), datatype, shape and parameters of a tensor,
    parsed field by field, and the position of its contents."""
    try:
        name = raw_name.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedPayload(
            f"tensor #{index} has a name that is not UTF-8: {raw_name!r}"
        ) from None
    try:
        datatype_start, datatype_end = read_span(buf, end, size)
        wire_datatype = buf[datatype_start:datatype_end]
        shape, elements, pos = read_shape(buf, datatype_end, size, name)
        parameters, pos = read_parameters(buf, pos, size, name)
    except (Truncated, IndexError):
        raise MalformedPayload("the payload ends inside this tensor", tensor=name) from None
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"a string is not UTF-8: {exc}", tensor=name) from None
    entry = _DATATYPE_BY_WIRE.get(wire_datatype)
    if entry is None:
        raise UnknownDatatype(
            wire_datatype.decode("utf-8", "backslashreplace"), tensor=name, known=DATATYPES
        )
    datatype, dtype, itemsize = entry
    if parameters is EMPTY and len(_header_memo) < MEMO_LIMIT:
        tail = buf[end:pos]
        _header_memo[raw_name] = (tail, len(tail), name, datatype, dtype, itemsize, shape, elements)
    return name, datatype, dtype, itemsize, shape, elements, parameters, pos


def _contents_mismatch(
    datatype: str, shape: tuple[int, ...], elements: int, itemsize: int, got: int, name: str
) -> ContentsMismatch:
    return ContentsMismatch(
        f"{datatype} shape {list(shape)} needs {elements * itemsize} bytes of contents "
        f"({elements} elements x {itemsize} bytes), got {got}",
        tensor=name,
    )


_ndarray = np.ndarray
_BOOL_BYTES: Final = b"\x00\x01"


def _read_tensors(buf: bytes, pos: int, size: int, unique: bool) -> tuple[tuple[Tensor, ...], int]:
    """The tensors array, read inline for the common encodings (one-byte name
    length, a header seen before, contents under 8 KiB); anything else goes
    through the general readers above. `unique`: a repeated name is refused (requests;
    a response may repeat one, as Seldon's pipelines answer)."""
    tensors: list[Tensor] = []
    names: list[str] = []
    name = None
    try:
        b = buf[pos]
        if b < 0x80 and not b & 1 and (b >> 1) <= size - pos:
            count = b >> 1
            pos += 1
        else:
            count, pos = read_count(buf, pos, size)
        while count:
            for _ in range(count):
                name = None
                # name: string
                b = buf[pos]
                if b < 0x80 and not b & 1:
                    start = pos + 1
                    end = start + (b >> 1)
                    if end > size:
                        raise Truncated
                else:
                    start, end = read_span(buf, pos, size)
                raw_name = buf[start:end]
                # datatype, shape, parameters
                known = _header_memo.get(raw_name)
                if known is not None and buf.startswith(known[0], end):
                    _, length, name, datatype, dtype, itemsize, shape, elements = known
                    parameters: Mapping[str, Any] = EMPTY
                    pos = end + length
                else:
                    name, datatype, dtype, itemsize, shape, elements, parameters, pos = (
                        _read_header(buf, start, end, size, raw_name, len(tensors))
                    )
                # contents: bytes; lengths up to 8191 take one or two bytes
                b = buf[pos]
                if b < 0x80 and not b & 1:
                    start = pos + 1
                    end = start + (b >> 1)
                elif b >= 0x80 and not b & 1 and buf[pos + 1] < 0x80:
                    start = pos + 2
                    end = start + (((b & 0x7F) | (buf[pos + 1] << 7)) >> 1)
                else:
                    start, end = read_span(buf, pos, size)
                if end > size:
                    raise Truncated
                pos = end
                if datatype == BYTES:
                    data = bytes_array(buf, start, end, elements, shape, tensor=name)
                else:
                    if end - start != elements * itemsize:
                        raise _contents_mismatch(
                            datatype, shape, elements, itemsize, end - start, name
                        )
                    try:
                        data = _ndarray(shape, dtype, buf, start)
                    except ValueError as exc:  # over 64 dimensions, or too big to index
                        raise InvalidShape(
                            f"shape {list(shape)} cannot be built: {exc}", tensor=name
                        ) from None
                    if datatype == BOOL and buf[start:end].translate(None, _BOOL_BYTES):
                        raise ContentsMismatch(
                            "BOOL contents hold a byte that is neither 0 nor 1", tensor=name
                        )
                tensor = _new_object(Tensor)
                _set_name(tensor, name)
                _set_datatype(tensor, datatype)
                _set_shape(tensor, shape)
                _set_data(tensor, data)
                _set_parameters(tensor, parameters)
                tensors.append(tensor)
                names.append(name)
            if buf[pos] == 0:  # the usual single block ends here
                count = 0
                pos += 1
            else:
                count, pos = read_count(buf, pos, size)
    except (Truncated, IndexError):
        if name is None:
            raise Truncated from None
        raise MalformedPayload("the payload ends inside this tensor", tensor=name) from None
    if unique and len(names) > 1 and len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise DuplicateTensor("appears twice in one message", tensor=duplicate)
    return tuple(tensors), pos


# Slot setters of the frozen dataclasses: decoded tensors are already checked,
# and setting slots directly costs a third less than object.__setattr__.
_new_object = object.__new__
_set_name = Tensor.name.__set__  # type: ignore[attr-defined]
_set_datatype = Tensor.datatype.__set__  # type: ignore[attr-defined]
_set_shape = Tensor.shape.__set__  # type: ignore[attr-defined]
_set_data = Tensor.data.__set__  # type: ignore[attr-defined]
_set_parameters = Tensor.parameters.__set__  # type: ignore[attr-defined]


def decode(payload: bytes, kind: MessageKind) -> InferenceMessage:
    """The message in schemaless Avro `payload` (InferenceRequest or
    InferenceResponse by `kind`); anything wrong raises a CodecError."""
    buf = payload if type(payload) is bytes else bytes(payload)
    size = len(buf)
    where = "id"
    try:
        b = buf[0]
        if b < 0x80 and not b & 1:
            end = 1 + (b >> 1)
            if end > size:
                raise Truncated
            message_id = buf[1:end].decode("utf-8")
        else:
            start, end = read_span(buf, 0, size)
            message_id = buf[start:end].decode("utf-8")
        where = "model_name"
        if buf[end] == 0:  # empty strings are common: skip the slice and decode
            model_name, pos = "", end + 1
        else:
            model_name, pos = read_string(buf, end, size)
        where = "model_version"
        if buf[pos] == 0:
            model_version, pos = "", pos + 1
        else:
            model_version, pos = read_string(buf, pos, size)
        where = "parameters"
        if buf[pos] == 0:
            parameters: Mapping[str, Any] = EMPTY
            pos += 1
        else:
            parameters, pos = read_parameters(buf, pos, size, None)
        where = "tensors"
        tensors, pos = _read_tensors(buf, pos, size, kind == "request")
        where = "outputs"
        requested: tuple[str, ...] = ()
        if kind == "request":
            if buf[pos] == 0:
                pos += 1
            else:
                requested, pos = read_strings(buf, pos, size)
    except (Truncated, IndexError):
        raise MalformedPayload(
            f"payload ends in the middle of the {kind}'s {where} ({size} bytes)"
        ) from None
    except UnicodeDecodeError as exc:
        raise MalformedPayload(
            f"the {kind}'s {where} holds a string that is not UTF-8: {exc}"
        ) from None
    if pos != size:
        raise MalformedPayload(f"{size - pos} bytes left over after the {kind} record")
    if kind != "request" and kind != "response":
        raise InvalidMessage(f"kind must be 'request' or 'response', got {kind!r}")
    message = _new_object(InferenceMessage)
    _set_id(message, message_id)
    _set_tensors(message, tensors)
    _set_kind(message, kind)
    _set_model_name(message, model_name)
    _set_model_version(message, model_version)
    _set_message_parameters(message, parameters)
    _set_requested_outputs(message, requested)
    return message


_set_id = InferenceMessage.id.__set__  # type: ignore[attr-defined]
_set_tensors = InferenceMessage.tensors.__set__  # type: ignore[attr-defined]
_set_kind = InferenceMessage.kind.__set__  # type: ignore[attr-defined]
_set_model_name = InferenceMessage.model_name.__set__  # type: ignore[attr-defined]
_set_model_version = InferenceMessage.model_version.__set__  # type: ignore[attr-defined]
_set_message_parameters = InferenceMessage.parameters.__set__  # type: ignore[attr-defined]
_set_requested_outputs = InferenceMessage.requested_outputs.__set__  # type: ignore[attr-defined]


__all__ = ["decode", "encode"]


def with_model_name(payload: bytes, encoded_name: bytes) -> bytes:
    """`payload` (an Avro message) with its model_name replaced by `encoded_name` (the
    name as `encode_string` wrote it) and every other byte kept; a fused pipeline output
    says the pipeline, not its last step's model, without a decode and an encode."""
    size = len(payload)
    try:
        _, id_end = read_span(payload, 0, size)
        _, name_end = read_span(payload, id_end, size)
    except (Truncated, IndexError) as error:
        raise MalformedPayload("not an Avro message: its id or model_name is cut off") from error
    return b"".join((payload[:id_end], encoded_name, payload[name_end:]))
