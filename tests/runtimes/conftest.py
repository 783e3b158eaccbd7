"""Fixtures for the runtime tests: the example models and tiny model factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.runtimes import ModelRuntime, load_model
from engine.topology import ModelSpec, SpecSet, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "models"


@pytest.fixture(scope="session")
def example_specs() -> SpecSet:
    return load_files([EXAMPLES])


@pytest.fixture
def example(example_specs: SpecSet) -> Iterator[Callable[[str], ModelRuntime]]:
    """Loads an example model by name (from its YAML); closed after the test."""
    loaded: list[ModelRuntime] = []

    def load(name: str) -> ModelRuntime:
        runtime = load_model(example_specs.models[name])
        loaded.append(runtime)
        return runtime

    yield load
    for runtime in loaded:
        runtime.close()


def spec(path: Path | str | None, *requirements: str, name: str = "m") -> ModelSpec:
    return ModelSpec(
        name=name,
        storage_uri=None if path is None else str(path),
        requirements=requirements,
    )


@pytest.fixture
def python_model(tmp_path: Path) -> Callable[..., ModelRuntime]:
    """Writes `source` as model.py into a fresh directory and loads it."""
    count = 0

    def make(source: str, name: str = "py") -> ModelRuntime:
        nonlocal count
        count += 1
        directory = tmp_path / f"{name}{count}"
        directory.mkdir()
        (directory / "model.py").write_text(source)
        return load_model(spec(directory, "python", name=name))

    return make
