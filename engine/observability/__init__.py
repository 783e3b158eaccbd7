"""Observability: OpenTelemetry traces (`tracing`, `spans`) and JSON log lines (`logs`).

The runtime and the gateway hold a `NodeSpans` or make a `RequestSpan` only
when `tracing.current()` is set at their construction; with tracing off they
hold None and do nothing per record.
"""
