"""The gateway's Prometheus metrics, under Seldon Core 2's names where the meaning matches.

Seldon counts inferences and their total seconds per pipeline and per model,
labelled by method type (rest, grpc) and status code. A request is counted
under the pipeline or model that answered it (an experiment's candidate), or,
when the name resolved to nothing, under `tensorflux_gateway_requests_total`
alone: unknown names are the caller's, and would make labels unbounded.
"""

from __future__ import annotations

from typing import Final, Literal

from prometheus_client import Counter

MethodType = Literal["rest", "grpc"]

REQUESTS: Final = Counter(
    "tensorflux_gateway_requests_total",
    "Inference requests the gateway answered, by status code (for a per-pod rate)",
    ["code"],
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
) -> None:
    """One answered inference; `kind` None when the name resolved to nothing. `code`:
    the HTTP status, or over gRPC the status code's name ("OK", "NOT_FOUND")."""
    REQUESTS.labels(str(code)).inc()
    if kind is None:
        return
    labels = (name, method_type, str(code))
    _INFER[kind].labels(*labels).inc()
    _SECONDS[kind].labels(*labels).inc(seconds)
