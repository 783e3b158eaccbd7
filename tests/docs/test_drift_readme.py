"""The README's "Drift detection" walkthrough runs as written: `up` with the drift
example, 20 normal and 20 drifted requests over HTTP, the detector's answers in `inspect`.

It needs alibi-detect, which needs numpy<2: `make test-alibi` runs it in .venv-alibi
(TENSORFLUX_REQUIRE_ALIBI set: a missing alibi-detect fails instead of skipping).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.broker import free_port

if not os.environ.get("TENSORFLUX_REQUIRE_ALIBI"):
    pytest.importorskip(
        "alibi_detect",
        reason="alibi-detect needs numpy<2 and is not in this venv; `make test-alibi` runs this",
    )

ROOT = Path(__file__).resolve().parents[2]
SECTION = (
    (ROOT / "README.md").read_text().split("\n## Drift detection\n", 1)[1].split("\n## ", 1)[0]
)
BLOCKS = re.findall(r"```sh\n(.*?)```", SECTION, flags=re.S)
VENV = ".venv-alibi/bin/"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The section's `up` command on free ports; its environment for the CLI."""
    assert len(BLOCKS) == 2, "the Drift detection section changed; update this test"
    up = next(line for line in BLOCKS[0].splitlines() if line.startswith(f"{VENV}tensorflux up"))
    broker_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "engine", *shlex.split(up)[1:]]
    argv += ["--broker-port", str(broker_port), "--http-port", str(http_port)]
    process = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    url = f"http://127.0.0.1:{http_port}"
    env = {
        **os.environ,
        "TENSORFLUX_BOOTSTRAP": f"127.0.0.1:{broker_port}",
        "TENSORFLUX_GATEWAY_URL": url,
    }
    try:
        _wait_ready(f"{url}/v2/pipelines/iris-monitored/ready")
        yield env
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=60) == 0
        finally:
            process.kill()


def _wait_ready(url: str, within_s: float = 120.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never answered 200")


def _run(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = command.replace(VENV, f"{Path(sys.executable).parent}/").replace(
        "http://127.0.0.1:9000", env["TENSORFLUX_GATEWAY_URL"]
    )
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_drift_walkthrough_answers_as_the_readme_says(engine: dict[str, str]) -> None:
    lines = BLOCKS[1].replace("\\\n", " ").splitlines()
    inspects = [(i, line) for i, line in enumerate(lines) if line.startswith(f"{VENV}tensorflux")]
    sending = "\n".join(lines[: inspects[0][0]])
    result = _run(sending, engine)
    assert result.returncode == 0, f"{sending}\n{result.stdout}\n{result.stderr}"
    promised = [
        (line, json.loads(lines[i + 1].removeprefix("# -> ")))
        for i, line in inspects
        if i + 1 < len(lines) and lines[i + 1].startswith("# -> ")
    ]
    assert [p["data"] for _, p in promised] == [[0], [1]]
    for command, tensor in promised:
        # The detector answers once its batch is complete, just after the pipeline
        # answered the 20th request: ask again until its record is there.
        deadline = time.monotonic() + 60
        while True:
            result = _run(command, engine)
            assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
            rows = json.loads(result.stdout)
            if rows or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert len(rows) == 1, f"{command}: {rows}"
        assert rows[0]["message"]["outputs"] == [
            {key: tensor[key] for key in ("name", "shape", "datatype", "data")}
        ]
    table = _run(inspects[-1][1], engine)
    assert table.returncode == 0 and "threshold" in table.stdout and "p_val" in table.stdout
