"""Inference requests straight to their handler, past FastAPI's routing.

FastAPI finds an inference route, builds its dependencies and wraps the call in
its exception and exit-stack middleware: about a third of the gateway's CPU per
request on the 1-step pipeline (py-spy, bench/gateway_bench.py --profile). This
ASGI middleware sits inside the user middleware (bearer tokens, tracing) and
answers `POST /v2/{models|pipelines}/{name}[/versions/{version}]/infer` with the
same `Endpoints.infer` FastAPI would call; everything else goes on to FastAPI.
The route table keeps those routes, so the OpenAPI document still lists them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.gateway.resolver import Prefer

INFER_PATH = re.compile(r"/v2/(model|pipeline)s/([^/]+)(/versions/[^/]+)?/infer")
"""What the route table's infer routes match (a path parameter is one segment)."""

ROUTE_TEMPLATE: str = "tensorflux.route"
"""Scope key of the route template a request took here (FastAPI's routing, which
metrics and spans read it from otherwise, is skipped)."""

Infer = Callable[[str, Request, Prefer], Awaitable[Any]]


class DirectInference:
    """`app` with inference requests answered by `infer` itself."""

    def __init__(self, app: ASGIApp, infer: Infer) -> None:
        self.app = app
        self.infer = infer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            matched = INFER_PATH.fullmatch(scope["path"])
            if matched is not None:
                prefer: Prefer = matched[1]  # type: ignore[assignment]
                versions = "/versions/{version}" if matched[3] else ""
                scope[ROUTE_TEMPLATE] = f"/v2/{prefer}s/{{name}}{versions}/infer"
                response = await self.infer(matched[2], Request(scope, receive), prefer)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
