"""examples/models/build_onnx.py rebuilds the committed .onnx files byte for byte."""

from __future__ import annotations

import importlib.util
from pathlib import Path

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
