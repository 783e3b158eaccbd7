"""The Open Inference Protocol V2 gRPC gateway: KServe's `inference.GRPCInferenceService`.

Served beside HTTP in the same process (`--grpc-port`), over the same resolver
(names, Seldon addressing, experiments, readiness) and the same reply router
(produce and await): a gRPC call and an HTTP call to one name do the same thing.
Seldon's addressing comes as metadata: `seldon-model: NAME.pipeline`,
`x-seldon-route`; `x-request-id` picks the Kafka key. Failures answer with the
gRPC code of their HTTP status (statuses.py). With a token file every method
but ServerLive and ServerReady (the probes) needs `authorization: Bearer TOKEN`.

The server runs its own asyncio loop on a thread of its own, so it does not
depend on how uvicorn runs its loop; the reply router serves any loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from engine import __version__
from engine import headers as h
from engine.codec import CodecError
from engine.codec.oip_protobuf import request_from_proto, response_to_proto
from engine.codec.proto import grpc_predict_v2_pb2 as pb
from engine.gateway.catalog import PipelineInfo
from engine.gateway.draining import Drain
from engine.gateway.endpoints import EXTENSIONS, SELDON_MODEL_HEADER
from engine.gateway.errors import BadRequest, GatewayError, NotReady, ShuttingDown
from engine.gateway.experiments import ROUTE_HEADER
from engine.gateway.inference import Inference
from engine.gateway.metrics import observe_inference
from engine.gateway.resolver import Resolver
from engine.gateway.router import ReplyRouter
from engine.gateway.security import TlsFiles, TokenFile, bearer_problem
from engine.gateway.statuses import grpc_code_of
from engine.observability.spans import GrpcRequestSpan, grpc_request_span

log = logging.getLogger("tensorflux.gateway")

SERVICE = "inference.GRPCInferenceService"
OPEN_METHODS = frozenset({"ServerLive", "ServerReady"})
"""Answered without a token, as /v2/health/* is over HTTP."""
STREAM_IN_FLIGHT = 256
"""Requests of one ModelStreamInfer stream in flight at once; the stream reads no more
until one is answered (so a fast writer cannot fill the gateway's memory)."""
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
"""Largest response (gRPC's default of 4 MiB is small for tensors); the largest request
is the gateway's `--max-request-bytes` (RESOURCE_EXHAUSTED above it)."""


@dataclass(frozen=True)
class GrpcServing:
    """Where and how the gRPC gateway listens."""

    host: str
    port: int
    tls: TlsFiles | None = None


class InferenceService:
    """The six RPCs, and Triton's ModelStreamInfer. `router` is called per request (it starts with the app)."""

    def __init__(
        self,
        resolver: Resolver,
        router: Callable[[], ReplyRouter | None],
        timeout_s: float,
        tokens: TokenFile | None = None,
        drain: Drain | None = None,
    ) -> None:
        self.resolver = resolver
        self.router = router
        self.timeout_s = timeout_s
        self.tokens = tokens
        self.drain = drain or Drain()

    async def ServerLive(
        self, request: pb.ServerLiveRequest, context: Any
    ) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: pb.ServerReadyRequest, context: Any
    ) -> pb.ServerReadyResponse:
        current = self.router()
        running = current is not None and current.alive() and not self.drain.draining
        return pb.ServerReadyResponse(ready=running and not self.resolver.unready())

    async def ModelReady(
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        found = self._resolve(request.name, context, split=False)
        try:
            return pb.ModelReadyResponse(ready=self.resolver.readiness(found)["ready"])
        except NotReady:  # failed to load: not ready, which is an answer, not an error
            return pb.ModelReadyResponse(ready=False)

    async def ServerMetadata(
        self, request: pb.ServerMetadataRequest, context: Any
    ) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="tensorflux", version=__version__, extensions=list(EXTENSIONS)
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: Any
    ) -> pb.ModelMetadataResponse:
        document = self.resolver.metadata(self._resolve(request.name, context, split=False))
        return pb.ModelMetadataResponse(
            name=document["name"],
            versions=document["versions"],
            platform=document["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in document["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in document["outputs"]],
        )

    async def ModelInfer(
        self, request: pb.ModelInferRequest, context: Any
    ) -> pb.ModelInferResponse:
        """Counted and traced as the HTTP endpoint does, with method_type grpc and the
        status code's name."""
        started, answered = time.perf_counter(), [None]
        metadata = _metadata(context)
        request_id = metadata.get(h.REQUEST_ID) or str(uuid.uuid4())
        span = grpc_request_span("ModelInfer", metadata.get(h.TRACEPARENT))
        traceparent = metadata.get(h.TRACEPARENT) if span is None else span.traceparent
        try:
            response = await self._infer(request, context, answered, request_id, traceparent)
        except (GatewayError, CodecError) as failure:
            _observe(answered[0], grpc_code_of(failure), started, span, request_id)
            raise
        _observe(answered[0], "OK", started, span, request_id)
        return response

    async def ModelStreamInfer(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """Triton's stream: every request is answered on the stream as it completes (up to
        STREAM_IN_FLIGHT at once), each answer with its request's id; a failure is an answer
        with `error_message`, and the stream goes on. It ends once the caller has closed
        its side and every answer is out."""
        answers: asyncio.Queue[pb.ModelStreamInferResponse | None] = asyncio.Queue()
        slots = asyncio.Semaphore(STREAM_IN_FLIGHT)
        tasks: set[asyncio.Task[None]] = set()

        async def answer(data: bytes) -> None:
            try:
                await answers.put(await self._stream_one(data, context))
            finally:
                slots.release()

        async def read() -> None:
            try:
                async for data in requests:
                    await slots.acquire()
                    task = asyncio.ensure_future(answer(data))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
            finally:
                await answers.put(None)

        reader = asyncio.ensure_future(read())
        try:
            while (response := await answers.get()) is not None:
                yield response
        finally:
            reader.cancel()
            for task in list(tasks):
                task.cancel()

    async def _stream_one(self, data: bytes, context: Any) -> pb.ModelStreamInferResponse:
        try:
            request = pb.ModelInferRequest.FromString(data)
        except DecodeError as error:
            return pb.ModelStreamInferResponse(
                error_message=f"the request is not a ModelInferRequest: {error}"
            )
        started, answered = time.perf_counter(), [None]
        request_id = request.id or str(uuid.uuid4())
        traceparent = _metadata(context).get(h.TRACEPARENT)
        span = grpc_request_span("ModelStreamInfer", traceparent)
        traceparent = traceparent if span is None else span.traceparent
        try:
            response = await self._infer(
                request, context, answered, request_id, traceparent, stream=True
            )
        except (GatewayError, CodecError) as failure:
            _observe(answered[0], grpc_code_of(failure), started, span, request_id)
            failed = pb.ModelInferResponse(model_name=request.model_name, id=request.id)
            return pb.ModelStreamInferResponse(error_message=str(failure), infer_response=failed)
        _observe(answered[0], "OK", started, span, request_id)
        return pb.ModelStreamInferResponse(infer_response=response)

    async def _infer(
        self,
        request: pb.ModelInferRequest,
        context: Any,
        answered: list[Any],
        request_id: str,
        traceparent: str | None,
        *,
        stream: bool = False,
    ) -> pb.ModelInferResponse:
        metadata = _metadata(context)
        found = self._resolve(request.model_name, context, split=True)
        to = self.resolver.route(found, metadata.get(ROUTE_HEADER))
        answered[0] = to.target
        if not stream:  # a stream's metadata went out once, at its start
            sent = ((h.REQUEST_ID, request_id),) + (((ROUTE_HEADER, to.route),) if to.route else ())
            await context.send_initial_metadata(sent)
        message = request_from_proto(request, request_id=request_id)
        if not message.tensors:
            raise BadRequest("the request has no inputs")
        router = self.router()
        if router is None:
            raise NotReady("the reply consumer is not running")
        answer = await Inference(router, self.timeout_s).answer(
            message, request.id or None, to, traceparent
        )
        return response_to_proto(answer)

    def _resolve(self, name: str, context: Any, *, split: bool) -> Any:
        seldon_model = _metadata(context).get(SELDON_MODEL_HEADER, "")
        return self.resolver.resolve(name, "model", seldon_model=seldon_model, split=split)


def _observe(
    target: Any, code: str, started: float, span: GrpcRequestSpan | None, request_id: str
) -> None:
    kind = None if target is None else "pipeline" if isinstance(target, PipelineInfo) else "model"
    name = "" if target is None else target.name
    observe_inference(kind, name, code, time.perf_counter() - started, "grpc")
    if span is not None:
        number = grpc.StatusCode[code].value[0]
        span.end(code, number, target=name, kind=kind, request_id=request_id)


def _metadata(context: Any) -> dict[str, str]:
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}


_MESSAGES = {
    "ServerLive": (pb.ServerLiveRequest, pb.ServerLiveResponse),
    "ServerReady": (pb.ServerReadyRequest, pb.ServerReadyResponse),
    "ModelReady": (pb.ModelReadyRequest, pb.ModelReadyResponse),
    "ServerMetadata": (pb.ServerMetadataRequest, pb.ServerMetadataResponse),
    "ModelMetadata": (pb.ModelMetadataRequest, pb.ModelMetadataResponse),
    "ModelInfer": (pb.ModelInferRequest, pb.ModelInferResponse),
}


def handlers(service: InferenceService) -> grpc.GenericRpcHandler:
    """The service's method table, each method behind the token check and the one
    failure-to-code table."""
    methods = {
        # Requests are parsed in the guard: grpcio would answer bytes that are no
        # message with INTERNAL, which is the caller's mistake, not the server's.
        name: grpc.unary_unary_rpc_method_handler(
            _guarded(name, request, getattr(service, name), service),
            response_serializer=response.SerializeToString,
        )
        for name, (request, response) in _MESSAGES.items()
    }
    methods["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
        _guarded_stream(service.ModelStreamInfer, service.tokens),
        response_serializer=pb.ModelStreamInferResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def _guarded_stream(
    method: Callable[[Any, Any], AsyncIterator[Any]], tokens: TokenFile | None
) -> Callable[[Any, Any], AsyncIterator[Any]]:
    """A stream behind the token check (made once, when it opens); its requests are
    parsed one by one, as each may be good or bad on its own."""

    async def call(requests: Any, context: Any) -> AsyncIterator[Any]:
        if tokens is not None:
            given = _metadata(context).get("authorization")
            problem = bearer_problem(None if given is None else given.encode(), tokens)
            if problem is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
        async for response in method(requests, context):
            yield response

    return call


def _guarded(
    name: str,
    message: Any,
    method: Callable[[Any, Any], Awaitable[Any]],
    service: InferenceService,
) -> Callable[[bytes, Any], Awaitable[Any]]:
    tokens = service.tokens

    async def call(data: bytes, context: Any) -> Any:
        if service.drain.draining and name not in OPEN_METHODS:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, str(ShuttingDown("the gateway is shutting down"))
            )
        if tokens is not None and name not in OPEN_METHODS:
            given = _metadata(context).get("authorization")
            problem = bearer_problem(None if given is None else given.encode(), tokens)
            if problem is not None:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, problem)
        try:
            request = message.FromString(data)
        except DecodeError as error:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a {name}Request: {error}"
            )
        try:
            return await method(request, context)
        except (GatewayError, CodecError) as failure:
            code = getattr(grpc.StatusCode, grpc_code_of(failure))
            await context.abort(code, str(failure))
        except asyncio.CancelledError:
            raise
        except Exception as failure:
            if isinstance(failure, grpc.aio.AbortError):
                raise
            log.exception("gRPC %s failed", name)
            await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {failure}")

    return call


class GrpcGateway:
    """The gRPC server on a thread with its own event loop: `start()`, then `stop()`."""

    def __init__(
        self,
        serving: GrpcServing,
        service: InferenceService,
        *,
        max_receive_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        self.serving = serving
        self.service = service
        self.max_receive_bytes = max_receive_bytes
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="gateway-grpc", daemon=True)

    def start(self) -> GrpcGateway:
        self._thread.start()
        self._started.wait(30)
        if self._failure is not None:
            raise self._failure
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as failure:  # reported to start(); after that, logged
            self._failure = failure
            if self._started.is_set():
                log.exception("gRPC gateway stopped")
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        options = [
            ("grpc.max_receive_message_length", self.max_receive_bytes),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
        server = grpc.aio.server(options=options)
        server.add_generic_rpc_handlers((handlers(self.service),))
        address = f"{self.serving.host}:{self.serving.port}"
        if self.serving.tls is not None:
            server.add_secure_port(address, self.serving.tls.grpc_credentials())
        else:
            server.add_insecure_port(address)
        await server.start()
        log.info("gRPC gateway on %s (%s)", address, "TLS" if self.serving.tls else "plaintext")
        self._started.set()
        await self._stopping.wait()
        await server.stop(grace=2)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._stopping.set)
            except RuntimeError:  # the loop just closed
                pass
        self._thread.join(10)
