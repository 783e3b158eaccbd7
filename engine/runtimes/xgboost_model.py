"""XGBoost boosters saved as .json or .ubj (or .bst), answered as MLServer's xgboost runtime.

The booster is opened through xgboost's scikit-learn interface, as a
regressor unless xgboost says it was saved as a classifier; then `predict`
(the default) and `predict_proba` (a classifier's, when a request's OIP
`outputs` asks for it) are the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure, ModelInputError, ModelLoadError
from engine.runtimes.mlserver_codec import answers, decode, require
from engine.runtimes.settings import ModelSettings

METHODS: Final = ("predict", "predict_proba")


class XGBoostModel(ModelRuntime):
    batchable = True
    takes_requested_outputs = True

    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        self.name = name
        self.path = path
        xgb = require("xgboost", "xgboost", name, str(path))
        try:
            self._model: Any = _sklearn_interface(xgb, path)
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"xgboost cannot load it: {type(error).__name__}: {error}"
            ) from error
        self._is_regressor = isinstance(self._model, xgb.XGBRegressor)
        self._content_type = settings.content_type
        self.max_batch_size = settings.max_batch_size
        self._closed = False

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.predict_outputs(inputs, ())

    def predict_outputs(
        self, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        if self._closed:
            raise ModelFailure(self.name, "the model is closed")
        methods = requested or ("predict",)
        for method in methods:
            if method not in METHODS:
                raise ModelInputError(
                    self.name,
                    f"the request asks for output {method!r}; an xgboost model answers "
                    "'predict' and 'predict_proba'",
                )
        if "predict_proba" in methods and self._is_regressor:
            raise ModelInputError(self.name, "XGBRegressor models do not support 'predict_proba'")
        features = decode(self.name, inputs, self._content_type)
        return answers(self.name, self._model, methods, features)

    def close(self) -> None:
        self._closed = True
        self._model = None


def _sklearn_interface(xgb: Any, path: Path) -> Any:
    # A booster saved by XGBClassifier refuses to load as a regressor (TypeError);
    # one saved by the plain Booster API loads as a regressor, as in MLServer.
    try:
        regressor = xgb.XGBRegressor()
        regressor.load_model(str(path))
        return regressor
    except TypeError:
        classifier = xgb.XGBClassifier()
        classifier.load_model(str(path))
        return classifier
