"""Tracing is configured by the standard OTEL_* variables only, and is off without them."""

from __future__ import annotations

import pytest

from engine.observability import tracing
from engine.observability.config import TracingConfig, TracingConfigError


def test_no_endpoint_means_no_tracing() -> None:
    assert TracingConfig.from_environ({}) is None
    assert TracingConfig.from_environ({"OTEL_SERVICE_NAME": "x"}) is None
    assert tracing.configure({}) is None and tracing.current() is None


def test_disabled_sdk_or_an_always_off_sampler_turns_it_off() -> None:
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert TracingConfig.from_environ({**on, "OTEL_SDK_DISABLED": "true"}) is None
    assert tracing.configure({**on, "OTEL_TRACES_SAMPLER": "always_off"}) is None


def test_the_standard_variables_are_read() -> None:
    config = TracingConfig.from_environ(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_SERVICE_NAME": "edge",
        }
    )
    assert config is not None
    assert (config.protocol, config.sampler, config.ratio, config.service_name) == (
        "http/protobuf",
        "parentbased_traceidratio",
        0.25,
        "edge",
    )
    assert config.http_url() == "http://collector:4318/v1/traces"
    traces_only = TracingConfig.from_environ(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/custom"}
    )
    assert traces_only is not None and traces_only.http_url() == "http://c:4318/custom"
    assert traces_only.protocol == "grpc" and traces_only.service_name == "tensorflux"


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "OTEL_EXPORTER_OTLP_PROTOCOL is 'http/json'"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER is 'sometimes'"),
    ],
)
def test_a_bad_value_is_named(variable: str, value: str, named: str) -> None:
    with pytest.raises(TracingConfigError, match=named):
        TracingConfig.from_environ(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", variable: value}
        )


def test_a_ratio_outside_0_to_1_is_refused() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317",
        "OTEL_TRACES_SAMPLER": "traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "half",
    }
    with pytest.raises(TracingConfigError, match="OTEL_TRACES_SAMPLER_ARG is 'half'"):
        TracingConfig.from_environ(environ)


def test_a_request_without_traceparent_keeps_one_trace_id_across_steps() -> None:
    config = TracingConfig("http://c:4317")
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.trace import get_current_span

    class Drop(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    traced = tracing.Tracing(config, Drop())
    try:
        first = get_current_span(traced.parent(None, "req-1")).get_span_context()
        again = get_current_span(traced.parent(b"not a traceparent", "req-1")).get_span_context()
        other = get_current_span(traced.parent(None, "req-2")).get_span_context()
        given = get_current_span(
            traced.parent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "req-1")
        ).get_span_context()
    finally:
        traced.shutdown()
    assert first.trace_id == again.trace_id != other.trace_id
    assert first.trace_flags.sampled
    assert f"{given.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{given.span_id:016x}" == "b7ad6b7169203331"


def test_a_batched_step_records_its_batch_wait_and_batch_size() -> None:
    """The general path's spans (a batch window keeps the step off the fast lane), driven
    in memory: four requests, one model call, each request's span with a batch wait."""
    import numpy as np
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from engine.testing import TopologyTestDriver
    from tests.observability.test_traces import EXAMPLES

    exporter = InMemorySpanExporter()
    traced = tracing.configure({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, exporter)
    try:
        with TopologyTestDriver.from_files([EXAMPLES]) as driver:
            for i in range(4):
                driver.infer("add10-batch", {"INPUT": np.ones(4, np.float32)}, request_id=f"b{i}")
        assert traced is not None and traced.flush()
    finally:
        tracing.shutdown()
    spans = exporter.get_finished_spans()
    steps = [s for s in spans if s.name == "step add10"]
    assert sorted(s.attributes["tensorflux.request_id"] for s in steps) == ["b0", "b1", "b2", "b3"]
    assert {s.attributes["tensorflux.batch_size"] for s in steps} == {4}
    assert all(s.status.is_ok for s in steps)
    assert not any("tensorflux.error_kind" in s.attributes for s in steps)
    for step in steps:
        children = sorted(
            s.name for s in spans if s.parent and s.parent.span_id == step.context.span_id
        )
        assert children == ["batch wait", "model call"]
    assert len({s.context.trace_id for s in steps}) == 4  # one trace per request
