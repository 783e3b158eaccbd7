"""Model roots: a worker loads artifacts only from allowed directories, and a spec
pointing elsewhere fails without anything under its path being imported."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.runtimes import ModelLoadError, ModelRoots, load_model
from engine.runtimes.roots import ROOTS_VARIABLE, storage_directory
from tests.runtimes.conftest import spec

# Importing this model leaves a file behind: the proof that it was (or was not) run.
MARKING_MODEL = """
import pathlib
pathlib.Path(__file__).with_name("imported").write_text("yes")

class Model:
    def predict(self, inputs):
        return inputs
"""


def _python_model(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.py").write_text(MARKING_MODEL)
    return directory


def _refused(model_spec, roots: ModelRoots) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as caught:
        load_model(model_spec, roots)
    return caught.value


def test_a_model_inside_a_root_loads(tmp_path: Path) -> None:
    model_dir = _python_model(tmp_path / "allowed" / "echo")
    runtime = load_model(spec(model_dir, "python"), ModelRoots.of([tmp_path / "allowed"]))
    try:
        assert (model_dir / "imported").exists()
    finally:
        runtime.close()


def test_a_model_outside_the_roots_is_refused_and_never_imported(tmp_path: Path) -> None:
    evil = _python_model(tmp_path / "elsewhere" / "evil")
    roots = ModelRoots.of([tmp_path / "allowed"])
    error = _refused(spec(evil, "python", name="evil"), roots)
    message = str(error)
    assert "model 'evil'" in message and str(evil) in message
    assert "outside the allowed model roots" in message
    assert str((tmp_path / "allowed").resolve()) in message  # the roots it may use
    assert "--model-root" in message  # how to allow it
    assert not (evil / "imported").exists()


def test_dot_dot_cannot_leave_a_root(tmp_path: Path) -> None:
    (tmp_path / "allowed").mkdir()
    evil = _python_model(tmp_path / "evil")
    sneaky = tmp_path / "allowed" / ".." / "evil"
    _refused(spec(sneaky, "python"), ModelRoots.of([tmp_path / "allowed"]))
    assert not (evil / "imported").exists()


def test_a_symlinked_directory_cannot_leave_a_root(tmp_path: Path) -> None:
    evil = _python_model(tmp_path / "evil")
    (tmp_path / "allowed").mkdir()
    link = tmp_path / "allowed" / "innocent"
    link.symlink_to(evil, target_is_directory=True)
    _refused(spec(link, "python"), ModelRoots.of([tmp_path / "allowed"]))
    assert not (evil / "imported").exists()


def test_a_symlinked_model_file_inside_a_root_cannot_lead_out(tmp_path: Path) -> None:
    evil = _python_model(tmp_path / "evil")
    inside = tmp_path / "allowed" / "m"
    inside.mkdir(parents=True)
    (inside / "model.py").symlink_to(evil / "model.py")
    _refused(spec(inside, "python"), ModelRoots.of([tmp_path / "allowed"]))
    assert not (evil / "imported").exists()


def test_file_uris_are_checked_like_paths(tmp_path: Path) -> None:
    evil = _python_model(tmp_path / "evil")
    _refused(spec(f"file://{evil}", "python"), ModelRoots.of([tmp_path / "allowed"]))
    assert not (evil / "imported").exists()


def test_no_roots_allow_nothing(tmp_path: Path) -> None:
    evil = _python_model(tmp_path / "m")
    error = _refused(spec(evil, "python"), ModelRoots.of([]))
    assert "allowed model roots (none)" in str(error)


def test_configured_roots_come_from_flags_and_environment(tmp_path: Path) -> None:
    env = {ROOTS_VARIABLE: os.pathsep.join([str(tmp_path / "b"), str(tmp_path / "c")])}
    roots = ModelRoots.configured([str(tmp_path / "a")], environ=env)
    assert roots.roots == tuple((tmp_path / n).resolve() for n in "abc")


def test_default_roots_are_the_command_line_specs_directories(tmp_path: Path) -> None:
    model_dir = _python_model(tmp_path / "models" / "echo")
    onnx_file = tmp_path / "other" / "m.onnx"
    specs = [spec(model_dir, "python"), spec(onnx_file, "onnx", name="f")]
    roots = ModelRoots.configured([], specs, environ={})
    assert roots.roots == (model_dir.resolve(), (tmp_path / "other").resolve())
    with_cwd = ModelRoots.configured([], specs, environ={}, include_cwd=True)
    assert Path.cwd().resolve() in with_cwd.roots
    # Named roots replace the defaults rather than add to them.
    assert ModelRoots.configured([str(tmp_path / "x")], specs, environ={}).roots == (
        (tmp_path / "x").resolve(),
    )


def test_storage_directory_of_remote_uris_is_none() -> None:
    assert storage_directory(spec("oip+http://host:8080/m")) is None
    assert storage_directory(spec(None)) is None
