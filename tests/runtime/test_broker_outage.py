"""Broker outage (issue 18): the embedded broker stopped and started again on its port
under a running `tensorflux up --bootstrap`.

While Kafka is unreachable the gateway answers 503 (OIP JSON error) and its probe
fails; when it is back, the engine recreates the topics it uses and inference
recovers with no restart. The broker kept nothing: the specs are loaded again as a
user would, and `status` then shows the model Ready on the worker that reconnected.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from engine.broker import EmbeddedBroker, free_port
from tests.gateway.conftest import ECHO_MODEL, ECHO_SPECS

pytestmark = pytest.mark.broker

RECOVERY_S = 150.0
"""A worker caught in a delivery flush when Kafka went waits that flush out (30 s, and
once more for the revoked partitions' commit) before it recovers."""

BODY = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [1], "data": [1.0]}]}


def _until(
    what: str,
    check: Callable[[], bool],
    log: Path,
    within_s: float = 60.0,
    last: list[httpx.Response] | None = None,
) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        answer = last[-1].text if last else ""
        assert time.monotonic() < deadline, f"never {what} ({answer}): {log.read_text()[-3000:]}"
        time.sleep(0.2)


def _infer(url: str) -> httpx.Response | None:
    try:
        return httpx.post(f"{url}/v2/models/echo/infer", json=BODY, timeout=40)
    except httpx.HTTPError:
        return None


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engine", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.timeout(300)
def test_the_engine_survives_the_broker_restarting(tmp_path: Path) -> None:
    (tmp_path / "echo").mkdir()
    (tmp_path / "echo" / "model.py").write_text(ECHO_MODEL)
    (tmp_path / "echo.yaml").write_text(ECHO_SPECS)
    broker = EmbeddedBroker(port=free_port()).start()
    port, log = free_port(), tmp_path / "up.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "up", "-f", str(tmp_path), "--bootstrap", broker.bootstrap,
             "--http-port", str(port), "--shutdown-grace", "2"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _until("served", lambda: (r := _infer(url)) is not None and r.status_code == 200, log)
        broker.stop()
        answers: list[httpx.Response] = []
        _until("503", lambda: (r := _infer(url)) is not None and answers.append(r) is None and r.status_code == 503, log)  # fmt: skip
        assert "unreachable" in answers[-1].json()["error"], answers[-1].text
        assert httpx.get(f"{url}/v2/health/gateway", timeout=10).status_code == 503
        # Back only once the worker said so too (its loop may be in a flush meanwhile).
        _until("seen by the worker", lambda: "unreachable; waiting for it" in log.read_text(), log)  # fmt: skip
        broker = EmbeddedBroker(port=broker.port).start()  # same port, nothing kept
        _until("recovered", lambda: (r := _infer(url)) is not None and answers.append(r) is None and r.status_code == 200, log, within_s=RECOVERY_S, last=answers)  # fmt: skip
        assert httpx.get(f"{url}/v2/health/gateway", timeout=10).status_code == 200
        text = log.read_text()
        assert re.search(r"worker \S+: Kafka at \S+ reachable again after", text), text
        assert "unreachable: answering 503 until it is back" in text, text
        # What a user does after a broker that kept nothing: load the specs again.
        loaded = _cli("model", "load", "-f", str(tmp_path), "--bootstrap", broker.bootstrap, cwd=tmp_path)  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr
        shown = _cli("model", "status", "echo", "-w", "--timeout", "60", "-o", "json", "--bootstrap", broker.bootstrap, cwd=tmp_path)  # fmt: skip
        assert shown.returncode == 0, shown.stdout + shown.stderr
        (status,) = json.loads(shown.stdout)
        assert status["state"] == "Ready" and status["workers"], status
        process.terminate()
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        broker.stop()
    assert "Traceback" not in log.read_text(), log.read_text()
