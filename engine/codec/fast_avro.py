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
from engine.codec.dtypes import BOOL, BYTES, DATATYPE_TO_DTYPE, DATATYPES
from engine.codec.errors import (
    CodecError,
    ContentsMismatch,
    DuplicateTensor,
    InvalidShape,
    MalformedPayload,
    UnknownDatatype,
)
from engine.codec.raw import _bytes_array, raw_from_array
from engine.messages import EMPTY, InferenceMessage, MessageKind, Tensor, new_message, new_tensor

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
                raise MalformedPayload(f"parameter {name!r} has union branch {branch}, not 0..5")
            values[name] = value
        count, pos = _read_count(buf, pos, size)
    return MappingProxyType(values), pos


def _read_shape(buf: bytes, pos: int, size: int, tensor: str) -> tuple[tuple[int, ...], int, int]:
    """Shape, element count and the position after the shape."""
    dims: list[int] = []
    elements = 1
    count, pos = _read_count(buf, pos, size)
    while count:
        for _ in range(count):
            b = buf[pos]
            if b < 0x80:
                dim = (b >> 1) ^ -(b & 1)
                pos += 1
            else:
                dim, pos = _read_long(buf, pos)
            dims.append(dim)
            elements *= dim
        count, pos = _read_count(buf, pos, size)
    shape = tuple(dims)
    if elements < 0 or (elements == 0 and any(d < 0 for d in dims)):
        raise InvalidShape(f"shape {dims} has a negative dimension", tensor=tensor)
    return shape, elements, pos


def _read_tensors(buf: bytes, pos: int, size: int) -> tuple[tuple[Tensor, ...], int]:
    tensors: list[Tensor] = []
    count, pos = _read_count(buf, pos, size)
    while count:
        for _ in range(count):
            start, end = _read_span(buf, pos, size)
            try:
                name = buf[start:end].decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedPayload(
                    f"tensor #{len(tensors)} has a name that is not UTF-8: {buf[start:end]!r}"
                ) from None
            try:
                tensor, pos = _read_tensor(buf, end, size, name)
            except (_Truncated, IndexError):
                raise MalformedPayload("the payload ends inside this tensor", tensor=name) from None
            except UnicodeDecodeError as exc:
                raise MalformedPayload(f"a string is not UTF-8: {exc}", tensor=name) from None
            tensors.append(tensor)
        count, pos = _read_count(buf, pos, size)
    return tuple(tensors), pos


def _read_tensor(buf: bytes, pos: int, size: int, name: str) -> tuple[Tensor, int]:
    start, end = _read_span(buf, pos, size)
    wire_datatype = buf[start:end]
    entry = _DATATYPE_BY_WIRE.get(wire_datatype)
    shape, elements, pos = _read_shape(buf, end, size, name)
    if buf[pos] == 0:
        parameters: Mapping[str, Any] = EMPTY
        pos += 1
    else:
        parameters, pos = _read_parameters(buf, pos, size, name)
    start, end = _read_span(buf, pos, size)
    if entry is None:
        raise UnknownDatatype(
            wire_datatype.decode("utf-8"), tensor=name, known=DATATYPES
        )  # not UTF-8 -> UnicodeDecodeError -> malformed, as fastavro says
    datatype, dtype, itemsize = entry
    if datatype == BYTES:
        data = _bytes_array(buf, start, end, elements, shape, tensor=name)
    else:
        if end - start != elements * itemsize:
            raise ContentsMismatch(
                f"{datatype} shape {list(shape)} needs {elements * itemsize} bytes of contents "
                f"({elements} elements x {itemsize} bytes), got {end - start}",
                tensor=name,
            )
        data = np.frombuffer(buf, dtype, elements, start)
        if datatype == BOOL and elements and data.view(np.uint8).max() > 1:
            raise ContentsMismatch("BOOL contents hold a byte that is neither 0 nor 1", tensor=name)
        try:
            data = data.reshape(shape)
        except ValueError as exc:
            raise InvalidShape(f"shape {list(shape)} cannot be built: {exc}", tensor=name) from None
    return new_tensor(name, datatype, shape, data, parameters), end


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
        start, end = _read_span(buf, 0, size)
        message_id = buf[start:end].decode("utf-8")
        where = "model_name"
        model_name, pos = _read_string(buf, end, size)
        where = "model_version"
        model_version, pos = _read_string(buf, pos, size)
        where = "parameters"
        parameters, pos = _read_parameters(buf, pos, size, None)
        where = "tensors"
        tensors, pos = _read_tensors(buf, pos, size)
        where = "outputs"
        requested: tuple[str, ...] = ()
        if kind == "request":
            requested, pos = _read_strings(buf, pos, size)
    except CodecError:
        raise
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
    if len(tensors) > 1 and len({t.name for t in tensors}) != len(tensors):
        names = [t.name for t in tensors]
        duplicate = next(n for n in names if names.count(n) > 1)
        raise DuplicateTensor(f"appears twice in {kind} {message_id!r}", tensor=duplicate)
    return new_message(message_id, tensors, kind, model_name, model_version, parameters, requested)


__all__ = ["decode", "encode"]
