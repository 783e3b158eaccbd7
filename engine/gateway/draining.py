"""Graceful shutdown of the gateway: new requests refused, in-flight ones answered.

On SIGINT/SIGTERM the gateway drains for `--shutdown-grace` seconds before it
closes its sockets: a new HTTP request (or gRPC call) gets a 503 in the OIP
JSON error shape (UNAVAILABLE), while requests already in flight wait for
their replies as usual. Whatever still waits when the grace is up is answered
503 too (`ShuttingDown`), so no caller is left with a dropped connection, and
uvicorn then finds nothing to cancel (no `CancelledError`, no plain-text
`Internal Server Error`). `/v2/health/live` keeps answering: the process is
alive until it exits; readiness answers 503, which takes the gateway out of a
load balancer at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from engine.gateway.errors import GatewayError, ShuttingDown
from engine.gateway.statuses import error_response

log = logging.getLogger("tensorflux.gateway")

DEFAULT_GRACE_S = 10.0
LIVE_PATH = "/v2/health/live"
_POLL_S = 0.02
_ANSWER_S = 2.0
"""After the grace, how long the requests answered `ShuttingDown` get to send it."""


class Drain:
    """The gateway's shutdown state, shared by the HTTP middleware and the gRPC service.

    `bind` (the app's lifespan) says how to answer every waiting request at once;
    `run(grace_s)` (any thread) drains."""

    def __init__(self) -> None:
        self.draining = False
        self.in_flight = 0
        """HTTP requests being answered (incremented on the loop's thread only)."""
        self._abandon: Callable[[GatewayError], None] = lambda failure: None
        self._waiting: Callable[[], int] = lambda: 0

    def bind(self, abandon: Callable[[GatewayError], None], waiting: Callable[[], int]) -> None:
        """`abandon(failure)` settles every request waiting for a reply with `failure`
        (from any thread); `waiting()` counts them (HTTP and gRPC both)."""
        self._abandon, self._waiting = abandon, waiting

    def busy(self) -> int:
        return max(self.in_flight, self._waiting())

    def run(self, grace_s: float) -> None:
        """Refuse new requests, wait up to `grace_s` for the ones in flight, then answer
        what still waits with 503 and give those answers a moment to go out."""
        self.draining = True
        deadline = time.monotonic() + grace_s
        busy = self.busy()
        if busy:
            log.info("stopping: %d request(s) in flight, up to %gs to answer", busy, grace_s)
        while self.busy() and time.monotonic() < deadline:
            time.sleep(_POLL_S)
        left = self.busy()
        if not left:
            return
        log.warning("shutdown grace of %gs over: %d request(s) answered 503", grace_s, left)
        self._abandon(
            ShuttingDown(f"the gateway stopped before the reply came (grace {grace_s:g}s)")
        )
        deadline = time.monotonic() + _ANSWER_S
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(_POLL_S)


class Draining:
    """ASGI middleware: counts HTTP requests in flight; while `drain` drains, answers
    new ones 503 (but liveness)."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = self.drain
        if drain.draining and scope["path"] != LIVE_PATH:
            response = error_response(ShuttingDown("the gateway is shutting down"))
            response.headers["connection"] = "close"
            await response(scope, receive, send)
            return
        drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            drain.in_flight -= 1
