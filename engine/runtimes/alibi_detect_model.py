"""alibi-detect detectors (a directory written by `save_detector`), answered as MLServer's
alibi-detect runtime.

Each key of the detector's `data` becomes an output of that name: drift
detectors answer `is_drift`, `distance`, `p_val` and `threshold`, outlier
detectors `is_outlier` and `instance_score` (and whatever else they return
that is not None). As in MLServer, the answer to one detection is a batch of
one: `is_drift` has the shape [1, 1], `p_val` [1, features].

Batches: in a pipeline step with `batch.size`, the step's requests are
concatenated and tested together, and each of them gets that one answer
(`shares_batch_answer`). model-settings.json's `parameters.extra.batch_size`
is MLServer's own batching: requests gather until there are that many (then one detection on all their rows), and
the ones before answer nothing. `parameters.extra.predict_parameters` go to
the detector's `predict`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure, ModelInputError, ModelLoadError
from engine.runtimes.mlserver_codec import decode, encode
from engine.runtimes.settings import ModelSettings

NOT_INSTALLED = (
    "the alibi-detect runtime is not installed. alibi-detect 0.13 (the latest) needs "
    "numpy<2 while tensorflux pins numpy 2.4.6, so detectors run in a venv of their own: "
    "`make .venv-alibi/.installed` builds it (README, Model runtimes)"
)


class AlibiDetectModel(ModelRuntime):
    shares_batch_answer = True

    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        self.name = name
        self.path = path
        try:
            from alibi_detect.saving import load_detector
        except ImportError as error:
            raise ModelLoadError(name, str(path), f"{NOT_INSTALLED} ({error})") from error
        try:
            self._detector: Any = load_detector(str(path))
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"alibi-detect cannot load it: {type(error).__name__}: {error}"
            ) from error
        self._parameters = _predict_parameters(name, settings)
        self._batch_size = _batch_size(name, settings)
        # Online detectors (with state) see a request's rows one by one, as in MLServer.
        self._online = hasattr(self._detector, "save_state")
        self._pending: list[np.ndarray] = []
        self._lock = threading.Lock()  # detectors keep state; one detection at a time

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._detector is None:
            raise ModelFailure(self.name, "the model is closed")
        rows = np.asarray(decode(self.name, inputs, None))
        if rows.ndim == 0:
            raise ModelInputError(self.name, "a detector needs rows; got a scalar")
        with self._lock:
            if self._batch_size is not None and not self._online:
                self._pending.append(rows)
                if len(self._pending) < self._batch_size:
                    return {}  # MLServer answers nothing until the batch is full
                rows = np.concatenate(self._pending)
                self._pending = []
            return self._detect(rows)

    def _detect(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        instances = [rows] if not self._online or len(rows) == 1 else list(rows)
        answers: list[dict[str, Any]] = []
        for instance in instances:
            try:
                answer = self._detector.predict(instance, **self._parameters)
            except Exception as error:
                raise ModelFailure(
                    self.name, f"the detector's predict raised {type(error).__name__}: {error}"
                ) from error
            answers.append(answer.get("data", {}) if isinstance(answer, dict) else {})
        outputs: dict[str, np.ndarray] = {}
        for key in answers[0]:
            values = [data.get(key) for data in answers]
            if any(value is None for value in values):
                continue  # e.g. feature_score when not asked for: no tensor holds None
            outputs.update(encode(self.name, key, np.array(values)))
        return outputs

    def close(self) -> None:
        self._detector = None


def _predict_parameters(name: str, settings: ModelSettings) -> dict[str, Any]:
    parameters = settings.extra.get("predict_parameters", {})
    if not isinstance(parameters, dict):
        raise ModelLoadError(
            name, str(settings.path), "parameters.extra.predict_parameters must be an object"
        )
    return parameters


def _batch_size(name: str, settings: ModelSettings) -> int | None:
    size = settings.extra.get("batch_size")
    if size is not None and (type(size) is not int or size < 1):
        raise ModelLoadError(
            name,
            str(settings.path),
            f"parameters.extra.batch_size must be a positive integer, got {size!r}",
        )
    return size
