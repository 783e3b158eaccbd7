"""OIP `parameters` values <-> the Avro parameter union.

The schemas' union is [null, boolean, long, double, string, JsonParameter]:
the first five carry the common OIP parameter values as themselves; anything
else JSON can express (lists, objects, integers beyond 64 bits) travels as
JSON text in a JsonParameter record, so every JSON parameter survives Avro.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from engine.codec.errors import CodecError

# Union branch indexes, in the order the .avsc files list them.
NULL: Final = 0
BOOLEAN: Final = 1
LONG: Final = 2
DOUBLE: Final = 3
STRING: Final = 4
JSON: Final = 5

_LONG_MIN: Final = -(2**63)
_LONG_MAX: Final = 2**63 - 1


class InvalidParameter(CodecError):
    """A parameter value that cannot be written (not expressible as JSON)."""


def branch_of(value: Any, *, name: str, tensor: str | None) -> tuple[int, Any]:
    """The union branch for `value` and the value to write in it."""
    if value is None:
        return NULL, None
    kind = type(value)
    if kind is bool:
        return BOOLEAN, value
    if kind is int:
        if _LONG_MIN <= value <= _LONG_MAX:
            return LONG, value
        return JSON, json.dumps(value)
    if kind is float:
        return DOUBLE, value
    if kind is str:
        return STRING, value
    if isinstance(value, np.generic):  # numpy scalars a model may put in parameters
        return branch_of(value.item(), name=name, tensor=tensor)
    try:
        return JSON, json.dumps(value, allow_nan=True, default=_numpy_default)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter(
            f"parameter {name!r} holds {type(value).__name__}, which cannot be written "
            f"(use null, bool, int, float, str, or lists/dicts of them): {exc}",
            tensor=tensor,
        ) from None


def _numpy_default(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def from_json_text(text: str, *, name: str, tensor: str | None) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidParameter(
            f"parameter {name!r} is a JsonParameter whose text is not JSON: {exc}", tensor=tensor
        ) from None


def to_record_values(parameters: Mapping[str, Any], *, tensor: str | None) -> dict[str, Any]:
    """Parameters as fastavro writes them (JsonParameter as {'json': text})."""
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        branch, wire = branch_of(value, name=name, tensor=tensor)
        out[name] = {"json": wire} if branch == JSON else wire
    return out


def from_record_values(values: Mapping[str, Any], *, tensor: str | None) -> dict[str, Any]:
    """Parameters from what fastavro reads (JsonParameter arrives as {'json': text})."""
    return {
        name: from_json_text(value["json"], name=name, tensor=tensor)
        if type(value) is dict
        else value
        for name, value in values.items()
    }
