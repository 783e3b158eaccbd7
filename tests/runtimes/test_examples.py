"""Every example model, loaded from its YAML, gives the results its header documents."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtimes import OnnxModel, PythonModel, TensorSpec

ONE_TO_16 = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
FOUR = np.array([1, 2, 3, 4], dtype=np.float32)


def test_every_example_yaml_loads(example_specs, example) -> None:
    assert set(example_specs.models) == {
        "add10", "below-limit", "conditional", "increment", "mul10",
        "tfsimple1", "tfsimple2", "tfsimple3", "iris-sklearn", "iris-xgboost",
    }  # fmt: skip
    for name in example_specs.models:
        runtime = example(name)
        assert runtime.name == name


@pytest.mark.parametrize("name", ["tfsimple1", "tfsimple2", "tfsimple3"])
def test_tfsimple(example, name: str) -> None:
    model = example(name)
    assert isinstance(model, OnnxModel)
    tensor = lambda n: TensorSpec(n, "INT32", (-1, 16))  # noqa: E731
    assert model.inputs == (tensor("INPUT0"), tensor("INPUT1"))
    assert model.outputs == (tensor("OUTPUT0"), tensor("OUTPUT1"))
    assert model.batchable
    out = model.predict({"INPUT0": ONE_TO_16, "INPUT1": ONE_TO_16})
    np.testing.assert_array_equal(out["OUTPUT0"], ONE_TO_16 * 2)
    np.testing.assert_array_equal(out["OUTPUT1"], np.zeros((1, 16), np.int32))
    assert out["OUTPUT0"].dtype == np.int32


def test_tfsimple_batch_of_64_equals_64_single_calls(example) -> None:
    model = example("tfsimple1")
    rng = np.random.default_rng(7)
    a = rng.integers(-1000, 1000, size=(64, 16), dtype=np.int32)
    b = rng.integers(-1000, 1000, size=(64, 16), dtype=np.int32)
    batched = model.predict({"INPUT0": a, "INPUT1": b})
    for i in range(64):
        single = model.predict({"INPUT0": a[i : i + 1], "INPUT1": b[i : i + 1]})
        for name in ("OUTPUT0", "OUTPUT1"):
            np.testing.assert_array_equal(batched[name][i : i + 1], single[name])


@pytest.mark.parametrize(
    ("name", "expected"), [("add10", [11, 12, 13, 14]), ("mul10", [10, 20, 30, 40])]
)
def test_add10_mul10(example, name: str, expected: list[float]) -> None:
    model = example(name)
    assert model.inputs == (TensorSpec("INPUT", "FP32", (-1,)),)
    assert model.batchable
    out = model.predict({"INPUT": FOUR})
    assert list(out) == ["OUTPUT"]
    np.testing.assert_array_equal(out["OUTPUT"], np.array(expected, np.float32))


@pytest.mark.parametrize(("choice", "output"), [(0, "OUTPUT0"), (1, "OUTPUT1"), (7, "OUTPUT1")])
def test_conditional_routes_by_choice(example, choice: int, output: str) -> None:
    model = example("conditional")
    assert isinstance(model, PythonModel)
    assert not model.batchable
    out = model.predict({"INPUT": FOUR, "CHOICE": np.array([choice], np.int32)})
    assert list(out) == [output]
    np.testing.assert_array_equal(out[output], FOUR)


def test_increment(example) -> None:
    out = example("increment").predict({"COUNT": np.array([41], np.int32)})
    np.testing.assert_array_equal(out["COUNT"], np.array([42], np.int32))
    assert out["COUNT"].dtype == np.int32


@pytest.mark.parametrize(
    ("count", "output"), [(0, "CONTINUE"), (9, "CONTINUE"), (10, "DONE"), (11, "DONE")]
)
def test_below_limit(example, count: int, output: str) -> None:
    out = example("below-limit").predict({"COUNT": np.array([count], np.int32)})
    assert list(out) == [output]
    np.testing.assert_array_equal(out[output], np.array([count], np.int32))


def test_counter_loop_ends_at_ten(example) -> None:
    # The `counter` pipeline by hand: increment, then below-limit, until DONE.
    increment, guard = example("increment"), example("below-limit")
    count = np.array([0], np.int32)
    for _ in range(20):
        out = guard.predict(increment.predict({"COUNT": count}))
        if "DONE" in out:
            break
        count = out["CONTINUE"]
    np.testing.assert_array_equal(out["DONE"], [10])
