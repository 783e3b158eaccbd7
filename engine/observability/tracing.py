"""The process's tracer: OpenTelemetry's SDK exporting over OTLP, or nothing at all.

`configure(environ)` runs once at startup (the CLI calls it; tests hand their
own environ) and `current()` is what the agents and the gateway ask for when
they are built: None when tracing is off, so a record costs nothing then.

Spans are made after the fact with the times they began and ended (a step
knows its join wait, batch wait and model call only once it answers), and a
request's context crosses Kafka in the `traceparent` header its records carry
unchanged: every step's span is a child of the span that wrote the request
(the gateway's, or the producer's). A request produced without one gets a
parent derived from its request id, so its steps still share one trace.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from engine.observability.config import TracingConfig

if TYPE_CHECKING:  # the SDK is imported only when tracing is on (it costs a CLI's start)
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

log = logging.getLogger("tensorflux.tracing")

_lock = threading.Lock()
_current: Tracing | None = None


class Tracing:
    """A tracer provider with its exporter; `start` makes spans, `traceparent` names them."""

    def __init__(self, config: TracingConfig, exporter: SpanExporter | None = None) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.config = config
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": config.service_name}),
            sampler=_sampler(config),
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter or _exporter(config)))
        self.tracer = self.provider.get_tracer("tensorflux")
        self._bound = int(config.ratio * (1 << 64))

    def parent(self, traceparent: bytes | str | None, request_id: str) -> Context:
        """The context a request's spans hang from: its `traceparent`, else one made from
        its request id (the same for every step, so they share a trace)."""
        remote = self.remote(traceparent)
        if remote is not None:
            return remote
        digest = hashlib.sha256(request_id.encode("utf-8", "replace")).digest()
        trace_id = int.from_bytes(digest[:16], "big") or 1
        span_id = int.from_bytes(digest[16:24], "big") or 1
        sampled = self._bound >= (1 << 64) or (trace_id & ((1 << 64) - 1)) < self._bound
        return _remote(trace_id, span_id, 0x01 if sampled else 0x00)

    @staticmethod
    def remote(traceparent: bytes | str | None) -> Context | None:
        """The context a W3C `traceparent` names, or None when absent or malformed."""
        parsed = _parse(traceparent) if traceparent else None
        return None if parsed is None else _remote(*parsed)

    def start(
        self,
        name: str,
        parent: Context | None,
        start_ns: int,
        attributes: Mapping[str, Any],
        kind: SpanKind = SpanKind.INTERNAL,
    ) -> Span:
        return self.tracer.start_span(
            name, context=parent, kind=kind, attributes=attributes, start_time=start_ns
        )

    def child(self, parent: Span, name: str, start_ns: int, end_ns: int, **attributes: Any) -> None:
        """A finished child span of `parent`."""
        span = self.tracer.start_span(
            name,
            context=trace.set_span_in_context(parent),
            attributes=attributes,
            start_time=start_ns,
        )
        span.end(end_time=end_ns)

    def flush(self, timeout_ms: int = 10_000) -> bool:
        return self.provider.force_flush(timeout_ms)

    def shutdown(self) -> None:
        self.provider.shutdown()


def traceparent(span: Span) -> str:
    """The W3C header value naming `span` as the parent."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def configure(environ: Mapping[str, str], exporter: SpanExporter | None = None) -> Tracing | None:
    """Tracing for this process as `environ` says (None: off); replaces any earlier one.
    `exporter` overrides the OTLP one `environ` names."""
    global _current
    config = TracingConfig.from_environ(environ)
    tracing = None
    if config is not None and config.sampler != "always_off":
        tracing = Tracing(config, exporter)
        log.info(
            "tracing on: OTLP %s to %s, sampler %s, service %s",
            config.protocol,
            config.endpoint,
            config.sampler,
            config.service_name,
        )
    with _lock:
        previous, _current = _current, tracing
    if previous is not None:
        previous.shutdown()
    return tracing


def current() -> Tracing | None:
    return _current


def shutdown() -> None:
    """Export what is left and turn tracing off."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous.shutdown()


def _remote(trace_id: int, span_id: int, flags: int) -> Context:
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
    return trace.set_span_in_context(NonRecordingSpan(context))


def _parse(value: bytes | str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C traceparent, or None when it is not one."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parts = text.strip().split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id or parts[0] == "ff":
        return None
    return trace_id, span_id, flags & 0x01


def _sampler(config: TracingConfig) -> Sampler:
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        ParentBased,
        TraceIdRatioBased,
    )

    root: Sampler = {
        "always_on": ALWAYS_ON,
        "always_off": ALWAYS_OFF,
    }.get(config.sampler.removeprefix("parentbased_")) or TraceIdRatioBased(config.ratio)
    return ParentBased(root) if config.sampler.startswith("parentbased_") else root


def _exporter(config: TracingConfig) -> SpanExporter:
    if config.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = config.endpoint
        insecure = endpoint.startswith("http://") or "://" not in endpoint
        return OTLPSpanExporter(endpoint=endpoint, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter(endpoint=config.http_url())
