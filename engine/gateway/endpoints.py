"""The gateway's endpoints: each reads the request, asks the resolver or the
inference, and answers; failures go through the one status table.

They know HTTP (FastAPI's Request and Response) and nothing else: names are
the resolver's business, Kafka the inference's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from engine import __version__
from engine import headers as h
from engine.codec import CodecError
from engine.gateway.bodies import read_request, write_response
from engine.gateway.catalog import PipelineInfo
from engine.gateway.errors import GatewayError, NotReady
from engine.gateway.experiments import ROUTE_HEADER
from engine.gateway.hot_path import ROUTE_TEMPLATE
from engine.gateway.inference import Inference
from engine.gateway.metrics import observe_inference
from engine.gateway.resolver import Prefer, Resolver
from engine.gateway.router import ReplyRouter
from engine.gateway.statuses import error_response
from engine.observability.logs import request_fields
from engine.observability.spans import RequestSpan, request_span

log = logging.getLogger("tensorflux.gateway")

EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions served (Triton's names): binary tensors over HTTP (bodies.py)."""

NOT_READY = 503
"""What a readiness endpoint answers for "not ready" (OIP: not 200; 503 as for a
target that failed to load, and a failing probe for Kubernetes)."""

SELDON_MODEL_HEADER = "seldon-model"
"""Seldon's header naming the target (`NAME.pipeline`, `NAME.experiment`)."""


class Endpoints:
    """The handlers of the route table. `router` is called per request: the reply
    router starts with the app's lifespan, after the endpoints exist."""

    def __init__(
        self, resolver: Resolver, router: Callable[[], ReplyRouter | None], timeout_s: float
    ) -> None:
        self.resolver = resolver
        self.router = router
        self.timeout_s = timeout_s

    # -- server ------------------------------------------------------------------------

    async def server_metadata(self) -> dict[str, Any]:
        return {"name": "tensorflux", "version": __version__, "extensions": list(EXTENSIONS)}

    async def live(self) -> dict[str, bool]:
        return {"live": True}

    async def gateway_ready(self) -> Response:
        """200 while this gateway can serve (its reply consumer runs), whatever is loading:
        the probe a load balancer wants. /v2/health/ready is the server's OIP readiness,
        which a hot load of one pipeline turns false until it is Ready; as a Kubernetes
        readiness probe it would take every gateway out of service for that time."""
        current = self.router()
        if current is None or not current.alive():
            return error_response(NotReady("the reply consumer is not running"))
        if not _reachable(current):
            return error_response(NotReady("Kafka is unreachable from this gateway"))
        return JSONResponse({"ready": True})

    async def ready(self) -> Response:
        """200 when the reply consumer runs and nothing is still loading, else 503
        (OIP: the status code is the answer; stock clients read only it)."""
        current = self.router()
        if current is None or not current.alive():
            return error_response(NotReady("the reply consumer is not running"))
        if not _reachable(current):
            return error_response(NotReady("Kafka is unreachable from this gateway"))
        reason = self.resolver.unready()
        if reason:
            return JSONResponse({"ready": False, "error": reason}, status_code=NOT_READY)
        return JSONResponse({"ready": True})

    # -- models and pipelines ----------------------------------------------------------

    async def metadata(self, name: str, request: Request, prefer: Prefer) -> Response:
        try:
            found = self._resolve(name, request, prefer, split=False)
            return JSONResponse(self.resolver.metadata(found))
        except GatewayError as failure:
            return error_response(failure)

    async def model_ready(self, name: str, request: Request, prefer: Prefer) -> Response:
        try:
            found = self._resolve(name, request, prefer, split=False)
            readiness = self.resolver.readiness(found)
            return JSONResponse(readiness, status_code=200 if readiness["ready"] else NOT_READY)
        except GatewayError as failure:
            return error_response(failure)

    async def infer(self, name: str, request: Request, prefer: Prefer) -> Response:
        """Resolve, route (experiments), then produce and await the answer."""
        started = time.perf_counter()
        request_id = request.headers.get(h.REQUEST_ID) or None
        route = None
        target = None
        traceparent = request.headers.get(h.TRACEPARENT)
        span = request_span("POST", _route(request), traceparent)
        if span is not None:  # the records name the gateway's span as their parent
            traceparent = span.traceparent
        try:
            found = self._resolve(name, request, prefer, split=True)
            to = self.resolver.route(found, request.headers.get(ROUTE_HEADER))
            route, target = to.route, to.target
            message, body_id, binary = read_request(
                await request.body(), request.headers, request_id
            )
            request_id = message.id
            router = self.router()
            assert router is not None, "the app's lifespan starts the reply router"
            answer = await Inference(router, self.timeout_s).answer(
                message, body_id, to, traceparent
            )
        except (GatewayError, CodecError) as failure:
            answer = error_response(failure, request_id, route)
            _observe(request, target, answer.status_code, started, span, request_id)
            return answer
        _observe(request, target, 200, started, span, request_id)
        headers = {h.REQUEST_ID: request_id}
        if route:
            headers[ROUTE_HEADER] = route
        return write_response(answer, binary, headers)

    def _resolve(self, name: str, request: Request, prefer: Prefer, *, split: bool) -> Any:
        seldon_model = request.headers.get(SELDON_MODEL_HEADER, "")
        return self.resolver.resolve(name, prefer, seldon_model=seldon_model, split=split)


def _reachable(router: ReplyRouter) -> bool:
    reachable = getattr(router, "reachable", None)  # a test's fake router may not know
    return reachable is None or reachable()


def _route(request: Request) -> str:
    """The route's template (`/v2/pipelines/{name}/infer`): bounded, unlike the path."""
    template = request.scope.get(ROUTE_TEMPLATE)  # the hot path's (hot_path.py)
    if template is not None:
        return template
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unknown"


def _observe(
    request: Request,
    target: Any,
    code: int,
    started: float,
    span: RequestSpan | None,
    request_id: str | None,
) -> None:
    kind = None if target is None else "pipeline" if isinstance(target, PipelineInfo) else "model"
    name = "" if target is None else target.name
    observe_inference(kind, name, code, time.perf_counter() - started, route=_route(request))
    if span is not None:
        span.end(code, target=name, kind=kind, request_id=request_id)
    if code >= 500:  # the engine's failures; the caller's (4xx) are in its own answer
        log.warning(
            "%s answered %d for request %s",
            request.url.path,
            code,
            request_id,
            extra=request_fields(
                request_id, name if kind == "pipeline" else None, name if kind == "model" else None
            ),
        )
