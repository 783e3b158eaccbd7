"""`pipeline|model infer` the way Seldon's CLI users call it: data given positionally or in a
file, `--header`, `--show-headers`, `-i N`, `--inference-mode`, `--inference-host`."""

from __future__ import annotations

import json
import uuid

import pytest

from engine.errors import TensorfluxError
from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors
from tests.gateway.test_client_cli import cli, cli_output

REQUEST = json.dumps(tensors(ONES_TO_16, ONES_TO_16))


def outputs(text: str) -> dict[str, list]:
    return {o["name"]: o["data"] for o in json.loads(text)["outputs"]}


def test_the_request_as_data_or_from_a_file(stack: Stack, capsys, tmp_path) -> None:
    out = cli(stack, capsys, "pipeline", "infer", "tfsimples", REQUEST, "--url", stack.url)
    assert outputs(out)["OUTPUT0"] == DOUBLED
    path = tmp_path / "request.json"
    path.write_text(REQUEST)
    host = stack.url.removeprefix("http://")  # Seldon's --inference-host has no scheme
    out = cli(
        stack, capsys, "pipeline", "infer", "tfsimples", "-f", str(path), "--inference-host", host
    )
    assert outputs(out)["OUTPUT1"] == DOUBLED


def test_the_request_given_twice_or_not_at_all_is_refused(stack: Stack, capsys) -> None:
    with pytest.raises(TensorfluxError, match=r"give the request once.*\(got 2\)"):
        cli(stack, capsys, "pipeline", "infer", "tfsimples", REQUEST, "--inputs", REQUEST)
    with pytest.raises(TensorfluxError, match="give the request once"):
        cli(stack, capsys, "pipeline", "infer", "tfsimples")


def test_headers_go_with_the_request_and_come_back_shown(stack: Stack, capsys) -> None:
    # Seldon addressing by header: a model name that exists nowhere, routed by seldon-model.
    request_id = f"hdr-{uuid.uuid4().hex[:8]}"
    out, err = cli_output(
        stack, capsys, "model", "infer", "no-such-model", REQUEST, "--url", stack.url,
        "--header", "seldon-model=tfsimples.pipeline", "--request-id", request_id,
        "--show-headers",
    )  # fmt: skip
    assert outputs(out)["OUTPUT0"] == DOUBLED
    assert f"x-request-id: {request_id}" in err.splitlines()
    with pytest.raises(TensorfluxError, match="KEY=VALUE"):
        cli(stack, capsys, "pipeline", "infer", "tfsimples", REQUEST, "--header", "oops")


def test_iterations_send_the_request_n_times(stack: Stack, capsys) -> None:
    request_id = f"iter-{uuid.uuid4().hex[:8]}"
    out = cli(
        stack,
        capsys,
        "pipeline",
        "infer",
        "tfsimples",
        REQUEST,
        "--url",
        stack.url,
        "-i",
        "3",
        "--request-id",
        request_id,
    )
    assert outputs(out)["OUTPUT0"] == DOUBLED
    for sent in (request_id, f"{request_id}-1", f"{request_id}-2"):
        rows = json.loads(
            cli(
                stack,
                capsys,
                "pipeline",
                "inspect",
                "tfsimples.outputs",
                "--request-id",
                sent,
                "-o",
                "json",
            )
        )
        assert len(rows) == 1, sent


def test_inference_mode_grpc(stack: Stack, capsys) -> None:
    out = cli(
        stack,
        capsys,
        "pipeline",
        "infer",
        "tfsimples",
        REQUEST,
        "--inference-mode",
        "grpc",
        "--grpc-address",
        stack.grpc_target,
    )
    assert outputs(out)["OUTPUT1"] == DOUBLED
