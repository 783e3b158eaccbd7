"""Prometheus metrics of a worker, counted per consumed chunk (never per record on the hot path).

`tensorflux worker --metrics-port N` serves them; `tensorflux up` serves them
at the gateway's `/metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "tensorflux_records_consumed_total", "Records the worker consumed", ["topic"]
)
RECORDS_PRODUCED = Counter(
    "tensorflux_records_produced_total", "Records the worker produced", ["topic"]
)
ERROR_RECORDS = Counter(
    "tensorflux_error_records_total",
    "Failures turned into error records",
    ["pipeline", "step", "kind"],
)
MODEL_CALL_SECONDS = Histogram(
    "tensorflux_model_call_seconds",
    "Time of one model call (several requests when batched)",
    ["model"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
MODEL_CALL_REQUESTS = Histogram(
    "tensorflux_model_call_requests",
    "Requests merged into one model call",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
HELD_RECORDS = Gauge(
    "tensorflux_held_records",
    "Records kept by joins and batches, not yet committable",
)


def count_by_topic(counter: Counter, counts: dict[str, int]) -> None:
    for topic, count in counts.items():
        counter.labels(topic).inc(count)


def observe_model_call(model: str, seconds: float, requests: int) -> None:
    MODEL_CALL_SECONDS.labels(model).observe(seconds)
    MODEL_CALL_REQUESTS.labels(model).observe(requests)
