"""The Open Inference Protocol V2 HTTP gateway (FastAPI): the route table and the app.

A request to a pipeline (or a model) is produced to its inputs topic keyed by
the request id; the reply router waits for the record with that key on the
outputs topic and the gateway answers with it. Error records become OIP
error bodies (`{"error": ...}`): bad input 400, model failures and internal
errors 500, a step's own timeout or no reply in time 504. Unknown names 404.
The pieces: `resolver.py` (names, experiments, readiness; pure),
`inference.py` (produce and await), `endpoints.py` (thin HTTP handlers),
`statuses.py` (the one failure-to-status table), `openapi.py` (docs).

Experiments (Seldon's `kind: Experiment`): a request to an experiment's
`default`, to its own name or to `NAME.experiment` goes to one candidate drawn
by weight; `x-seldon-route` names it in the response (and, sent back, keeps a
caller on it). A mirror gets a copy of `percent`% of the requests, same id,
answer unread. While a candidate is not Ready the experiment is inactive: its
default answers alone, its own name answers 503 naming the candidates.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import make_asgi_app

from engine import __version__
from engine.config import KafkaSettings
from engine.gateway import openapi
from engine.gateway.catalog import Catalog
from engine.gateway.draining import Drain, Draining
from engine.gateway.endpoints import Endpoints
from engine.gateway.grpc_service import GrpcGateway, GrpcServing, InferenceService
from engine.gateway.hot_path import DirectInference
from engine.gateway.limits import BodyLimit, default_max_request_bytes
from engine.gateway.resolver import Prefer, Resolver
from engine.gateway.router import ReplyRouter
from engine.gateway.security import BearerAuth, TokenFile

DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Route:
    """One row of the route table: an HTTP method and path served by an `Endpoints`
    method; `prefer` (models or pipelines) is passed to the per-name handlers."""

    method: str
    path: str
    handler: str
    """The name of the `Endpoints` method."""
    tag: str
    summary: str | None = None
    prefer: Prefer | None = None
    responses: dict[int | str, dict[str, Any]] | None = None
    openapi_extra: dict[str, Any] | None = None
    in_schema: bool = True
    operation: str | None = None
    """The function name FastAPI derives the OpenAPI operation id from."""


def _per_name_routes(prefer: Prefer) -> list[Route]:
    """Metadata, readiness and inference of one model or pipeline, also under
    `/versions/{version}` (any version: tensorflux keeps one), kept out of the docs."""
    prefix, tag = f"/v2/{prefer}s/{{name}}", f"{prefer}s"
    routes = []
    for suffix in ("", "/versions/{version}"):
        path, shown, versions = prefix + suffix, not suffix, " (any version)" if suffix else ""
        routes += [
            Route("GET", path, "metadata", tag, f"{prefer} metadata{versions}", prefer,
                  openapi.METADATA_RESPONSES, None, shown, "get_metadata"),
            Route("GET", path + "/ready", "model_ready", tag, f"is the {prefer} ready", prefer,
                  openapi.READY_RESPONSES, None, shown, "get_ready"),
            Route("POST", path + "/infer", "infer", tag, f"infer with a {prefer}", prefer,
                  openapi.INFER_RESPONSES, openapi.INFER_OPENAPI, shown, "post_infer"),
        ]  # fmt: skip
    return routes


ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2", "server_metadata", "server"),
    Route("GET", "/v2/health/live", "live", "server"),
    Route("GET", "/v2/health/ready", "ready", "server", responses=openapi.SERVER_READY_RESPONSES),
    Route(
        "GET",
        "/v2/health/gateway",
        "gateway_ready",
        "server",
        responses=openapi.SERVER_READY_RESPONSES,
    ),
    *_per_name_routes("model"),
    *_per_name_routes("pipeline"),
)


def create_app(
    settings: KafkaSettings,
    catalog: Catalog,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    router: ReplyRouter | None = None,
    rng: random.Random | None = None,
    tokens: TokenFile | None = None,
    grpc: GrpcServing | None = None,
    max_request_bytes: int | None = None,
    drain: Drain | None = None,
) -> FastAPI:
    """The gateway for `settings`' namespace; `catalog` says what exists.

    The reply router (one producer, one reply consumer) starts and stops with
    the app's lifespan unless one is passed in (then the caller owns it).
    `rng` draws experiment candidates and mirror copies (seed it in tests).
    With `tokens`, every path but /v2/health/* needs one of them as a bearer token.
    With `grpc`, the OIP gRPC service is served too while the app runs, over the
    same resolver and reply router (grpc_service.py).
    HTTP bodies above `max_request_bytes` (default: the Kafka message limit) get 413
    (limits.py). `drain` is how the caller stops it gracefully (draining.py).
    """
    state: dict[str, ReplyRouter] = {}
    resolver = Resolver(catalog, rng)
    drain = drain or Drain()
    if max_request_bytes is None:
        max_request_bytes = default_max_request_bytes(settings.librdkafka)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = router is None
        # Outputs topics are listened to on their first request, not all at start: the
        # embedded broker's cost per fetch grows with the partitions it names, and
        # every reply waits on this consumer's fetches (bench: 1.4x the requests/s at
        # 64 connections, half the p50 at one, with examples/ loaded).
        current = state["router"] = router or ReplyRouter(settings).start()
        # A router passed in (a test's fake) may not know how to drain: nothing waits then.
        drain.bind(
            getattr(current, "abandon", lambda failure: None),
            getattr(current, "waiting", lambda: 0),
        )
        grpc_gateway = None
        try:
            if grpc is not None:
                service = InferenceService(
                    resolver, lambda: state.get("router"), timeout_s, tokens, drain
                )
                grpc_gateway = await asyncio.to_thread(
                    GrpcGateway(grpc, service, max_receive_bytes=max_request_bytes).start
                )
            yield
        finally:
            if grpc_gateway is not None:
                await asyncio.to_thread(grpc_gateway.stop)
            if own:
                await asyncio.to_thread(state["router"].close)

    app = FastAPI(
        title="tensorflux gateway",
        version=__version__,
        description="Open Inference Protocol V2 over tensorflux's Kafka topics.",
        lifespan=lifespan,
    )
    endpoints = Endpoints(resolver, lambda: state.get("router"), timeout_s)
    # Inner to every middleware added after it (bearer tokens below): the hot path
    # answers inference past FastAPI's routing, checked like any other request.
    app.add_middleware(DirectInference, infer=endpoints.infer)
    app.add_middleware(BodyLimit, max_bytes=max_request_bytes)  # before a byte is produced
    if tokens is not None:
        app.add_middleware(BearerAuth, tokens=tokens)
    app.add_middleware(Draining, drain=drain)  # outermost: it counts whatever is in flight
    # Prometheus metrics of this process (with `tensorflux up`, the worker's as well).
    app.mount("/metrics", make_asgi_app())
    for route in ROUTES:
        handler = getattr(endpoints, route.handler)
        options: dict[str, Any] = {}
        if route.prefer is not None:  # they answer Responses: no response model to infer
            handler = _for(handler, route.prefer, route.operation)
            options["response_model"] = None
        app.add_api_route(
            route.path,
            handler,
            methods=[route.method],
            tags=[route.tag],
            responses=route.responses,
            openapi_extra=route.openapi_extra,
            summary=route.summary,
            include_in_schema=route.in_schema,
            **options,
        )
    return app


def _for(
    handler: Callable[[str, Request, Prefer], Any], prefer: Prefer, operation: str | None
) -> Callable[[str, Request], Any]:
    """`handler` with `prefer` bound, as FastAPI wants it: (path parameter, request)."""

    async def endpoint(name: str, request: Request) -> Response:
        return await handler(name, request, prefer)

    endpoint.__name__ = operation or handler.__name__
    return endpoint
