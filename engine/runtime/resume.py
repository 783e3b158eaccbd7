"""Where an exactly-once worker resumes a partition: what its committed offset's metadata says.

The committed offset of a partition is its lowest held record (a half-joined
request, one waiting for its batch), so records past it may already have been
used: joined and answered in a committed transaction. Replaying them would
answer twice, or leave a join half-fed (a timeout error for an answered
request). So each transaction commits, with every offset, the end of what was
consumed and which records in between each agent still held; whoever resumes
the partition (this worker after an abort, another after a rebalance or a
crash) replays to each agent only what it held, then everything from the end
on. Kafka keeps up to `offset.metadata.max.bytes` (4096 by default) per
partition: offsets are stored as ranges relative to the committed one, and a
partition holding too many scattered records commits without metadata (it
replays everything, as at-least-once does) and says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from engine.runtime.offsets import OffsetTracker

log = logging.getLogger("tensorflux.worker")

MAX_METADATA = 4000
"""Below Kafka's default `offset.metadata.max.bytes` (4096)."""
VERSION = 1


@dataclass(frozen=True)
class Resume:
    """How to replay one partition from its committed offset."""

    end: int
    """Records before this offset were consumed already: only the held ones replay."""
    held: dict[str, frozenset[int]]
    """Agent (holder) -> the offsets before `end` it still held."""

    def wanted(self, holder: str, offset: int) -> bool:
        return offset >= self.end or offset in self.held.get(holder, ())


def encode(committed: int, end: int, held: dict[str, list[int]]) -> str:
    """The metadata for committing `committed` when `end` was consumed and `held` is held
    (ascending offsets per holder, none below `committed`); "" when it does not fit."""
    if end <= committed:
        return ""
    text = json.dumps(
        {
            "v": VERSION,
            "end": end - committed,
            "held": {holder: _ranges(offsets, committed) for holder, offsets in held.items()},
        },
        separators=(",", ":"),
    )
    if len(text.encode()) > MAX_METADATA:
        log.warning(
            "%d held records too scattered to commit where to resume: a rebalance or crash "
            "replays them all (answers may repeat)",
            sum(len(offsets) for offsets in held.values()),
        )
        return ""
    return text


def decode(committed: int, metadata: str | None) -> Resume | None:
    """What `encode` wrote (None: nothing to skip, replay everything from `committed`)."""
    if not metadata or committed < 0:
        return None
    try:
        data = json.loads(metadata)
        if data.get("v") != VERSION:
            return None
        held = {
            holder: frozenset(_offsets(ranges, committed))
            for holder, ranges in data["held"].items()
        }
        return Resume(committed + int(data["end"]), held)
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("committed offset %d has metadata tensorflux did not write: ignored", committed)
        return None


def _ranges(offsets: list[int], base: int) -> str:
    """Ascending offsets as "a-b,c" relative to `base`."""
    parts: list[str] = []
    start = previous = None
    for offset in offsets:
        if previous is not None and offset == previous + 1:
            previous = offset
            continue
        if start is not None:
            parts.append(_range(start - base, previous - base))  # type: ignore[operator]
        start = previous = offset
    if start is not None:
        parts.append(_range(start - base, previous - base))  # type: ignore[operator]
    return ",".join(parts)


def _range(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def _offsets(ranges: str, base: int) -> list[int]:
    offsets: list[int] = []
    for part in filter(None, ranges.split(",")):
        first, _, last = part.partition("-")
        offsets.extend(range(base + int(first), base + int(last or first) + 1))
    return offsets


def marks(
    tracker: OffsetTracker, partitions: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], TopicPartition]:
    """What to commit for each consumed partition: its safe offset, and where to resume."""
    due: dict[tuple[str, int], TopicPartition] = {}
    for tp in partitions:
        offset, end = tracker.safe_offset(tp), tracker.next_offset(tp)
        if offset is None or end is None:
            continue
        metadata = encode(offset, end, tracker.held_past(tp, offset))
        due[tp] = TopicPartition(tp[0], tp[1], offset, metadata)
    return due


def read(
    consumer: Consumer, partitions: Iterable[tuple[str, int]], timeout_s: float
) -> dict[tuple[str, int], tuple[int, Resume | None]]:
    """Each partition's committed offset (negative: none) and how to resume it; raises
    KafkaException when the group coordinator does not answer."""
    asked = [TopicPartition(topic, partition) for topic, partition in partitions]
    found: dict[tuple[str, int], tuple[int, Resume | None]] = {}
    for tp in consumer.committed(asked, timeout=timeout_s) if asked else ():
        found[(tp.topic, tp.partition)] = (tp.offset, decode(tp.offset, tp.metadata))
    return found
