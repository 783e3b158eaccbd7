"""The Open Inference Protocol V2 HTTP gateway (FastAPI).

A request to a pipeline (or a model) is produced to its inputs topic keyed by
the request id; the reply router waits for the record with that key on the
outputs topic and the gateway answers with it. Error records become OIP
error bodies (`{"error": ...}`): bad input 400, model failures and internal
errors 500, a step's own timeout or no reply in time 504. Unknown names 404.

`/v2/models/{name}/...` also serves pipelines, so stock OIP clients (which
only know models) reach them: a model of that name wins; `NAME.pipeline` or
the header `seldon-model: NAME.pipeline` (Seldon Core 2's spelling) picks the
pipeline explicitly.

Experiments (Seldon's `kind: Experiment`): a request to an experiment's
`default`, to its own name or to `NAME.experiment` goes to one candidate drawn
by weight; `x-seldon-route` names it in the response (and, sent back, keeps a
caller on it). A mirror gets a copy of `percent`% of the requests, same id,
answer unread. While a candidate is not Ready the experiment is inactive: its
default answers alone, its own name answers 503 naming the candidates.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import make_asgi_app
from pydantic import BaseModel, Field

from engine import __version__
from engine import headers as h
from engine.codec import CodecError, avro_headers, decode_error, decode_payload, encode_avro
from engine.codec.oip_json import message_to_document
from engine.config import KafkaSettings
from engine.gateway.catalog import Catalog, ModelInfo, PipelineInfo
from engine.gateway.errors import (
    BadRequest,
    DeliveryFailed,
    GatewayError,
    NotReady,
    ReplyTimeout,
    RequestInFlight,
    StepFailed,
    UnknownName,
)
from engine.gateway.experiments import (
    ROUTE_HEADER,
    ExperimentInfo,
    choose_candidate,
    mirror_this_one,
)
from engine.gateway.router import ReplyRouter
from engine.messages import InferenceMessage

log = logging.getLogger("tensorflux.gateway")

DEFAULT_TIMEOUT_S = 30.0
PIPELINE_SUFFIX = ".pipeline"
EXPERIMENT_SUFFIX = ".experiment"
SELDON_MODEL_HEADER = "seldon-model"
ERROR_STATUS = {"bad-input": 400, "model-failure": 500, "internal": 500, "timeout": 504}

Target = PipelineInfo | ModelInfo


# -- OpenAPI documentation of the OIP bodies (not used to parse: the codec does) ----------


class TensorDoc(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, UINT8..64, INT8..64, FP16/32/64 or BYTES")
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="flat or nested row-major elements")


class RequestedOutputDoc(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequestDoc(BaseModel):
    id: str | None = Field(None, description="request id (else x-request-id, else generated)")
    parameters: dict[str, Any] | None = None
    inputs: list[TensorDoc]
    outputs: list[RequestedOutputDoc] | None = None


class InferenceResponseDoc(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[TensorDoc]


class ErrorDoc(BaseModel):
    error: str


class MetadataDoc(BaseModel):
    name: str
    versions: list[str] = []
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


_INFER_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferenceRequestDoc.model_json_schema()}},
    }
}
_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": InferenceResponseDoc, "description": "the outputs"},
    400: {"model": ErrorDoc, "description": "malformed request or bad tensor (named)"},
    404: {"model": ErrorDoc, "description": "no such pipeline or model"},
    500: {"model": ErrorDoc, "description": "the model failed (its reason)"},
    503: {"model": ErrorDoc, "description": "it failed to load"},
    504: {"model": ErrorDoc, "description": "no reply in time (names the request id)"},
}


# -- the app ---------------------------------------------------------------------------


def create_app(
    settings: KafkaSettings,
    catalog: Catalog,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    router: ReplyRouter | None = None,
    rng: random.Random | None = None,
) -> FastAPI:
    """The gateway for `settings`' namespace; `catalog` says what exists.

    The reply router (one producer, one reply consumer) starts and stops with
    the app's lifespan unless one is passed in (then the caller owns it).
    `rng` draws experiment candidates and mirror copies (seed it in tests).
    """
    state: dict[str, ReplyRouter] = {}
    draw = rng or random.Random()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        own = router is None
        state["router"] = router or ReplyRouter(settings).start()
        _listen_to_all(state["router"], catalog)
        try:
            yield
        finally:
            if own:
                await asyncio.to_thread(state["router"].close)

    app = FastAPI(
        title="tensorflux gateway",
        version=__version__,
        description="Open Inference Protocol V2 over tensorflux's Kafka topics.",
        lifespan=lifespan,
    )

    # Prometheus metrics of this process (with `tensorflux up`, the worker's as well).
    app.mount("/metrics", make_asgi_app())

    def error(
        status: int, message: str, request_id: str | None = None, route: str | None = None
    ) -> JSONResponse:
        headers = {h.REQUEST_ID: request_id} if request_id else {}
        if route:
            headers[ROUTE_HEADER] = route
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    # -- server ------------------------------------------------------------------------

    @app.get("/v2", tags=["server"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "tensorflux", "version": __version__, "extensions": []}

    @app.get("/v2/health/live", tags=["server"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["server"], responses={503: {"model": ErrorDoc}})
    async def ready() -> Response:
        current = state.get("router")
        if current is None or not current.alive():
            return error(503, "the reply consumer is not running")
        return JSONResponse({"ready": True})

    # -- lookups -----------------------------------------------------------------------

    def lookup(request: Request, name: str, prefer: str) -> Target:
        """A pipeline or model by name; on /v2/models a model wins unless the
        name or the seldon-model header ends in '.pipeline'."""
        header = request.headers.get(SELDON_MODEL_HEADER, "")
        if prefer == "model" and header.endswith(PIPELINE_SUFFIX):
            name, prefer = header.removesuffix(PIPELINE_SUFFIX), "pipeline"
        elif prefer == "model" and name.endswith(PIPELINE_SUFFIX):
            name, prefer = name.removesuffix(PIPELINE_SUFFIX), "pipeline"
        elif prefer == "model":
            model = catalog.model(name)
            if model is not None:
                return model
        pipeline = catalog.pipeline(name)
        if pipeline is not None:
            return pipeline
        pipelines, models = catalog.names()
        if prefer == "model":
            raise UnknownName("model or pipeline", name, [*models, *pipelines])
        raise UnknownName("pipeline", name, list(pipelines))

    def resolve(
        request: Request, name: str, prefer: str, *, split: bool = True
    ) -> Target | ExperimentInfo:
        """`lookup`, with experiments: `NAME.experiment` (path or seldon-model header),
        a name no model or pipeline has, or (with `split`, for inference) the default
        of an active experiment."""
        header = request.headers.get(SELDON_MODEL_HEADER, "")
        for spelled in (header, name):
            if spelled.endswith(EXPERIMENT_SUFFIX):
                return experiment_named(spelled.removesuffix(EXPERIMENT_SUFFIX), prefer)
        try:
            target = lookup(request, name, prefer)
        except UnknownName as failure:
            try:
                return experiment_named(name, prefer)
            except UnknownName:
                pass
            if prefer == "model" and catalog.experiment_names():
                pipelines, models = catalog.names()
                known = [*models, *pipelines, *catalog.experiment_names()]
                raise UnknownName("model, pipeline or experiment", name, known) from None
            raise failure from None
        kind = "pipeline" if isinstance(target, PipelineInfo) else "model"
        experiment = catalog.experiment_on(kind, target.name) if split else None
        if experiment is not None and not inactive(experiment):
            return experiment
        return target

    def experiment_named(name: str, prefer: str) -> ExperimentInfo:
        # /v2/pipelines serves pipelines only, so only experiments over pipelines.
        wanted = ("pipeline",) if prefer == "pipeline" else ("model", "pipeline")
        experiment = catalog.experiment(name)
        if experiment is None or experiment.resource_type not in wanted:
            known = [
                n
                for n in catalog.experiment_names()
                if (e := catalog.experiment(n)) is not None and e.resource_type in wanted
            ]
            kind = "pipeline experiment" if prefer == "pipeline" else "experiment"
            raise UnknownName(kind, name, known)
        return experiment

    def candidate(experiment: ExperimentInfo, name: str) -> Target | None:
        if experiment.resource_type == "pipeline":
            return catalog.pipeline(name)
        return catalog.model(name)

    def inactive(experiment: ExperimentInfo) -> str:
        """Why the experiment cannot split traffic now ("" when it can)."""
        unready = []
        for name, _ in experiment.candidates:
            target = candidate(experiment, name)
            state = "not loaded" if target is None else target.state
            if state != "Ready":
                unready.append(f"{experiment.resource_type} '{name}' ({state})")
        if unready:
            return (
                f"experiment '{experiment.name}' is not active: its candidates "
                f"{', '.join(unready)} are not Ready"
            )
        if not any(weight > 0 for _, weight in experiment.candidates):
            return f"experiment '{experiment.name}' has no candidate with a positive weight"
        return ""

    def metadata(target: Target) -> dict[str, Any]:
        platform = (
            "tensorflux-pipeline" if isinstance(target, PipelineInfo) else target.platform or ""
        )
        return {
            "name": target.name,
            "versions": [],
            "platform": platform,
            "inputs": [t.document() for t in target.inputs],
            "outputs": [t.document() for t in target.outputs],
        }

    def experiment_metadata(experiment: ExperimentInfo) -> dict[str, Any]:
        """The signature of its first loaded candidate, under the experiment's name."""
        for name, _ in experiment.candidates:
            target = candidate(experiment, name)
            if target is not None:
                return {**metadata(target), "name": experiment.name}
        return {
            "name": experiment.name,
            "versions": [],
            "platform": "",
            "inputs": [],
            "outputs": [],
        }

    def readiness(target: Target | ExperimentInfo) -> Response:
        if isinstance(target, ExperimentInfo):
            reason = inactive(target)
            if reason:
                return error(503, reason)
            return JSONResponse({"name": target.name, "ready": True})
        if target.state == "Failed":
            return error(503, f"{_label(target)} failed: {target.reason}")
        return JSONResponse({"name": target.name, "ready": target.state == "Ready"})

    # -- inference ---------------------------------------------------------------------

    async def infer_experiment(request: Request, experiment: ExperimentInfo) -> Response:
        request_id = request.headers.get(h.REQUEST_ID) or None
        reason = inactive(experiment)
        if reason:
            return error(503, reason, request_id)
        chosen = choose_candidate(experiment, draw, request.headers.get(ROUTE_HEADER))
        target = candidate(experiment, chosen)
        if target is None:  # unloaded since `inactive` looked
            return error(503, f"candidate '{chosen}' is not loaded", request_id)
        mirror_name = mirror_this_one(experiment, draw)
        # The chosen candidate already has the request; a second copy would race its answer.
        mirror = candidate(experiment, mirror_name) if mirror_name not in (None, chosen) else None
        if mirror is not None and mirror.state != "Ready":
            mirror = None
        return await infer(request, target, route=chosen, mirror=mirror)

    def send_mirror(message: InferenceMessage, mirror: Target, traceparent: str | None) -> None:
        """A copy for the mirror with the same request id. Nobody waits for its answer
        and nothing that goes wrong here reaches the caller."""
        try:
            copy = message.replace(model_name=mirror.name)
            headers = avro_headers(
                copy,
                pipeline=mirror.name if isinstance(mirror, PipelineInfo) else None,
                traceparent=traceparent,
            )
            state["router"].send(mirror.inputs_topic, copy.id, encode_avro(copy), headers)
        except Exception:
            log.warning("mirror copy for %s dropped", _label(mirror), exc_info=True)

    async def infer(
        request: Request,
        target: Target,
        *,
        route: str | None = None,
        mirror: Target | None = None,
    ) -> Response:
        """Send the request to `target` and answer with its reply. `route` is the
        experiment candidate it is (x-seldon-route); `mirror` gets a copy."""
        request_id = request.headers.get(h.REQUEST_ID) or None
        try:
            message, body_id = _parse(await request.body(), request_id)
            request_id = message.id
            if target.state == "Failed":
                raise NotReady(f"{_label(target)} failed to load: {target.reason}")
            message = message.replace(model_name=target.name)
            headers = avro_headers(
                message,
                pipeline=target.name if isinstance(target, PipelineInfo) else None,
                traceparent=request.headers.get(h.TRACEPARENT),
            )
            if mirror is not None:
                send_mirror(message, mirror, request.headers.get(h.TRACEPARENT))
            try:
                reply = await state["router"].request(
                    target.inputs_topic,
                    target.outputs_topic,
                    message.id,
                    encode_avro(message),
                    headers,
                    timeout_s,
                )
            except TimeoutError:
                raise ReplyTimeout(_label(target), message.id, timeout_s) from None
            if h.is_error(reply.headers):
                raise StepFailed(decode_error(reply.value))
            response = decode_payload(reply.value, reply.headers, "response")
            document = message_to_document(response)
        except GatewayError as failure:
            return error(_status(failure), str(failure), request_id, route)
        except CodecError as failure:
            return error(400, str(failure), request_id, route)
        document["id"] = body_id or message.id
        document["model_name"] = target.name
        if message.requested_outputs:
            wanted = set(message.requested_outputs)
            document["outputs"] = [o for o in document["outputs"] if o["name"] in wanted]
        headers = {h.REQUEST_ID: message.id}
        if route:
            headers[ROUTE_HEADER] = route
        return Response(
            json.dumps(document, separators=(",", ":")).encode(),
            media_type="application/json",
            headers=headers,
        )

    def not_found(failure: UnknownName) -> JSONResponse:
        return error(404, str(failure))

    # -- routes ------------------------------------------------------------------------

    for prefix, prefer in (("/v2/models/{name}", "model"), ("/v2/pipelines/{name}", "pipeline")):
        tag = f"{prefer}s"

        def routes(prefix: str = prefix, prefer: str = prefer, tag: str = tag) -> None:
            async def get_metadata(name: str, request: Request) -> Response:
                try:
                    found = resolve(request, name, prefer, split=False)
                except UnknownName as failure:
                    return not_found(failure)
                if isinstance(found, ExperimentInfo):
                    return JSONResponse(experiment_metadata(found))
                return JSONResponse(metadata(found))

            async def get_ready(name: str, request: Request) -> Response:
                try:
                    return readiness(resolve(request, name, prefer, split=False))
                except UnknownName as failure:
                    return not_found(failure)

            async def post_infer(name: str, request: Request) -> Response:
                try:
                    found = resolve(request, name, prefer)
                except UnknownName as failure:
                    return error(404, str(failure), request.headers.get(h.REQUEST_ID))
                if isinstance(found, ExperimentInfo):
                    return await infer_experiment(request, found)
                return await infer(request, found)

            for suffix in ("", "/versions/{version}"):
                path = prefix + suffix
                app.add_api_route(
                    path,
                    get_metadata,
                    methods=["GET"],
                    tags=[tag],
                    response_model=None,
                    responses={200: {"model": MetadataDoc}, 404: {"model": ErrorDoc}},
                    summary=f"{prefer} metadata" + (" (any version)" if suffix else ""),
                    include_in_schema=not suffix,
                )
                app.add_api_route(
                    path + "/ready",
                    get_ready,
                    methods=["GET"],
                    tags=[tag],
                    response_model=None,
                    responses={404: {"model": ErrorDoc}, 503: {"model": ErrorDoc}},
                    summary=f"is the {prefer} ready",
                    include_in_schema=not suffix,
                )
                app.add_api_route(
                    path + "/infer",
                    post_infer,
                    methods=["POST"],
                    tags=[tag],
                    response_model=None,
                    responses=_INFER_RESPONSES,
                    openapi_extra=_INFER_OPENAPI,
                    summary=f"infer with a {prefer}",
                    include_in_schema=not suffix,
                )

        routes()

    return app


def _parse(body: bytes, request_id: str | None) -> tuple[InferenceMessage, str | None]:
    """The request message (its id: x-request-id, else a new uuid) and the body's own
    id, which the response echoes. The body's id is never the request id: clients
    send fixed ids ("1", "42"), and two such requests in flight would share one
    Kafka key, one join and one reply."""
    from engine.codec.oip_json import message_from_document

    try:
        document = json.loads(body)
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


def _status(failure: GatewayError) -> int:
    if isinstance(failure, BadRequest):
        return 400
    if isinstance(failure, UnknownName):
        return 404
    if isinstance(failure, RequestInFlight):
        return 409
    if isinstance(failure, NotReady):
        return 503
    if isinstance(failure, ReplyTimeout):
        return 504
    if isinstance(failure, StepFailed):
        return ERROR_STATUS.get(failure.record.kind, 500)
    if isinstance(failure, DeliveryFailed):
        return 502
    return 500


def _label(target: Target) -> str:
    kind = "pipeline" if isinstance(target, PipelineInfo) else "model"
    return f"{kind} '{target.name}'"


def _listen_to_all(router: ReplyRouter, catalog: Catalog) -> None:
    """Start reading every known outputs topic now, so first requests wait less."""
    pipelines, models = catalog.names()
    for name in pipelines:
        info = catalog.pipeline(name)
        if info is not None:
            router.listen(info.outputs_topic, info.inputs_topic)
    for name in models:
        model = catalog.model(name)
        if model is not None:
            router.listen(model.outputs_topic, model.inputs_topic)
