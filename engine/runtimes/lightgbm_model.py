"""LightGBM boosters saved as text (.txt, or .bst), answered as MLServer's lightgbm runtime:
one output, `predict`, whatever the request's `outputs` say."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure, ModelLoadError
from engine.runtimes.mlserver_codec import decode, encode, require
from engine.runtimes.settings import ModelSettings


class LightGBMModel(ModelRuntime):
    batchable = True

    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        self.name = name
        self.path = path
        lgb = require("lightgbm", "lightgbm", name, str(path))
        try:
            self._booster: Any = lgb.Booster(model_file=str(path))
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"lightgbm cannot load it: {type(error).__name__}: {error}"
            ) from error
        self._content_type = settings.content_type
        self.max_batch_size = settings.max_batch_size

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        booster = self._booster
        if booster is None:
            raise ModelFailure(self.name, "the model is closed")
        features = decode(self.name, inputs, self._content_type)
        try:
            answer = booster.predict(features)
        except Exception as error:
            raise ModelFailure(
                self.name, f"predict raised {type(error).__name__}: {error}"
            ) from error
        return encode(self.name, "predict", answer)

    def close(self) -> None:
        self._booster = None
