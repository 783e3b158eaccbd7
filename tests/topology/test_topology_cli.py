"""`tensorflux validate` and `tensorflux describe` through the real CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SPECS = [str(EXAMPLES / "models"), str(EXAMPLES / "pipelines")]


def test_validate_prints_one_ok_line_per_resource(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *SPECS]) == 0
    out = capsys.readouterr().out.splitlines()
    assert all(line.startswith("OK ") for line in out)
    assert any(line.startswith("OK Pipeline tfsimples (") for line in out)
    assert any(line.startswith("OK Model tfsimple1 (") for line in out)


def test_validate_reports_every_problem_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: p\n"
        "spec:\n  steps:\n  - name: a\n    inputs: [zz]\n  - name: a\n  output: {steps: [a]}\n"
    )
    assert main(["validate", str(bad)]) == 1
    captured = capsys.readouterr()
    assert "2 problems:" in captured.err
    assert f"{bad}:8: pipeline 'p' step 'a': 'zz' names no step 'zz'" in captured.err
    assert f"{bad}:9: pipeline 'p' step 'a': two steps have this name" in captured.err
    assert "OK Pipeline p" not in captured.out


def test_describe_text_and_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "tfsimples", "-f", *SPECS]) == 0
    assert capsys.readouterr().out.startswith("pipeline tfsimples\n")
    assert main(["describe", "tfsimples", "-f", *SPECS, "--mermaid", "--namespace", "x"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart LR\n")


def test_describe_unknown_pipeline_lists_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["describe", "nope", "-f", *SPECS]) == 1
    err = capsys.readouterr().err
    assert "no pipeline 'nope'" in err and "tfsimples" in err


TWICE = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: twice}
spec:
  steps: [{name: mul10}, {name: add10}]
  output: {steps: [mul10, add10]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: python-clash}
spec:
  steps:
  - name: mul10
  - name: add10
  - name: conditional
    inputs: [mul10.outputs, add10.outputs]
  output: {steps: [conditional]}
"""

INTO_ONNX = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: onnx-clash}
spec:
  steps:
  - name: mul10
  - name: add10
  - name: tfsimple1
    inputs: [mul10.outputs, add10.outputs]
  output: {steps: [tfsimple1]}
"""


def test_validate_warns_of_repeated_output_names_and_refuses_them_into_a_known_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    models = str(EXAMPLES / "models")
    (tmp_path / "twice.yaml").write_text(TWICE)
    assert main(["validate", models, str(tmp_path / "twice.yaml")]) == 0
    captured = capsys.readouterr()
    # mul10 and add10 are ONNX files: validate reads that both answer OUTPUT.
    assert "pipeline 'twice': the pipeline answers two tensors named 'OUTPUT'" in captured.err
    assert "(from 'mul10.outputs' and 'add10.outputs'), in that order" in captured.err
    # A python model declares no inputs: two OUTPUTs into it are only a warning.
    assert "step 'conditional': tensor 'OUTPUT' would reach model 'conditional'" in captured.err
    assert "OK Pipeline twice" in captured.out and "OK Pipeline python-clash" in captured.out

    (tmp_path / "onnx.yaml").write_text(INTO_ONNX)
    assert main(["validate", models, str(tmp_path / "onnx.yaml")]) == 1
    captured = capsys.readouterr()
    assert "1 problem:" in captured.err
    assert (
        f"{tmp_path / 'onnx.yaml'}:10: pipeline 'onnx-clash' step 'tfsimple1': tensor 'OUTPUT' "
        "would reach model 'tfsimple1' from both 'mul10.outputs' and 'add10.outputs'"
    ) in captured.err
