"""The gateway's Prometheus metrics, under Seldon Core 2's names where the meaning matches.

Seldon counts inferences and their total seconds per pipeline and per model,
labelled by method type (rest, grpc) and status code. A request is counted
under the pipeline or model that answered it (an experiment's candidate), or,
when the name resolved to nothing, under `tensorflux_gateway_requests_total`
alone: unknown names are the caller's, and would make labels unbounded.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from prometheus_client import Counter, Histogram

MethodType = Literal["rest", "grpc"]

REQUESTS: Final = Counter(
    "tensorflux_gateway_requests_total",
    "Inference requests the gateway answered, by status code (for a per-pod rate)",
    ["code"],
)
LATENCY_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
REQUEST_SECONDS: Final = Histogram(
    "tensorflux_gateway_request_seconds",
    "Seconds to answer an inference request, by route template and status code",
    ["route", "method_type", "code"],
    buckets=LATENCY_BUCKETS,
)
API_SECONDS: Final = Histogram(
    "seldon_model_infer_api_seconds",
    "Seconds to answer an inference request (Seldon's API latency histogram)",
    ["method_type", "code"],
    buckets=LATENCY_BUCKETS,
)
PIPELINE_SECONDS: Final = Histogram(
    "tensorflux_pipeline_infer_seconds",
    "Seconds to answer an inference of a pipeline through the gateway (for its quantiles)",
    ["pipeline", "method_type", "code"],
    buckets=LATENCY_BUCKETS,
)
_INFER: Final = {
    "pipeline": Counter(
        "seldon_pipeline_infer_total",
        "Inferences of a pipeline through the gateway",
        ["pipeline", "method_type", "code"],
    ),
    "model": Counter(
        "seldon_model_infer_total",
        "Inferences of a model through the gateway",
        ["model", "method_type", "code"],
    ),
}
_SECONDS: Final = {
    "pipeline": Counter(
        "seldon_pipeline_infer_seconds_total",
        "Seconds spent answering inferences of a pipeline",
        ["pipeline", "method_type", "code"],
    ),
    "model": Counter(
        "seldon_model_infer_seconds_total",
        "Seconds spent answering inferences of a model",
        ["model", "method_type", "code"],
    ),
}


def observe_inference(
    kind: Literal["pipeline", "model"] | None,
    name: str,
    code: int | str,
    seconds: float,
    method_type: MethodType = "rest",
    route: str = "unknown",
) -> None:
    """One answered inference; `kind` None when the name resolved to nothing. `code`:
    the HTTP status, or over gRPC the status code's name ("OK", "NOT_FOUND")."""
    key = (kind, name, str(code), method_type, route)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = _children(*key)
    counts, observes, sums = children
    for counter in counts:
        counter.inc()
    for histogram in observes:
        histogram.observe(seconds)
    for total in sums:
        total.inc(seconds)


_Children = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]
_CHILDREN: dict[tuple[str | None, str, str, str, str], _Children] = {}
"""The labelled metrics of each (kind, name, code, method, route): counted, observed,
summed. `labels()` takes a lock and builds its key on every call, so each is looked up
once. Bounded like the labels: names resolved only, routes from the route table."""


def _children(
    kind: Literal["pipeline", "model"] | None, name: str, code: str, method_type: str, route: str
) -> _Children:
    counts: list[Any] = [REQUESTS.labels(code)]
    observes: list[Any] = [
        REQUEST_SECONDS.labels(route, method_type, code),
        API_SECONDS.labels(method_type, code),
    ]
    sums: list[Any] = []
    if kind is not None:
        labels = (name, method_type, code)
        counts.append(_INFER[kind].labels(*labels))
        sums.append(_SECONDS[kind].labels(*labels))
        if kind == "pipeline":
            observes.append(PIPELINE_SECONDS.labels(*labels))
    return tuple(counts), tuple(observes), tuple(sums)
