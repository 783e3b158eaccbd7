"""PythonModel: import isolation, output conversion, ModelFailure with the model's text."""

from __future__ import annotations

import numpy as np
import pytest

from engine.runtimes import ModelFailure

X = np.array([1.0, 2.0], np.float32)


def test_same_file_name_does_not_clash(python_model) -> None:
    source = (
        "VALUE = {v}\nclass Model:\n    def predict(self, inputs):\n        return {{'V': VALUE}}\n"
    )
    one, two = python_model(source.format(v=1)), python_model(source.format(v=2))
    assert one.predict({})["V"] == 1 and two.predict({})["V"] == 2


def test_same_model_loaded_twice_keeps_both(python_model, example_specs) -> None:
    from engine.runtimes import load_model

    first = load_model(example_specs.models["increment"])
    second = load_model(example_specs.models["increment"])
    first.close()
    assert second.predict({"COUNT": np.array([1], np.int32)})["COUNT"][0] == 2
    second.close()


def test_dataclass_in_model_file(python_model) -> None:
    # dataclasses look the module up in sys.modules while the file runs.
    model = python_model(
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Cfg:\n    k: int = 3\n"
        "class Model:\n    def predict(self, inputs):\n        return {'K': Cfg().k}\n"
    )
    assert model.predict({})["K"] == 3


def test_lists_and_scalars_become_arrays(python_model) -> None:
    model = python_model(
        "class Model:\n    def predict(self, inputs):\n"
        "        return {'L': [1, 2], 'S': 2.5, 'B': True}\n"
    )
    out = model.predict({})
    assert all(isinstance(v, np.ndarray) for v in out.values())
    np.testing.assert_array_equal(out["L"], [1, 2])
    assert out["S"].shape == () and out["S"] == 2.5


def test_predict_raising_carries_the_text(python_model) -> None:
    model = python_model(
        "class Model:\n    def predict(self, inputs):\n        raise ValueError('CHOICE must be 0 or 1')\n",
        name="router",
    )
    with pytest.raises(ModelFailure) as caught:
        model.predict({"X": X})
    message = str(caught.value)
    assert "model 'router'" in message and "ValueError: CHOICE must be 0 or 1" in message
    assert isinstance(caught.value.__cause__, ValueError)


def test_missing_key_is_a_model_failure(example) -> None:
    with pytest.raises(ModelFailure, match="KeyError: 'CHOICE'"):
        example("conditional").predict({"INPUT": X})


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ("None", "not a dict"),
        ("[1, 2]", "not a dict"),
        ("{'OUT': object()}", "output 'OUT': object is not a numpy array"),
        ("{'OUT': None}", "output 'OUT': NoneType"),
        ("{'OUT': [[1], [2, 3]]}", "output 'OUT'"),
        ("{1: [1]}", "output name 1"),
    ],
)
def test_bad_outputs(python_model, returned: str, expected: str) -> None:
    model = python_model(
        f"class Model:\n    def predict(self, inputs):\n        return {returned}\n"
    )
    with pytest.raises(ModelFailure, match=expected.replace("(", r"\(")):
        model.predict({})


def test_inputs_dict_is_not_mutated(python_model) -> None:
    model = python_model(
        "class Model:\n    def predict(self, inputs):\n        return {'X': inputs.pop('X')}\n"
    )
    inputs = {"X": X}
    model.predict(inputs)
    assert "X" in inputs


def test_batchable_only_when_the_class_says_so(python_model) -> None:
    plain = python_model("class Model:\n    def predict(self, inputs):\n        return inputs\n")
    batched = python_model(
        "class Model:\n    batchable = True\n    def predict(self, inputs):\n        return inputs\n"
    )
    assert (plain.batchable, batched.batchable) == (False, True)
    assert plain.inputs == () and plain.outputs == ()


def test_close_calls_the_model_close_and_stops_predict(python_model, tmp_path) -> None:
    flag = tmp_path / "closed"
    model = python_model(
        "class Model:\n    def predict(self, inputs):\n        return inputs\n"
        f"    def close(self):\n        open({str(flag)!r}, 'w').close()\n"
    )
    model.close()
    assert flag.exists()
    with pytest.raises(ModelFailure, match="closed"):
        model.predict({})
