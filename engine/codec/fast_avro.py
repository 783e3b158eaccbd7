"""Hand-written Avro binary codec for exactly the InferenceRequest and
InferenceResponse schemas: the engine's hot path.

fastavro's generic schemaless reader/writer walk the schema for every record
(about 11 and 14 us for two small tensors); this module knows the field order
and reads with bytes indexing, slices and `np.frombuffer` (tensor contents are
views of the payload, not copies). Its output is byte-identical to fastavro's
`schemaless_writer` and it reads everything fastavro reads; the tests in
tests/codec/test_fast_avro.py prove both against `engine.codec.avro`.

Avro binary in brief: long = zigzag varint; string/bytes = long length then
the bytes; array/map = blocks of (long count [, long byte size when count is
negative], items) ended by a 0 count; union = long branch index then value.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

import numpy as np

from engine.codec import parameters as params
from engine.codec.errors import (
    ContentsMismatch,
    DuplicateTensor,
    InvalidMessage,
    InvalidShape,
    MalformedPayload,
    UnknownDatatype,
)
from engine.codec.raw import _bytes_array, raw_from_array
from engine.dtypes import BOOL, BYTES, DATATYPE_TO_DTYPE, DATATYPES
from engine.messages import EMPTY, InferenceMessage, MessageKind, Tensor

# ---------------------------------------------------------------- encoding


def _varint(n: int) -> bytes:
    """Zigzag varint of a signed 64-bit `n`, as Avro writes a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths, counts and dimensions are small non-negative longs: look them up.
_SMALL_LONGS: Final = tuple(_varint(n) for n in range(1 << 14))
_SMALL_LIMIT: Final = len(_SMALL_LONGS)
_END: Final = b"\x00"  # a zero count ends an array or map; also the empty one


def _long(n: int) -> bytes:
    return _SMALL_LONGS[n] if 0 <= n < _SMALL_LIMIT else _varint(n)


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _long(len(data)) + data


# Encoded names and shapes repeat from message to message; keep a bounded
# memo so the common case is one dict lookup. Datatypes are a closed set.
_MEMO_LIMIT: Final = 4096
_name_memo: dict[str, bytes] = {}
_shape_memo: dict[tuple[int, ...], bytes] = {}
_DATATYPE_WIRE: Final = {datatype: _string(datatype) for datatype in DATATYPES}


def _name(text: str) -> bytes:
    encoded = _name_memo.get(text)
    if encoded is None:
        encoded = _string(text)
        if len(_name_memo) < _MEMO_LIMIT:
            _name_memo[text] = encoded
    return encoded


def _shape(shape: tuple[int, ...]) -> bytes:
    encoded = _shape_memo.get(shape)
    if encoded is None:
        if shape:
            encoded = _long(len(shape)) + b"".join(map(_varint, shape)) + _END
        else:
            encoded = _END
        if len(_shape_memo) < _MEMO_LIMIT:
            _shape_memo[shape] = encoded
    return encoded


def _parameters(parameters: Mapping[str, Any], tensor: str | None) -> bytes:
    if not parameters:
        return _END
    parts = [_long(len(parameters))]
    for name, value in parameters.items():
        parts.append(_string(name))
        branch, wire = params.branch_of(value, name=name, tensor=tensor)
        parts.append(_SMALL_LONGS[branch])
        if branch == params.BOOLEAN:
            parts.append(b"\x01" if wire else b"\x00")
        elif branch == params.LONG:
            parts.append(_varint(wire))
        elif branch == params.DOUBLE:
            parts.append(struct.pack("<d", wire))
        elif branch != params.NULL:  # STRING, or JSON text in a one-field record
            parts.append(_string(wire))
    parts.append(_END)
    return b"".join(parts)


def _tensors(tensors: tuple[Tensor, ...]) -> list[bytes]:
    if not tensors:
        return [_END]
    parts = [_long(len(tensors))]
    append = parts.append
    for tensor in tensors:
        append(_name(tensor.name))
        append(_DATATYPE_WIRE[tensor.datatype])
        append(_shape(tensor.shape))
        append(_parameters(tensor.parameters, tensor.name) if tensor.parameters else _END)
        data = tensor.data
        if tensor.datatype == BYTES:
            contents = raw_from_array(BYTES, data, tensor=tensor.name)
        else:
            contents = data.tobytes()
        append(_long(len(contents)))
        append(contents)
    append(_END)
    return parts


def encode(message: InferenceMessage) -> bytes:
    """Schemaless Avro of `message` (InferenceRequest or InferenceResponse by kind)."""
    parts = [
        _string(message.id),
        _string(message.model_name),
        _string(message.model_version),
        _parameters(message.parameters, None),
    ]
    parts += _tensors(message.tensors)
    if message.kind == "request":
        outputs = message.requested_outputs
        if outputs:
            parts.append(_long(len(outputs)))
            parts.extend(map(_string, outputs))
        parts.append(_END)
    return b"".join(parts)


# ---------------------------------------------------------------- decoding

# Wire datatype bytes -> (datatype, dtype, itemsize): one lookup, no decode.
_DATATYPE_BY_WIRE: Final = {
    datatype.encode(): (datatype, dtype, dtype.itemsize)
    for datatype, dtype in DATATYPE_TO_DTYPE.items()
}
_DOUBLE: Final = struct.Struct("<d")
_UINT64_LIMIT: Final = 1 << 64


class _Truncated(Exception):
    """Internal: a length or count runs past the end of the payload."""


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """The zigzag varint long at `pos` and the position after it."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    n = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift > 63:
            raise MalformedPayload("a varint runs over 10 bytes")
    if n >= _UINT64_LIMIT:
        raise MalformedPayload("a varint overflows 64 bits")
    return (n >> 1) ^ -(n & 1), pos


def _read_span(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """Start and end of the length-prefixed bytes at `pos`."""
    b = buf[pos]
    if b < 0x80:
        length = (b >> 1) ^ -(b & 1)
        pos += 1
    else:
        length, pos = _read_long(buf, pos)
    end = pos + length
    if length < 0 or end > size:
        raise _Truncated
    return pos, end


def _read_string(buf: bytes, pos: int, size: int) -> tuple[str, int]:
    start, end = _read_span(buf, pos, size)
    return buf[start:end].decode("utf-8"), end


def _read_count(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """Item count of the next array/map block (0 ends it), skipping the block
    byte size that a negative count announces."""
    count, pos = _read_long(buf, pos)
    if count < 0:
        count = -count
        _, pos = _read_long(buf, pos)
    if count > size - pos:  # every item takes at least one byte
        raise _Truncated
    return count, pos


def _read_parameters(
    buf: bytes, pos: int, size: int, tensor: str | None
) -> tuple[Mapping[str, Any], int]:
    if buf[pos] == 0:
        return EMPTY, pos + 1
    values: dict[str, Any] = {}
    count, pos = _read_count(buf, pos, size)
    while count:
        for _ in range(count):
            name, pos = _read_string(buf, pos, size)
            branch, pos = _read_long(buf, pos)
            if branch == params.NULL:
                value = None
            elif branch == params.BOOLEAN:
                value = buf[pos] != 0  # fastavro reads any non-zero byte as true
                pos += 1
            elif branch == params.LONG:
                value, pos = _read_long(buf, pos)
            elif branch == params.DOUBLE:
                if pos + 8 > size:
                    raise _Truncated
                (value,) = _DOUBLE.unpack_from(buf, pos)
                pos += 8
            elif branch == params.STRING:
                value, pos = _read_string(buf, pos, size)
            elif branch == params.JSON:
                text, pos = _read_string(buf, pos, size)
                value = params.from_json_text(text, name=name, tensor=tensor)
            else:
                raise MalformedPayload(
                    f"parameter {name!r} has union branch {branch}, not 0..5", tensor=tensor
                )
            values[name] = value
        count, pos = _read_count(buf, pos, size)
    return MappingProxyType(values), pos


def _read_shape(buf: bytes, pos: int, size: int, tensor: str) -> tuple[tuple[int, ...], int, int]:
    """Shape, element count and the position after the shape (general case)."""
    dims: list[int] = []
    count, pos = _read_count(buf, pos, size)
    while count:
        for _ in range(count):
            dim, pos = _read_long(buf, pos)
            dims.append(dim)
        count, pos = _read_count(buf, pos, size)
    if any(d < 0 for d in dims):
        raise InvalidShape(f"shape {dims} has a negative dimension", tensor=tensor)
    elements = 1
    for dim in dims:
        elements *= dim
    return tuple(dims), elements, pos


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
        datatype_start, datatype_end = _read_span(buf, end, size)
        wire_datatype = buf[datatype_start:datatype_end]
        shape, elements, pos = _read_shape(buf, datatype_end, size, name)
        parameters, pos = _read_parameters(buf, pos, size, name)
    except (_Truncated, IndexError):
        raise MalformedPayload("the payload ends inside this tensor", tensor=name) from None
    except UnicodeDecodeError as exc:
        raise MalformedPayload(f"a string is not UTF-8: {exc}", tensor=name) from None
    entry = _DATATYPE_BY_WIRE.get(wire_datatype)
    if entry is None:
        raise UnknownDatatype(
            wire_datatype.decode("utf-8", "backslashreplace"), tensor=name, known=DATATYPES
        )
    datatype, dtype, itemsize = entry
    if parameters is EMPTY and len(_header_memo) < _MEMO_LIMIT:
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


def _read_tensors(buf: bytes, pos: int, size: int) -> tuple[tuple[Tensor, ...], int]:
    """The tensors array, read inline for the common encodings (one-byte name
    length, a header seen before, contents under 8 KiB); anything else goes
    through the general readers above."""
    tensors: list[Tensor] = []
    names: list[str] = []
    name = None
    try:
        b = buf[pos]
        if b < 0x80 and not b & 1 and (b >> 1) <= size - pos:
            count = b >> 1
            pos += 1
        else:
            count, pos = _read_count(buf, pos, size)
        while count:
            for _ in range(count):
                name = None
                # name: string
                b = buf[pos]
                if b < 0x80 and not b & 1:
                    start = pos + 1
                    end = start + (b >> 1)
                    if end > size:
                        raise _Truncated
                else:
                    start, end = _read_span(buf, pos, size)
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
                    start, end = _read_span(buf, pos, size)
                if end > size:
                    raise _Truncated
                pos = end
                if datatype == BYTES:
                    data = _bytes_array(buf, start, end, elements, shape, tensor=name)
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
                count, pos = _read_count(buf, pos, size)
    except (_Truncated, IndexError):
        if name is None:
            raise _Truncated from None
        raise MalformedPayload("the payload ends inside this tensor", tensor=name) from None
    if len(names) > 1 and len(set(names)) != len(names):
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


def _read_strings(buf: bytes, pos: int, size: int) -> tuple[tuple[str, ...], int]:
    if buf[pos] == 0:
        return (), pos + 1
    items: list[str] = []
    count, pos = _read_count(buf, pos, size)
    while count:
        for _ in range(count):
            item, pos = _read_string(buf, pos, size)
            items.append(item)
        count, pos = _read_count(buf, pos, size)
    return tuple(items), pos


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
                raise _Truncated
            message_id = buf[1:end].decode("utf-8")
        else:
            start, end = _read_span(buf, 0, size)
            message_id = buf[start:end].decode("utf-8")
        where = "model_name"
        if buf[end] == 0:  # empty strings are common: skip the slice and decode
            model_name, pos = "", end + 1
        else:
            model_name, pos = _read_string(buf, end, size)
        where = "model_version"
        if buf[pos] == 0:
            model_version, pos = "", pos + 1
        else:
            model_version, pos = _read_string(buf, pos, size)
        where = "parameters"
        if buf[pos] == 0:
            parameters: Mapping[str, Any] = EMPTY
            pos += 1
        else:
            parameters, pos = _read_parameters(buf, pos, size, None)
        where = "tensors"
        tensors, pos = _read_tensors(buf, pos, size)
        where = "outputs"
        requested: tuple[str, ...] = ()
        if kind == "request":
            if buf[pos] == 0:
                pos += 1
            else:
                requested, pos = _read_strings(buf, pos, size)
    except (_Truncated, IndexError):
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
