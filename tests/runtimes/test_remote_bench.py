"""The remote-model bench's own pieces (bench/remote_bench.py): the specs it writes are
specs tensorflux loads as meant, and its table says which row failed and why. The bench
itself is not a test (`make bench` runs it; no timing is asserted anywhere)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import remote_bench
from bench.mlserver import MLServer
from engine.topology import load_files

SERVER = MLServer(http="127.0.0.1:18080", grpc="127.0.0.1:18081")


@pytest.mark.parametrize("step", remote_bench.STEPS, ids=lambda step: step.label)
def test_each_rows_specs_load_as_a_one_step_pipeline_on_its_model(
    tmp_path: Path, step: remote_bench.Step
) -> None:
    artifact = tmp_path / "iris-sklearn"
    spec_file = tmp_path / "specs.yaml"
    spec_file.write_text(remote_bench.specs_yaml(step, SERVER, artifact))
    specs = load_files([spec_file])
    model = specs.models[remote_bench.MODEL]
    pipeline = specs.pipelines[remote_bench.PIPELINE]
    assert [s.name for s in pipeline.steps] == [remote_bench.MODEL]
    expected = {
        "http": f"oip+http://{SERVER.http}/iris-sklearn",
        "grpc": f"oip+grpc://{SERVER.grpc}/iris-sklearn",
        "in-process": str(artifact),
    }[step.protocol]
    assert model.storage_uri == expected
    assert {p.name: p.value for p in model.parameters} == dict(step.parameters)


def test_the_table_shows_each_rows_figures_and_a_failed_rows_reason() -> None:
    rows = [
        remote_bench.Row("direct HTTP", 70.0, 13.7, 20.5),
        remote_bench.Row("oip+http step", 65.0, 21.0, 30.0, versus=65.0 / 70.0),
        remote_bench.Row("oip+grpc step", float("nan"), failure="12/300 answered"),
    ]
    text = remote_bench.table(rows, quick=True, loads=("1.0 1.0 1.0", "2.0 2.0 2.0"))
    lines = text.splitlines()
    assert "| direct HTTP | 70 | 13.7 | 20.5 |  |" in lines
    assert "| oip+http step | 65 | 21.0 | 30.0 | 0.93× |" in lines
    assert "| oip+grpc step | FAILED: 12/300 answered | | | |" in lines
    assert "- load average before / after: 1.0 1.0 1.0 / 2.0 2.0 2.0" in lines
