"""Which offsets are safe to commit: none past a record whose effects are not yet written.

Records an agent keeps (a half-joined request, a request waiting for its
batch) are held; the committable offset of a partition is the lowest held
offset, or one past the last consumed record when nothing is held. After a
crash, consumption restarts there: at-least-once, nothing lost.

Each hold names its holder (the agent the worker is running, `holder`), so an
exactly-once commit can say which records past the committed offset are still
wanted, and by whom (`held_past`, see `resume.py`).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Container, Iterable

from engine.runtime.records import RecordRef

TopicPartition = tuple[str, int]
_NONE: frozenset[int] = frozenset()


class OffsetTracker:
    def __init__(self) -> None:
        self._next: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, dict[int, dict[str, int]]] = defaultdict(dict)
        self._heaps: dict[TopicPartition, list[int]] = defaultdict(list)
        self._committed: dict[TopicPartition, int] = {}
        self.holder = ""
        """Who holds and releases now: the worker names the agent it is about to run."""

    def consumed(self, topic: str, partition: int, offset: int) -> None:
        self._next[(topic, partition)] = offset + 1

    def hold(self, ref: RecordRef) -> None:
        self.hold_all((ref,))

    def hold_all(self, refs: Iterable[RecordRef]) -> None:
        """`hold` for each of `refs` (a model call's records: a chunk's worth at a time)."""
        holder, held_by_partition, heaps = self.holder, self._held, self._heaps
        for topic, partition, offset in refs:
            held = held_by_partition[(topic, partition)]
            holders = held.get(offset)
            if holders is None:
                heapq.heappush(heaps[(topic, partition)], offset)
                held[offset] = {holder: 1}
            else:
                holders[holder] = holders.get(holder, 0) + 1

    def release_all(self, refs: Iterable[RecordRef], skipped: Container[int]) -> None:
        """`release` for each of `refs` but those of the partitions in `skipped` (revoked
        while the call ran: `forget` dropped their holds)."""
        holder, held_by_partition = self.holder, self._held
        for topic, partition, offset in refs:
            if partition in skipped:
                continue
            held = held_by_partition.get((topic, partition))
            holders = held.get(offset) if held is not None else None
            if holders is None or holder not in holders:
                continue
            if holders[holder] <= 1:
                del holders[holder]
                if not holders:
                    del held[offset]
            else:
                holders[holder] -= 1

    def release(self, ref: RecordRef) -> None:
        self.release_all((ref,), _NONE)

    def held_past(self, tp: TopicPartition, offset: int) -> dict[str, list[int]]:
        """Holder -> the offsets at or past `offset` it holds in `tp`, ascending."""
        by_holder: dict[str, list[int]] = {}
        for held_offset, holders in sorted(self._held.get(tp, {}).items()):
            if held_offset >= offset:
                for holder in holders:
                    by_holder.setdefault(holder, []).append(held_offset)
        return by_holder

    def consumed_partitions(self) -> list[TopicPartition]:
        return list(self._next)

    def safe_offset(self, tp: TopicPartition) -> int | None:
        """The offset to commit for `tp`: its lowest held record, else one past the last consumed."""
        next_offset = self._next.get(tp)
        if next_offset is None:
            return None
        lowest = self._lowest_held(tp)
        return next_offset if lowest is None else lowest

    def next_offset(self, tp: TopicPartition) -> int | None:
        """One past the last record consumed from `tp` (None: nothing consumed)."""
        return self._next.get(tp)

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
