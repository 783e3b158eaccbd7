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
from engine.runtimes.errors import ModelFailure, ModelUnreachable

Arrays = dict[str, np.ndarray]


def call_model(
    model: ModelRuntime,
    requests: Sequence[Arrays],
    requested: Sequence[tuple[str, ...]] | None = None,
    *,
    whole_batch: bool = False,
) -> list[Arrays | Exception]:
    """One result per request, in order: its outputs, or the exception it raised.

    `requested` gives each request's OIP `outputs` (for models that honour them);
    `whole_batch` says the requests are a step's `batch`, which a model that
    `shares_batch_answer` (a drift detector) answers in one call for all of them."""
    wanted = list(requested) if requested is not None else [()] * len(requests)
    unreachable: list[ModelUnreachable] = []

    def one(request: Arrays, asked: tuple[str, ...]) -> Arrays | Exception:
        if unreachable:
            return unreachable[0]
        result = _call_one(model, request, asked)
        if isinstance(result, ModelUnreachable):
            unreachable.append(result)
        return result

    if model.shares_batch_answer:
        if whole_batch and len(requests) > 1:
            return _call_shared(model, requests)
        return [one(request, ()) for request in requests]
    if len(requests) < 2 or not model.batchable:
        return [one(request, w) for request, w in zip(requests, wanted, strict=True)]
    results: dict[int, Arrays | Exception] = {}
    for group in _compatible_groups(requests, wanted, model.max_batch_size):
        merged = (
            _call_merged(model, [requests[i] for i in group], wanted[group[0]])
            if len(group) > 1 and not unreachable
            else None
        )
        if isinstance(merged, ModelUnreachable):
            unreachable.append(merged)
            merged = None
        if merged is None:
            results.update((i, one(requests[i], wanted[i])) for i in group)
        else:
            results.update(zip(group, merged, strict=True))
    return [results[i] for i in range(len(requests))]


def _call_shared(model: ModelRuntime, requests: Sequence[Arrays]) -> list[Arrays | Exception]:
    """One call on all rows; each request gets the same answer (or, if the rows cannot be
    merged or the call fails, its own call and its own answer or error)."""
    if len(_compatible_groups(requests, [()] * len(requests), None)) == 1:
        names = list(requests[0])
        merged = {name: np.concatenate([request[name] for request in requests]) for name in names}
        try:
            outputs = model.predict(merged)
        except Exception:
            outputs = None
        if outputs is not None:
            return [outputs for _ in requests]
    return [_call_one(model, request, ()) for request in requests]


def _signature(request: Arrays) -> tuple:
    return tuple(
        sorted(
            (name, array.dtype.str, array.shape[1:], array.ndim) for name, array in request.items()
        )
    )


def _compatible_groups(
    requests: Sequence[Arrays], wanted: Sequence[tuple[str, ...]], most: int | None
) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, request in enumerate(requests):
        if any(array.ndim == 0 for array in request.values()):
            groups[("scalar", index)] = [index]
        else:
            groups.setdefault((_signature(request), wanted[index]), []).append(index)
    if most is None:
        return list(groups.values())
    # model-settings.json's max_batch_size: at most that many requests in one call.
    return [group[i : i + most] for group in groups.values() for i in range(0, len(group), most)]


def _call_merged(
    model: ModelRuntime, requests: list[Arrays], wanted: tuple[str, ...]
) -> list[Arrays] | ModelUnreachable | None:
    """Outputs per request, or None when the merged call cannot be split or fails
    (ModelUnreachable when it failed because the model could not be reached)."""
    rows = [next(iter(request.values())).shape[0] if request else 0 for request in requests]
    if any(
        request[name].shape[0] != rows[i] for i, request in enumerate(requests) for name in request
    ):
        return None  # inputs disagree on the batch dimension: no safe split
    names = list(requests[0])
    merged = {name: np.concatenate([request[name] for request in requests]) for name in names}
    try:
        outputs = model.predict_outputs(merged, wanted) if wanted else model.predict(merged)
    except ModelUnreachable as error:
        return error
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


def _call_one(model: ModelRuntime, request: Arrays, wanted: tuple[str, ...]) -> Arrays | Exception:
    try:
        if wanted:
            return model.predict_outputs(request, wanted)
        return model.predict(request)
    except Exception as error:  # every failure becomes this request's error record
        if isinstance(error, TensorfluxError):
            return error
        return ModelFailure(model.name, f"{type(error).__name__}: {error}")
