"""A real MLServer from `.venv-mlserver` (`make .venv-mlserver/.installed`), serving a directory
of MLServer model directories on free ports until the block ends.

The MLServer tests (tests/runtimes/test_mlserver_remote.py) and the remote-model bench
(bench/remote_bench.py) both start it here. MLServer pins its own FastAPI, so it lives
in a venv of its own and runs as a subprocess of the caller.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.broker import free_port

ROOT = Path(__file__).resolve().parents[1]
MLSERVER = ROOT / ".venv-mlserver" / "bin" / "mlserver"
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class MLServer:
    http: str
    """HOST:PORT of its HTTP (REST) endpoint."""
    grpc: str
    """HOST:PORT of its gRPC endpoint."""


def version() -> str:
    """The installed MLServer's version, from its dist-info ("" when it is not installed)."""
    found = sorted((ROOT / ".venv-mlserver").glob("lib/python*/site-packages/mlserver-*.dist-info"))
    return found[0].name.removeprefix("mlserver-").removesuffix(".dist-info") if found else ""


@contextlib.contextmanager
def serve(models: Path, ready_model: str, log: Path) -> Iterator[MLServer]:
    """MLServer serving every model directory under `models`, once it says `ready_model` is
    ready; stopped (SIGTERM, then SIGKILL after 30 s) when the block ends. Raises
    RuntimeError with the end of its log when it exits or is not ready within 120 s."""
    if not MLSERVER.exists():
        raise FileNotFoundError(f"{MLSERVER} does not exist (make .venv-mlserver/.installed)")
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "MLSERVER_HTTP_PORT": str(http_port),
        "MLSERVER_GRPC_PORT": str(grpc_port),
        "MLSERVER_METRICS_PORT": str(metrics_port),
        "MLSERVER_PARALLEL_WORKERS": "0",  # the model in the server's process: a faster start
        "MLSERVER_HOST": "127.0.0.1",
    }
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(MLSERVER), "start", str(models)], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{http_port}/v2/models/{ready_model}/ready"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                said = "exited" if process.poll() is not None else "was not ready in time"
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"MLServer {said} (log {log}):\n{tail}")
            time.sleep(0.3)
        yield MLServer(f"127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
