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
