"""HTTP inference bodies both ways: OIP JSON, or JSON with binary tensor data.

A request with the `Inference-Header-Content-Length` header carries binary
inputs (engine/codec/oip_binary.py); any request may ask for binary outputs
(`binary_data_output`, or `binary_data` per requested output), as stock
`tritonclient.http` does by default. Plain JSON requests take the JSON path
unchanged: the binary flags are looked for only when the body mentions them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping

from fastapi.responses import Response

from engine.codec.oip_binary import (
    HEADER_LENGTH,
    JSON_OUTPUTS,
    BinaryOutputs,
    binary_outputs,
    decode_binary_request,
    encode_response,
    header_length,
    without_transport_parameters,
)
from engine.gateway.errors import BadRequest
from engine.gateway.inference import parse_request
from engine.messages import InferenceMessage

BINARY_MEDIA_TYPE = "application/octet-stream"
_MENTIONS_BINARY = b"binary_data"


def read_request(
    body: bytes, headers: Mapping[str, str], request_id: str | None
) -> tuple[InferenceMessage, str | None, BinaryOutputs]:
    """The request message (its id: x-request-id, else a new uuid), the body's own id,
    and which outputs to answer binary."""
    length_header = headers.get(HEADER_LENGTH)
    if length_header is None:
        message, body_id = parse_request(body, request_id)
        if _MENTIONS_BINARY not in body:
            return message, body_id, JSON_OUTPUTS
        document = json.loads(body)  # parsed again (parse_request checked it), only if it may ask
        return without_transport_parameters(message), body_id, binary_outputs(document)
    request_id = request_id or str(uuid.uuid4())
    length = header_length(length_header, len(body))
    message, document = decode_binary_request(body, length, default_id=request_id)
    if message.id != request_id:  # the body's id is echoed, never the Kafka key
        message = message.replace(id=request_id)
    if not message.tensors:
        raise BadRequest("the request has no inputs")
    body_id = document.get("id") if isinstance(document.get("id"), str) else None
    return without_transport_parameters(message), body_id, binary_outputs(document)


def write_response(
    answer: InferenceMessage, binary: BinaryOutputs, headers: dict[str, str]
) -> Response:
    """The HTTP answer: JSON, or JSON header + binary outputs when asked for."""
    content, length = encode_response(answer, binary)
    if length is None:
        return Response(content, media_type="application/json", headers=headers)
    headers = {**headers, "Inference-Header-Content-Length": str(length)}
    return Response(content, media_type=BINARY_MEDIA_TYPE, headers=headers)
