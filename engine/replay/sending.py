"""Sending replayed requests at a pace, and waiting for their answers.

A collector thread reads the target's answers topic from where it stood when
the run started and keeps the first answer (or error record) of every new id.
The sender keeps at most `window` requests unanswered (as fast as the target
keeps up), or paces them by `--rate` or the original inter-arrival times
scaled by `--speed`. Each request waits at most `timeout_s` for its answer.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from engine.config import KafkaSettings
from engine.replay.reading import Recorded, is_error_record

WINDOW = 5000
"""Requests sent and not yet answered, at most (without --rate/--speed)."""
PRODUCER = {
    # Bigger batches, fewer produce requests: the broker's CPU a replayed request went
    # from ~33 to ~27 us (bench/replay_bench.py); the window (a quarter second of
    # answers at 20k/s) hides the wait.
    "linger.ms": 50,
    "batch.num.messages": 10000,
    "delivery.report.only.error": True,  # a callback per delivered request costs ~15 us
    # Not idempotent: its producer id cost ~0.5 s before the first request left on the
    # embedded broker, and a retry's duplicate is harmless here (the collector keeps a
    # new id's first answer; --resume maps what was sent by source coordinates).
    "enable.idempotence": False,
}
PACED_LINGER_MS = 5
"""With --rate or --speed."""


@dataclass(frozen=True)
class Pace:
    rate: float | None = None
    """Requests per second; None: as fast as the target keeps up."""
    speed: float | None = None
    """Original inter-arrival times divided by this; None: not by the originals' times."""

    def due_s(self, index: int, timestamp_ms: int, first_ms: int) -> float | None:
        """Seconds after the start when request `index` is due; None: now."""
        if self.rate:
            return index / self.rate
        if self.speed:
            return (timestamp_ms - first_ms) / 1000 / self.speed
        return None


class AnswerCollector:
    """Reads one topic from given positions, keeping the first record of each key that
    starts with `prefix` (a run's new ids all start with the run id); without
    `keep_values`, only its place and key (a run without --diff needs no answer's
    tensors: an hour of answers is not held)."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        starts: Mapping[int, int],
        prefix: str,
        keep_values: bool = True,
    ) -> None:
        self._topic, self._prefix = topic, prefix.encode()
        self._keep_values = keep_values
        self.answers: dict[str, Recorded] = {}
        self.errors: set[str] = set()
        """The keys whose first record is an error record (looked at once, here)."""
        self.changed = threading.Condition()
        self._stop = threading.Event()
        self._consumer = Consumer(
            settings.consumer_config(
                f"{settings.topic_prefix}.{settings.namespace}.replay.{uuid.uuid4().hex[:8]}",
                **{
                    # Fewer, fuller fetches (tansu answers one below its minimum when its
                    # wait ends): the window needs answers by the thousand, not at once.
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 50,
                    "fetch.min.bytes": 256 * 1024,
                },
            )
        )
        self._consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        self._thread = threading.Thread(target=self._run, name="replay-answers", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        topic, prefix = self._topic, self._prefix
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(1000, timeout=0.05)
                found = []
                # Hot path (every answer): what Recorded.of does, without its call and
                # the second key() and topic() a record (the topic is this one).
                for message in messages:
                    raw = message.key()
                    if raw is not None and raw.startswith(prefix) and message.error() is None:
                        found.append(
                            Recorded(
                                topic,
                                message.partition(),
                                message.offset(),
                                message.timestamp()[1],
                                raw.decode("utf-8", "replace"),
                                message.value() or b"",
                                message.headers() or [],
                            )
                        )
                if found:
                    with self.changed:
                        answers = self.answers
                        for record in found:
                            if record.key not in answers:
                                answers[record.key] = record
                                if is_error_record(record.headers):
                                    self.errors.add(record.key)
                                if not self._keep_values:
                                    record.value, record.headers = b"", []
                        self.changed.notify_all()
        finally:
            self._consumer.close()

    def count(self) -> int:
        return len(self.answers)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Outcome:
    sent: list[str] = field(default_factory=list)
    """New ids sent by this process, in order."""
    refused: dict[str, str] = field(default_factory=dict)
    """New id → why Kafka did not take it."""
    interrupted: bool = False


class Sender:
    """The run's producer, made when the run starts (its connection and metadata come
    while the bounds and the selection are read). Not idempotent (`PRODUCER`)."""

    def __init__(self, settings: KafkaSettings, pace: Pace) -> None:
        self.outcome = Outcome()
        # Paced requests leave when due, not a linger later.
        paced = {"linger.ms": PACED_LINGER_MS} if pace.rate or pace.speed else {}
        config = {**PRODUCER, **paced, "on_delivery": self._delivered}
        self.producer = Producer(settings.producer_config(**config))

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is not None:
            key = (message.key() or b"").decode()  # type: ignore[attr-defined]
            self.outcome.refused[key] = error.str()


def send_all(
    sender: Sender,
    topic: str,
    records: list[Recorded],
    make: Callable[[Recorded], tuple[str, bytes, list[tuple[str, bytes]]]],
    collector: AnswerCollector,
    pace: Pace,
    *,
    stop: threading.Event,
    timeout_s: float,
    on_progress: Callable[[int], None] = lambda sent: None,
    on_wait: Callable[[], None] = lambda: None,
) -> Outcome:
    """Produce the replay of every record (`make` makes it, as it is sent: the target
    is at work meanwhile), unless stopped, keeping the window or the pace; `on_wait`
    is called (briefly) while the window is full."""
    outcome, producer = sender.outcome, sender.producer
    deadlines: deque[tuple[float, str]] = deque()
    started = time.monotonic()
    first_ms = records[0].timestamp_ms if records else 0
    paced = bool(pace.rate or pace.speed)
    # Hot path (every request): methods bound once; produce()'s arguments by position, in
    # the C signature's order (topic, value, key, partition, callback, on_delivery,
    # timestamp, headers: -1, None, None and 0 are its defaults; the callback is the
    # producer's on_delivery), which skips matching keywords on every call.
    produce, sent, deadline_of = producer.produce, outcome.sent, deadlines.append
    monotonic = time.monotonic
    try:
        for index, record in enumerate(records):
            if stop.is_set():
                outcome.interrupted = True
                break
            if paced:
                due = pace.due_s(index, record.timestamp_ms, first_ms)
                if due is not None:
                    _sleep_until(started + due, stop, producer)
            elif len(deadlines) >= WINDOW:
                _keep_window(collector, deadlines, stop, producer, on_wait)
            if stop.is_set():
                outcome.interrupted = True
                break
            new_id, value, headers = make(record)
            while True:
                try:
                    produce(topic, value, new_id, -1, None, None, 0, headers)
                    break
                except BufferError:
                    producer.poll(0.1)
            sent.append(new_id)
            deadline_of((monotonic() + timeout_s, new_id))
            if index % 500 == 0:
                producer.poll(0)
                on_progress(len(sent))
    finally:
        producer.flush(30)
        on_progress(len(outcome.sent))
    return outcome


def _keep_window(
    collector: AnswerCollector,
    deadlines: deque[tuple[float, str]],
    stop: threading.Event,
    producer: Producer,
    on_wait: Callable[[], None],
) -> None:
    """Wait while the window is full; requests past their deadline leave it."""
    while len(deadlines) >= WINDOW and not stop.is_set():
        now = time.monotonic()
        answers = collector.answers
        while deadlines and (deadlines[0][1] in answers or deadlines[0][0] < now):
            deadlines.popleft()
        if len(deadlines) < WINDOW:
            return
        producer.poll(0)
        on_wait()
        with collector.changed:
            collector.changed.wait(0.05)


def _sleep_until(moment: float, stop: threading.Event, producer: Producer) -> None:
    while not stop.is_set():
        left = moment - time.monotonic()
        if left <= 0:
            return
        producer.poll(0)
        stop.wait(min(left, 0.05))


def wait_answers(
    collector: AnswerCollector,
    ids: Iterable[str],
    timeout_s: float,
    stop: threading.Event,
    on_progress: Callable[[], None] = lambda: None,
) -> None:
    """Until every id is answered, nothing came for `timeout_s`, or stopped."""
    pending = [i for i in ids if i not in collector.answers]
    last_count, last_change = collector.count(), time.monotonic()
    while pending and not stop.is_set():
        with collector.changed:
            collector.changed.wait(0.1)
        pending = [i for i in pending if i not in collector.answers]
        on_progress()
        count = collector.count()
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > timeout_s:
            return
