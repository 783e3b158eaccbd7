"""The spans tensorflux makes: a gateway request, a step's work on a request, an output.

A step's span runs from the request's arrival (the consumed chunk it came in)
to its answer, with children for the join wait, the batch wait and the model
call; an output node's span marks the answer written to the pipeline's
outputs. Attribute names are tensorflux's own (`tensorflux.*`) but for the
Kafka ones, which follow OpenTelemetry's messaging conventions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from engine import headers as h
from engine.observability import tracing as process_tracing
from engine.observability.tracing import Tracing, traceparent
from engine.runtimes.errors import ModelInputError
from engine.topology.graph import Node

Window = tuple[int, int]
"""(start, end) in nanoseconds since the epoch."""


def ms_to_ns(ms: int) -> int:
    return ms * 1_000_000


def spans_for(node: Node | None) -> NodeSpans | None:
    """A node's spans, None when tracing is off (or there is no node)."""
    tracing = process_tracing.current()
    if tracing is None or node is None:
        return None
    return NodeSpans(
        tracing, pipeline=node.pipeline, step=node.name, model=node.model, kind=node.kind
    )


def request_span(method: str, route: str, incoming: str | None) -> RequestSpan | None:
    """The gateway's span of a request, None when tracing is off."""
    tracing = process_tracing.current()
    return None if tracing is None else RequestSpan(tracing, method, route, incoming)


def grpc_request_span(method: str, incoming: str | None) -> GrpcRequestSpan | None:
    """The gateway's span of a gRPC call (OIP's `inference.GRPCInferenceService`), None
    when tracing is off."""
    tracing = process_tracing.current()
    return None if tracing is None else GrpcRequestSpan(tracing, method, incoming)


class NodeSpans:
    """Spans of one node's requests: `step` for a step, `output` for what reaches the outputs."""

    def __init__(
        self, tracing: Tracing, *, pipeline: str, step: str, model: str | None, kind: str
    ) -> None:
        self.tracing = tracing
        self.kind = kind
        self.name = f"{kind} {step if kind == 'step' or not pipeline else pipeline}"
        self.attributes: dict[str, str] = {"tensorflux.step": step}
        if pipeline:
            self.attributes["tensorflux.pipeline"] = pipeline
        if model:
            self.attributes["tensorflux.model"] = model

    def step(
        self,
        headers: Sequence[tuple[str, bytes]],
        request_id: str,
        partition: int,
        offset: int,
        window: Window,
        *,
        join: Window | None = None,
        batch: Window | None = None,
        model_call: Window | None = None,
        batch_size: int | None = None,
        error_kind: str | None = None,
    ) -> None:
        """One request's finished span, with a child for each wait or call given."""
        tracing = self.tracing
        attributes = {
            **self.attributes,
            "tensorflux.request_id": request_id,
            "messaging.destination.partition.id": str(partition),
            "messaging.kafka.offset": offset,
        }
        if batch_size is not None:
            attributes["tensorflux.batch_size"] = batch_size
        parent = tracing.parent(h.header_bytes(headers, h.TRACEPARENT), request_id)
        span = tracing.start(self.name, parent, window[0], attributes, SpanKind.CONSUMER)
        if join is not None:
            tracing.child(span, "join wait", *join)
        if batch is not None:
            tracing.child(span, "batch wait", *batch)
        if model_call is not None:
            tracing.child(span, "model call", *model_call, **{"tensorflux.batch_size": batch_size})
        if error_kind is not None:
            span.set_attribute("tensorflux.error_kind", error_kind)
            span.set_status(Status(StatusCode.ERROR, error_kind))
        span.end(end_time=window[1])

    def answered(
        self,
        batch: Sequence[Any],
        results: Sequence[Any],
        model_call: Window,
        joins: bool,
        waits: bool,
        output: NodeSpans | None,
    ) -> None:
        """A model call's requests (the agent's `Ready`s) and what it answered each."""
        end = time.time_ns()
        for ready, result in zip(batch, results, strict=True):
            record = ready.records[0]
            arrived, emitted = ms_to_ns(ready.arrived_ms), ms_to_ns(ready.emitted_ms)
            error = None
            if isinstance(result, Exception):
                error = "bad-input" if isinstance(result, ModelInputError) else "model-failure"
            at = (record.partition, record.offset)
            self.step(
                ready.headers,
                ready.message.id,
                *at,
                (arrived, end),
                join=(arrived, emitted) if joins else None,
                batch=(emitted, model_call[0]) if waits else None,
                model_call=model_call,
                batch_size=len(batch),
                error_kind=error,
            )
            if output is not None and result and error is None:
                output.step(ready.headers, ready.message.id, *at, (end, end))

    def failed(
        self,
        headers: Sequence[tuple[str, bytes]],
        request_id: str,
        record_at: tuple[int, int],
        kind: str,
    ) -> None:
        """A request this node turned into an error record (no answer)."""
        now = time.time_ns()
        self.step(headers, request_id, record_at[0], record_at[1], (now, now), error_kind=kind)

    def lane(
        self,
        records: Sequence[object],
        arrived_ns: int,
        model_call: Window,
        output: NodeSpans | None,
    ) -> None:
        """A fast-lane chunk: every request answered by one model call."""
        end = time.time_ns()
        size = len(records)
        for record in records:
            headers, request_id = record.headers, record.request_id  # type: ignore[attr-defined]
            partition, offset = record.partition, record.offset  # type: ignore[attr-defined]
            window = (arrived_ns, end)
            self.step(
                headers,
                request_id,
                partition,
                offset,
                window,
                model_call=model_call,
                batch_size=size,
            )
            if output is not None:
                output.step(headers, request_id, partition, offset, (end, end))


class RequestSpan:
    """The gateway's span of one inference: the root of its trace (unless the caller sent
    a traceparent), and the parent named in the records it produces."""

    def __init__(self, tracing: Tracing, method: str, route: str, incoming: str | None) -> None:
        parent = tracing.remote(incoming)
        self.span = tracing.start(
            f"{method} {route}",
            parent,
            time.time_ns(),
            {"http.request.method": method, "http.route": route},
            SpanKind.SERVER,
        )
        self.traceparent = traceparent(self.span)

    def end(
        self, code: int, *, target: str | None, kind: str | None, request_id: str | None
    ) -> None:
        span = self.span
        span.set_attribute("http.response.status_code", code)
        if request_id:
            span.set_attribute("tensorflux.request_id", request_id)
        if target and kind:
            span.set_attribute(f"tensorflux.{kind}", target)
        if code >= 500:
            span.set_status(Status(StatusCode.ERROR, str(code)))
        span.end()


GRPC_SERVICE = "inference.GRPCInferenceService"


class GrpcRequestSpan:
    """A gRPC inference's span, as RequestSpan is an HTTP one's (rpc.* attributes)."""

    def __init__(self, tracing: Tracing, method: str, incoming: str | None) -> None:
        attributes = {"rpc.system": "grpc", "rpc.service": GRPC_SERVICE, "rpc.method": method}
        self.span = tracing.start(
            f"{GRPC_SERVICE}/{method}",
            tracing.remote(incoming),
            time.time_ns(),
            attributes,
            SpanKind.SERVER,
        )
        self.traceparent = traceparent(self.span)

    def end(
        self, code: str, number: int, *, target: str | None, kind: str | None, request_id: str
    ) -> None:
        """`code`: the status code's name ("OK"), `number` its value (the attribute's)."""
        span = self.span
        span.set_attribute("rpc.grpc.status_code", number)
        span.set_attribute("tensorflux.request_id", request_id)
        if target and kind:
            span.set_attribute(f"tensorflux.{kind}", target)
        if code != "OK":
            span.set_status(Status(StatusCode.ERROR, code))
        span.end()
