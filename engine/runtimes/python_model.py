"""Python models: class `Model` in a `model.py`, with optional `load(self)`
and `predict(self, inputs) -> dict[str, numpy.ndarray]`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure, ModelLoadError

# Plain values a model may return instead of arrays; anything else is a bug
# in the model (np.asarray would turn it into a 0-d object array silently).
_CONVERTIBLE = (list, tuple, int, float, bool, complex, str, bytes, np.generic)


class PythonModel(ModelRuntime):
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        self._module_name = _module_name(name, path)
        module = self._import(path)
        cls = getattr(module, "Model", None)
        if not isinstance(cls, type):
            sys.modules.pop(self._module_name, None)
            raise ModelLoadError(name, str(path), "model.py defines no class Model")
        try:
            self._model: Any = cls()
            if callable(getattr(self._model, "load", None)):
                self._model.load()
        except Exception as error:
            sys.modules.pop(self._module_name, None)
            raise ModelLoadError(
                name, str(path), f"Model() or load() raised {_text(error)}"
            ) from error
        if not callable(getattr(self._model, "predict", None)):
            sys.modules.pop(self._module_name, None)
            raise ModelLoadError(name, str(path), "class Model has no predict(self, inputs) method")
        self.batchable = getattr(self._model, "batchable", False) is True
        self._closed = False

    def _import(self, path: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(self._module_name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(self.name, str(path), "not importable as a Python module")
        module = importlib.util.module_from_spec(spec)
        # Registered before running it: dataclasses and pickle look the module up by name.
        sys.modules[self._module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as error:  # SystemExit in a model file must not stop the engine
            sys.modules.pop(self._module_name, None)
            raise ModelLoadError(
                self.name, str(path), f"importing model.py raised {_text(error)}"
            ) from error
        return module

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._closed:
            raise ModelFailure(self.name, "the model is closed")
        try:
            # A copy of the dict: a model popping inputs must not change the caller's.
            result = self._model.predict(dict(inputs))
        except Exception as error:
            raise ModelFailure(self.name, f"predict raised {_text(error)}") from error
        if not isinstance(result, dict):
            raise ModelFailure(
                self.name, f"predict returned {type(result).__name__}, not a dict of name -> array"
            )
        return {name: self._array(name, value) for name, value in result.items()}

    def _array(self, name: object, value: object) -> np.ndarray:
        if not isinstance(name, str):
            raise ModelFailure(self.name, f"output name {name!r} is not a string")
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, _CONVERTIBLE):
            try:
                array = np.asarray(value)
            except ValueError as error:  # ragged lists
                raise ModelFailure(
                    self.name, f"cannot make an array: {error}", output=name
                ) from error
            if array.dtype != object:
                return array
        raise ModelFailure(
            self.name,
            f"{type(value).__name__} is not a numpy array (nor a list or scalar that makes one)",
            output=name,
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sys.modules.pop(self._module_name, None)
        close = getattr(self._model, "close", None)
        if callable(close):
            try:
                close()
            except Exception as error:
                raise ModelFailure(self.name, f"close raised {_text(error)}") from error


def _module_name(name: str, path: Path) -> str:
    # Unique per model and file, stable across runs (tracebacks stay readable):
    # two models whose files are both called model.py must not share a module.
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    safe = re.sub(r"\W", "_", name)
    base = f"tensorflux_model_{safe}_{digest}"
    candidate, n = base, 1
    while candidate in sys.modules:  # the same model loaded twice gets two modules
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
