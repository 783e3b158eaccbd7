"""Kafka security passes through to librdkafka: a broker that demands SASL/SCRAM (issue 18).

`tensorflux broker --kafka --sasl-scram USER:PASSWORD` starts one Kafka node whose
only client listener is SASL_PLAINTEXT with SCRAM-SHA-512. A worker given the
credentials in a librdkafka properties file (`--kafka-config`) and `pipeline infer
--kafka` given them as `TENSORFLUX_KAFKA_*` variables answer a request end to end
(the two documented ways, README "Kafka settings"). Without credentials, or with
a wrong password, the client is refused with an error that says what to set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.broker import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
USER, PASSWORD = "tensorflux", f"pw-{uuid.uuid4().hex[:12]}"
CREDENTIALS = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": USER,
    "sasl.password": PASSWORD,
}
ROW = list(range(1, 17))
INPUTS = json.dumps(
    [{"name": n, "datatype": "INT32", "shape": [1, 16], "data": ROW} for n in ("INPUT0", "INPUT1")]
)


@pytest.fixture(scope="module")
def scram_bootstrap() -> Iterator[str]:
    port = free_port()
    broker = subprocess.Popen(
        [sys.executable, "-m", "engine", "broker", "--kafka", "--port", str(port)]
        + ["--sasl-scram", f"{USER}:{PASSWORD}"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        ready = broker.stdout.readline()
        assert f"bootstrap 127.0.0.1:{port} " in ready, ready
        advice = broker.stdout.readline()
        assert "security.protocol=SASL_PLAINTEXT sasl.mechanism=SCRAM-SHA-512" in advice
        assert PASSWORD not in advice  # the password is never printed back
        yield f"127.0.0.1:{port}"
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(60)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def _tensorflux(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=ROOT,
        env={**_without_kafka_variables(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _without_kafka_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TENSORFLUX_KAFKA_")}


def _as_variables(settings: dict[str, str]) -> dict[str, str]:
    return {"TENSORFLUX_KAFKA_" + k.upper().replace(".", "_"): v for k, v in settings.items()}


def test_a_worker_and_pipeline_infer_authenticate_with_scram(scram_bootstrap, tmp_path):
    namespace = f"s{uuid.uuid4().hex[:8]}"
    config = tmp_path / "kafka.properties"
    config.write_text("".join(f"{key}={value}\n" for key, value in CREDENTIALS.items()))
    kafka = ["--bootstrap", scram_bootstrap, "--namespace", namespace]
    worker = subprocess.Popen(
        [sys.executable, "-m", "engine", "worker", *kafka, "--kafka-config", str(config)]
        + ["-f", str(EXAMPLES / "models" / "tfsimple1.yaml")]
        + ["-f", str(EXAMPLES / "pipelines" / "chain-base.yaml")],
        cwd=ROOT,
        env=_without_kafka_variables(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        infer = _tensorflux(
            "pipeline", "infer", "chain-base", "--kafka", *kafka,
            "--inputs", INPUTS, "--timeout", "120",
            env=_as_variables(CREDENTIALS),
        )  # fmt: skip
        assert infer.returncode == 0, infer.stdout + infer.stderr
        outputs = {t["name"]: t["data"] for t in json.loads(infer.stdout)["outputs"]}
        assert outputs["OUTPUT0"] == [2 * v for v in ROW]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    log = worker.stdout.read()
    assert "SASL authentication error" not in log, log


def test_without_credentials_the_client_is_refused_with_a_clear_error(scram_bootstrap):
    kafka = ["--bootstrap", scram_bootstrap, "--namespace", f"s{uuid.uuid4().hex[:8]}"]
    plain = _tensorflux("pipeline", "infer", "chain-base", "--kafka", *kafka, "--inputs", INPUTS)
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert f"cannot reach Kafka at {scram_bootstrap}" in plain.stderr
    assert "demands SASL or TLS" in plain.stderr
    assert "security.protocol" in plain.stderr
    wrong = _tensorflux(
        "pipeline", "status", *kafka,
        env=_as_variables({**CREDENTIALS, "sasl.password": "not-" + PASSWORD}),
    )  # fmt: skip
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert "check the SASL credentials" in wrong.stderr
    assert "not-" + PASSWORD not in wrong.stdout + wrong.stderr
