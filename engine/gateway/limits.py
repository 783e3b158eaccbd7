"""Request bodies bounded before anything reads them, and gzip-encoded bodies read.

`--max-request-bytes` caps what an HTTP body may be: its `Content-Length` is
checked first (a 413 without reading a byte of it), a body without one
(chunked) is counted as it streams in, and a `Content-Encoding: gzip` body is
bounded after decompression too, so a gzip bomb gets its 413 having inflated
no more than the limit. The handlers behind see a plain body with its real
length, as if the client had sent it unencoded.

The default is the Kafka message limit the engine's producers use
(`message.max.bytes`, librdkafka's 1,000,000 unless the Kafka settings say
otherwise): a body above it would make a record Kafka refuses anyway. The gRPC
gateway gets the same limit as its largest receive (RESOURCE_EXHAUSTED above).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.gateway.errors import BadRequest, RequestTooLarge, UnsupportedEncoding
from engine.gateway.statuses import error_response

KAFKA_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default `message.max.bytes`, the engine's when its settings name none."""

GZIP = frozenset({"gzip", "x-gzip"})
IDENTITY = "identity"
_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib reads a gzip header and trailer with these window bits."""
_INFLATE_STEP = 64 * 1024


def default_max_request_bytes(librdkafka: Mapping[str, Any]) -> int:
    """The Kafka message limit of these client settings (see the module docstring)."""
    configured = librdkafka.get("message.max.bytes")
    return int(configured) if configured is not None else KAFKA_MESSAGE_MAX_BYTES


class BodyLimit:
    """ASGI middleware: 413 for bodies above `max_bytes`, gzip bodies decompressed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length, encoding = _framing(scope["headers"])
        try:
            if length is not None and length > self.max_bytes:
                raise self._too_large(f"its Content-Length is {length} bytes")
            if encoding not in GZIP and encoding not in ("", IDENTITY):
                raise UnsupportedEncoding(
                    f"Content-Encoding '{encoding}' is not read here; send gzip or no encoding"
                )
            if length is not None and encoding not in GZIP:
                # Framed by its length (the HTTP parser reads no further): nothing to count.
                await self.app(scope, receive, send)
                return
            body = await self._read(receive)
            if encoding in GZIP:
                body = self._inflate(body)
        except (RequestTooLarge, BadRequest) as failure:
            await _refuse(failure, scope, receive, send)
            return
        await self.app(_plain(scope, len(body)), _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes:
        """The whole body, refused as soon as it passes the limit."""
        parts, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise self._too_large(f"it passed {self.max_bytes} bytes while streaming")
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(parts)

    def _inflate(self, compressed: bytes) -> bytes:
        """The decompressed body, never inflating more than the limit (+1 to know)."""
        inflater = zlib.decompressobj(_GZIP_WBITS)
        parts, size = [], 0
        data = compressed
        try:
            while data or not inflater.eof:
                room = self.max_bytes + 1 - size
                chunk = inflater.decompress(data, min(room, _INFLATE_STEP))
                size += len(chunk)
                if size > self.max_bytes:
                    raise self._too_large("it is larger than that once decompressed")
                parts.append(chunk)
                data = inflater.unconsumed_tail
                if not chunk and not data:
                    break
        except zlib.error as error:
            raise BadRequest(
                f"the body is not valid gzip (Content-Encoding: gzip): {error}"
            ) from None
        if not inflater.eof:
            raise BadRequest("the gzip body is truncated (Content-Encoding: gzip)")
        return b"".join(parts)

    def _too_large(self, why: str) -> RequestTooLarge:
        return RequestTooLarge(
            f"the request body is over this gateway's limit of {self.max_bytes} bytes "
            f"({why}); send smaller requests or raise --max-request-bytes"
        )


def _framing(headers: list[tuple[bytes, bytes]]) -> tuple[int | None, str]:
    """(Content-Length or None, Content-Encoding lowercased or '')."""
    length, encoding = None, ""
    for key, value in headers:
        if key == b"content-length":
            try:
                length = int(value)
            except ValueError:
                length = None  # the HTTP parser refuses such a request before us
        elif key == b"content-encoding":
            encoding = value.decode("latin-1").strip().lower()
    return length, encoding


def _plain(scope: Scope, length: int) -> Scope:
    """`scope` as if the body had come unencoded with this length."""
    headers = [
        (k, v) for k, v in scope["headers"] if k not in (b"content-length", b"content-encoding")
    ]
    headers.append((b"content-length", str(length).encode()))
    return {**scope, "headers": headers}


def _replay(body: bytes, then: Receive) -> Receive:
    """`body` as one message, then the connection's own (a disconnect, when it comes)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await then()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _refuse(failure: Exception, scope: Scope, receive: Receive, send: Send) -> None:
    # The unread rest of the body would be taken for the next request: close after.
    response = error_response(failure)
    response.headers["connection"] = "close"
    await response(scope, receive, send)
