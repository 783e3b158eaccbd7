"""JSON in, JSON out: a request produced as OIP JSON is answered as OIP JSON.

A kcat or curl user who produces `content-type: application/json` cannot read an Avro
answer. So the node that reads a JSON request marks what it writes for it with
`tensorflux-reply-content-type: application/json`; every node after it carries the mark
on (engine.runtime.node_headers), and whatever writes the request's answer to a caller's
topic (a pipeline's outputs, a model's outputs) writes it as JSON with the content-type
header. Records between steps stay Avro, as do answers to Avro requests (the gateway's).
"""

from __future__ import annotations

from engine import headers as h
from engine.codec import decode_avro, encode_avro, encode_json
from engine.messages import InferenceMessage

Headers = list[tuple[str, bytes]]

JSON: bytes = h.JSON_CONTENT_TYPE.encode()
MARK: tuple[str, bytes] = (h.REPLY_CONTENT_TYPE, JSON)


def wants_json(headers: Headers) -> bool:
    """Whether the request these headers belong to came as JSON (the mark is on them)."""
    for key, _ in headers:  # a loop, not any(genexpr): this runs for every answer written
        if key == h.REPLY_CONTENT_TYPE:
            return True
    return False


def encode_reply(message: InferenceMessage, headers: Headers) -> tuple[bytes, Headers]:
    """An answer for a caller's topic: JSON when its request was, else Avro."""
    if wants_json(headers):
        return encode_json(message), [*headers, (h.CONTENT_TYPE, JSON)]
    return encode_avro(message), headers


def as_reply(avro: bytes, headers: Headers) -> tuple[bytes, Headers]:
    """An Avro answer made fit for a caller's topic (re-encoded only for JSON callers)."""
    if not wants_json(headers):
        return avro, headers
    return encode_json(decode_avro(avro, "response")), [*headers, (h.CONTENT_TYPE, JSON)]
