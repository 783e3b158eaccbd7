"""The Avro binary wire grammar, as the inference schemas use it: public primitives.

`fast_avro` (whole messages) and `columnar` (many records of one layout) both
build records from these pieces, so they write the same bytes by
construction. Avro binary in brief: long = zigzag varint; string/bytes = long
length then the bytes; array/map = blocks of (long count [, long byte size
when count is negative], items) ended by a 0 count; union = long branch index
then value.

Readers take (buffer, position, size) and return (value, next position); a
length or count that runs past the end raises `Truncated`, which the caller
turns into a MalformedPayload naming what it was reading.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from engine.codec import parameters as params
from engine.codec.errors import InvalidShape, MalformedPayload
from engine.dtypes import DATATYPES
from engine.messages import EMPTY

# ---------------------------------------------------------------- writing


def varint(n: int) -> bytes:
    """Zigzag varint of a signed 64-bit `n`, as Avro writes a long."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths, counts and dimensions are small non-negative longs: look them up.
_SMALL_LONGS: Final = tuple(varint(n) for n in range(1 << 14))
_SMALL_LIMIT: Final = len(_SMALL_LONGS)
END: Final = b"\x00"  # a zero count ends an array or map; also the empty one


def encode_long(n: int) -> bytes:
    """An Avro long (lengths, counts and dimensions come from a table)."""
    return _SMALL_LONGS[n] if 0 <= n < _SMALL_LIMIT else varint(n)


def encode_string(text: str) -> bytes:
    """An Avro string: its UTF-8 length, then the bytes."""
    data = text.encode("utf-8")
    return encode_long(len(data)) + data


# Encoded names and shapes repeat from message to message; keep a bounded
# memo so the common case is one dict lookup. Datatypes are a closed set.
MEMO_LIMIT: Final = 4096
_name_memo: dict[str, bytes] = {}
_shape_memo: dict[tuple[int, ...], bytes] = {}
DATATYPE_WIRE: Final = {datatype: encode_string(datatype) for datatype in DATATYPES}


def encode_name(text: str) -> bytes:
    """`encode_string` of a tensor name, memoized."""
    encoded = _name_memo.get(text)
    if encoded is None:
        encoded = encode_string(text)
        if len(_name_memo) < MEMO_LIMIT:
            _name_memo[text] = encoded
    return encoded


def encode_shape(shape: tuple[int, ...]) -> bytes:
    """A shape as an Avro array of longs, memoized."""
    encoded = _shape_memo.get(shape)
    if encoded is None:
        if shape:
            encoded = encode_long(len(shape)) + b"".join(map(varint, shape)) + END
        else:
            encoded = END
        if len(_shape_memo) < MEMO_LIMIT:
            _shape_memo[shape] = encoded
    return encoded


def encode_parameters(parameters: Mapping[str, Any], tensor: str | None) -> bytes:
    """A parameters map (values a union: null, boolean, long, double, string, JSON)."""
    if not parameters:
        return END
    parts = [encode_long(len(parameters))]
    for name, value in parameters.items():
        parts.append(encode_string(name))
        branch, wire = params.branch_of(value, name=name, tensor=tensor)
        parts.append(_SMALL_LONGS[branch])
        if branch == params.BOOLEAN:
            parts.append(b"\x01" if wire else b"\x00")
        elif branch == params.LONG:
            parts.append(varint(wire))
        elif branch == params.DOUBLE:
            parts.append(struct.pack("<d", wire))
        elif branch != params.NULL:  # STRING, or JSON text in a one-field record
            parts.append(encode_string(wire))
    parts.append(END)
    return b"".join(parts)


# ---------------------------------------------------------------- reading

_DOUBLE: Final = struct.Struct("<d")
_UINT64_LIMIT: Final = 1 << 64


class Truncated(Exception):
    """A length or count runs past the end of the payload; the caller says where."""


def read_long(buf: bytes, pos: int) -> tuple[int, int]:
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


def read_span(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """Start and end of the length-prefixed bytes at `pos`."""
    b = buf[pos]
    if b < 0x80:
        length = (b >> 1) ^ -(b & 1)
        pos += 1
    else:
        length, pos = read_long(buf, pos)
    end = pos + length
    if length < 0 or end > size:
        raise Truncated
    return pos, end


def read_string(buf: bytes, pos: int, size: int) -> tuple[str, int]:
    start, end = read_span(buf, pos, size)
    return buf[start:end].decode("utf-8"), end


def read_count(buf: bytes, pos: int, size: int) -> tuple[int, int]:
    """Item count of the next array/map block (0 ends it), skipping the block
    byte size that a negative count announces."""
    count, pos = read_long(buf, pos)
    if count < 0:
        count = -count
        _, pos = read_long(buf, pos)
    if count > size - pos:  # every item takes at least one byte
        raise Truncated
    return count, pos


def read_parameters(
    buf: bytes, pos: int, size: int, tensor: str | None
) -> tuple[Mapping[str, Any], int]:
    if buf[pos] == 0:
        return EMPTY, pos + 1
    values: dict[str, Any] = {}
    count, pos = read_count(buf, pos, size)
    while count:
        for _ in range(count):
            name, pos = read_string(buf, pos, size)
            branch, pos = read_long(buf, pos)
            if branch == params.NULL:
                value = None
            elif branch == params.BOOLEAN:
                value = buf[pos] != 0  # fastavro reads any non-zero byte as true
                pos += 1
            elif branch == params.LONG:
                value, pos = read_long(buf, pos)
            elif branch == params.DOUBLE:
                if pos + 8 > size:
                    raise Truncated
                (value,) = _DOUBLE.unpack_from(buf, pos)
                pos += 8
            elif branch == params.STRING:
                value, pos = read_string(buf, pos, size)
            elif branch == params.JSON:
                text, pos = read_string(buf, pos, size)
                value = params.from_json_text(text, name=name, tensor=tensor)
            else:
                raise MalformedPayload(
                    f"parameter {name!r} has union branch {branch}, not 0..5", tensor=tensor
                )
            values[name] = value
        count, pos = read_count(buf, pos, size)
    return MappingProxyType(values), pos


def read_shape(buf: bytes, pos: int, size: int, tensor: str) -> tuple[tuple[int, ...], int, int]:
    """Shape, element count and the position after the shape (general case)."""
    dims: list[int] = []
    count, pos = read_count(buf, pos, size)
    while count:
        for _ in range(count):
            dim, pos = read_long(buf, pos)
            dims.append(dim)
        count, pos = read_count(buf, pos, size)
    if any(d < 0 for d in dims):
        raise InvalidShape(f"shape {dims} has a negative dimension", tensor=tensor)
    elements = 1
    for dim in dims:
        elements *= dim
    return tuple(dims), elements, pos


def read_strings(buf: bytes, pos: int, size: int) -> tuple[tuple[str, ...], int]:
    if buf[pos] == 0:
        return (), pos + 1
    items: list[str] = []
    count, pos = read_count(buf, pos, size)
    while count:
        for _ in range(count):
            item, pos = read_string(buf, pos, size)
            items.append(item)
        count, pos = read_count(buf, pos, size)
    return tuple(items), pos
