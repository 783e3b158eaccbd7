"""Call a model for many requests at once and give each request its own result.

Requests that fit together (a batchable model; the same tensor names,
datatypes and trailing dimensions) are concatenated along axis 0 into one
call and the outputs split back by each request's rows. When a merged call
fails, each request is retried alone, so one bad request fails only itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import TensorfluxError
from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure

Arrays = dict[str, np.ndarray]


def call_model(model: ModelRuntime, requests: Sequence[Arrays]) -> list[Arrays | Exception]:
    """One result per request, in order: its outputs, or the exception it raised."""
    if len(requests) < 2 or not model.batchable:
        return [_call_one(model, request) for request in requests]
    results: dict[int, Arrays | Exception] = {}
    for group in _compatible_groups(requests):
        merged = _call_merged(model, [requests[i] for i in group]) if len(group) > 1 else None
        if merged is None:
            results.update((i, _call_one(model, requests[i])) for i in group)
        else:
            results.update(zip(group, merged, strict=True))
    return [results[i] for i in range(len(requests))]


def _signature(request: Arrays) -> tuple:
    return tuple(
        sorted(
            (name, array.dtype.str, array.shape[1:], array.ndim) for name, array in request.items()
        )
    )


def _compatible_groups(requests: Sequence[Arrays]) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        if any(array.ndim == 0 for array in request.values()):
            groups[("scalar", index)] = [index]
        else:
            groups.setdefault(_signature(request), []).append(index)
    return list(groups.values())


def _call_merged(model: ModelRuntime, requests: list[Arrays]) -> list[Arrays] | None:
    """Outputs per request, or None when the merged call cannot be split or fails."""
    rows = [next(iter(request.values())).shape[0] if request else 0 for request in requests]
    if any(
        request[name].shape[0] != rows[i] for i, request in enumerate(requests) for name in request
    ):
        return None  # inputs disagree on the batch dimension: no safe split
    names = list(requests[0])
    merged = {name: np.concatenate([request[name] for request in requests]) for name in names}
    try:
        outputs = model.predict(merged)
    except Exception:
        return None
    total = sum(rows)
    if any(array.ndim == 0 or array.shape[0] != total for array in outputs.values()):
        return None
    starts = [0, *np.cumsum(rows).tolist()]
    # Plain slices are views, like np.split's, at a fraction of its cost.
    return [
        {name: array[starts[i] : starts[i + 1]] for name, array in outputs.items()}
        for i in range(len(requests))
    ]


def _call_one(model: ModelRuntime, request: Arrays) -> Arrays | Exception:
    try:
        return model.predict(request)
    except Exception as error:  # every failure becomes this request's error record
        if isinstance(error, TensorfluxError):
            return error
        return ModelFailure(model.name, f"{type(error).__name__}: {error}")
