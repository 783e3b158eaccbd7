"""Models answered by calling an estimator's methods, as MLServer's sklearn and xgboost
runtimes do: a request's OIP `outputs` name the methods (`predict`, `predict_proba`, ...),
a default when it names none, and each output is named after the method that made it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure
from engine.runtimes.mlserver_codec import answers, decode
from engine.runtimes.settings import ModelSettings


class MethodModel(ModelRuntime):
    batchable = True  # every method answers row by row
    takes_requested_outputs = True

    def __init__(
        self, name: str, path: Path, settings: ModelSettings, estimator: Any, default: str
    ) -> None:
        self.name = name
        self.path = path
        self._model: Any = estimator
        self._default: tuple[str, ...] = (default,)
        self._content_type = settings.content_type
        self.max_batch_size = settings.max_batch_size
        self._closed = False

    def check(self, methods: tuple[str, ...]) -> None:
        """Raise ModelInputError for a method this estimator does not answer."""
        raise NotImplementedError

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.predict_outputs(inputs, ())

    def predict_outputs(
        self, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        if self._closed:
            raise ModelFailure(self.name, "the model is closed")
        methods = requested or self._default
        self.check(methods)
        features = decode(self.name, inputs, self._content_type)
        return answers(self.name, self._model, methods, features)

    def close(self) -> None:
        self._closed = True
        self._model = None
