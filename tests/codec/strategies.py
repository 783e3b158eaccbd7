"""Hypothesis strategies for tensors and messages of every datatype and shape.

Numeric contents are drawn as raw bytes, so every bit pattern occurs: NaNs
with payloads, signalling NaNs, FP16 subnormals, -0.0.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from engine.dtypes import DATATYPE_TO_DTYPE, DATATYPES
from engine.messages import InferenceMessage, Tensor

names = st.text(max_size=12)
shapes = st.lists(st.integers(0, 4), max_size=4).map(tuple)

# Values of every parameter union branch, the JSON one included.
scalar_parameters = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=8),
)
json_parameters = st.one_of(
    st.integers(2**63, 2**70),
    st.lists(st.one_of(st.integers(-5, 5), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=2),
)
parameter_maps = st.dictionaries(
    st.text(max_size=8), st.one_of(scalar_parameters, json_parameters), max_size=3
)


@st.composite
def arrays(draw, datatype: str, shape: tuple[int, ...]) -> np.ndarray:
    count = math.prod(shape)
    if datatype == "BYTES":
        elements = draw(st.lists(st.binary(max_size=12), min_size=count, max_size=count))
        data = np.empty(count, dtype=object)
        data[:] = elements
        return data.reshape(shape)
    dtype = DATATYPE_TO_DTYPE[datatype]
    if datatype == "BOOL":
        raw = bytes(draw(st.lists(st.integers(0, 1), min_size=count, max_size=count)))
    else:
        size = count * dtype.itemsize
        raw = draw(st.binary(min_size=size, max_size=size))
    return np.frombuffer(raw, dtype).reshape(shape)


@st.composite
def tensors(draw, name: str | None = None, datatype: str | None = None, parameters=None) -> Tensor:
    datatype = datatype or draw(st.sampled_from(DATATYPES))
    shape = draw(shapes)
    return Tensor(
        name if name is not None else draw(names),
        datatype,
        shape,
        draw(arrays(datatype, shape)),
        draw(parameters if parameters is not None else parameter_maps),
    )


@st.composite
def messages(draw, kind: str | None = None, tensor_parameters=None) -> InferenceMessage:
    kind = kind or draw(st.sampled_from(["request", "response"]))
    tensor_names = draw(st.lists(names, max_size=4, unique=True))
    return InferenceMessage(
        id=draw(st.text(max_size=40)),
        tensors=tuple(draw(tensors(name, parameters=tensor_parameters)) for name in tensor_names),
        kind=kind,
        model_name=draw(st.text(max_size=10)),
        model_version=draw(st.text(max_size=4)),
        parameters=draw(parameter_maps),
        requested_outputs=tuple(draw(st.lists(names, max_size=3))) if kind == "request" else (),
    )
