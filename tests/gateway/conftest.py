"""A worker and a gateway on the embedded broker, shared by a module's tests.

Each test uses its own request ids, so sharing one worker (whose first group
join costs seconds) stays correct.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from engine.broker import free_port
from engine.config import KafkaSettings
from engine.gateway import StaticCatalog, run_gateway
from engine.runtime.worker import Worker
from engine.topology import TopicNames, Topology, compile_topology, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

BOOM_MODEL = """
import numpy as np


class Model:
    def predict(self, inputs):
        raise ValueError("boom: this model always fails")
"""

BOOM_SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: boom
spec:
  storageUri: ./boom
  requirements:
  - python
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: boom-pipeline
spec:
  steps:
  - name: boom
  output:
    steps:
    - boom
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: both-outputs
spec:
  steps:  # both read the pipeline's INPUT and answer OUTPUT: two tensors of one name
  - name: mul10
  - name: add10
  output:
    steps:
    - mul10
    - add10
"""


ECHO_MODEL = """
class Model:
    def predict(self, inputs):
        return dict(inputs)
"""

ECHO_SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: echo
spec:
  storageUri: ./echo
  requirements:
  - python
"""


@dataclass
class Stack:
    settings: KafkaSettings
    topology: Topology
    catalog: StaticCatalog
    url: str
    spec_dirs: list[str]
    grpc_target: str = ""
    """host:port of the same gateway's OIP gRPC service."""


def write_boom_specs(directory: Path) -> None:
    (directory / "boom").mkdir()
    (directory / "boom" / "model.py").write_text(BOOM_MODEL)
    (directory / "boom.yaml").write_text(BOOM_SPECS)
    # `echo` answers with its inputs: any datatype round-trips through a real model.
    (directory / "echo").mkdir()
    (directory / "echo" / "model.py").write_text(ECHO_MODEL)
    (directory / "echo.yaml").write_text(ECHO_SPECS)


def wait_ready(url: str, timeout_s: float = 90.0) -> None:
    # Generous: at load average ~20 (CI beside other work) two gateway processes
    # starting at once were seen to need over 30 s. A ready gateway returns at once.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"gateway at {url} not ready after {timeout_s}s")


def tensors(a: list[int], b: list[int]) -> dict:
    return {
        "inputs": [
            {"name": "INPUT0", "datatype": "INT32", "shape": [1, len(a)], "data": a},
            {"name": "INPUT1", "datatype": "INT32", "shape": [1, len(b)], "data": b},
        ]
    }


ONES_TO_16 = list(range(1, 17))
DOUBLED = [2 * i for i in ONES_TO_16]


@pytest.fixture(scope="module")
def stack_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(  # one partition a topic: lean on the broker (see tests/conftest.py)
        bootstrap=kafka_bootstrap, namespace=f"gw{uuid.uuid4().hex[:10]}", partitions=1
    )


@pytest.fixture(scope="module")
def start_gateway(
    stack_settings: KafkaSettings,
) -> Iterator[Callable[..., str]]:
    """Starts an in-process gateway (uvicorn in a thread) and returns its URL."""
    stops: list[tuple[threading.Event, threading.Thread]] = []

    def start(
        catalog: StaticCatalog,
        timeout_s: float = 20.0,
        grpc_port: int | None = None,
        **options: object,
    ) -> str:
        """`options`: run_gateway's other keywords (max_request_bytes, ...)."""
        port = free_port()
        stop = threading.Event()
        thread = threading.Thread(
            target=run_gateway,
            args=(stack_settings, catalog, "127.0.0.1", port, stop),
            kwargs={"timeout_s": timeout_s, "grpc_port": grpc_port, **options},
            daemon=True,
        )
        thread.start()
        stops.append((stop, thread))
        url = f"http://127.0.0.1:{port}"
        wait_ready(url)
        return url

    yield start
    for stop, _thread in stops:
        stop.set()
    for _, thread in stops:
        thread.join(10)


@pytest.fixture(scope="module")
def stack(
    stack_settings: KafkaSettings,
    start_gateway: Callable[..., str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    extra = tmp_path_factory.mktemp("specs")
    write_boom_specs(extra)
    spec_dirs = [str(EXAMPLES), str(extra)]
    topics = TopicNames(stack_settings.topic_prefix, stack_settings.namespace)
    topology = compile_topology(load_files(spec_dirs), topics)
    worker = Worker(stack_settings)
    worker.apply(topology)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    try:
        catalog = StaticCatalog.from_topology(topology, topics)
        grpc_port = free_port()
        url = start_gateway(catalog, grpc_port=grpc_port)
        # Warm up: the worker's first group join takes seconds.
        reply = httpx.post(
            f"{url}/v2/pipelines/tfsimples/infer", json=tensors(ONES_TO_16, ONES_TO_16), timeout=30
        )
        assert reply.status_code == 200, reply.text
        yield Stack(stack_settings, topology, catalog, url, spec_dirs, f"127.0.0.1:{grpc_port}")
    finally:
        stop.set()
        thread.join(15)
