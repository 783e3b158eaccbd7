"""The gateway's Prometheus metrics, under Seldon Core 2's names where the meaning matches.

Seldon counts inferences and their total seconds per pipeline and per model,
labelled by method type (rest, grpc) and status code. A request is counted
under the pipeline or model that answered it (an experiment's candidate), or,
when the name resolved to nothing, under `tensorflux_gateway_requests_total`
alone: unknown names are the caller's, and would make labels unbounded.
"""

from __future__ import annotations

from typing import Any, Final, Literal

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
    code: int,
    seconds: float,
    method_type: MethodType = "rest",
) -> None:
    """One answered inference; `kind` None when the name resolved to nothing."""
    key = (kind, name, code, method_type)
    children = _CHILDREN.get(key)
    if children is None:
        children = _CHILDREN[key] = _children(kind, name, code, method_type)
    requests, infers, seconds_total = children
    requests.inc()
    if infers is not None and seconds_total is not None:
        infers.inc()
        seconds_total.inc(seconds)


_Children = tuple[Any, Any | None, Any | None]
_CHILDREN: dict[tuple[str | None, str, int, str], _Children] = {}
"""The labelled counters of each (kind, name, code, method): `labels()` takes a lock
and builds its key on every call. Bounded like the labels: names resolved only."""


def _children(
    kind: Literal["pipeline", "model"] | None, name: str, code: int, method_type: MethodType
) -> _Children:
    requests = REQUESTS.labels(str(code))
    if kind is None:
        return requests, None, None
    labels = (name, method_type, str(code))
    return requests, _INFER[kind].labels(*labels), _SECONDS[kind].labels(*labels)
