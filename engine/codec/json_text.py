"""JSON in and out at orjson's speed with the standard library's exact results.

`loads` and `dumps` answer what `json.loads` and `json.dumps(separators=(",",
":"))` answer, value for value and byte for byte: orjson does the work where it
is known to agree, the standard library everything else. Where they differ:
- orjson reads an integer beyond 64 bits as a float (json: the exact int), and
  refuses NaN/Infinity, a lone surrogate, a BOM and numbers beyond float64 that
  json reads; so any 19-digit run goes to json, and so does whatever orjson refuses.
- orjson writes floats in other forms (`0.00001` for `1e-05`), NaN as null, and
  non-ASCII and DEL unescaped; so documents holding a float, and outputs that
  are not plain ASCII, are written by json.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_LONG_DIGITS_TEXT = re.compile(r"[0-9]{19}")
"""Integers orjson may turn into floats have at least 19 digits."""


def loads(text: bytes | str) -> Any:
    """`json.loads(text)`; raises what it raises."""
    long_digits = _LONG_DIGITS_TEXT if isinstance(text, str) else _LONG_DIGITS
    if long_digits.search(text) is None:  # type: ignore[arg-type]
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            pass
    return json.loads(text)


def dumps(document: Any) -> bytes:
    """`json.dumps(document, separators=(",", ":")).encode()`."""
    if not _holds_float(document):
        try:
            out = orjson.dumps(document)
        except TypeError:  # beyond 64-bit ints, non-str keys, types orjson does not know
            pass
        else:
            if out.isascii() and b"\x7f" not in out:
                return out
    return json.dumps(document, separators=(",", ":")).encode()


def _holds_float(document: Any) -> bool:
    # Data lists are long: a container's element types are gathered in C, and only
    # the containers among them are visited in turn.
    pending = [document]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is dict:
            items: Any = value.values()
        elif kind is list:
            items = value
        elif kind in _SCALARS:
            continue
        elif isinstance(value, float):
            return True
        elif isinstance(value, dict):
            items = value.values()
        elif isinstance(value, (list, tuple)):
            items = value
        else:
            continue
        kinds = set(map(type, items))
        if kinds <= _SCALARS:
            continue
        if float in kinds:
            return True
        pending.extend([item for item in items if type(item) not in _SCALARS])
    return False


_SCALARS = {str, int, bool, type(None)}
