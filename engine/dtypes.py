"""The one table mapping Open Inference Protocol datatypes to numpy dtypes.

It sits below `engine.messages` (a Tensor checks its dtype against it) and
below `engine.codec` (which reads and writes by it).

Every dtype here is explicitly little-endian because tensor contents travel as
raw little-endian bytes (OIP raw contents); `np.frombuffer` with these dtypes
reads the wire bytes in place on any host.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from engine.tensor_errors import ContentsMismatch, UnknownDatatype

# Wire datatype -> numpy dtype of `Tensor.data`. BYTES tensors hold numpy
# object arrays whose elements are `bytes`.
DATATYPE_TO_DTYPE: Final[dict[str, np.dtype]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}

DATATYPES: Final[tuple[str, ...]] = tuple(DATATYPE_TO_DTYPE)

BYTES: Final = "BYTES"
BOOL: Final = "BOOL"

# (numpy kind, itemsize) -> datatype, so arrays of either byte order map to
# the same datatype; 'S' and 'U' (fixed-width bytes/str) become BYTES.
_KIND_TO_DATATYPE: Final[dict[tuple[str, int], str]] = {
    (dtype.kind, dtype.itemsize): datatype
    for datatype, dtype in DATATYPE_TO_DTYPE.items()
    if datatype != BYTES
}

# Python element types allowed in JSON `data` per datatype family; bool is an
# int subclass in Python, hence the explicit exclusions elsewhere.
INTEGER_DATATYPES: Final = frozenset(
    ["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"]
)
FLOAT_DATATYPES: Final = frozenset(["FP16", "FP32", "FP64"])


def dtype_of(datatype: str, *, tensor: str | None = None) -> np.dtype:
    """The numpy dtype that holds `datatype`, or UnknownDatatype naming the tensor."""
    try:
        return DATATYPE_TO_DTYPE[datatype]
    except (KeyError, TypeError):
        raise UnknownDatatype(datatype, tensor=tensor, known=DATATYPES) from None


def datatype_of(dtype: np.dtype, *, tensor: str | None = None) -> str:
    """The OIP datatype for a numpy dtype (either byte order); object, bytes
    and str arrays are BYTES."""
    if dtype.kind in "OSU":
        return BYTES
    try:
        return _KIND_TO_DATATYPE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise ContentsMismatch(
            f"numpy dtype {dtype} has no Open Inference Protocol datatype; "
            f"convert the array to one of: {', '.join(str(d) for d in DATATYPE_TO_DTYPE.values())}",
            tensor=tensor,
        ) from None
