"""Reading topics outside any consumer group: to their end, or following them.

Two readers share one idea of "the end". The embedded broker's high watermark
is approximate (PRODUCT.md), so the end is where every partition reported EOF
and nothing more came for a moment (`IDLE_END_S`; not waited on Kafka by a reader
that reads once).

- `TopicReader` keeps the latest value per key of a compacted one-partition
  topic (the control and status topics), read from the start, then followed.
- `RangeReader` reads chosen partitions from chosen offsets to their end
  (`inspect`); `start_offsets` finds those offsets from the last N records,
  an offset or a time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from engine.admin import TopicAdmin
from engine.config import KafkaSettings, broker_kind
from engine.errors import TensorfluxError

COMPACTED = {"cleanup.policy": "compact"}
IDLE_END_S = 0.3
"""Reading "to the end": after EOF on every partition, how long nothing more may come."""
READ_TIMEOUT_S = 15.0
"""Longest `TopicReader.read_to_end` waits for EOF."""
READ_LIMIT_S = 60.0
"""Longest `RangeReader.read` reads before returning what it has."""


class ReadTimeout(TensorfluxError):
    """A topic could not be read to its end in time."""

    def __init__(self, topic: str, within_s: float) -> None:
        self.topic = topic
        super().__init__(f"could not read {topic} to its end in {within_s}s")


class TopicReader:
    """Reads a compacted topic from the beginning, then follows it (no consumer group)."""

    def __init__(self, settings: KafkaSettings, topic: str, *, one_shot: bool = False) -> None:
        """`one_shot`: the reader reads to the end once and is closed (the CLI's status and
        list), so it fetches with a short wait: the embedded broker does not answer a
        waiting fetch early, and the last empty fetch before EOF would cost its full wait."""
        self.topic = topic
        self.values: dict[str, bytes] = {}
        TopicAdmin(settings).ensure([topic], partitions=1, config=COMPACTED)
        extra: dict[str, object] = {"enable.partition.eof": True}
        if one_shot:
            extra["fetch.wait.max.ms"] = 10
        self._consumer = Consumer(
            settings.consumer_config(f"{topic}.reader.{uuid.uuid4().hex}", **extra)
        )
        # Metadata first: assigned before it knows the leader, librdkafka retries the
        # offset lookup only after 500 ms.
        metadata = self._consumer.list_topics(topic, timeout=READ_TIMEOUT_S)
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self._at_end = False
        self._quiet_s = IDLE_END_S
        self._poll_s = 0.02 if one_shot else 0.1
        """consume() waits out its timeout unless 1000 records come: short for the CLI."""
        if one_shot and broker_kind(metadata.cluster_id) == "kafka":
            # Kafka's end of partition is exact: a reader that reads once needs no quiet
            # moment after it (a following reader keeps it, to take a load whole).
            self._quiet_s = 0.0

    def poll(self, timeout: float = 0.0) -> bool:
        """Apply what arrived; True when anything changed."""
        changed = False
        for message in self._consumer.consume(1000, timeout=timeout):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    self._at_end = True
                continue
            key = (message.key() or b"").decode()
            value = message.value()
            if value is None:
                changed |= self.values.pop(key, None) is not None
            elif self.values.get(key) != value:
                self.values[key] = value
                changed = True
        return changed

    def read_to_end(self) -> dict[str, bytes]:
        deadline = time.monotonic() + READ_TIMEOUT_S
        self._at_end = False
        while not self._at_end:
            if time.monotonic() > deadline:
                raise ReadTimeout(self.topic, READ_TIMEOUT_S)
            self.poll(timeout=self._poll_s)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < self._quiet_s:
            if self.poll(timeout=self._poll_s):
                quiet_since = time.monotonic()
        return self.values

    def close(self) -> None:
        self._consumer.close()


class RangeReader:
    """Reads partitions from given offsets to their end, outside any group (nothing
    is committed). `purpose` names its throwaway group id ('inspect', ...)."""

    def __init__(self, settings: KafkaSettings, purpose: str) -> None:
        self._consumer = Consumer(
            settings.consumer_config(
                f"{settings.topic_prefix}.{settings.namespace}.{purpose}.{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": True, "enable.auto.commit": False},
            )
        )

    def start_offsets(
        self,
        topic: str,
        partitions: int,
        *,
        last: int | None = None,
        offset: int | None = None,
        from_ms: int | None = None,
    ) -> dict[int, int]:
        """Per partition of `topic`, the first offset to read: `offset`, the first
        record at or after time `from_ms`, the last `last` records, else the start."""
        starts: dict[int, int] = {}
        times = None
        if from_ms is not None:
            # Answers a batch's base offset on the embedded broker: at or before the
            # record wanted; records before from_ms are filtered by their timestamps.
            times = self._consumer.offsets_for_times(
                [TopicPartition(topic, p, from_ms) for p in range(partitions)], timeout=10
            )
        for partition in range(partitions):
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10, cached=False
            )
            if offset is not None:
                start = max(offset, low)
            elif times is not None:
                found = times[partition].offset
                if found < 0:  # nothing at or after that time (the reported end may be low)
                    found = max(low, high - 1)
                start = max(found, low)
            elif last is not None:
                # The reported high watermark may be below the true end: reading from
                # it minus `last` still covers the last `last` records (they are cut later).
                start = max(low, high - last)
            else:
                start = low
            starts[partition] = start
        return starts

    def read(
        self, starts: list[tuple[str, int, int]], *, limit_s: float = READ_LIMIT_S
    ) -> Iterator[Message]:
        """The records from each (topic, partition, offset) on, to the end of every
        partition; after `limit_s`, a partition that never reported EOF is given up."""
        if not starts:
            return
        self._consumer.assign([TopicPartition(t, p, o) for t, p, o in starts])
        pending = {(topic, partition) for topic, partition, _ in starts}
        quiet_since = time.monotonic()
        deadline = quiet_since + limit_s
        while pending or time.monotonic() - quiet_since < IDLE_END_S:
            messages = self._consumer.consume(1000, timeout=0.05)
            if messages:
                quiet_since = time.monotonic()
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic(), message.partition()))
                    continue
                yield message
            if time.monotonic() > deadline:
                break  # a partition never reported EOF: stop with what was read

    def follow(self, stop: threading.Event) -> Iterator[Message]:
        """After `read`: the records that arrive from then on, until `stop` is set."""
        while not stop.is_set():
            for message in self._consumer.consume(1000, timeout=0.2):
                if message.error() is None:
                    yield message

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
