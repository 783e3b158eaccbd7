"""scikit-learn models saved with joblib (or pickle), answered as MLServer's sklearn runtime.

`predict` by default; a request's OIP `outputs` may ask for `predict`,
`predict_proba` and `transform` instead, and model-settings.json's
`parameters.extra.predict_fn` changes the default. The output is named after
the method that made it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from engine.runtimes.errors import ModelInputError, ModelLoadError
from engine.runtimes.method_model import MethodModel
from engine.runtimes.mlserver_codec import require
from engine.runtimes.settings import ModelSettings

PREDICT: Final = "predict"
PREDICT_PROBA: Final = "predict_proba"
METHODS: Final = (PREDICT, PREDICT_PROBA, "transform")


class SklearnModel(MethodModel):
    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        joblib = require("joblib", "sklearn", name, str(path))
        require("sklearn", "sklearn", name, str(path))
        try:
            estimator = joblib.load(path)
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"joblib cannot load it: {type(error).__name__}: {error}"
            ) from error
        default = settings.extra.get("predict_fn", PREDICT)
        if default not in METHODS:
            raise ModelLoadError(
                name,
                str(settings.path),
                f"parameters.extra.predict_fn {default!r} is not one of {', '.join(METHODS)}",
            )
        super().__init__(name, path, settings, estimator, default)

    def check(self, methods: tuple[str, ...]) -> None:
        for method in methods:
            if method not in METHODS:
                raise ModelInputError(
                    self.name,
                    f"the request asks for output {method!r}; a sklearn model answers "
                    f"{', '.join(repr(m) for m in METHODS)}",
                )
        if PREDICT_PROBA in methods and not hasattr(_final_estimator(self._model), PREDICT_PROBA):
            raise ModelInputError(
                self.name,
                f"{type(_final_estimator(self._model)).__name__} models do not support "
                f"{PREDICT_PROBA!r} (regressors answer 'predict' only)",
            )
        for method in methods:
            if not callable(getattr(self._model, method, None)):
                raise ModelInputError(
                    self.name, f"{type(self._model).__name__} has no {method!r} method"
                )


def _final_estimator(model: Any) -> Any:
    # A Pipeline has predict_proba as an attribute whatever its last step is.
    steps = getattr(model, "steps", None)
    if isinstance(steps, list) and steps:
        return steps[-1][-1]
    return model
