"""Load generation and measurement: pre-produced requests, an output receiver, a paced sender.

Everything here runs in the bench process (the project's venv). Throughput is
measured on the output side only: the N requests are on the input topic
before the contender starts, and the rate is the outputs that arrived after
the first receive, over the time from that first receive to the last output.
Producer speed and start-up (group join, model load) are left out, and the
same clock serves every contender.
"""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from engine.codec import encode_avro
from engine.messages import InferenceMessage, Tensor

MLP_ROWS = {"mlp": 1, "mlp16": 16}
"""Rows of mlp256 input a request of each mlp workload carries."""
CNN_IMAGE = np.linspace(0.0, 1.0, 28 * 28, dtype=np.float32).reshape(1, 1, 28, 28)
"""The 'cnn' workload's image (FP32 [1,1,28,28]), scaled by the request's index."""
IRIS_ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]], dtype=np.float32
)
"""The 'iris' workload's flowers, one of each class, taken in turn (bench/remote_bench.py)."""
RECEIVER_FETCH_WAIT_MS = 5
"""The receiver's own fetch wait: part of every contender's latency alike."""


def request_payload(workload: str, request_id: str, index: int) -> bytes:
    """One Avro request of `workload`: 'tfsimple' (2x INT32 [1,16]), 'conditional' or
    'mlp' (FP32 [1,256]), 'mlp16' (FP32 [16,256]: sixteen rows a request), 'cnn' (FP32
    [1,1,28,28]: one image) or 'iris' (FP32 [1,4]: one flower)."""
    if workload == "tfsimple":
        data = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
        tensors = (Tensor.from_array("INPUT0", data), Tensor.from_array("INPUT1", data))
    elif workload == "conditional":
        tensors = (
            Tensor.from_array("INPUT", np.array([1, 2, 3, 4], np.float32)),
            Tensor.from_array("CHOICE", np.array([index % 2], np.int32)),
        )
    elif workload in MLP_ROWS:
        row = np.linspace(-1.0, 1.0, 256, dtype=np.float32).reshape(1, 256) * (1 + index % 7)
        tensors = (Tensor.from_array("INPUT", np.repeat(row, MLP_ROWS[workload], axis=0)),)
    elif workload == "cnn":
        tensors = (Tensor.from_array("INPUT", CNN_IMAGE * (1 + index % 7)),)
    elif workload == "iris":
        tensors = (Tensor.from_array("INPUT", IRIS_ROWS[index % 3 : index % 3 + 1]),)
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return encode_avro(InferenceMessage(request_id, tensors, "request"))


def producer(bootstrap: str, **extra: object) -> Producer:
    config = {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": False,
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 2_000_000,
        "queue.buffering.max.kbytes": 2_000_000,
    }
    config.update(extra)
    return Producer(config)


def preproduce(bootstrap: str, topic: str, workload: str, n: int, prefix: str = "t-") -> None:
    """Write n requests (keys prefix+i) and wait until the broker has them all."""
    p = producer(bootstrap)
    for i in range(n):
        key = f"{prefix}{i}"
        value = request_payload(workload, key, i)  # the id inside must match the key
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.05)
        if i % 10000 == 0:
            p.poll(0)
    if p.flush(60):
        raise RuntimeError(f"could not pre-produce {n} requests to {topic}")


class Receiver(threading.Thread):
    """Reads an output topic from its beginning; times throughput and per-request latency."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        start_topic: str | None = None,
        *,
        keep_stamps: bool = False,
    ) -> None:
        """`keep_stamps`: also keep each answer's partition and record timestamp (`stamps`)."""
        super().__init__(daemon=True, name=f"receiver-{topic}")
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-receiver-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": RECEIVER_FETCH_WAIT_MS,
                "fetch.min.bytes": 1,
            }
        )
        assigned = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)]
        if start_topic:
            assigned += [
                TopicPartition(start_topic, p, OFFSET_BEGINNING) for p in range(partitions)
            ]
        self.consumer.assign(assigned)
        self.topic = topic
        self.started_at: float | None = None
        """First record seen on start_topic: when a multi-stage contender began its work."""
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.count = 0
        """Outputs of the throughput phase (keys 't-...')."""
        self.errors = 0
        self.first_at: float | None = None
        self.first_count = 0
        self.last_at: float | None = None
        self.arrivals: dict[str, float] = {}
        """Latency phase: key -> perf_counter at receipt."""
        self.keep_stamps = keep_stamps
        self.stamps: list[tuple[int, float]] = []
        """With keep_stamps: (partition, record timestamp in s) of every answer, as they came."""

    def run(self) -> None:
        consume, poll = self.consumer.consume, self.consumer.poll
        keep_stamps, stamps = self.keep_stamps, self.stamps
        while not self.stop.is_set():
            # poll() returns at the first record; consume(n, timeout) would wait for n of them.
            first = poll(0.05)
            if first is None:
                continue
            messages = [first, *consume(10000, timeout=0)]
            now = time.perf_counter()
            with self.lock:
                for message in messages:
                    if message.error() is not None:
                        continue
                    if message.topic() != self.topic:
                        if self.started_at is None:
                            self.started_at = now
                        continue
                    key = message.key() or b""
                    headers = message.headers() or []
                    if any(k == "tensorflux-error" for k, _ in headers):
                        self.errors += 1
                    if key.startswith(b"t-"):
                        self.count += 1
                        if self.first_at is None:
                            self.first_at = now
                            self.first_count = self.count
                        self.last_at = now
                    else:
                        self.arrivals[key.decode()] = now
                    if keep_stamps:
                        stamps.append((message.partition(), message.timestamp()[1] / 1000))
        self.consumer.close()

    def began(self) -> bool:
        """The contender's work is visible (its first stage wrote, or its first output came)."""
        return self.started_at is not None or self.count > 0

    def rate(self) -> float:
        """Outputs per second: after the first receive for a one-stage contender; from the
        first record of its first stage for a multi-stage one (a worker may run the first
        step over many chunks before any output shows, so "first output to last" would
        leave that work out of the window)."""
        with self.lock:
            if self.last_at is None:
                return float("nan")
            if self.started_at is not None:
                return self.count / (self.last_at - self.started_at)
            if self.first_at is None or self.last_at <= self.first_at:
                return float("nan")
            return (self.count - self.first_count) / (self.last_at - self.first_at)


def paced(
    bootstrap: str,
    topic: str,
    workload: str,
    receiver: Receiver,
    rate: float,
    count: int,
    timeout_s: float = 15.0,
) -> list[float]:
    """Send `count` requests at `rate`/s; end-to-end latencies (ms) of those answered."""
    p = producer(bootstrap, **{"linger.ms": 0})
    payloads = [(f"l-{i}", request_payload(workload, f"l-{i}", i)) for i in range(count)]
    sent: dict[str, float] = {}
    start = time.perf_counter()
    for i, (key, value) in enumerate(payloads):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sent[key] = time.perf_counter()
        p.produce(topic, value, key)
        p.poll(0)
    p.flush(10)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with receiver.lock:
            if len(receiver.arrivals) >= count:
                break
        time.sleep(0.02)
    with receiver.lock:
        return [
            (receiver.arrivals[k] - t) * 1000 for k, t in sent.items() if k in receiver.arrivals
        ]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")
