"""Which offsets are safe to commit: none past a record whose effects are not yet written.

Records an agent keeps (a half-joined request, a request waiting for its
batch) are held; the committable offset of a partition is the lowest held
offset, or one past the last consumed record when nothing is held. After a
crash, consumption restarts there: at-least-once, nothing lost.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from engine.runtime.records import RecordRef

TopicPartition = tuple[str, int]


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, dict[int, int]] = defaultdict(dict)
        self._heaps: dict[TopicPartition, list[int]] = defaultdict(list)
        self._committed: dict[TopicPartition, int] = {}

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        self._next[(topic, partition)] = offset + 1

    def hold(self, ref: RecordRef) -> None:
        topic, partition, offset = ref
        held = self._held[(topic, partition)]
        if offset not in held:
            heapq.heappush(self._heaps[(topic, partition)], offset)
        held[offset] = held.get(offset, 0) + 1

    def release(self, ref: RecordRef) -> None:
        topic, partition, offset = ref
        held = self._held.get((topic, partition))
        if held is None or offset not in held:
            return
        if held[offset] <= 1:
            del held[offset]
        else:
            held[offset] -= 1

    def rewind(self, topic: str, partition: int, offset: int) -> None:
        """Consumption goes back to `offset`: nothing from there on is committable yet."""
        tp = (topic, partition)
        if tp in self._next and offset < self._next[tp]:
            self._next[tp] = offset

    def held_count(self) -> int:
        return sum(len(held) for held in self._held.values())

    def committable(self) -> dict[TopicPartition, int]:
        """Offsets to commit now: those that moved since the last call."""
        due: dict[TopicPartition, int] = {}
        for tp, next_offset in self._next.items():
            offset = self._lowest_held(tp)
            offset = next_offset if offset is None else offset
            if self._committed.get(tp) != offset:
                due[tp] = offset
        return due

    def mark_committed(self, offsets: dict[TopicPartition, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: list[TopicPartition]) -> None:
        """The partitions were revoked: their records are another worker's now."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._held.pop(tp, None)
            self._heaps.pop(tp, None)
            self._committed.pop(tp, None)

    def _lowest_held(self, tp: TopicPartition) -> int | None:
        heap, held = self._heaps.get(tp), self._held.get(tp)
        while heap and heap[0] not in held:
            heapq.heappop(heap)
        return heap[0] if heap else None
