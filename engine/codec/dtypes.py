"""The codec's name for the datatype table, which lives in `engine.dtypes`.

Kept so `engine.codec.dtypes` goes on naming what it always did; new code
imports `engine.dtypes`.
"""

from engine.dtypes import (
    BOOL,
    BYTES,
    DATATYPE_TO_DTYPE,
    DATATYPES,
    FLOAT_DATATYPES,
    INTEGER_DATATYPES,
    datatype_of,
    dtype_of,
)

__all__ = [
    "BOOL",
    "BYTES",
    "DATATYPES",
    "DATATYPE_TO_DTYPE",
    "FLOAT_DATATYPES",
    "INTEGER_DATATYPES",
    "datatype_of",
    "dtype_of",
]
