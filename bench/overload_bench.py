"""Overload (issue 18): a python model sleeping 50 ms a call flooded with 20k requests, while
the 1-step pipeline on the same worker keeps answering.

One worker (`tensorflux worker -f`, its metrics served) runs both pipelines.
First the 1-step pipeline's p50 is taken unloaded (paced requests); then 20k
requests go to the slow pipeline at once, and the 1-step pipeline is paced
again while the worker's RSS and its held-requests gauge are sampled. The
slow pipeline answers ~20 requests a second, so most of the flood is still in
Kafka at the end: what is measured is that the worker's memory does not grow
with it and that the other pipeline stays within 2× of its unloaded p50.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import textwrap
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from bench import load
from bench.contenders import MODELS, PIPELINES, VENV_BIN
from bench.timing import _start, _stop
from engine.admin import TopicAdmin
from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage, Tensor
from engine.runtime.settings import WorkerSettings
from engine.topology.topics import TopicNames

FLOOD = 20_000
CAP = WorkerSettings().model_max_in_flight
SLOW = textwrap.dedent(
    """
    import time

    class Model:
        def predict(self, inputs):
            time.sleep(0.05)
            return {"OUTPUT": inputs["INPUT"] * 2}
    """
)
SPECS = textwrap.dedent(
    """
    apiVersion: mlops.seldon.io/v1alpha1
    kind: Model
    metadata:
      name: sleepy
    spec:
      storageUri: ./sleepy
      requirements: [python]
    ---
    apiVersion: mlops.seldon.io/v1alpha1
    kind: Pipeline
    metadata:
      name: sleepy-p
    spec:
      steps:
      - name: sleepy
      output:
        steps:
        - sleepy
    """
)


def section(bootstrap: str, quick: bool, logdir: Path) -> str:
    try:
        return _measure(bootstrap, quick, logdir)
    except Exception as error:  # one failing section does not stop the bench
        return f"\n## Overload\n\nfailed: {error}\n"


def _measure(bootstrap: str, quick: bool, logdir: Path) -> str:
    ns = f"o{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=bootstrap, namespace=ns)
    topics = TopicNames(settings.topic_prefix, ns)
    fast_in, fast_out = topics.pipeline_inputs("onestep"), topics.pipeline_outputs("onestep")
    slow_in = topics.pipeline_inputs("sleepy-p")
    admin = TopicAdmin(settings)
    admin.ensure([fast_in, fast_out, slow_in, topics.pipeline_outputs("sleepy-p")])
    specs = Path(tempfile.mkdtemp(prefix="bench-overload-"))
    (specs / "sleepy").mkdir()
    (specs / "sleepy" / "model.py").write_text(SLOW)
    (specs / "sleepy.yaml").write_text(SPECS)
    port = _free_port()
    argv = [str(VENV_BIN / "tensorflux"), "worker", "--bootstrap", bootstrap]
    argv += ["--namespace", ns, "--metrics-port", str(port)]
    for spec in (MODELS / "tfsimple1.yaml", PIPELINES["1step"][0], specs / "sleepy.yaml"):
        argv += ["-f", str(spec)]
    receiver = load.Receiver(bootstrap, fast_out, settings.partitions)
    receiver.start()
    worker = _start(argv, dict(os.environ), logdir / f"overload-{ns}.log")
    rate, count = 100.0, 200 if quick else 500
    try:
        load.paced(bootstrap, fast_in, "tfsimple", receiver, rate, 40, timeout_s=60)  # warm
        with receiver.lock:
            receiver.arrivals.clear()
        unloaded = load.paced(bootstrap, fast_in, "tfsimple", receiver, rate, count)
        rss_before = _rss_mb(worker.pid)
        _flood(bootstrap, slow_in)
        with receiver.lock:
            receiver.arrivals.clear()
        sampler = _Sampler(worker.pid, port)
        sampler.start()
        time.sleep(2.0)  # the worker takes up the flood before the second paced phase
        loaded = load.paced(bootstrap, fast_in, "tfsimple", receiver, rate, count)
        sampler.stop.set()
        sampler.join(5)
    finally:
        _stop([worker])
        receiver.stop.set()
        receiver.join(5)
        with contextlib.suppress(Exception):
            admin.delete([t for t in admin.existing() if f".{ns}." in t])
    p50_unloaded, p50_loaded = load.percentile(unloaded, 50), load.percentile(loaded, 50)
    ratio = p50_loaded / p50_unloaded if p50_unloaded else float("nan")
    verdict = "met" if ratio <= 2.0 else "MISSED"
    return (
        f"\n## Overload: {FLOOD:,} requests to a python model sleeping 50 ms a call\n\n"
        f"- other pipeline (1-step) p50: {p50_unloaded:.1f} ms unloaded, {p50_loaded:.1f} ms "
        f"during the flood ({ratio:.2f}×; target within 2×: {verdict}); answered "
        f"{len(loaded)}/{count} at {rate:.0f} req/s\n"
        f"- worker RSS: {rss_before:.0f} MB before the flood, peak {sampler.peak_rss:.0f} MB "
        f"during it; slow model's held requests at most {sampler.peak_held:.0f} "
        f"(cap: model_max_in_flight {CAP}, plus at most one chunk); partitions paused at "
        f"most {sampler.peak_paused:.0f}\n"
    )


def _flood(bootstrap: str, topic: str) -> None:
    producer = load.producer(bootstrap)
    for i in range(FLOOD):
        key = f"s-{i}"
        tensors = (Tensor.from_array("INPUT", np.array([float(i)], np.float32)),)
        value = encode_avro(InferenceMessage(key, tensors, "request"))
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


class _Sampler(threading.Thread):
    """RSS (VmRSS) and the worker's gauges, twice a second."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.stop = threading.Event()
        self.peak_rss = self.peak_held = self.peak_paused = 0.0

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self.peak_rss = max(self.peak_rss, _rss_mb(self.pid))
            gauges = _scrape(self.port)
            self.peak_held = max(self.peak_held, gauges.get("held", 0.0))
            self.peak_paused = max(self.peak_paused, gauges.get("paused", 0.0))


def _scrape(port: int) -> dict[str, float]:
    found: dict[str, float] = {}
    with contextlib.suppress(OSError):
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
        for line in text.decode().splitlines():
            if line.startswith('tensorflux_model_held_requests{model="sleepy"}'):
                found["held"] = float(line.split()[-1])
            elif line.startswith("tensorflux_paused_partitions "):
                found["paused"] = float(line.split()[-1])
    return found


def _rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError, IndexError):
        return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
