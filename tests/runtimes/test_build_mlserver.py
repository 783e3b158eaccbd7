"""examples/models/build_mlserver.py rebuilds models that answer as the committed ones do,
and the committed ones give the answers their YAML headers document."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from engine.runtimes import load_model
from tests.runtimes.conftest import EXAMPLES, spec
from tests.runtimes.mlserver_artifacts import IRIS_ROWS, iris


def _build_module():
    found = importlib.util.spec_from_file_location("build_mlserver", EXAMPLES / "build_mlserver.py")
    assert found is not None and found.loader is not None
    module = importlib.util.module_from_spec(found)
    found.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["iris-sklearn", "iris-xgboost"])
def test_rebuild_answers_as_the_committed_model(tmp_path: Path, name: str) -> None:
    written = {p.name: p for p in _build_module().build_all(tmp_path)}
    rebuilt = load_model(spec(written[name], name.split("-")[1]))
    committed = load_model(spec(EXAMPLES / name, name.split("-")[1]))
    features, _ = iris()
    for output in ("predict", "predict_proba"):
        np.testing.assert_allclose(
            rebuilt.predict_outputs({"x": features}, (output,))[output],
            committed.predict_outputs({"x": features}, (output,))[output],
            rtol=1e-5,
        )


@pytest.mark.parametrize("name", ["iris-sklearn", "iris-xgboost"])
def test_committed_models_answer_as_documented(example, name: str) -> None:
    out = example(name).predict({"INPUT": IRIS_ROWS})
    assert list(out) == ["predict"]
    assert out["predict"].dtype == np.int64 and out["predict"].tolist() == [[0], [1], [2]]
    header = (EXAMPLES / f"{name}.yaml").read_text()
    assert "-> predict [[0],[1],[2]]" in header
