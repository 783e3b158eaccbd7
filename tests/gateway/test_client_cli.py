"""`pipeline|model infer` and `pipeline inspect` against the shared worker and gateway.

The parser is built from engine.cli.client's register functions, as
engine.cli.resources does for the `pipeline` and `model` groups.
"""

from __future__ import annotations

import argparse
import json
import uuid

import httpx
import pytest

from engine.cli import client
from engine.cli.inspect import parse_time
from engine.errors import TensorfluxError
from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors


def cli(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Runs `tensorflux ARGV...` on the stack's broker; its stdout."""
    return cli_output(stack, capsys, *argv)[0]


def cli_output(stack: Stack, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Runs `tensorflux ARGV...` on the stack's broker; its stdout and stderr."""
    parser = argparse.ArgumentParser(prog="tensorflux")
    groups = parser.add_subparsers(dest="command", required=True)
    for kind, register in (
        ("pipeline", client.register_pipeline),
        ("model", client.register_model),
    ):
        register(groups.add_parser(kind).add_subparsers(dest=f"{kind}_command", required=True))
    kafka = ["--bootstrap", stack.settings.bootstrap, "--namespace", stack.settings.namespace]
    args = parser.parse_args([*argv, *kafka])
    capsys.readouterr()
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def send(stack: Stack, request_id: str, a: list[int], b: list[int]) -> None:
    reply = httpx.post(
        f"{stack.url}/v2/pipelines/tfsimples/infer",
        json=tensors(a, b),
        headers={"x-request-id": request_id},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text


def test_pipeline_infer_over_http_and_kafka(stack: Stack, capsys, tmp_path) -> None:
    request = json.dumps(tensors(ONES_TO_16, ONES_TO_16))
    out = cli(
        stack, capsys, "pipeline", "infer", "tfsimples", "--inputs", request, "--url", stack.url
    )
    assert {o["name"]: o["data"] for o in json.loads(out)["outputs"]}["OUTPUT0"] == DOUBLED

    path = tmp_path / "request.json"
    path.write_text(json.dumps(tensors(ONES_TO_16, ONES_TO_16)["inputs"]))  # a bare list works
    out = cli(stack, capsys, "pipeline", "infer", "tfsimples", "--inputs", f"@{path}", "--kafka")
    assert {o["name"]: o["data"] for o in json.loads(out)["outputs"]}["OUTPUT1"] == DOUBLED

    out = cli(stack, capsys, "model", "infer", "tfsimple1", "--inputs", request, "--kafka")
    assert {o["name"]: o["data"] for o in json.loads(out)["outputs"]}["OUTPUT1"] == [0] * 16


def test_infer_failures_are_one_line_errors(stack: Stack, capsys) -> None:
    request = json.dumps(tensors(ONES_TO_16, ONES_TO_16))
    with pytest.raises(TensorfluxError, match="404"):
        cli(stack, capsys, "pipeline", "infer", "nope", "--inputs", request, "--url", stack.url)
    body = json.dumps({"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}]})
    with pytest.raises(TensorfluxError, match="boom: this model always fails"):
        cli(stack, capsys, "model", "infer", "boom", "--inputs", body, "--kafka")
    with pytest.raises(TensorfluxError, match="not JSON"):
        cli(stack, capsys, "model", "infer", "boom", "--inputs", "{x", "--url", stack.url)


def test_inspect_shows_every_step_of_one_request(stack: Stack, capsys) -> None:
    request_id = f"inspect-{uuid.uuid4().hex}"
    send(stack, request_id, ONES_TO_16, [1] * 16)
    send(stack, f"other-{uuid.uuid4().hex}", ONES_TO_16, ONES_TO_16)

    rows = json.loads(
        cli(
            stack,
            capsys,
            "pipeline",
            "inspect",
            "tfsimples",
            "--request-id",
            request_id,
            "-o",
            "json",
        )
    )
    assert [r["ref"] for r in rows] == [
        "inputs",
        "step.tfsimple1.inputs",
        "step.tfsimple1.outputs",
        "step.tfsimple2.inputs",
        "step.tfsimple2.outputs",
        "outputs",
    ]
    assert {r["key"] for r in rows} == {request_id}
    by_ref = {r["ref"]: r["message"] for r in rows}
    tensors_of = lambda ref, key: {t["name"]: t["data"] for t in by_ref[ref][key]}  # noqa: E731
    assert tensors_of("step.tfsimple1.inputs", "inputs")["INPUT1"] == [1] * 16
    assert tensors_of("step.tfsimple1.outputs", "outputs")["OUTPUT1"] == [i - 1 for i in ONES_TO_16]
    assert tensors_of("outputs", "outputs")["OUTPUT1"] == [2] * 16

    table = cli(stack, capsys, "pipeline", "inspect", "tfsimples", "--request-id", request_id, "-v")
    for ref in ("step.tfsimple1.inputs", "step.tfsimple2.outputs", "OUTPUT0", "x-request-id"):
        assert ref in table


def test_inspect_a_tensor_the_last_records_and_from_an_offset(stack: Stack, capsys) -> None:
    ids = [f"last-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
    for index, request_id in enumerate(ids):
        send(stack, request_id, ONES_TO_16, [index] * 16)
    ref = "tfsimples.step.tfsimple1.outputs.OUTPUT1"
    rows = json.loads(cli(stack, capsys, "pipeline", "inspect", ref, "-n", "2", "-o", "json"))
    assert [r["key"] for r in rows] == ids[1:]
    # Seldon's spelling: --offset N is the last N, --format json the JSON output.
    seldon = cli(stack, capsys, "pipeline", "inspect", ref, "--offset", "2", "--format", "json")
    assert json.loads(seldon) == rows
    assert [t["name"] for r in rows for t in r["message"]["outputs"]] == ["OUTPUT1", "OUTPUT1"]

    first = rows[0]["offset"]
    rows = json.loads(
        cli(
            stack,
            capsys,
            "pipeline",
            "inspect",
            "tfsimples.step.tfsimple1",
            "--from-offset",
            str(first),
            "-o",
            "json",
        )
    )
    assert [r["key"] for r in rows if r["ref"].endswith("outputs")] == ids[1:]

    rows = json.loads(
        cli(
            stack,
            capsys,
            "pipeline",
            "inspect",
            "tfsimples.outputs",
            "--from-time",
            "1h",
            "-o",
            "json",
        )
    )
    assert set(ids) <= {r["key"] for r in rows}


def test_inspect_shows_error_records(stack: Stack, capsys) -> None:
    request_id = f"err-{uuid.uuid4().hex}"
    httpx.post(
        f"{stack.url}/v2/pipelines/boom-pipeline/infer",
        json={"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1]}]},
        headers={"x-request-id": request_id},
        timeout=30,
    )
    rows = json.loads(
        cli(
            stack,
            capsys,
            "pipeline",
            "inspect",
            "boom-pipeline",
            "--request-id",
            request_id,
            "-o",
            "json",
        )
    )
    errors = [r for r in rows if "error" in r]
    assert errors and "boom: this model always fails" in errors[0]["error"]["reason"]


def test_inspect_names_what_exists(stack: Stack, capsys) -> None:
    with pytest.raises(TensorfluxError, match="tfsimples"):
        cli(stack, capsys, "pipeline", "inspect", "nope")
    with pytest.raises(TensorfluxError, match="tfsimple1"):
        cli(stack, capsys, "pipeline", "inspect", "tfsimples.step.nope")


def test_parse_time() -> None:
    assert parse_time("1700000000000") == 1700000000000
    assert parse_time("10m", now_ms=1_000_000) == 400_000
    assert parse_time("2023-11-14T22:13:20+00:00") == 1700000000000
    with pytest.raises(TensorfluxError, match="ISO 8601"):
        parse_time("yesterday")


def test_pipeline_and_model_infer_over_grpc(stack: Stack, capsys) -> None:
    request = json.dumps({**tensors(ONES_TO_16, ONES_TO_16), "id": "cli-grpc"})
    grpc = ["--grpc", "--grpc-address", stack.grpc_target]
    out = json.loads(
        cli(stack, capsys, "pipeline", "infer", "tfsimples", "--inputs", request, *grpc)
    )
    assert out["id"] == "cli-grpc" and out["model_name"] == "tfsimples"
    assert {o["name"]: o["data"] for o in out["outputs"]} == {
        "OUTPUT0": DOUBLED,
        "OUTPUT1": DOUBLED,
    }
    out = json.loads(cli(stack, capsys, "model", "infer", "tfsimple1", "--inputs", request, *grpc))
    assert {o["name"]: o["data"] for o in out["outputs"]}["OUTPUT1"] == [0] * 16
    with pytest.raises(TensorfluxError, match="answered NOT_FOUND: no model"):
        cli(stack, capsys, "model", "infer", "nope", "--inputs", request, *grpc)
