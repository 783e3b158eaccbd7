"""The one interface the dataflow worker calls, whatever runs the model."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

DYNAMIC = -1
"""A dimension whose size the model leaves open (symbolic or unknown in ONNX)."""


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model's signature."""

    name: str
    datatype: str
    """Open Inference Protocol datatype: "INT32", "FP32", ..."""
    shape: tuple[int, ...]
    """-1 (`DYNAMIC`) for a dimension of any size."""


class ModelRuntime(ABC):
    """A loaded model. `predict` may be called from several threads at once."""

    name: str
    inputs: tuple[TensorSpec, ...] = ()
    """What the model declares; empty when it declares nothing (python models)."""
    outputs: tuple[TensorSpec, ...] = ()
    batchable: bool = False
    """True when requests may be concatenated along axis 0 and the outputs split back."""
    max_batch_size: int | None = None
    """At most this many requests in one merged call (model-settings.json); None: no limit."""
    takes_requested_outputs: bool = False
    """True when `predict_outputs` answers what a request's OIP `outputs` name
    (MLServer's sklearn and xgboost: `predict_proba`)."""
    in_process: bool = True
    """False for a model served elsewhere (remote models): each call is a network call."""
    shares_batch_answer: bool = False
    """True when one call on a step's batch (`batch.size`) answers the batch as a
    whole, and every request of it gets that answer (drift detectors)."""

    @abstractmethod
    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name; may be a subset of `outputs` (conditional routing).

        Raises ModelInputError for requests that do not fit, ModelFailure when
        the model itself fails.
        """

    def predict_outputs(
        self, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """`predict` for a request whose OIP `outputs` name `requested` (empty: none named).
        Runtimes with `takes_requested_outputs` override it; the rest answer as `predict`."""
        return self.predict(inputs)

    @abstractmethod
    def close(self) -> None:
        """Release the model; `predict` afterwards raises ModelFailure."""

    def __enter__(self) -> ModelRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, batchable={self.batchable})"
