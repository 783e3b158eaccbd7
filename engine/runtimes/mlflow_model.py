"""MLflow pyfunc models (an `MLmodel` directory), answered as MLServer's mlflow runtime.

The model's signature says how a request is handed over, as in MLServer:
named tensor inputs as a dict of arrays, one unnamed tensor as that array,
columns as a pandas DataFrame (one column per input, by name). The answer's
outputs are named by the model when it returns a dict or a DataFrame, else
`output-1` (MLServer's default name). Request `parameters` go to
`predict(..., params=...)` only through MLServer's REST path, so none go here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import numpy as np

from engine.dtypes import datatype_of
from engine.runtimes.base import DYNAMIC, ModelRuntime, TensorSpec
from engine.runtimes.errors import MissingInputs, ModelFailure, ModelLoadError
from engine.runtimes.mlserver_codec import dataframe, decode, encode, require
from engine.runtimes.settings import ModelSettings

DEFAULT_OUTPUT: Final = "output-1"

# MLflow column types -> Open Inference Protocol datatypes (MLServer's table).
_COLUMN_DATATYPES: Final[dict[str, str]] = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


class MLflowModel(ModelRuntime):
    def __init__(self, name: str, path: Path, settings: ModelSettings) -> None:
        self.name = name
        self.path = path
        pyfunc = require("mlflow.pyfunc", "mlflow", name, str(path))
        try:
            self._model: Any = pyfunc.load_model(str(path))
        except Exception as error:
            raise ModelLoadError(
                name, str(path), f"mlflow cannot load it: {type(error).__name__}: {error}"
            ) from error
        self.max_batch_size = settings.max_batch_size
        signature = self._model.metadata.signature
        self._content_type = settings.content_type or "np"
        if signature is not None and signature.inputs is not None:
            schema = signature.inputs
            if schema.is_tensor_spec():
                self._content_type = "dict" if schema.has_input_names() else "np"
            else:
                self._content_type = "pd"
            self.inputs = tuple(_tensor_spec(i, spec) for i, spec in enumerate(schema.inputs))
        self._names = tuple(spec.name for spec in self.inputs)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        model = self._model
        if model is None:
            raise ModelFailure(self.name, "the model is closed")
        if self._content_type in ("dict", "pd") and self._names:
            missing = [name for name in self._names if name not in inputs]
            if missing:
                raise MissingInputs(self.name, missing, self._names, inputs)
        if self._content_type == "dict":
            argument: Any = dict(inputs)
        elif self._content_type == "pd":
            argument = dataframe(self.name, inputs)
        else:
            argument = decode(self.name, inputs, None)
        try:
            answer = model.predict(argument)
        except Exception as error:
            raise ModelFailure(
                self.name, f"predict raised {type(error).__name__}: {error}"
            ) from error
        if isinstance(answer, dict):
            outputs: dict[str, np.ndarray] = {}
            for key, value in answer.items():
                outputs.update(encode(self.name, str(key), value))
            return outputs
        return encode(self.name, DEFAULT_OUTPUT, answer)

    def close(self) -> None:
        self._model = None


def _tensor_spec(index: int, spec: Any) -> TensorSpec:
    name = spec.name or f"input-{index}"
    if hasattr(spec, "shape"):  # an MLflow TensorSpec: numpy dtype and shape
        shape = tuple(DYNAMIC if d is None or d < 0 else int(d) for d in spec.shape)
        return TensorSpec(name, datatype_of(np.dtype(spec.type)), shape)
    kind = getattr(spec.type, "name", str(spec.type))
    return TensorSpec(name, _COLUMN_DATATYPES.get(kind, "BYTES"), (DYNAMIC, 1))
