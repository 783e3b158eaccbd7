"""examples/models/build_onnx.py rebuilds the committed .onnx files byte for byte."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from engine.runtimes.onnx_model import OnnxModel
from tests.runtimes.conftest import EXAMPLES


def _build_module():
    spec = importlib.util.spec_from_file_location("build_onnx", EXAMPLES / "build_onnx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rebuild_equals_committed_files(tmp_path: Path) -> None:
    written = _build_module().build_all(tmp_path)
    assert [p.parent.name for p in written] == [
        "tfsimple1",
        "tfsimple2",
        "tfsimple3",
        "add10",
        "mul10",
    ]
    for path in written:
        committed = EXAMPLES / path.parent.name / "model.onnx"
        assert path.read_bytes() == committed.read_bytes(), (
            f"{committed} differs from a rebuild; run .venv/bin/python examples/models/build_onnx.py"
        )


def test_rebuild_is_deterministic(tmp_path: Path) -> None:
    build = _build_module()
    first = [p.read_bytes() for p in build.build_all(tmp_path / "a")]
    second = [p.read_bytes() for p in build.build_all(tmp_path / "b")]
    assert first == second


def test_bench_mlp_rebuilds_the_same_and_runs_batched(tmp_path: Path) -> None:
    build = _build_module()
    first = [p.read_bytes() for p in build.build_bench(tmp_path / "a")]
    paths = build.build_bench(tmp_path / "b")
    assert [p.read_bytes() for p in paths] == first
    model = OnnxModel("mlp256", tmp_path / "b" / "mlp256" / "model.onnx")
    assert model.batchable

    rows = np.linspace(-1.0, 1.0, 3 * 256, dtype=np.float32).reshape(3, 256)
    together = model.predict({"INPUT": rows})["OUTPUT"]
    assert together.shape == (3, 256)
    alone = model.predict({"INPUT": rows[1:2]})["OUTPUT"]
    np.testing.assert_allclose(together[1:2], alone, rtol=1e-5, atol=1e-6)


def test_bench_cnn_scores_each_image_of_a_batch_as_it_scores_it_alone(tmp_path: Path) -> None:
    (path,) = [p for p in _build_module().build_bench(tmp_path) if p.parent.name == "cnn"]
    model = OnnxModel("cnn", path)
    assert model.batchable
    images = np.linspace(0.0, 1.0, 3 * 28 * 28, dtype=np.float32).reshape(3, 1, 28, 28)
    together = model.predict({"INPUT": images})["OUTPUT"]
    assert together.shape == (3, 10)
    alone = model.predict({"INPUT": images[2:3]})["OUTPUT"]
    np.testing.assert_allclose(together[2:3], alone, rtol=1e-4, atol=1e-5)
    assert not np.allclose(together[0], together[2])  # the scores depend on the image
