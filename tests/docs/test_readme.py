"""The README's tour runs as written: `tensorflux up` with examples/, then each command it shows.

Commands are taken from the README itself, so a claim that stops being true
fails here instead of misleading a user.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.broker import free_port
from engine.codec import decode_json

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """Lines of README code blocks that run the CLI, continuation lines joined."""
    commands = []
    for block in re.findall(r"```\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith(".venv/bin/tensorflux "):
                commands.append(line.split(" #", 1)[0].strip())
    return commands


@pytest.fixture(scope="module")
def engine_cwd(tmp_path_factory):
    """The working directory of `up` and of the replay walkthrough: a user runs both in
    one (the checkout, with `make run`), and `up` allows models under it (model roots)."""
    return tmp_path_factory.mktemp("engine-cwd")


@pytest.fixture(scope="module")
def engine_up(engine_cwd):
    """`tensorflux up -f examples/` on free ports (what `make run` starts), stopped afterwards."""
    broker_port, http_port, grpc_port = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "engine",
            "up",
            "-f",
            str(ROOT / "examples"),
            "--broker-port",
            str(broker_port),
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(grpc_port),
        ],
        cwd=engine_cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("tensorflux up:"), line
        env = {
            **os.environ,
            "TENSORFLUX_BOOTSTRAP": f"127.0.0.1:{broker_port}",
            "TENSORFLUX_GATEWAY_URL": f"http://127.0.0.1:{http_port}",
            "TENSORFLUX_GATEWAY_GRPC": f"127.0.0.1:{grpc_port}",
        }
        _wait_until_ready(env, f"http://127.0.0.1:{http_port}")
        yield env
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=60) == 0
        finally:
            process.kill()


def _wait_until_ready(env: dict[str, str], url: str, within_s: float = 60.0) -> None:
    """Until the gateway answers and every example pipeline is Ready (the tour's first step)."""
    deadline = time.monotonic() + within_s
    states: list[str] = []
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/pipelines/tfsimples/ready", timeout=2).status_code == 200:
                status = subprocess.run(
                    [sys.executable, "-m", "engine", "pipeline", "status", "-o", "json"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                states = [entry["state"] for entry in json.loads(status.stdout or "[]")]
                if states and set(states) == {"Ready"}:
                    return
        except (httpx.HTTPError, json.JSONDecodeError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the engine started by `up` never became ready: {states}")


def test_the_readme_shows_the_cli():
    assert len(readme_commands()) >= 6


@pytest.mark.parametrize("command", readme_commands())
def test_readme_command_runs(engine_up, command):
    argv = [sys.executable, "-m", "engine", *shlex.split(command)[1:]]
    result = subprocess.run(
        argv, cwd=ROOT, env=engine_up, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    if " status" in command:
        assert "Ready" in result.stdout and "Failed" not in result.stdout
    if " infer " in command:
        outputs = {o["name"]: o["data"] for o in json.loads(result.stdout)["outputs"]}
        assert outputs["OUTPUT0"] == list(range(2, 33, 2))
    if " inspect tfsimples --request-id" in command:
        # Every topic the request passed through, the exact model requests included.
        for ref in (
            "step.tfsimple1.inputs",
            "step.tfsimple1.outputs",
            "step.tfsimple2.inputs",
            "step.tfsimple2.outputs",
        ):
            assert ref in result.stdout, result.stdout
        assert "6 record" in result.stdout


def test_readme_curl_example_answers_what_it_says(engine_up):
    block = re.search(
        r"curl -s -X POST (\S+) .*?-d '(.*?)'\n# -> (.*?)\n",
        README.replace("\\\n", " "),
        flags=re.S,
    )
    assert block, "the README's curl example moved; update this test"
    url, body, expected = block.groups()
    url = url.replace("http://127.0.0.1:9000", engine_up["TENSORFLUX_GATEWAY_URL"])
    answer = httpx.post(
        url, content=body, headers={"content-type": "application/json"}, timeout=30
    ).json()
    promised = json.loads(expected.replace('"id":"..."', '"id":"x"'))
    assert answer["outputs"] == promised["outputs"]


def runtime_examples() -> list[tuple[str, str, str]]:
    """(url, body, promised answer) of each curl of the README's "Model runtimes" section."""
    section = README.split("\n## Model runtimes\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block, "the Model runtimes section's example moved; update this test"
    return re.findall(
        r"curl -s -X POST (\S+) .*?-d '(.*?)'\n# -> (.*?)\n",
        block.group(1).replace("\\\n", " "),
        flags=re.S,
    )


def test_readme_runtime_examples_answer_what_they_say(engine_up):
    examples = runtime_examples()
    assert len(examples) == 2
    for url, body, expected in examples:
        url = url.replace("http://127.0.0.1:9000", engine_up["TENSORFLUX_GATEWAY_URL"])
        answer = httpx.post(
            url, content=body, headers={"content-type": "application/json"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        promised = json.loads(expected)["outputs"]
        assert sorted(outputs) == sorted(o["name"] for o in promised)
        for tensor in promised:  # the keys the README shows (it leaves probabilities out)
            assert {k: outputs[tensor["name"]][k] for k in tensor} == tensor


def test_up_serves_prometheus_metrics(engine_up):
    text = httpx.get(engine_up["TENSORFLUX_GATEWAY_URL"] + "/metrics/", timeout=10).text
    assert "tensorflux_records_consumed_total" in text
    assert "tensorflux_model_call_seconds" in text


def test_readme_kcat_example_is_valid_oip_json():
    line = next(line for line in README.splitlines() if line.startswith("echo 'r1:"))
    payload = line.split("r1:", 1)[1].rsplit("'", 1)[0]
    message = decode_json(payload, "request")
    assert message.names() == ("INPUT0", "INPUT1")


def test_readme_driver_example_runs_as_written():
    """The example of "Testing your pipelines without a broker": its asserts are its claims."""
    section = README.split("### Testing your pipelines without a broker", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert code, "the README's test driver example moved; update this test"
    result = subprocess.run(
        [sys.executable, "-c", code.group(1)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_readme_stock_clients_example_runs_as_written(engine_up):
    """The tritonclient example of "Stock clients" (HTTP and gRPC) against `up`."""
    section = README.split("### Stock clients", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert code, "the README's stock clients example moved; update this test"
    http_address = engine_up["TENSORFLUX_GATEWAY_URL"].removeprefix("http://")
    script = code.group(1).replace("127.0.0.1:9000", http_address)
    script = script.replace("127.0.0.1:9500", engine_up["TENSORFLUX_GATEWAY_GRPC"])
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def replay_walkthrough() -> list[str]:
    """The `sh` blocks of the README's Replay section, in order (run as bash scripts)."""
    section = README.split("\n## Replay\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def test_readme_replay_walkthrough_runs_as_written(engine_up, engine_cwd):
    blocks = replay_walkthrough()
    assert len(blocks) == 3, "the Replay section's walkthrough changed; update this test"
    for block in blocks:
        script = block.replace(".venv/bin/", f"{ROOT}/.venv/bin/").replace(
            "http://127.0.0.1:9000", engine_up["TENSORFLUX_GATEWAY_URL"]
        )
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=engine_cwd,
            env=engine_up,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        if "--into tfsimples-v2" in block:
            assert "exit code 1: some answers changed" in result.stdout
            report = json.loads((engine_cwd / "replay-report.json").read_text())
            changed = {f"rec-{i}" for i in range(6, 10)}
            assert changed <= set(report["diff"]["changed_ids"])
            assert not {f"rec-{i}" for i in range(6)} & set(report["diff"]["changed_ids"])
            assert report["diff"]["tensors"]["OUTPUT0"]["max_abs_diff"] >= 8
            assert report["diff"]["first_divergent_step"] == {
                "tfsimple2-v2": report["diff"]["changed"]
            }
            assert (engine_cwd / "replay-report.md").exists()
        if "pipeline trace rec-9" in block:
            assert "rec-9" in result.stdout and "tfsimples.step.tfsimple2.outputs" in result.stdout
