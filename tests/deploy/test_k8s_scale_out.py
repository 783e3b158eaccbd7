"""Scale-out as Kubernetes would do it, simulated on the embedded broker: the load-specs
Job's command, then workers started with the worker Deployment's command and
environment, one more added while requests flow. The new worker takes a share of the
partitions, nothing is lost, and each worker stops within its termination grace.

What differs from a cluster, and only that: the bootstrap address and the namespace
(this test's broker and a fresh namespace), paths under /app (the image's copy of
this repository) mapped to the checkout, the specs ConfigMap laid out in a
directory the way the kubelet mounts one, and, until `--health-port` is wired, the
worker's metrics read from `--metrics-port` on a port of its own (pods do not share
a network namespace; processes on one machine do).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from runtime.helpers import Kafka, int32, new_id, tensors  # tests/runtime

from engine.broker import free_port
from engine.cli import build_parser
from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage

from .manifests import IMAGE_ROOT, K8S, ROOT, Object, container, environment, expand, find, render

ROW = int32(*range(1, 17), shape=(1, 16))
# tfsimples: tfsimple1 gives (a+b, a-b), tfsimple2 of those gives (2a, 2b).
DOUBLED = [[2 * v for v in range(1, 17)]]
MAX_REQUESTS = 4000
BIN = Path(sys.executable).parent


def mount_config_map(directory: Path, data: dict[str, str]) -> None:
    """Lay out `data` as the kubelet mounts a ConfigMap volume: the files in a hidden
    timestamped directory, `..data` linking to it, and one link per key."""
    hidden = directory / "..2026_01_01_00_00_00.000000001"
    hidden.mkdir(parents=True)
    for key, text in data.items():
        (hidden / key).write_text(text)
    (directory / "..data").symlink_to(hidden.name)
    for key in data:
        (directory / key).symlink_to(f"..data/{key}")


def in_checkout(value: str) -> str:
    """A path of the image (/app/...) as the same file in this checkout."""
    return re.sub(rf"(?<![\w/]){re.escape(IMAGE_ROOT)}/", f"{ROOT}/", value)


class Pod:
    """The process one container of a pod would run."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [str(BIN / "tensorflux"), *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def cluster(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[Callable[..., Pod]]:
    """Starts pods' processes; any still running at the end is killed."""
    started: list[Pod] = []

    def start(args: list[str], env: dict[str, str], name: str) -> Pod:
        pod = Pod(args, env, tmp_path / f"{name}.log")
        started.append(pod)
        return pod

    yield start
    for pod in started:
        if pod.process.poll() is None:
            pod.process.kill()
        pod.process.wait(10)


def pod_environment(
    objects: list[Object], entry: Object, settings: KafkaSettings, pod_name: str, home: Path
) -> dict[str, str]:
    env = {key: in_checkout(value) for key, value in environment(objects, entry).items()}
    env.update(
        {
            "TENSORFLUX_BOOTSTRAP": settings.bootstrap,
            "TENSORFLUX_NAMESPACE": settings.namespace,
            "POD_NAME": pod_name,
            # What the image's ENV sets; HOME is the pod's writable /tmp.
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "HOME": str(home),
        }
    )
    return env


def metrics_args(args: list[str]) -> tuple[list[str], int]:
    """The worker's args with its health port made this process's own; the port."""
    port = free_port()
    at = args.index("--health-port")
    flag = "--health-port" if parses(args) else "--metrics-port"
    return [*args[:at], flag, str(port), *args[at + 2 :]], port


def parses(args: list[str]) -> bool:
    try:
        build_parser().parse_args(args)
    except SystemExit:  # argparse's way of refusing (an unknown option)
        return False
    return True


def consumed(port: int, topic: str) -> float:
    """The worker's tensorflux_records_consumed_total for `topic` (0 before its first)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    pattern = rf'^tensorflux_records_consumed_total\{{topic="{re.escape(topic)}"\}} (\S+)$'
    found = re.search(pattern, text, flags=re.M)
    return float(found.group(1)) if found else 0.0


def test_a_worker_added_while_traffic_flows_takes_partitions_and_nothing_is_lost(
    kafka_settings: KafkaSettings, cluster: Callable[..., Pod], tmp_path: Path
) -> None:
    objects = render(K8S / "base")
    config = find(objects, "ConfigMap", "tensorflux-config")["data"]
    settings = kafka_settings.model_copy(
        update={"partitions": int(config["TENSORFLUX_PARTITIONS"])}
    )
    assert settings.partitions >= 2, "the base must leave room for a second worker"

    # The Job: its command on the specs ConfigMap, mounted as the kubelet would.
    job = find(objects, "Job", "tensorflux-load-specs")
    load = container(job, "load")
    specs = {
        k: in_checkout(v) for k, v in find(objects, "ConfigMap", "tensorflux-specs")["data"].items()
    }
    mount = tmp_path / "specs"
    mount_config_map(mount, specs)
    args = [str(mount) if arg == "/specs" else arg for arg in load["args"]]
    env = pod_environment(objects, load, settings, "tensorflux-load-specs-x1", tmp_path)
    result = subprocess.run(
        [*load["command"], *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded pipeline/tfsimples" in result.stdout

    deployment = find(objects, "Deployment", "tensorflux-worker")
    worker = container(deployment, "worker")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    topic = settings.topics().pipeline_inputs("tfsimples")

    def start_worker(name: str) -> tuple[Pod, int]:
        env = pod_environment(objects, worker, settings, name, tmp_path)
        args, port = metrics_args(expand(worker["args"], env))
        return cluster(args, env, name), port

    planned = [new_id(f"s{i}") for i in range(MAX_REQUESTS)]
    sent: list[str] = []
    stop_sending = threading.Event()

    def produce() -> None:
        sender = Kafka(settings)
        for rid in planned:
            if stop_sending.is_set():
                break
            message = InferenceMessage(rid, tensors(INPUT0=ROW, INPUT1=ROW), "request")
            sender.producer.produce(topic, encode_avro(message), rid)
            sender.producer.poll(0)
            sent.append(rid)
            time.sleep(0.005)
        sender.close()

    kafka = Kafka(settings)
    first, first_port = start_worker("tensorflux-worker-6d4f-a1")
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    kafka.outputs("tfsimples", planned, at_least=10, deadline_s=60)  # the first one answers
    assert producer.is_alive(), "the stream ended before the second worker came"

    second, second_port = start_worker("tensorflux-worker-6d4f-b2")
    deadline = time.monotonic() + 60
    while consumed(second_port, topic) == 0:
        assert second.process.poll() is None, second.tail()
        assert producer.is_alive(), "the stream ended before the second worker took a partition"
        assert time.monotonic() < deadline, f"the second worker never consumed: {second.tail()}"
        time.sleep(0.2)
    if parses(["worker", "--health-port", "1"]):
        # Wired: each worker is ready now that its consumer has joined the group.
        for port in (first_port, second_port):
            assert httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5).status_code == 200
    time.sleep(1)  # both share the stream for a moment
    stop_sending.set()
    producer.join(30)

    answers = kafka.outputs("tfsimples", sent, deadline_s=90)
    assert set(answers) == set(sent), first.tail() + second.tail()
    for rid, answer in answers.items():
        assert answer.arrays() == {"OUTPUT0": DOUBLED, "OUTPUT1": DOUBLED}, rid
    # The partitions were shared: each worker consumed part of the stream.
    shares = consumed(first_port, topic), consumed(second_port, topic)
    assert all(share > 0 for share in shares), shares
    kafka.close()

    # As the kubelet stops a pod: SIGTERM, then the grace period before SIGKILL.
    for pod in (second, first):
        pod.process.send_signal(signal.SIGTERM)
        assert pod.process.wait(grace) == 0, pod.tail()
