"""`pipeline inspect` the way Seldon's CLI users call it: `--format raw`, `-t`, `--follow`."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import uuid

import pytest

from tests.gateway.conftest import ONES_TO_16, Stack
from tests.gateway.test_client_cli import cli, send


def test_raw_is_one_line_a_record_with_topic_and_request_id(stack: Stack, capsys) -> None:
    request_id = f"raw-{uuid.uuid4().hex}"
    send(stack, request_id, ONES_TO_16, ONES_TO_16)
    out = cli(
        stack,
        capsys,
        "pipeline",
        "inspect",
        "tfsimples.outputs",
        "--request-id",
        request_id,
        "--format",
        "raw",
    )
    lines = out.strip().splitlines()
    assert len(lines) == 1
    topic, key, body = lines[0].split("\t")
    assert topic == stack.settings.topics().pipeline_outputs("tfsimples")
    assert key == request_id
    outputs = {t["name"]: t["data"] for t in json.loads(body)["outputs"]}
    assert outputs["OUTPUT0"] == [2 * v for v in ONES_TO_16]


def test_truncate_keeps_eight_values_and_says_how_many_there_were(stack: Stack, capsys) -> None:
    request_id = f"trunc-{uuid.uuid4().hex}"
    send(stack, request_id, ONES_TO_16, ONES_TO_16)
    rows = json.loads(
        cli(
            stack,
            capsys,
            "pipeline",
            "inspect",
            "tfsimples.outputs.OUTPUT0",
            "--request-id",
            request_id,
            "-o",
            "json",
            "-t",
        )
    )
    (tensor,) = rows[0]["message"]["outputs"]
    assert tensor["data"] == [2, 4, 6, 8, 10, 12, 14, 16]
    assert tensor["data_length"] == 16 and tensor["shape"] == [1, 16]


def test_follow_prints_records_as_they_come_and_stops_on_sigterm(stack: Stack) -> None:
    kafka = ["--bootstrap", stack.settings.bootstrap, "--namespace", stack.settings.namespace]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "pipeline",
            "inspect",
            "tfsimples.outputs",
            "--follow",
            "-o",
            "json",
            "-n",
            "0",
            *kafka,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in process.stdout], daemon=True
    ).start()
    try:
        request_id = f"follow-{uuid.uuid4().hex}"
        seen = None
        for _attempt in range(30):  # until the follower is reading: it missed the earlier ones
            send(stack, f"{request_id}-{_attempt}", ONES_TO_16, ONES_TO_16)
            try:
                seen = json.loads(lines.get(timeout=2))
                break
            except queue.Empty:
                continue
        assert seen is not None, "inspect --follow printed nothing"
        assert seen["key"].startswith(request_id) and seen["topic"].endswith("tfsimples.outputs")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()


@pytest.mark.parametrize("flag", ["--format", "-o"])
def test_an_unknown_format_is_refused_naming_the_choices(flag: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine", "pipeline", "inspect", "p", flag, "yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "choose from 'table', 'json', 'raw'" in result.stderr
