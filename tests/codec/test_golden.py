"""Golden bytes: the wire format of one request, pinned.

If this test fails, the bytes tensorflux writes changed: every consumer in
every language reading the .avsc would see it. Change the schema version
(schemas/*.avsc "tensorflux_schema_version" and engine.codec.envelope) instead
of editing the hex, unless the change is deliberate and compatible.
"""

from __future__ import annotations

import numpy as np

from engine.codec import decode_avro, encode_avro
from engine.codec.avro import reference_decode
from engine.messages import InferenceMessage, Tensor

GOLDEN_REQUEST_HEX = (
    "10676f6c64656e2d310869726973023206107072696f7269747904020a726174"
    "696f06000000000000e03f08746167730a0a5b2261225d00080c494e50555430"
    "0a494e543332040404000020010000000200000003000000fcffffff08544558"
    "540a42595445530204000218636f6e74656e745f747970650806737472001402"
    "0000006162000000000848414c4608465031360204000008003c00fc08464c41"
    "4708424f4f4c0000020100020c73636f72657300"
)

GOLDEN_REQUEST = InferenceMessage(
    "golden-1",
    (
        Tensor.from_array("INPUT0", np.array([[1, 2], [3, -4]], dtype=np.int32)),
        Tensor(
            "TEXT", "BYTES", (2,), np.array([b"ab", b""], dtype=object), {"content_type": "str"}
        ),
        Tensor.from_array("HALF", np.array([1.0, float("-inf")], dtype=np.float16)),
        Tensor.from_array("FLAG", np.array(True)),
    ),
    "request",
    model_name="iris",
    model_version="2",
    parameters={"priority": 1, "ratio": 0.5, "tags": ["a"]},
    requested_outputs=("scores",),
)


def test_encoding_matches_golden_bytes():
    assert encode_avro(GOLDEN_REQUEST).hex() == GOLDEN_REQUEST_HEX


def test_golden_bytes_decode_to_the_request():
    payload = bytes.fromhex(GOLDEN_REQUEST_HEX)
    assert decode_avro(payload, "request") == GOLDEN_REQUEST
    assert reference_decode(payload, "request") == GOLDEN_REQUEST
