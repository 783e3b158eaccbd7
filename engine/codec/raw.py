"""OIP raw tensor contents <-> numpy arrays.

Shared by the fastavro reference codec and the hand-written fast path, so both
apply exactly the same checks. Numeric contents are read in place with
`np.frombuffer` (zero-copy: the array is a read-only view of the payload);
BYTES contents are a sequence of (4-byte little-endian length, bytes).
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np

from engine.codec.errors import ContentsMismatch, InvalidShape, UnknownDatatype
from engine.dtypes import BOOL, BYTES, DATATYPE_TO_DTYPE, DATATYPES

_LENGTH_PREFIX: Final = struct.Struct("<I")
_MAX_ELEMENT_BYTES: Final = 0xFFFFFFFF  # a 4-byte length prefix can say no more


def element_count(shape: tuple[int, ...], *, tensor: str) -> int:
    """Number of elements of `shape`; a scalar `()` has one."""
    count = 1
    for dim in shape:
        if dim < 0:
            raise InvalidShape(f"shape {list(shape)} has a negative dimension", tensor=tensor)
        count *= dim
    return count


def array_from_raw(
    buffer: bytes, start: int, end: int, datatype: str, shape: tuple[int, ...], *, tensor: str
) -> np.ndarray:
    """The tensor held in `buffer[start:end]`, shaped; numeric data is a view of `buffer`."""
    dtype = DATATYPE_TO_DTYPE.get(datatype)
    if dtype is None:
        raise UnknownDatatype(datatype, tensor=tensor, known=DATATYPES)
    count = element_count(shape, tensor=tensor)
    if datatype == BYTES:
        return bytes_array(buffer, start, end, count, shape, tensor=tensor)
    size = end - start
    if size != count * dtype.itemsize:
        raise ContentsMismatch(
            f"{datatype} shape {list(shape)} needs {count * dtype.itemsize} bytes of contents "
            f"({count} elements x {dtype.itemsize} bytes), got {size}",
            tensor=tensor,
        )
    array = np.frombuffer(buffer, dtype, count, start)
    if datatype == BOOL and count and array.view(np.uint8).max() > 1:
        # numpy would keep the odd byte and compare unequal to True; refuse it.
        raise ContentsMismatch("BOOL contents hold a byte that is neither 0 nor 1", tensor=tensor)
    return reshaped(array, shape, tensor=tensor)


def bytes_array(
    buffer: bytes, start: int, end: int, count: int, shape: tuple[int, ...], *, tensor: str
) -> np.ndarray:
    """The BYTES tensor of `shape` in buffer[start:end] (length-prefixed elements)."""
    elements = []
    pos = start
    unpack = _LENGTH_PREFIX.unpack_from
    while pos < end:
        if pos + 4 > end:
            raise ContentsMismatch(
                f"BYTES element {len(elements)} has a truncated 4-byte length prefix", tensor=tensor
            )
        (length,) = unpack(buffer, pos)
        pos += 4
        if pos + length > end:
            raise ContentsMismatch(
                f"BYTES element {len(elements)} says {length} bytes but only "
                f"{end - pos} remain in the contents",
                tensor=tensor,
            )
        elements.append(buffer[pos : pos + length])
        pos += length
    if len(elements) != count:
        raise ContentsMismatch(
            f"BYTES shape {list(shape)} needs {count} elements, contents hold {len(elements)}",
            tensor=tensor,
        )
    array = np.empty(count, dtype=object)
    array[:] = elements
    return reshaped(array, shape, tensor=tensor)


def reshaped(array: np.ndarray, shape: tuple[int, ...], *, tensor: str) -> np.ndarray:
    try:
        return array.reshape(shape)
    except ValueError as exc:  # over 64 dimensions, or a size numpy cannot index
        raise InvalidShape(f"shape {list(shape)} cannot be built: {exc}", tensor=tensor) from None


def raw_from_array(datatype: str, data: np.ndarray, *, tensor: str) -> bytes:
    """The OIP raw contents of `data` (row-major, little-endian)."""
    if datatype != BYTES:
        # Tensor guarantees the little-endian table dtype; tobytes is row-major.
        return data.tobytes()
    parts = []
    pack = _LENGTH_PREFIX.pack
    for index, element in enumerate(data.flat):
        if type(element) is not bytes:
            if not isinstance(element, bytes | bytearray | memoryview):
                raise ContentsMismatch(
                    f"BYTES element {index} is {type(element).__name__}, not bytes",
                    tensor=tensor,
                )
            element = bytes(element)
        if len(element) > _MAX_ELEMENT_BYTES:
            raise ContentsMismatch(
                f"BYTES element {index} has {len(element)} bytes; raw contents allow at most "
                f"{_MAX_ELEMENT_BYTES}",
                tensor=tensor,
            )
        parts.append(pack(len(element)))
        parts.append(element)
    return b"".join(parts)
