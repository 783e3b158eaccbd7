"""Running a worker in-process and talking to it through Kafka, as a user would.

`RunningWorker` drives `Worker.run` on a thread; `apply` hands a new topology
to that thread between chunks (the way the control plane does), so nothing
touches the worker's consumer from two threads. `Kafka` produces requests and
collects answers by request id, reading output topics by assignment (no
consumer-group join, so no wait).
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from engine import headers as h
from engine.codec import decode_avro, decode_error, decode_payload, encode_avro, encode_json
from engine.config import KafkaSettings
from engine.messages import ErrorRecord, InferenceMessage, Tensor
from engine.runtime.settings import WorkerSettings
from engine.runtime.worker import Status, Worker
from engine.topology import TopicNames, Topology, compile_topology, load_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MODELS = EXAMPLES / "models"
PIPELINES = EXAMPLES / "pipelines"
DEADLINE_S = 30.0
"""How long a test waits for an answer before failing (a bound, not a timing claim)."""


def compile_specs(settings: KafkaSettings, paths: Iterable[str | Path]) -> Topology:
    return compile_topology(load_files([str(p) for p in paths]), settings.topics())


def tensors(**arrays: object) -> tuple[Tensor, ...]:
    return tuple(Tensor.from_array(name, array) for name, array in arrays.items())


def int32(*values: int, shape: Sequence[int] | None = None) -> np.ndarray:
    array = np.array(values, dtype=np.int32)
    return array.reshape(shape) if shape is not None else array


def fp32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def new_id(label: str = "r") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


class RunningWorker:
    """A `Worker` on its own thread; `stop()` ends it (the fixtures call it)."""

    def __init__(
        self,
        settings: KafkaSettings,
        topology: Topology,
        worker_settings: WorkerSettings | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.statuses: list[Status] = []
        self.worker = Worker(
            settings,
            on_status=self.statuses.extend,
            worker_settings=worker_settings,
            worker_id=worker_id,
        )
        self.worker.apply(topology)
        self._pending: queue.Queue[tuple[Topology, threading.Event]] = queue.Queue()
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.worker.run(self._stop, between_chunks=self._apply_pending)
        except BaseException as error:  # surfaced by stop() and by waits
            self._failure = error
            raise

    def _apply_pending(self) -> None:
        while not self._pending.empty():
            topology, done = self._pending.get_nowait()
            self.worker.apply(topology)
            done.set()

    def apply(self, topology: Topology) -> None:
        """Hot load/unload: the worker thread applies `topology` between chunks."""
        done = threading.Event()
        self._pending.put((topology, done))
        assert done.wait(DEADLINE_S), "the worker did not apply the topology"

    def state(self, kind: str, name: str) -> str | None:
        states = [s.state for s in self.statuses if s.kind == kind and s.name == name]
        return states[-1] if states else None

    def wait_ready(self, kind: str, name: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.state(kind, name) != "Ready":
            self.check_alive()
            assert time.monotonic() < deadline, f"{kind} {name} never Ready: {self.statuses}"
            time.sleep(0.05)

    def check_alive(self) -> None:
        if self._failure is not None:
            raise AssertionError(f"worker thread died: {self._failure!r}") from self._failure
        assert self._thread.is_alive() or self._stop.is_set(), "worker thread ended"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE_S)
        if self._failure is not None:
            raise AssertionError(f"worker thread died: {self._failure!r}") from self._failure


@dataclass
class Answer:
    """One record read back: an answer or an error record."""

    topic: str
    key: str
    headers: list[tuple[str, bytes]]
    value: bytes
    timestamp_ms: int

    @property
    def is_error(self) -> bool:
        return h.is_error(self.headers)

    def response(self) -> InferenceMessage:
        assert not self.is_error, f"expected an answer, got error {self.error()}"
        return decode_payload(self.value, self.headers, "response")  # JSON or Avro

    def request(self) -> InferenceMessage:
        return decode_avro(self.value, "request")

    def error(self) -> ErrorRecord:
        assert self.is_error, "expected an error record"
        return decode_error(self.value)

    def arrays(self) -> dict[str, list]:
        """Tensor name -> values as nested lists, for readable assertions."""
        return {t.name: t.data.tolist() for t in self.response().tensors}


@dataclass
class Kafka:
    """Produce requests and read answers in one namespace."""

    settings: KafkaSettings
    _producer: Producer | None = None
    _consumers: list[Consumer] = field(default_factory=list)

    @property
    def topics(self) -> TopicNames:
        return TopicNames(self.settings.topic_prefix, self.settings.namespace)

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.settings.producer_config())
        return self._producer

    def send(
        self,
        topic: str,
        request_id: str,
        value: InferenceMessage | bytes,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        payload = encode_avro(value) if isinstance(value, InferenceMessage) else value
        self.producer.produce(topic, payload, request_id, headers=headers or [])
        self.producer.flush(10)

    def infer(self, pipeline: str, request_id: str, **arrays: object) -> None:
        """An Avro request to a pipeline's inputs topic."""
        message = InferenceMessage(request_id, tensors(**arrays), "request")
        self.send(self.topics.pipeline_inputs(pipeline), request_id, message)

    def infer_json(
        self, pipeline: str, request_id: str, *, topic: str | None = None, **arrays: object
    ) -> None:
        """The same request as OIP V2 JSON with a content-type header."""
        message = InferenceMessage(request_id, tensors(**arrays), "request")
        self.send(
            topic or self.topics.pipeline_inputs(pipeline),
            request_id,
            encode_json(message),
            [(h.CONTENT_TYPE, b"application/json")],
        )

    def collect(
        self,
        topic: str,
        ids: Iterable[str],
        *,
        partitions: int | None = None,
        deadline_s: float = DEADLINE_S,
        at_least: int | None = None,
    ) -> dict[str, Answer]:
        """The first record of each wanted request id on `topic` (all partitions);
        with `at_least`, returns as soon as that many ids were found."""
        wanted = set(ids)
        enough = len(wanted) if at_least is None else at_least
        found: dict[str, Answer] = {}
        consumer = Consumer(
            self.settings.consumer_config(
                f"reader-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": False}
            )
        )
        self._consumers.append(consumer)
        count = partitions or self.settings.partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(count)])
        deadline = time.monotonic() + deadline_s
        while len(found) < enough and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.05):
                if message.error() is not None:
                    continue
                key = (message.key() or b"").decode()
                if key in wanted and key not in found:
                    found[key] = Answer(
                        topic,
                        key,
                        message.headers() or [],
                        message.value() or b"",
                        message.timestamp()[1],
                    )
        consumer.close()
        self._consumers.remove(consumer)
        missing = wanted - set(found)
        assert len(found) >= enough, (
            f"no record on {topic} within {deadline_s}s for {len(missing)} of {len(wanted)} "
            f"request ids: {sorted(missing)[:10]}"
        )
        return found

    def outputs(self, pipeline: str, ids: Iterable[str], **kwargs: object) -> dict[str, Answer]:
        return self.collect(self.topics.pipeline_outputs(pipeline), ids, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        for consumer in self._consumers:
            consumer.close()
