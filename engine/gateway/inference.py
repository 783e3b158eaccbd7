"""One inference through Kafka: parse the OIP body, produce it, await the reply, answer.

No HTTP here: `parse_request` reads the body, `Inference.run` sends the
message where the resolver routed it and returns the answer document; both
raise a `GatewayError` or `CodecError`, which the endpoints turn into
statuses (statuses.py).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Protocol

from engine import headers as h
from engine.codec import avro_headers, decode_error, decode_payload, encode_avro, json_text
from engine.codec.oip_json import message_from_document, message_to_document
from engine.gateway.catalog import PipelineInfo
from engine.gateway.errors import BadRequest, NotReady, ReplyTimeout, StepFailed
from engine.gateway.resolver import Destination, Target, label
from engine.gateway.router import Reply
from engine.messages import InferenceMessage

log = logging.getLogger("tensorflux.gateway")


class Replies(Protocol):
    """What an inference needs of the reply router (tests pass a fake)."""

    async def request(
        self,
        topic: str,
        reply_topic: str,
        key: str,
        value: bytes,
        headers: list[tuple[str, bytes]],
        timeout_s: float,
    ) -> Reply: ...

    def send(
        self, topic: str, key: str, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None: ...


def parse_request(body: bytes, request_id: str | None) -> tuple[InferenceMessage, str | None]:
    """The request message (its id: x-request-id, else a new uuid) and the body's own
    id, which the response echoes. The body's id is never the request id: clients
    send fixed ids ("1", "42"), and two such requests in flight would share one
    Kafka key, one join and one reply."""
    try:
        document = json_text.loads(body)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise BadRequest(f"an inference request is a JSON object, got {type(document).__name__}")
    body_id = document.get("id") if isinstance(document.get("id"), str) else None
    request_id = request_id or str(uuid.uuid4())
    message = message_from_document(document, "request", default_id=request_id)
    if message.id != request_id:
        message = message.replace(id=request_id)
    if not message.tensors:
        raise BadRequest("the request has no inputs")
    return message, body_id


def _headers(
    message: InferenceMessage, target: Target, traceparent: str | None, route: str | None = None
) -> Any:
    """`route`: the experiment candidate chosen, written as `x-seldon-route` so the worker,
    which splits what reaches an experiment's default on Kafka, does not split it again."""
    pipeline = target.name if isinstance(target, PipelineInfo) else None
    headers = avro_headers(message, pipeline=pipeline, traceparent=traceparent)
    return headers if route is None else h.with_headers(headers, x_seldon_route=route)


class Inference:
    """Produce-and-await over `replies`, waiting `timeout_s` for each answer."""

    def __init__(self, replies: Replies, timeout_s: float) -> None:
        self.replies = replies
        self.timeout_s = timeout_s

    async def run(
        self,
        message: InferenceMessage,
        body_id: str | None,
        to: Destination,
        traceparent: str | None,
    ) -> dict[str, Any]:
        """The OIP response document of `answer`."""
        return message_to_document(await self.answer(message, body_id, to, traceparent))

    async def answer(
        self,
        message: InferenceMessage,
        body_id: str | None,
        to: Destination,
        traceparent: str | None,
    ) -> InferenceMessage:
        """Send `message` to `to.target` (a copy to `to.mirror`) and return its
        reply: the body's id, the target's name and only the requested outputs
        (HTTP JSON, HTTP binary and gRPC each encode it their way)."""
        target = to.target
        if target.state == "Failed":
            raise NotReady(f"{label(target)} failed to load: {target.reason}")
        message = message.replace(model_name=target.name)
        headers = _headers(message, target, traceparent, to.route)
        if to.mirror is not None:
            self._mirror(message, to.mirror, traceparent)
        try:
            reply = await self.replies.request(
                target.inputs_topic,
                target.outputs_topic,
                message.id,
                encode_avro(message),
                headers,
                self.timeout_s,
            )
        except TimeoutError:
            raise ReplyTimeout(label(target), message.id, self.timeout_s) from None
        if h.is_error(reply.headers):
            raise StepFailed(decode_error(reply.value))
        response = decode_payload(reply.value, reply.headers, "response")
        outputs = response.tensors
        if message.requested_outputs:
            wanted = set(message.requested_outputs)
            outputs = tuple(t for t in outputs if t.name in wanted)
        return response.replace(id=body_id or message.id, model_name=target.name, tensors=outputs)

    def _mirror(self, message: InferenceMessage, mirror: Target, traceparent: str | None) -> None:
        """A copy for the mirror with the same request id. Nobody waits for its answer
        and nothing that goes wrong here reaches the caller."""
        try:
            copy = message.replace(model_name=mirror.name)
            headers = _headers(copy, mirror, traceparent, mirror.name)
            self.replies.send(mirror.inputs_topic, copy.id, encode_avro(copy), headers)
        except Exception:
            log.warning("mirror copy for %s dropped", label(mirror), exc_info=True)
