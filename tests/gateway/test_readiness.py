"""Readiness as the Open Inference Protocol says: the status code answers (200 ready,
503 not), server readiness waits for every Pending or Loading resource, and stock
`tritonclient` reads it so."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import tritonclient.http as triton

from engine.broker import free_port
from engine.config import KafkaSettings
from engine.gateway import ModelInfo, PipelineInfo, StaticCatalog, run_gateway

pytestmark = pytest.mark.broker


def pipeline(name: str, state: str, reason: str = "") -> PipelineInfo:
    return PipelineInfo(name, f"t.{name}.inputs", f"t.{name}.outputs", state=state, reason=reason)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def served(kafka_bootstrap: str) -> Iterator[tuple[str, StaticCatalog]]:
    settings = KafkaSettings(bootstrap=kafka_bootstrap, namespace="readiness", partitions=1)
    catalog = StaticCatalog(
        pipelines={"slow": pipeline("slow", "Loading"), "broken": pipeline("broken", "Failed", "no model 'x'")},
        models={"m": ModelInfo("m", "t.m.inputs", "t.m.outputs", state="Pending")},
    )  # fmt: skip
    port, stop = free_port(), threading.Event()
    thread = threading.Thread(
        target=run_gateway, args=(settings, catalog, "127.0.0.1", port, stop), daemon=True
    )
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield url, catalog
    finally:
        stop.set()
        thread.join(10)


def wait_router(url: str) -> httpx.Response:
    """The reply consumer starts with the app; until it runs the answer is 503 too."""
    deadline = time.monotonic() + 20
    while True:
        reply = httpx.get(f"{url}/v2/health/ready", timeout=5)
        if "reply consumer" not in reply.text or time.monotonic() > deadline:
            return reply
        time.sleep(0.05)


def test_not_ready_while_loading_then_ready(served) -> None:
    url, catalog = served
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    reply = wait_router(url)
    assert reply.status_code == 503
    assert reply.json()["ready"] is False
    assert "pipeline 'slow' (Loading)" in reply.json()["error"]
    assert "model 'm' (Pending)" in reply.json()["error"]
    assert "broken" not in reply.json()["error"]  # Failed does not hold the server back
    # The load balancer's probe: this gateway serves, whatever is still loading.
    serving = httpx.get(f"{url}/v2/health/gateway", timeout=5)
    assert (serving.status_code, serving.json()) == (200, {"ready": True})
    assert client.is_server_live()
    assert not client.is_server_ready()
    assert not client.is_model_ready("slow")
    assert not client.is_model_ready("m")
    assert not client.is_model_ready("broken")
    reply = httpx.get(f"{url}/v2/pipelines/slow/ready", timeout=5)
    assert (reply.status_code, reply.json()) == (503, {"name": "slow", "ready": False})

    catalog.pipelines["slow"] = replace(catalog.pipelines["slow"], state="Ready")  # type: ignore[index]
    assert client.is_model_ready("slow")
    assert not client.is_server_ready()  # model 'm' still Pending
    catalog.models["m"] = replace(catalog.models["m"], state="Ready")  # type: ignore[index]
    assert client.is_server_ready()
    assert client.is_model_ready("m")
    assert httpx.get(f"{url}/v2/health/ready", timeout=5).json() == {"ready": True}
    assert httpx.get(f"{url}/v2/models/nope/ready", timeout=5).status_code == 404


SLOW_MODEL = """
import pathlib
import time

import numpy as np


class Model:
    def load(self):
        # Loads only once the test lets it: "while loading" is then sure, not timed.
        gate = pathlib.Path(__file__).with_name("go")
        while not gate.exists():
            time.sleep(0.05)

    def predict(self, inputs):
        return {"Y": np.asarray(inputs["X"]) * 2}
"""

SLOW_SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: slow
spec:
  storageUri: ./slow
  requirements: [python]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: slow-pipeline
spec:
  steps:
  - name: slow
  output:
    steps: [slow]
"""


def test_up_is_not_ready_until_its_models_load(kafka_bootstrap: str, tmp_path) -> None:
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "model.py").write_text(SLOW_MODEL)
    (tmp_path / "specs.yaml").write_text(SLOW_SPECS)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "up", "-f", str(tmp_path), "--bootstrap", kafka_bootstrap,
         "--namespace", f"ready{uuid.uuid4().hex[:8]}", "--http-port", str(port)],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if client.is_server_live():
                    break
            except Exception:
                assert time.monotonic() < deadline, "the gateway of `up` never answered"
                time.sleep(0.1)
        reply = wait_router(url)
        assert reply.status_code == 503, reply.text
        assert not client.is_server_ready()
        assert not client.is_model_ready("slow-pipeline")
        (tmp_path / "slow" / "go").touch()
        deadline = time.monotonic() + 60
        while not client.is_server_ready():
            assert time.monotonic() < deadline, httpx.get(f"{url}/v2/health/ready").text
            time.sleep(0.1)
        assert client.is_model_ready("slow-pipeline") and client.is_model_ready("slow")
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
