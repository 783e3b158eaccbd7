"""Partitions that stay quiet while others are busy stop being fetched (tansu only).

Every fetch costs tansu in proportion to the partitions it names (~60 µs each on
this machine), and a busy consumer fetches as fast as tansu answers: a worker
serving `examples/` names ~170 partitions in each fetch, while traffic to one
1-step pipeline and the pipelines chained on it moves ~50 of them; the rest cost the
broker more than the traffic itself (issue 14: 1.9 ms of broker CPU a request
against 1.1 with only the chained pipelines loaded). So a partition that brought no
record for `cold_after_s` is paused ("cold") while the worker stays busy, and one
ListOffsets request for all cold partitions every `probe_every_s` asks whether any
of them grew past where it was read (a few µs a partition in tansu). When one did,
every cold partition is fetched again: the first record of a pipeline that was quiet
is then followed at once by its next hops, which are cold too.

Which partitions brought records is read from the consumer's positions at each check
(once a second at most): exact at any rate, for one C call. (Looking at one chunk every
0.1 s, as before, missed busy partitions at low rates: at one HTTP caller on
`examples/`, one record a chunk, ~1 in 4 chunks looked at, so partitions busy with
every request went "cold", their next record warmed everything again, and the worker
named all 168 partitions in its fetches most of the time.)

`IdlePause` (idling.py) drives this: it calls `tick` after each poll while it is not
pausing everything, and `warm` on anything that may bring records or moves positions
(an assignment, a seek, a new subscription, a quiet spell ending). Nothing is skipped: a paused partition keeps its position. Partitions someone
else holds paused (`held`: an overloaded model, draining) are neither paused nor
resumed here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

log = logging.getLogger("tensorflux.worker")

Partition = tuple[str, int]
LatestOffsets = Callable[[list[TopicPartition]], dict[Partition, int]]
ReadUpTo = Callable[[list[TopicPartition]], dict[Partition, int] | None]


class ColdPartitions:
    """Pauses the assigned partitions that brought nothing for `cold_after_s` (0: never)."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        cold_after_s: float,
        probe_every_s: float,
        held: Callable[[], Collection[Partition]],
        latest: LatestOffsets,
        read_up_to: ReadUpTo,
        resume: Callable[[Consumer, list[TopicPartition]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._consumer = consumer
        self._cold_after_s = cold_after_s
        self._probe_every_s = probe_every_s
        self._held = held
        self._latest = latest
        self._read_up_to = read_up_to
        """Where each partition was read to (idling.py's rule), None when unknown now."""
        self._resume = resume
        """Resume and fetch now (idling.py's `resume_now`)."""
        self._clock = clock
        self._since = clock()
        """A partition never seen since then counts as quiet from then."""
        self._last: dict[Partition, float] = {}
        """When each partition's position was last seen to move."""
        self._positions: dict[Partition, int] = {}
        """Each partition's position at the last check."""
        self._cold: dict[Partition, int] = {}
        """Cold partitions and the offset each was read up to: a watermark above is news."""
        self._probe: list[TopicPartition] = []
        self._next_check = 0.0
        self._next_probe = 0.0
        self.spells = 0
        """Times partitions went cold (tests read it; an assignment resumes them if any)."""

    @property
    def cold(self) -> frozenset[Partition]:
        """The partitions paused here now."""
        return frozenset(self._cold)

    def disable(self) -> None:
        """Fetch everything from now on (a draining worker)."""
        self._cold_after_s = 0.0
        self.warm()

    def tick(self, now: float) -> None:
        """After a poll: probe the cold partitions when due, look for newly quiet ones."""
        if self._cold_after_s <= 0:
            return
        if self._cold and now >= self._next_probe:
            self._next_probe = now + self._probe_every_s
            if self._news():
                self.warm()
                return
        if now >= self._next_check:
            self._next_check = now + min(1.0, self._cold_after_s / 2)
            self._chill(now)

    def warm(self) -> None:
        """Fetch every cold partition again (resumed now); the quiet counts start over."""
        now = self._clock()
        self._since = now
        self._last.clear()
        self._positions.clear()
        self._next_check = now + min(1.0, self._cold_after_s / 2)
        if not self._cold:
            return
        cold, self._cold, self._probe = self._cold, {}, []
        try:
            held = self._held()
            partitions = [TopicPartition(t, p) for t, p in cold if (t, p) not in held]
            self._resume(self._consumer, partitions)
        except KafkaException:
            pass  # mid-rebalance: the assignment that follows resumes everything

    def forget(self) -> None:
        """An assignment or a full pause took over: nothing is cold here any more (the
        caller resumes or pauses the partitions itself)."""
        self._cold, self._probe = {}, []
        self._since = self._clock()
        self._last.clear()
        self._positions.clear()

    def _chill(self, now: float) -> None:
        since, last, cold_after = self._since, self._last, self._cold_after_s
        try:
            assignment = self._consumer.assignment()
            moved = self._moved(assignment)
        except KafkaException:
            return
        for key in moved:
            last[key] = now
        if now - since < cold_after:
            return  # nothing can have been quiet that long yet
        held = self._held()
        quiet = [
            tp
            for tp in assignment
            if (key := (tp.topic, tp.partition)) not in self._cold
            and key not in held
            and now - last.get(key, since) >= cold_after
        ]
        if not quiet or len(quiet) + len(self._cold) >= len(assignment):
            return  # all quiet: the idle pause's business, not ours
        seen = self._read_up_to(quiet)
        if seen is None:
            return
        try:
            self._consumer.pause(quiet)
        except KafkaException:
            return
        self._cold.update(seen)
        self._probe = [TopicPartition(t, p, OFFSET_END) for t, p in self._cold]
        if self.spells == 0 or self._next_probe <= now:
            self._next_probe = now + self._probe_every_s
        self.spells += 1
        log.debug("%d quiet partitions paused while others are busy", len(quiet))

    def _moved(self, assignment: list[TopicPartition]) -> list[Partition]:
        """The partitions whose position moved since the last check (records consumed);
        a partition's first position only counts from then on."""
        positions, moved = self._positions, []
        for tp in self._consumer.position(assignment):
            key = (tp.topic, tp.partition)
            before = positions.get(key)
            if before is not None and tp.offset != before:
                moved.append(key)
            positions[key] = tp.offset
        return moved

    def _news(self) -> bool:
        """Has any cold partition grown past where it was read? (Unsure counts as yes.)"""
        try:
            latest = self._latest(self._probe)
        except Exception as error:  # the broker did not answer: fetching will tell
            log.debug("cold probe failed, resuming: %s", error)
            return True
        cold = self._cold
        return any(latest.get(key, seen + 1) > seen for key, seen in cold.items())
