"""load_model: choosing the runtime, and a ModelLoadError naming model, path and cause."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.errors import TensorfluxError
from engine.runtimes import ModelLoadError, OnnxModel, PythonModel, load_model
from tests.runtimes.conftest import EXAMPLES, spec

GOOD_PY = "class Model:\n    def predict(self, inputs):\n        return inputs\n"


def _load_error(
    path: Path | str | None, *requirements: str, name: str = "broken"
) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load_model(spec(path, *requirements, name=name))
    error = caught.value
    assert isinstance(error, TensorfluxError)
    assert error.model == name and f"model {name!r}" in str(error)
    if path is not None:
        assert str(path) in str(error)
    return error


def _onnx_copy(directory: Path, filename: str = "model.onnx") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(EXAMPLES / "add10" / "model.onnx", directory / filename))


# --- choosing the runtime -------------------------------------------------------------


def test_requirement_picks_runtime(tmp_path: Path) -> None:
    _onnx_copy(tmp_path)
    (tmp_path / "model.py").write_text(GOOD_PY)
    assert isinstance(load_model(spec(tmp_path, "onnx")), OnnxModel)
    assert isinstance(load_model(spec(tmp_path, "python")), PythonModel)


@pytest.mark.parametrize("requirements", [(), ("sklearn",)])
def test_runtime_inferred_from_contents(tmp_path: Path, requirements: tuple[str, ...]) -> None:
    _onnx_copy(tmp_path / "o", "whatever.onnx")
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "model.py").write_text(GOOD_PY)
    assert isinstance(load_model(spec(tmp_path / "o", *requirements)), OnnxModel)
    assert isinstance(load_model(spec(tmp_path / "p", *requirements)), PythonModel)


def test_onnx_file_itself_and_file_uri(tmp_path: Path) -> None:
    path = _onnx_copy(tmp_path, "add.onnx")
    assert isinstance(load_model(spec(path)), OnnxModel)
    assert isinstance(load_model(spec(f"file://{tmp_path}", "onnx")), OnnxModel)


# --- every cause of a ModelLoadError --------------------------------------------------


def test_no_storage_uri() -> None:
    assert "no storageUri" in str(_load_error(None, "onnx"))


def test_remote_storage_uri() -> None:
    assert "only local paths" in str(_load_error("gs://seldon-models/tfsimple1", "onnx"))


def test_missing_directory(tmp_path: Path) -> None:
    assert "no such file or directory" in str(_load_error(tmp_path / "nope", "onnx"))


def test_no_onnx_file(tmp_path: Path) -> None:
    assert "no model.onnx" in str(_load_error(tmp_path, "onnx"))


def test_several_onnx_files_without_model_onnx(tmp_path: Path) -> None:
    _onnx_copy(tmp_path, "a.onnx")
    _onnx_copy(tmp_path, "b.onnx")
    message = str(_load_error(tmp_path, "onnx"))
    assert "a.onnx" in message and "b.onnx" in message


def test_bad_onnx(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"this is not a protobuf")
    assert "onnxruntime cannot open it" in str(_load_error(tmp_path, "onnx"))


def test_no_model_file_to_infer_from(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("nothing here")
    message = str(_load_error(tmp_path))
    assert "no model file" in message and "onnx, python" in message


def test_ambiguous_contents(tmp_path: Path) -> None:
    _onnx_copy(tmp_path)
    (tmp_path / "model.py").write_text(GOOD_PY)
    assert "requirements: [onnx] or [python]" in str(_load_error(tmp_path))


def test_both_requirements(tmp_path: Path) -> None:
    _onnx_copy(tmp_path)
    assert "both onnx and python" in str(_load_error(tmp_path, "onnx", "python"))


def test_no_model_py(tmp_path: Path) -> None:
    assert "no model.py" in str(_load_error(tmp_path, "python"))


def test_model_py_import_error(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import numpy\nraise ImportError('needs torch 9')\n")
    message = str(_load_error(tmp_path, "python"))
    assert "importing model.py raised" in message and "needs torch 9" in message


def test_model_py_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("class Model(:\n")
    assert "SyntaxError" in str(_load_error(tmp_path, "python"))


def test_model_py_system_exit_does_not_stop_the_engine(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("import sys\nsys.exit(3)\n")
    assert "SystemExit" in str(_load_error(tmp_path, "python"))


def test_no_class_model(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("def predict(inputs):\n    return inputs\n")
    assert "no class Model" in str(_load_error(tmp_path, "python"))


def test_load_raising(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text(
        "class Model:\n"
        "    def load(self):\n"
        "        raise FileNotFoundError('weights.bin is missing')\n"
        "    def predict(self, inputs):\n"
        "        return inputs\n"
    )
    message = str(_load_error(tmp_path, "python"))
    assert "load() raised" in message and "weights.bin is missing" in message


def test_no_predict(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("class Model:\n    pass\n")
    assert "no predict" in str(_load_error(tmp_path, "python"))
