"""The fast JSON reader and writer give the standard library's results exactly."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import json_text

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(), inner, max_size=6),
    max_leaves=30,
)


def _same(a: object, b: object) -> bool:
    """Equal values of equal types all the way down (NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and repr(a) == repr(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=400, deadline=None)
@given(documents)
def test_dumps_writes_the_bytes_json_dumps_writes(document: object) -> None:
    assert json_text.dumps(document) == json.dumps(document, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(documents, st.booleans())
def test_loads_reads_what_json_loads_reads(document: object, ascii_only: bool) -> None:
    text = json.dumps(document, ensure_ascii=ascii_only)
    for given_as in (text, text.encode("utf-8", "surrogatepass")):
        try:
            expected = json.loads(given_as)
        except ValueError:
            continue  # a lone surrogate written raw is not UTF-8: json refuses it too
        assert _same(json_text.loads(given_as), expected)


@pytest.mark.parametrize(
    "text",
    [
        b"[18446744073709551616]",  # orjson alone reads these big integers as floats
        b"[-9223372036854775809]",
        b"123456789012345678901234567890",
        b"[NaN, Infinity, -Infinity]",
        b"1E400",
        b'"\\ud800"',
        b"\xef\xbb\xbf{}",
        '{"x": "\u00e9"}'.encode("utf-16"),
    ],
)
def test_loads_keeps_what_only_json_reads(text: bytes) -> None:
    assert _same(json_text.loads(text), json.loads(text))


@pytest.mark.parametrize("text", [b"[1,]", b"{", b"", b"\xff", b"[1] 2"])
def test_loads_refuses_what_json_refuses_with_its_message(text: bytes) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        json_text.loads(text)
    assert type(got.value) is type(expected.value)
    assert str(got.value) == str(expected.value)
