"""call_model: requests merged along axis 0, outputs split back, one bad request fails alone."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.operators.model_call import call_model
from engine.runtimes import ModelFailure, ModelInputError, ModelRuntime, load_model
from engine.topology import load_files

MODELS = Path(__file__).resolve().parents[2] / "examples" / "models"


class Recording(ModelRuntime):
    """A model computing `fn` that remembers the row count of every call."""

    def __init__(self, fn: Callable[[dict], dict], *, batchable: bool = True) -> None:
        self.name = "recording"
        self.batchable = batchable
        self.fn = fn
        self.calls: list[int] = []

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(len(next(iter(inputs.values()))))
        return self.fn(inputs)

    def close(self) -> None:
        pass


def doubles(inputs: dict) -> dict:
    x = inputs["X"]
    if (x < 0).any():
        raise ValueError("negative input")
    return {"Y": x * 2}


def rows(*values: int, width: int = 2) -> dict[str, np.ndarray]:
    return {"X": np.array([[v] * width for v in values], dtype=np.int32)}


@pytest.fixture(scope="module")
def tfsimple1() -> Iterator[ModelRuntime]:
    model = load_model(load_files([MODELS]).models["tfsimple1"])
    yield model
    model.close()


def test_compatible_requests_go_in_one_call_and_are_split_back() -> None:
    model = Recording(doubles)
    results = call_model(model, [rows(1), rows(2, 3), rows(4)])
    assert model.calls == [4]
    assert [r["Y"].tolist() for r in results] == [[[2, 2]], [[4, 4], [6, 6]], [[8, 8]]]  # type: ignore[index]


def test_one_request_is_one_call() -> None:
    model = Recording(doubles)
    assert call_model(model, [rows(5)])[0]["Y"].tolist() == [[10, 10]]  # type: ignore[index]
    assert model.calls == [1]


def test_a_failing_merged_call_retries_each_request_so_only_the_bad_one_fails() -> None:
    model = Recording(doubles)
    results = call_model(model, [rows(1), rows(-1), rows(3)])
    assert model.calls == [3, 1, 1, 1]
    assert results[0]["Y"].tolist() == [[2, 2]]  # type: ignore[index]
    assert results[2]["Y"].tolist() == [[6, 6]]  # type: ignore[index]
    failure = results[1]
    assert isinstance(failure, ModelFailure)
    assert failure.model == "recording" and "ValueError: negative input" in str(failure)


def test_requests_of_different_shapes_are_called_in_separate_groups() -> None:
    model = Recording(doubles)
    results = call_model(model, [rows(1), rows(2, width=3), rows(3), rows(4, width=3)])
    assert sorted(model.calls) == [2, 2]
    assert [r["Y"].shape for r in results] == [(1, 2), (1, 3), (1, 2), (1, 3)]  # type: ignore[index]


def test_not_batchable_models_are_called_per_request() -> None:
    model = Recording(doubles, batchable=False)
    call_model(model, [rows(1), rows(2)])
    assert model.calls == [1, 1]


def test_outputs_that_cannot_be_split_by_rows_fall_back_to_one_call_each() -> None:
    model = Recording(lambda inputs: {"SUM": inputs["X"].sum(keepdims=False)})
    results = call_model(model, [rows(1), rows(2)])
    assert model.calls == [2, 1, 1]
    assert [int(r["SUM"]) for r in results] == [2, 4]  # type: ignore[index]


def test_inputs_that_disagree_on_rows_are_not_merged() -> None:
    model = Recording(lambda inputs: {"Y": inputs["X"]})
    uneven = {"X": np.zeros((2, 2), np.int32), "Z": np.zeros((1, 2), np.int32)}
    call_model(model, [uneven, uneven])
    assert model.calls == [2, 2]


def test_runtime_errors_pass_through_unchanged() -> None:
    error = ModelInputError("recording", "bad", tensor="X")

    def refuse(inputs: dict) -> dict:
        raise error

    assert call_model(Recording(refuse), [rows(1)]) == [error]


def test_onnx_batch_matches_single_calls_and_a_wrong_shape_fails_alone(
    tfsimple1: ModelRuntime,
) -> None:
    def request(start: int, width: int = 16) -> dict[str, np.ndarray]:
        row = np.arange(start, start + width, dtype=np.int32).reshape(1, width)
        return {"INPUT0": row, "INPUT1": np.ones_like(row)}

    good = [request(0), request(100), request(200)]
    results = call_model(tfsimple1, [good[0], request(0, width=8), good[1], good[2]])
    bad = results[1]
    assert isinstance(bad, ModelInputError) and bad.model == "tfsimple1"
    for result, sent in zip([results[0], *results[2:]], good, strict=True):
        assert isinstance(result, dict)
        assert result["OUTPUT0"].tolist() == (sent["INPUT0"] + 1).tolist()
        assert result["OUTPUT1"].tolist() == (sent["INPUT0"] - 1).tolist()
