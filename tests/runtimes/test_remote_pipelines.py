"""Pipeline steps whose model is remote, served by a second tensorflux (`tensorflux up` in a
subprocess) over OIP HTTPS and gRPC with TLS (plain HTTP: test_remote_models.py; plain gRPC:
the MLServer tier): the same answers as the local model, batches merged into
one call, and on a worker following the control topic, a host not allowed fails without
connecting, a model not ready yet loads once its server says ready, and a server gone gives
error records while the stream goes on."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine.broker import free_port
from engine.cli.errors import InferenceFailed
from engine.cli.infer import infer_kafka
from engine.config import KafkaSettings
from engine.runtime.control import ControlPlane
from engine.runtime.service import WorkerService
from engine.runtimes import ModelHosts, ModelRoots
from engine.testing import TopologyTestDriver
from tests.gateway.test_security import pki  # noqa: F401 (a fixture: a CA, a server certificate)
from tests.runtimes.oip_stub import Listener, OipStub, StubModel

pytestmark = pytest.mark.broker

DOUBLE = """
import numpy as np

class Model:
    def predict(self, inputs):
        return {"Y": inputs["X"] * 2}
"""

ROWS = """
import numpy as np

class Model:
    def predict(self, inputs):
        rows = inputs["X"].shape[0]
        return {"ROWS": np.full((rows, 1), rows, dtype=np.int64)}
"""


def model_yaml(name: str, uri: str, parameters: dict[str, str] | None = None) -> str:
    listed = "".join(
        f"\n  - name: {key}\n    value: '{value}'" for key, value in (parameters or {}).items()
    )
    extra = f"\n  parameters:{listed}" if listed else ""
    return f"""---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: {uri}{extra}
"""


def pipeline_yaml(name: str, model: str, batch: int | None = None) -> str:
    batched = f"\n    batch:\n      size: {batch}" if batch else ""
    return f"""---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: {name}
spec:
  steps:
  - name: {model}{batched}
  output:
    steps: [{model}]
"""


@dataclass(frozen=True)
class Server:
    http: str
    grpc: str
    models: Path


@pytest.fixture(scope="module")
def server(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    pki: Path,  # noqa: F811
) -> Iterator[Server]:
    """A tensorflux serving `double` and `rows` (python models) over HTTPS and gRPC with TLS,
    its certificate signed by the CA that SSL_CERT_FILE names for the remote models."""
    root = tmp_path_factory.mktemp("remote-server")
    for name, code in (("double", DOUBLE), ("rows", ROWS)):
        (root / name).mkdir()
        (root / name / "model.py").write_text(code)
    (root / "specs.yaml").write_text(
        model_yaml("double", "./double") + model_yaml("rows", "./rows")
    )
    http_port, grpc_port = free_port(), free_port()
    log = (root / "up.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "up", "-f", str(root / "specs.yaml"),
         "--bootstrap", kafka_bootstrap, "--namespace", f"remote{uuid.uuid4().hex[:8]}",
         "--http-port", str(http_port), "--grpc-port", str(grpc_port),
         "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key")],
        cwd=root, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    trusted = pytest.MonkeyPatch()
    trusted.setenv("SSL_CERT_FILE", str(pki / "ca.pem"))
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                ready = [
                    httpx.get(f"https://127.0.0.1:{http_port}/v2/models/{m}/ready", timeout=2)
                    for m in ("double", "rows")
                ]
                if all(reply.status_code == 200 for reply in ready):
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, (root / "up.log").read_text()
            assert time.monotonic() < deadline, (root / "up.log").read_text()
            time.sleep(0.2)
        yield Server(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", root)
    finally:
        trusted.undo()
        process.terminate()
        try:
            process.wait(timeout=60)
        finally:
            process.kill()
            log.close()


@pytest.mark.parametrize(
    ("scheme", "parameters"),
    [("oip+https", {}), ("oip+https", {"binary_data": "true"}), ("oip+grpcs", {})],
    ids=["https-json", "https-binary", "grpcs"],
)
def test_a_remote_step_answers_as_the_local_model(
    server: Server, tmp_path: Path, scheme: str, parameters: dict[str, str]
) -> None:
    address = server.grpc if scheme == "oip+grpcs" else server.http
    (tmp_path / "specs.yaml").write_text(
        model_yaml("double-local", str(server.models / "double"))
        + model_yaml("double-remote", f"{scheme}://{address}/double", parameters)
        + pipeline_yaml("local", "double-local")
        + pipeline_yaml("remote", "double-remote")
    )
    request = {"X": np.array([[1.5, -2.0, 3.25], [0.0, 7.0, -1.0]], dtype=np.float32)}
    with TopologyTestDriver.from_files([tmp_path]) as driver:
        local = driver.output("local", driver.infer("local", request)).arrays()
        answered = driver.output("remote", driver.infer("remote", request))
    assert not answered.is_error, answered.error()
    remote = answered.arrays()
    assert remote["Y"].dtype == local["Y"].dtype == np.float32
    np.testing.assert_array_equal(remote["Y"], local["Y"])


def test_requests_of_a_batch_go_in_one_remote_call(server: Server, tmp_path: Path) -> None:
    (tmp_path / "specs.yaml").write_text(
        model_yaml("rows-remote", f"oip+https://{server.http}/rows", {"max_batch_size": "3"})
        + pipeline_yaml("batched", "rows-remote", batch=3)
    )
    topic = "tensorflux.default.pipeline.batched.inputs"
    with TopologyTestDriver.from_files([tmp_path]) as driver:
        from engine.messages import InferenceMessage, Tensor

        requests = [
            InferenceMessage(
                f"r{i}", (Tensor.from_array("X", np.full((1, 2), i, np.float32)),), "request"
            )  # fmt: skip
            for i in range(3)
        ]
        driver.send_all([(topic, m.id, m, None) for m in requests])
        answers = [driver.output("batched", m.id).arrays()["ROWS"] for m in requests]
    # The server's model saw one request of three rows; each caller got its own row.
    assert [answer.tolist() for answer in answers] == [[[3]], [[3]], [[3]]]


def wait_state(plane: ControlPlane, name: str, state: str, within_s: float = 60.0) -> str:
    deadline = time.monotonic() + within_s
    seen = None
    while time.monotonic() < deadline:
        seen = next((s for s in plane.status() if s.name == name), None)
        if seen is not None and seen.state == state:
            return seen.reason
        time.sleep(0.3)
    raise AssertionError(f"{name} never reached {state}; last status: {seen}")


def test_a_worker_refuses_hosts_not_allowed_retries_a_model_not_ready_and_survives_a_server_gone(
    server: Server, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    stub = OipStub({"double": StubModel(), "late": StubModel(ready=False, reason="warming up")})
    trap = Listener()
    (tmp_path / "specs.yaml").write_text(
        model_yaml("trap", f"oip+http://127.0.0.1:{trap.port}/double")
        + model_yaml("flaky", f"oip+http://127.0.0.1:{stub.port}/double")
        + model_yaml("good", f"oip+grpcs://{server.grpc}/double")
        + model_yaml("late", f"oip+http://127.0.0.1:{stub.port}/late")
        + pipeline_yaml("flaky-p", "flaky")
        + pipeline_yaml("good-p", "good")
    )
    allowed = [server.grpc, f"127.0.0.1:{stub.port}"]
    service = WorkerService(
        kafka_settings, model_roots=ModelRoots.of([]), model_hosts=ModelHosts.of(allowed)
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    plane = ControlPlane(kafka_settings)
    try:
        thread.start()
        plane.load([str(tmp_path / "specs.yaml")])
        reason = wait_state(plane, "trap", "Failed")
        assert f"host 127.0.0.1:{trap.port} is not an allowed model host" in reason
        assert server.grpc in reason and f"127.0.0.1:{stub.port}" in reason
        wait_state(plane, "flaky-p", "Ready")
        wait_state(plane, "good-p", "Ready")
        assert trap.accepted == 0  # nothing connected to the host not allowed
        # A model its server says is not ready is Failed with the server's reason, and
        # loads once the server says ready, with nothing loaded again by hand.
        assert "warming up" in wait_state(plane, "late", "Failed")
        stub.models["late"].ready = True
        wait_state(plane, "late", "Ready")

        stub.stop()  # the flaky model's server goes away after it loaded
        document = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1, 2], "data": [1, 2]}]}
        with pytest.raises(InferenceFailed) as caught:
            infer_kafka(kafka_settings, "pipeline", "flaky-p", document, "gone-1", 60)
        message = str(caught.value)
        assert f"http://127.0.0.1:{stub.port} model 'double'" in message
        assert "unreachable" in message
        # The stream goes on: the other pipeline answers, through its remote gRPC (TLS) model.
        answer = infer_kafka(kafka_settings, "pipeline", "good-p", document, "after-1", 60)
        assert answer["outputs"][0]["data"] == [2.0, 4.0]
    finally:
        stop.set()
        thread.join(30)
        plane.close()
        trap.close()
        stub.stop()
    assert not thread.is_alive(), "worker did not stop"
