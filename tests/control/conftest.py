"""Fixtures for driving a running engine through the CLI, as a user does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.runtime.service import WorkerService
from engine.runtimes import ModelRoots

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def cli(kafka_settings, capsys):
    """Runs `tensorflux ARGS... --bootstrap B --namespace NS`; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(
            [
                *args,
                "--bootstrap",
                kafka_settings.bootstrap,
                "--namespace",
                kafka_settings.namespace,
            ]
        )
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def worker_service(kafka_settings):
    service = WorkerService(
        kafka_settings, worker_id="test-worker", model_roots=ModelRoots.of([EXAMPLES])
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    yield service
    stop.set()
    thread.join(30)
    assert not thread.is_alive(), "worker did not stop"


def wait_for_status(cli, kind: str, name: str, state: str, within_s: float = 30.0) -> str:
    deadline = time.monotonic() + within_s
    out = ""
    while time.monotonic() < deadline:
        code, out, _ = cli(kind, "status", name, "-o", "json")
        if code in (0, 1) and f'"state": "{state}"' in out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"{kind} {name} never reached {state}; last status: {out}")
