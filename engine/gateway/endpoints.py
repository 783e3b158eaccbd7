"""The gateway's endpoints: each reads the request, asks the resolver or the
inference, and answers; failures go through the one status table.

They know HTTP (FastAPI's Request and Response) and nothing else: names are
the resolver's business, Kafka the inference's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from engine import __version__
from engine import headers as h
from engine.codec import CodecError, json_text
from engine.gateway.catalog import PipelineInfo
from engine.gateway.errors import GatewayError, NotReady
from engine.gateway.experiments import ROUTE_HEADER
from engine.gateway.inference import Inference, parse_request
from engine.gateway.metrics import observe_inference
from engine.gateway.resolver import Prefer, Resolver
from engine.gateway.router import ReplyRouter
from engine.gateway.statuses import error_response

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
        return {"name": "tensorflux", "version": __version__, "extensions": []}

    async def live(self) -> dict[str, bool]:
        return {"live": True}

    async def ready(self) -> Response:
        current = self.router()
        if current is None or not current.alive():
            return error_response(NotReady("the reply consumer is not running"))
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
            return JSONResponse(self.resolver.readiness(found))
        except GatewayError as failure:
            return error_response(failure)

    async def infer(self, name: str, request: Request, prefer: Prefer) -> Response:
        """Resolve, route (experiments), then produce and await the answer."""
        started = time.perf_counter()
        request_id = request.headers.get(h.REQUEST_ID) or None
        route = None
        target = None
        try:
            found = self._resolve(name, request, prefer, split=True)
            to = self.resolver.route(found, request.headers.get(ROUTE_HEADER))
            route, target = to.route, to.target
            message, body_id = parse_request(await request.body(), request_id)
            request_id = message.id
            router = self.router()
            assert router is not None, "the app's lifespan starts the reply router"
            document = await Inference(router, self.timeout_s).run(
                message, body_id, to, request.headers.get(h.TRACEPARENT)
            )
        except (GatewayError, CodecError) as failure:
            answer = error_response(failure, request_id, route)
            _observe(target, answer.status_code, started)
            return answer
        _observe(target, 200, started)
        headers = {h.REQUEST_ID: request_id}
        if route:
            headers[ROUTE_HEADER] = route
        return Response(
            json_text.dumps(document),
            media_type="application/json",
            headers=headers,
        )

    def _resolve(self, name: str, request: Request, prefer: Prefer, *, split: bool) -> Any:
        seldon_model = request.headers.get(SELDON_MODEL_HEADER, "")
        return self.resolver.resolve(name, prefer, seldon_model=seldon_model, split=split)


def _observe(target: Any, code: int, started: float) -> None:
    kind = None if target is None else "pipeline" if isinstance(target, PipelineInfo) else "model"
    name = "" if target is None else target.name
    observe_inference(kind, name, code, time.perf_counter() - started)
