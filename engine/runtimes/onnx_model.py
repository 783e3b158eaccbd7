"""ONNX models run by onnxruntime on the CPU.

Inputs are checked against the session's signature before `run`, so a bad
request fails with a message naming the tensor instead of onnxruntime's
generic "Unexpected input data type". Nothing is cast: a wrong dtype is the
producer's bug, and a silent cast would hide it (and cost a copy).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime as ort

from engine.dtypes import DATATYPE_TO_DTYPE, datatype_of
from engine.runtimes.base import DYNAMIC, ModelRuntime, TensorSpec
from engine.runtimes.errors import MissingInputs, ModelFailure, ModelInputError, ModelLoadError

# onnxruntime's type strings -> Open Inference Protocol datatypes.
_ORT_TO_DATATYPE: Final[dict[str, str]] = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def session_options() -> ort.SessionOptions:
    # One thread each: the engine runs many steps side by side on few cores,
    # and on the 2-core target more intra-op threads made small models slower.
    # With one thread onnxruntime starts no pool; spinning is off all the same, so
    # that a pool (more threads, a parallel graph) never busy-waits on a core that
    # other workers' model threads, the loop and the broker share.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


class OnnxModel(ModelRuntime):
    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(path), sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own classes for bad files
            raise ModelLoadError(name, str(path), f"onnxruntime cannot open it: {error}") from error
        self.inputs = tuple(self._spec(arg) for arg in self._session.get_inputs())
        self.outputs = tuple(self._spec(arg) for arg in self._session.get_outputs())
        self.batchable = all(
            spec.shape and spec.shape[0] == DYNAMIC for spec in self.inputs + self.outputs
        )
        self._output_names = [spec.name for spec in self.outputs]
        self._dtypes = {spec.name: DATATYPE_TO_DTYPE[spec.datatype] for spec in self.inputs}
        self._bytes_inputs = [s.name for s in self.inputs if s.datatype == "BYTES"]
        self._bytes_outputs = [s.name for s in self.outputs if s.datatype == "BYTES"]
        self._fast = tuple(
            (
                spec.name,
                self._dtypes[spec.name],
                len(spec.shape),
                tuple((axis, size) for axis, size in enumerate(spec.shape) if size != DYNAMIC),
            )
            for spec in self.inputs
            # BYTES takes object, bytes or str arrays: left out here, so the
            # length test in _fits fails and _explain decides.
            if spec.datatype != "BYTES"
        )

    def _spec(self, arg: ort.NodeArg) -> TensorSpec:
        datatype = _ORT_TO_DATATYPE.get(arg.type)
        if datatype is None:
            raise ModelLoadError(
                self.name,
                str(self.path),
                f"tensor {arg.name!r} has type {arg.type}, which has no Open Inference "
                f"Protocol datatype; supported: {', '.join(_ORT_TO_DATATYPE)}",
            )
        # Symbolic ("batch") and unknown (None) dimensions are both dynamic.
        shape = tuple(d if isinstance(d, int) and d >= 0 else DYNAMIC for d in arg.shape)
        return TensorSpec(arg.name, datatype, shape)

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        session = self._session
        if session is None:
            raise ModelFailure(self.name, "the model is closed")
        if not self._fits(inputs):
            self._explain(inputs)  # raises ModelInputError naming the tensor
        if self._bytes_inputs:
            inputs = dict(inputs)
            for name in self._bytes_inputs:
                inputs[name] = _decoded(self.name, name, inputs[name])
        try:
            results = session.run(self._output_names, inputs)
        except Exception as error:
            raise ModelFailure(self.name, f"onnxruntime failed: {error}") from error
        # Optional outputs a graph did not produce come back as None.
        outputs = {n: r for n, r in zip(self._output_names, results, strict=True) if r is not None}
        for name in self._bytes_outputs:
            if name in outputs:
                outputs[name] = _encoded(outputs[name])
        return outputs

    def _fits(self, inputs: dict[str, np.ndarray]) -> bool:
        # The per-call fast path (half of predict's own cost was checking):
        # a yes/no from precomputed tables; _explain finds out what is wrong.
        if len(inputs) != len(self._fast):
            return False
        for name, dtype, rank, fixed in self._fast:
            array = inputs.get(name)
            if type(array) is not np.ndarray:
                return False
            if array.dtype is not dtype and array.dtype != dtype:
                return False
            shape = array.shape
            if len(shape) != rank:
                return False
            for axis, size in fixed:
                if shape[axis] != size:
                    return False
        return True

    def _explain(self, inputs: dict[str, np.ndarray]) -> None:
        missing = [spec.name for spec in self.inputs if spec.name not in inputs]
        if missing:
            raise MissingInputs(self.name, missing, self._dtypes, inputs)
        # Triton (Seldon's ONNX server) rejects undeclared inputs too; ignoring
        # them would hide a mis-wired tensorMap.
        unexpected = [name for name in inputs if name not in self._dtypes]
        if unexpected:
            raise ModelInputError(
                self.name,
                f"the model has no such input; it expects {', '.join(map(repr, self._dtypes))}",
                tensor=unexpected[0],
            )
        for spec in self.inputs:
            _check_tensor(self.name, spec, self._dtypes[spec.name], inputs[spec.name])
        # Models with BYTES inputs get here with nothing wrong (see _fast).

    def close(self) -> None:
        self._session = None


def _check_tensor(model: str, spec: TensorSpec, dtype: np.dtype, array: object) -> None:
    if not isinstance(array, np.ndarray):
        raise ModelInputError(
            model, f"expected a numpy array, got {type(array).__name__}", tensor=spec.name
        )
    if spec.datatype == "BYTES":
        ok = array.dtype.kind in "OSU"
    else:
        ok = array.dtype == dtype
    if not ok:
        raise ModelInputError(
            model,
            f"datatype {_datatype(array.dtype)} (numpy {array.dtype.str}) but the model "
            f"expects {spec.datatype}; convert it before sending",
            tensor=spec.name,
        )
    shape = array.shape
    fits = len(shape) == len(spec.shape) and all(
        want in (DYNAMIC, got) for want, got in zip(spec.shape, shape, strict=True)
    )
    if not fits:
        raise ModelInputError(
            model,
            f"shape {list(shape)} does not fit the model's {list(spec.shape)} (-1: any size)",
            tensor=spec.name,
        )


def _datatype(dtype: np.dtype) -> str:
    try:
        return datatype_of(dtype)
    except Exception:
        return "none"


# BYTES tensors hold bytes elements (engine.codec); onnxruntime's string
# tensors take and give str, and would turn bytes into the text "b'...'".


def _decoded(model: str, tensor: str, array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "U":
        return array
    try:
        items = [e.decode() if isinstance(e, bytes | bytearray) else e for e in array.ravel()]
    except UnicodeDecodeError as error:
        raise ModelInputError(
            model, f"ONNX string tensors need UTF-8 text: {error}", tensor=tensor
        ) from error
    return np.array(items, dtype=object).reshape(array.shape)


def _encoded(array: np.ndarray) -> np.ndarray:
    items = [e.encode() if isinstance(e, str) else e for e in array.ravel()]
    return np.array(items, dtype=object).reshape(array.shape)
