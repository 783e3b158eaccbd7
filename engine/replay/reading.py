"""Reading exact offset ranges of topics, and where "now" ends a partition.

The embedded broker's high watermark is the base offset of its last record
batch + 1, below the true end when that batch holds several records, while
real Kafka's is exact. Neither is trusted alone: the end of a partition at a
moment is found by reading from just before the reported watermark to the
partition EOF that librdkafka reports after the last record it fetched (a
whole batch always comes back), stopping at the first record past the
watermark created after that moment.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from engine import headers as h
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.replay.errors import ReplayError

TP = tuple[str, int]
STALL_S = 30.0
"""How long a read may see nothing at all before it gives up."""


@dataclass(slots=True)
class Recorded:
    """One record as read back: where it is, when, and what it holds."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    size: int = -1
    """The value's length once it is let go (engine.replay.fetching); -1: it is held."""

    @staticmethod
    def of(message: Message, headers: list[tuple[str, bytes]] | None = None) -> Recorded:
        """`headers`: the message's, when the caller has read them already."""
        key = message.key()
        return Recorded(
            message.topic(),
            message.partition(),
            message.offset(),
            message.timestamp()[1],
            key.decode("utf-8", "replace") if key else "",
            message.value() or b"",
            headers if headers is not None else message.headers() or [],
        )

    @property
    def value_size(self) -> int:
        return len(self.value) if self.size < 0 else self.size

    @property
    def coordinates(self) -> str:
        """`topic:partition:offset`, as the replay-source header spells it."""
        return f"{self.topic}:{self.partition}:{self.offset}"


def is_error_record(headers: list[tuple[str, bytes]] | None) -> bool:
    """`headers.is_error` for records tensorflux wrote (it names its headers in lower
    case): an exact match, without lower-casing every header of every record."""
    if headers:
        for key, _ in headers:
            if key == h.ERROR:
                return True
    return False


class RangeReader:
    """One assign-only consumer (no group, no commits) reading offset ranges."""

    def __init__(self, settings: KafkaSettings, fetch_bytes: int = 8 << 20) -> None:
        """`fetch_bytes`: a partition's bytes a fetch at most (a whole range at once)."""
        self.settings = settings
        self.consumer = Consumer(
            settings.consumer_config(
                f"{settings.topic_prefix}.{settings.namespace}.replay.{uuid.uuid4().hex[:8]}",
                # A fetch that finds nothing waits fetch.wait.max.ms (librdkafka: 500) before
                # the EOF that ends a read is known: reads here are short and want it soon.
                **{
                    "enable.partition.eof": True,
                    "enable.auto.commit": False,
                    "fetch.wait.max.ms": 10,
                    # Ranges are read whole: 8 MB a partition a fetch instead of 1 read
                    # 50,000 small records in half the time (0.29 -> 0.15 s on tansu).
                    "max.partition.fetch.bytes": fetch_bytes,
                },
            )
        )
        self._finished: set[TP] = set()

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return self.consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10, cached=False
        )

    def first_at_or_after(self, topic: str, partitions: int, at_ms: int) -> dict[int, int]:
        """Per partition, an offset no later than the first record stamped at or after
        `at_ms` (exact on Kafka, a batch's base or earlier on the embedded broker);
        -1 where Kafka says no record is that late."""
        found = self.consumer.offsets_for_times(
            [TopicPartition(topic, p, at_ms) for p in range(partitions)], timeout=10
        )
        return {tp.partition: tp.offset for tp in found}

    def ends_now(self, topic: str, partitions: int, now_ms: int) -> dict[int, int]:
        """Per partition, the offset after the last record on it at `now_ms`."""
        ends: dict[int, int] = {}
        ranges: dict[TP, tuple[int, int | None]] = {}
        reported: dict[int, int] = {}
        for partition in range(partitions):
            low, high = self.watermarks(topic, partition)
            ends[partition] = max(low, high)
            if high > low:
                reported[partition] = high
                ranges[(topic, partition)] = (max(low, high - 1), None)
        for message in self.read(ranges):
            partition, offset = message.partition(), message.offset()
            if offset >= reported[partition] and message.timestamp()[1] >= now_ms:
                self.finish((topic, partition))  # written after `now_ms`: not ours
                continue
            ends[partition] = max(ends[partition], offset + 1)
        return ends

    def finish(self, tp: TP) -> None:
        """Stop reading this partition (in the current `read`)."""
        self._finished.add(tp)

    def read(self, ranges: Mapping[TP, tuple[int, int | None]]) -> Iterator[Message]:
        """The records of each partition from its start up to its end (exclusive;
        None: to the partition's EOF), partitions interleaved, offsets in order.

        A read returns at its first chance (no wait on the last consume), so events of
        its partitions may still be on their way when the next read of them starts
        (its EOF, records past its end). An event counts for a partition once a record
        of this read came for it: the queue is in order, so a stale event comes before
        those. An end (an EOF, or a record at or past the range's end) before any
        record may be stale: the partition is read once more from its start (a seek:
        a new fetch, a new EOF), and the next end counts. A range with nothing in it
        pays that one round trip."""
        self._finished = set()
        pending: dict[TP, tuple[int, int | None]] = {}
        for tp, (start, end) in ranges.items():
            if end is None or start < end:
                pending[tp] = (start, end)
        if not pending:
            return
        seen: set[TP] = set()
        """Partitions a record of this read came for (their events are this read's)."""
        checked: set[TP] = set()
        """Partitions read again from their start after an end that came first."""
        self.consumer.assign(
            [TopicPartition(t, p, start) for (t, p), (start, _) in pending.items()]
        )
        try:
            last_progress = time.monotonic()
            while pending:
                for tp in self._finished & set(pending):
                    del pending[tp]
                if not pending:
                    break
                # poll returns at the first event; consume(timeout=0) takes what is
                # buffered (consume(n, timeout) waits out its timeout unless n come:
                # 0.1 s at the end of every read, the bounds step 110 -> 22 ms).
                first = self.consumer.poll(0.1)
                messages = [] if first is None else [first, *self.consumer.consume(999, timeout=0)]
                if messages:
                    last_progress = time.monotonic()
                elif time.monotonic() - last_progress > STALL_S:
                    where = ", ".join(f"{t}[{p}]" for t, p in sorted(pending))
                    raise ReplayError(f"reading stalled for {STALL_S:g}s on {where}")
                for message in messages:
                    tp = (message.topic(), message.partition())
                    bounds = pending.get(tp)
                    if bounds is None or tp in self._finished:
                        continue
                    start, end = bounds
                    error = message.error()
                    offset = message.offset()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF and (
                            end is None or offset >= end
                        ):
                            self._ended(tp, start, pending, seen, checked)
                        continue
                    if end is not None and offset >= end:
                        self._ended(tp, start, pending, seen, checked)
                        continue
                    if offset < start:
                        continue
                    seen.add(tp)
                    yield message
                    if end is not None and offset >= end - 1:
                        pending.pop(tp, None)
        finally:
            self.consumer.unassign()

    def _ended(
        self,
        tp: TP,
        start: int,
        pending: dict[TP, tuple[int, int | None]],
        seen: set[TP],
        checked: set[TP],
    ) -> None:
        """The end of `tp` in this read; one that came before any record of this read
        may be an earlier read's: read again from `start` first (see `read`)."""
        if tp in seen or tp in checked:
            del pending[tp]
            return
        checked.add(tp)
        try:
            self.consumer.seek(TopicPartition(tp[0], tp[1], start))
        except KafkaException:  # not fetching yet: then it is no earlier read's end
            del pending[tp]

    def close(self) -> None:
        self.consumer.close()


def by_key(
    reader: RangeReader,
    topics: Mapping[str, int],
    keys: set[str],
    *,
    since_ms: int | None,
    now_ms: int,
) -> dict[tuple[str, str], list[Recorded]]:
    """Every record of each wanted key on each topic (`topics`: name → partitions), in
    offset order, from `since_ms` (None: the start) to what was there at `now_ms`."""
    ranges: dict[TP, tuple[int, int | None]] = {}
    for topic, partitions in topics.items():
        ends = reader.ends_now(topic, partitions, now_ms)
        starts = (
            reader.first_at_or_after(topic, partitions, since_ms) if since_ms is not None else {}
        )
        for partition in range(partitions):
            low, _ = reader.watermarks(topic, partition)
            start = starts.get(partition, low)
            if start < 0:
                continue
            ranges[(topic, partition)] = (max(low, start), ends[partition])
    found: dict[tuple[str, str], list[Recorded]] = {}
    for message in reader.read(ranges):
        raw = message.key()
        key = raw.decode("utf-8", "replace") if raw else ""
        if key in keys:
            found.setdefault((message.topic(), key), []).append(Recorded.of(message))
    return found


def first_by_key(
    reader: RangeReader,
    topics: Mapping[str, int],
    keys: set[str],
    *,
    since_ms: int | None,
    now_ms: int,
) -> dict[tuple[str, str], Recorded]:
    """The first record of each wanted key on each topic; an answer wins over an error
    record of the same key (a request answered at least once)."""
    found = by_key(reader, topics, keys, since_ms=since_ms, now_ms=now_ms)
    return {slot: answer_for(records, None) for slot, records in found.items()}


def answer_for(records: list[Recorded], asked_ms: int | None) -> Recorded:
    """The answer of a request asked at `asked_ms` among its id's records: the first one
    written at or after it (an id used twice has two answers), an answer before an error
    record; the last one when all are older (clocks apart)."""
    if len(records) == 1:  # the common case: whichever rule applies, it is that one
        return records[0]
    later = records if asked_ms is None else [r for r in records if r.timestamp_ms >= asked_ms]
    if not later:
        return records[-1]
    for record in later:
        if not is_error_record(record.headers):
            return record
    return later[0]


def latest_values(settings: KafkaSettings, topic: str) -> dict[str, bytes]:
    """A compacted one-partition topic as a table: the latest value of each key (a
    tombstone removes it), read to its end; empty when the topic does not exist."""
    values: dict[str, bytes] = {}
    if topic not in TopicAdmin(settings).existing():
        return values
    reader = RangeReader(settings)
    try:
        low, _ = reader.watermarks(topic, 0)
        for message in reader.read({(topic, 0): (low, None)}):
            key, value = (message.key() or b"").decode("utf-8", "replace"), message.value()
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
    finally:
        reader.close()
    return values
