"""Steady request traffic through a pipeline, and an account of what came back.

A drill breaks the cluster while `SteadyTraffic` produces requests at a fixed
pace; `Tally` then reads the pipeline's outputs topic from the beginning and
counts every record per request id, so duplicates (allowed: at-least-once) are
counted and a lost request is named.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)

from engine import headers as h
from engine.codec import decode_avro, encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage
from tests.runtime.helpers import int32, tensors

ROW = int32(*range(1, 17), shape=(1, 16))
DOUBLED = [[2 * v for v in range(1, 17)]]
DRILL_REPORT: list[str] = []
"""One line per drill that passed: what failed and what it cost (the terminal summary)."""


class SteadyTraffic:
    """Requests to `pipeline` every `interval_s` on a thread, until `stop()`.

    A request counts as sent once Kafka acknowledged it (acks=all); its send
    time is when it was handed to the producer, as a caller would measure.
    """

    def __init__(self, settings: KafkaSettings, pipeline: str, interval_s: float = 0.01) -> None:
        self.topic = settings.topics().pipeline_inputs(pipeline)
        self.interval_s = interval_s
        self.sent: dict[str, float] = {}
        self.refused: list[tuple[str, str]] = []
        self.unsent: list[str] = []
        """Why requests could not even be handed to the producer."""
        self._queued: dict[str, float] = {}
        # One request in flight: otherwise each request goes out as its own batch, a
        # broker serves one produce per connection at a time, each waiting for both
        # followers (acks=all), and on this busy 3-node cluster 100 requests/s waited
        # 2-3 s in the client (measured) before tensorflux could see them. With one in
        # flight, batches grow with the backlog instead (10-20 ms).
        self._producer = Producer(settings.producer_config(**{"max.in.flight": 1}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-traffic", daemon=True)

    def start(self) -> SteadyTraffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            rid = f"d-{uuid.uuid4().hex[:10]}"
            message = InferenceMessage(rid, tensors(INPUT0=ROW, INPUT1=ROW), "request")
            self._queued[rid] = time.time()
            try:
                self._producer.produce(
                    self.topic, encode_avro(message), rid, on_delivery=self._acked
                )
            except KafkaException as error:
                # The inputs topic is not known yet (a worker process still creating it):
                # this request never left, so it does not count; the next one tries again.
                self.unsent.append(error.args[0].str())
            self._producer.poll(0)
            time.sleep(self.interval_s)
        self._producer.flush(120)

    def _acked(self, error: KafkaError | None, message: object) -> None:
        rid = message.key().decode()  # type: ignore[attr-defined]
        if error is None:
            self.sent[rid] = self._queued[rid]
        else:
            self.refused.append((rid, error.str()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(150)
        assert not self._thread.is_alive(), "the producer did not flush within 120 s"


@dataclass
class Tally:
    """Every record on the outputs topic, per request id."""

    answers: dict[str, list[float]] = field(default_factory=dict)
    """Request id -> timestamps (s) of each answer it got."""
    wrong: list[str] = field(default_factory=list)
    """Request ids answered with an error record or with wrong values."""
    read_for_s: float = 0.0
    """How long the outputs were read."""
    quiet_for_s: float = 0.0
    """How long no request had been answered for the first time when reading ended."""

    @property
    def duplicates(self) -> int:
        return sum(len(times) - 1 for times in self.answers.values())

    def latencies(self, sent: dict[str, float], before: float | None = None) -> list[float]:
        """Seconds from sending each request (sent before `before`) to its first answer."""
        return [
            self.answers[rid][0] - at
            for rid, at in sorted(sent.items(), key=lambda item: item[1])
            if rid in self.answers and (before is None or at < before)
        ]


def tally(
    settings: KafkaSettings,
    pipeline: str,
    sent: set[str],
    deadline_s: float,
    stall_s: float | None = None,
) -> Tally:
    """Reads the outputs topic until every sent id was answered, then a little longer, so
    late duplicates are counted too. Gives up at `deadline_s`, or once no request was
    answered for the first time in `stall_s` (stalled: more patience would not help)."""
    topic = settings.topics().pipeline_outputs(pipeline)
    consumer = Consumer(settings.consumer_config(f"tally-{uuid.uuid4().hex[:8]}"))
    consumer.assign(
        [TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(settings.partitions)]
    )
    result = Tally()
    started = last_new = time.monotonic()
    deadline = started + deadline_s
    quiet_until: float | None = None
    while time.monotonic() < (quiet_until or deadline):
        if quiet_until is None and stall_s is not None and time.monotonic() - last_new > stall_s:
            break
        for message in consumer.consume(500, timeout=0.2):
            if message.error() is not None:
                continue
            rid = (message.key() or b"").decode()
            if rid not in result.answers:
                last_new = time.monotonic()
            result.answers.setdefault(rid, []).append(message.timestamp()[1] / 1000)
            if h.is_error(message.headers() or []):
                result.wrong.append(rid)
                continue
            arrays = {
                t.name: t.data.tolist() for t in decode_avro(message.value(), "response").tensors
            }
            if arrays != {"OUTPUT0": DOUBLED, "OUTPUT1": DOUBLED}:
                result.wrong.append(rid)
        if quiet_until is None and sent <= set(result.answers):
            quiet_until = time.monotonic() + 3.0
    consumer.close()
    result.read_for_s = time.monotonic() - started
    result.quiet_for_s = time.monotonic() - last_new
    return result


def open_transactions(settings: KafkaSettings, topics: list[str]) -> list[str]:
    """Partitions whose last stable offset trails their high watermark: a transaction
    still open there hides everything after it from read_committed readers."""
    found: list[str] = []
    readers: dict[str, Consumer] = {}
    for level in ("read_committed", "read_uncommitted"):
        config = settings.consumer_config(f"ends-{uuid.uuid4().hex[:8]}")
        readers[level] = Consumer({**config, "isolation.level": level})
    try:
        for topic in topics:
            for p in range(settings.partitions):
                tp = TopicPartition(topic, p)
                ends = {
                    level: reader.get_watermark_offsets(tp, timeout=10, cached=False)[1]
                    for level, reader in readers.items()
                }
                if ends["read_committed"] < ends["read_uncommitted"]:
                    found.append(
                        f"{topic}[{p}]: stable to {ends['read_committed']}, "
                        f"written to {ends['read_uncommitted']}"
                    )
    finally:
        for reader in readers.values():
            reader.close()
    return found
