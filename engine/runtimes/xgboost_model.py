"""XGBoost boosters saved as .json or .ubj (or .bst), answered as MLServer's xgboost runtime.

The booster is opened through xgboost's scikit-learn interface, as a
regressor unless xgboost says it was saved as a classifier; then `predict`
(the default) and `predict_proba` (a classifier's, when a request's OIP
`outputs` asks for it) are the outputs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from engine.runtimes.errors import ModelInputError, ModelLoadError
from engine.runtimes.method_model import MethodModel
from engine.runtimes.mlserver_codec import require
from engine.runtimes.settings import ModelSettings

METHODS: Final = ("predict", "predict_proba")


class XGBoostModel(MethodModel):
    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        xgb = require("xgboost", "xgboost", name, str(path))
        try:
            estimator = _sklearn_interface(xgb, path)
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"xgboost cannot load it: {type(error).__name__}: {error}"
            ) from error
        self._is_regressor = isinstance(estimator, xgb.XGBRegressor)
        super().__init__(name, path, settings, estimator, "predict")

    def check(self, methods: tuple[str, ...]) -> None:
        for method in methods:
            if method not in METHODS:
                raise ModelInputError(
                    self.name,
                    f"the request asks for output {method!r}; an xgboost model answers "
                    "'predict' and 'predict_proba'",
                )
        if "predict_proba" in methods and self._is_regressor:
            raise ModelInputError(self.name, "XGBRegressor models do not support 'predict_proba'")


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
