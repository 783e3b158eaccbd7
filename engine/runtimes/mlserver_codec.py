"""Requests and answers shaped as MLServer's runtimes shape them.

MLServer decodes a request for sklearn, xgboost, lightgbm and alibi-detect
with its "np" codec (the one input tensor as it came) unless the model's
content type is "pd" (a DataFrame, one column per input). An answer array is
written with its own dtype, and a 1-D array of N values gets the shape [N, 1]
(MLServer's `inject_batch_dimension`); a DataFrame becomes one output per
column. Matching this keeps tensor names, datatypes and shapes the same as a
Seldon user's MLServer gave.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from engine.runtimes.errors import ModelFailure, ModelInputError, ModelLoadError


def require(module: str, extra: str, model: str, path: str) -> ModuleType:
    """Import a runtime's library, or fail the model naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ModelLoadError(
            model,
            path,
            f"the {extra} runtime is not installed: pip install 'tensorflux[{extra}]' ({error})",
        ) from error


def decode(model: str, inputs: dict[str, np.ndarray], content_type: str | None) -> Any:
    """The model's argument: the single input ("np", the default) or a DataFrame ("pd")."""
    if content_type == "pd":
        return dataframe(model, inputs)
    if len(inputs) != 1:
        given = ", ".join(repr(n) for n in inputs) or "none"
        raise ModelInputError(
            model,
            f"takes exactly one input tensor (the request has {given}); send the features as "
            "one [rows, features] tensor, or set parameters.content_type to 'pd' in "
            "model-settings.json to pass each input as a DataFrame column",
        )
    return _text_as_str(next(iter(inputs.values())))


def dataframe(model: str, inputs: dict[str, np.ndarray]) -> Any:
    try:
        pandas = importlib.import_module("pandas")
    except ImportError as error:
        raise ModelFailure(model, "content type 'pd' needs pandas: pip install pandas") from error
    columns: dict[str, Any] = {}
    rows: int | None = None
    for name, array in inputs.items():
        array = _text_as_str(array)
        if array.ndim == 0:
            raise ModelInputError(model, "a DataFrame column needs rows; got a scalar", tensor=name)
        if rows is not None and array.shape[0] != rows:
            raise ModelInputError(
                model, f"{array.shape[0]} rows but other inputs have {rows}", tensor=name
            )
        rows = array.shape[0]
        if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
            columns[name] = array.reshape(-1)
        else:
            columns[name] = list(array)
    return pandas.DataFrame(columns)


def encode(model: str, name: str, value: Any) -> dict[str, np.ndarray]:
    """One output (or one per column of a DataFrame) with MLServer's shapes."""
    columns = getattr(value, "columns", None)
    if columns is not None and hasattr(value, "to_numpy"):
        return {
            str(column): _batched(model, str(column), value[column].to_numpy())
            for column in columns
        }
    if hasattr(value, "to_numpy"):  # a pandas Series
        return {name: _batched(model, name, value.to_numpy())}
    return {name: _batched(model, name, value)}


def answers(
    model: str, estimator: Any, methods: tuple[str, ...], features: Any
) -> dict[str, np.ndarray]:
    """Each of `methods` of a scikit-learn-style `estimator` called on `features`, as the
    outputs MLServer names after them (a DataFrame answer, named by its columns, only alone)."""
    outputs: dict[str, np.ndarray] = {}
    for method in methods:
        try:
            answer = getattr(estimator, method)(features)
        except Exception as error:
            raise ModelFailure(model, f"{method} raised {type(error).__name__}: {error}") from error
        if hasattr(answer, "columns") and len(methods) > 1:
            raise ModelFailure(
                model,
                f"{method} returned a DataFrame and {list(methods)} were asked for; "
                "a DataFrame answer can only come alone",
            )
        outputs.update(encode(model, method, answer))
    return outputs


def _batched(model: str, name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype == object and not all(isinstance(e, bytes | str) for e in array.ravel()):
        raise ModelFailure(
            model,
            f"the model returned {type(value).__name__} values that are not numbers or text",
            output=name,
        )
    if array.ndim < 2:
        array = array.reshape(array.shape + (1,))
    return array


def _text_as_str(array: np.ndarray) -> np.ndarray:
    """BYTES elements as str: scikit-learn encoders compare categories as text."""
    if array.dtype != object:
        return array
    items = [e.decode() if isinstance(e, bytes) else e for e in array.ravel()]
    return np.array(items, dtype=object).reshape(array.shape)
