"""OnnxModel: inputs checked against the signature before onnxruntime runs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtimes import MissingInputs, ModelFailure, ModelInputError
from engine.runtimes.onnx_model import session_options

A = np.arange(16, dtype=np.int32).reshape(1, 16)


def _input_error(model, inputs) -> ModelInputError:
    with pytest.raises(ModelInputError) as caught:
        model.predict(inputs)
    assert "model 'tfsimple1'" in str(caught.value)
    return caught.value


def test_single_threaded_session() -> None:
    options = session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    # No busy-waiting thread pool on cores the loop, the broker and other workers share.
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"


def test_missing_input_lists_expected_and_given(example) -> None:
    error = _input_error(example("tfsimple1"), {"INPUT0": A, "INPUTX": A})
    assert isinstance(error, MissingInputs)
    assert error.tensor == "INPUT1"
    assert error.expected == ("INPUT0", "INPUT1") and error.given == ("INPUT0", "INPUTX")
    message = str(error)
    assert "'INPUT1'" in message and "'INPUTX'" in message and "'INPUT0'" in message


def test_unexpected_input(example) -> None:
    error = _input_error(example("tfsimple1"), {"INPUT0": A, "INPUT1": A, "EXTRA": A})
    assert error.tensor == "EXTRA" and "no such input" in str(error)


@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.dtype(">i4")])
def test_wrong_dtype_is_not_cast(example, dtype) -> None:
    error = _input_error(example("tfsimple1"), {"INPUT0": A, "INPUT1": A.astype(dtype)})
    assert error.tensor == "INPUT1"
    assert "expects INT32" in str(error)


@pytest.mark.parametrize("shape", [(16,), (1, 15), (1, 16, 1), (2, 8)])
def test_wrong_shape(example, shape) -> None:
    bad = np.zeros(shape, np.int32)
    error = _input_error(example("tfsimple1"), {"INPUT0": bad, "INPUT1": A})
    assert error.tensor == "INPUT0"
    assert f"shape {list(shape)}" in str(error) and "[-1, 16]" in str(error)


def test_not_an_array(example) -> None:
    error = _input_error(example("tfsimple1"), {"INPUT0": A.tolist(), "INPUT1": A})
    assert error.tensor == "INPUT0" and "numpy array" in str(error)


def test_zero_rows_and_non_contiguous_inputs(example) -> None:
    model = example("tfsimple1")
    empty = np.zeros((0, 16), np.int32)
    assert model.predict({"INPUT0": empty, "INPUT1": empty})["OUTPUT0"].shape == (0, 16)
    wide = np.arange(64, dtype=np.int32).reshape(2, 32)[:, ::2]  # a strided view
    out = model.predict({"INPUT0": wide, "INPUT1": wide})
    np.testing.assert_array_equal(out["OUTPUT0"], wide * 2)


def test_rank1_model_batches_requests_of_four(example) -> None:
    model = example("add10")
    batch = np.arange(12, dtype=np.float32)
    out = model.predict({"INPUT": batch})["OUTPUT"]
    for i in range(3):
        single = model.predict({"INPUT": batch[4 * i : 4 * i + 4]})["OUTPUT"]
        np.testing.assert_array_equal(out[4 * i : 4 * i + 4], single)


def test_closed_model(example) -> None:
    model = example("tfsimple1")
    model.close()
    with pytest.raises(ModelFailure, match="closed"):
        model.predict({"INPUT0": A, "INPUT1": A})


def test_bytes_tensors_travel_as_bytes(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from engine.runtimes import load_model
    from tests.runtimes.conftest import spec

    string = lambda n: helper.make_tensor_value_info(n, TensorProto.STRING, ["batch"])  # noqa: E731
    graph = helper.make_graph(
        [helper.make_node("Identity", ["S"], ["T"])], "s", [string("S")], [string("T")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.save(model, tmp_path / "model.onnx")
    runtime = load_model(spec(tmp_path, "onnx", name="echo"))
    assert runtime.inputs[0].datatype == "BYTES"
    out = runtime.predict({"S": np.array([b"caf\xc3\xa9", b""], dtype=object)})["T"]
    assert out.dtype == object and list(out) == [b"caf\xc3\xa9", b""]
    assert list(runtime.predict({"S": np.array(["x"])})["T"]) == [b"x"]
    with pytest.raises(ModelInputError, match="UTF-8") as caught:
        runtime.predict({"S": np.array([b"\xff"], dtype=object)})
    assert caught.value.tensor == "S"
    with pytest.raises(ModelInputError, match="expects BYTES"):
        runtime.predict({"S": np.array([1], np.int32)})
