"""A consumer that stops fetching while nothing comes, and asks the broker now and then.

tansu answers a waiting fetch only when its wait ends, not when a record arrives,
so the worker fetches with a 10 ms wait, and every fetch costs tansu in proportion
to the partitions it names: a worker idling on `examples/` (~50 partitions) kept
the broker at a third of a core. After `idle_after_s` without a record, every
assigned partition is paused, and a ListOffsets request asks whether any partition
grew past where the worker stands: the entry partitions (pipeline and model inputs,
where callers produce, and topics of other pipelines chained on) every
`probe_every_s`, all of them every `REST_PROBE_EVERY_S`. The rest are step topics,
written only by a worker busy with the request (another process, when several
share the group): their first record after a quiet spell waits up to a second.
A probe costs both sides in proportion to the partitions it names (~10 µs each in
tansu), which is why the split: with four partitions a topic, asking all of
`examples/` ten times a second cost the engine and tansu ~8% of a core.

Any news, an assignment or a seek resumes everything. Nothing is skipped: a paused
partition keeps its position, and resuming fetches from it. Under traffic only the
partitions quiet for `cold_after_s` are paused (`cold.py`: a busy consumer fetches as
fast as tansu answers, and each fetch costs it per partition named).

librdkafka keeps a partition paused across a rebalance, so an assignment must call
`assigned()`. One thread calls everything here (the one that polls the consumer).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, KafkaException, Message, TopicPartition

from engine.runtime.cold import ColdPartitions
from engine.topology.topics import TopicNames

log = logging.getLogger("tensorflux.worker")

COMMITTED_TIMEOUT_S = 5.0
WAKE_TIMEOUT_S = 2.0
PROBE_TIMEOUT_S = 2.0
RESUME_APPLIED_S = 0.002
"""How long librdkafka's main thread is given to apply an assignment's resume before
the fetchers are woken (it takes microseconds; a wake-up before it would be lost)."""
REST_PROBE_EVERY_S = 1.0
"""How often the partitions no caller produces to are asked about (step topics)."""
LatestOffsets = Callable[[list[TopicPartition]], dict[tuple[str, int], int]]
"""Each partition's high watermark, asked of the broker now (raises when it cannot)."""


def entry_topics(
    routes: Mapping[str, Iterable[tuple[Any, int]]], names: TopicNames
) -> frozenset[str]:
    """The topics of `routes` (topic -> its readers, agents with a `node`) that something
    other than a step of the reading pipeline writes: pipeline and model inputs (callers,
    the gateway), another pipeline's topics (chaining), and any topic not of our scheme."""
    entry: set[str] = set()
    for topic, readers in routes.items():
        owner = names.parse(topic)
        if owner is None or (owner.kind in ("pipeline", "model") and owner.port == "inputs"):
            entry.add(topic)
        elif owner.kind in ("pipeline", "step") and any(
            agent.node.pipeline != owner.pipeline for agent, _ in readers
        ):
            entry.add(topic)
    return frozenset(entry)


def latest_offsets(consumer: Consumer) -> LatestOffsets:
    """High watermarks through `consumer`: one ListOffsets request per broker, answered
    in C (ListOffsets' "latest" is timestamp -1, as `offsets_for_times` sends it). The
    admin client's `list_offsets` asked the same with a Python future per partition:
    6.5 ms of CPU for 200 partitions, against 1.1 ms here (measured on tansu)."""

    def latest(partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        answers = consumer.offsets_for_times(partitions, timeout=PROBE_TIMEOUT_S)
        return {(tp.topic, tp.partition): tp.offset for tp in answers if tp.error is None}

    return latest


class IdlePause:
    """Pauses `consumer`'s assignment when idle; `idle_after_s <= 0` never pauses."""

    def __init__(
        self,
        consumer: Consumer,
        entry: Callable[[], Collection[str]],
        *,
        idle_after_s: float,
        probe_every_s: float,
        cold_after_s: float = 0.0,
        held: Callable[[], Collection[tuple[str, int]]] = tuple,
        latest: LatestOffsets | None = None,
        clock: Callable[[], float] = time.monotonic,
        cooperative: bool = False,
    ) -> None:
        self._consumer = consumer
        self._cooperative = cooperative
        """The group assigns incrementally (KIP-848): see `assigned`."""
        self._entry = entry
        """The topics probed every `probe_every_s` (`entry_topics`); the rest every second."""
        self._held = held
        """Partitions someone else keeps paused (a model holding too much: pauses.py);
        resuming after a quiet spell leaves them paused."""
        self._latest = latest or latest_offsets(consumer)
        self._idle_after_s = idle_after_s
        self._probe_every_s = probe_every_s
        self._clock = clock
        self._last_activity = clock()
        self._next_probe = 0.0
        self._next_rest_probe = 0.0
        self._seen: dict[tuple[str, int], int] = {}
        """Per paused partition, the offset up to which it was read: a high watermark above it is news."""
        self._entry_probe: list[TopicPartition] = []
        self._all_probe: list[TopicPartition] = []
        """The probes' requests, built once a quiet spell (offset -1: the latest)."""
        self._resume_assignment = False
        """An assignment came: resume it at the next poll (its callback is too early)."""
        self._wake_after_poll = False
        """An incremental assignment came: wake the fetchers once more after the poll."""
        self.paused = False
        self.pauses = 0
        """Quiet spells so far (tests read it)."""
        self.cold = ColdPartitions(
            consumer,
            cold_after_s=cold_after_s,
            probe_every_s=probe_every_s,
            held=held,
            latest=self._latest,
            read_up_to=self._read_up_to,
            resume=resume_now,
            clock=clock,
        )
        """Partitions paused while others are busy (`cold.py`)."""

    def active(self) -> None:
        """Something that may bring records or move positions happened (an assignment,
        a seek, a new subscription): fetch everything at once and for good."""
        if not self._busy():
            self.cold.warm()

    def _busy(self) -> bool:
        """Records came: fetch at once; True if that ended a quiet spell."""
        self._last_activity = self._clock()
        if not self.paused:
            return False
        self.paused = False
        self._seen = {}
        self._resume()
        self.cold.forget()  # resumed with the rest
        return True

    def never_pause(self) -> None:
        """From now on fetch for good (a draining worker: its last answers must be read
        back at once, not at the next probe)."""
        self._idle_after_s = 0.0
        self.cold.disable()
        self.active()

    def assigned(self, partitions: Collection[TopicPartition] = ()) -> None:
        """Called from the assignment callback: whatever was paused before is fetched again.
        (Only if this ever paused: on Kafka it never does, and the wake-up request of
        `resume_now` would hold the loop, up to 0.5 s there, at every assignment.)

        An incremental assignment (`partitions`: those added, none after a revocation)
        is taken here, and the fetchers woken: librdkafka pauses every partition while
        the application handles one, and its resume does not wake the broker thread
        (see `resume_now`), so the partitions a change did not touch stopped for up to
        a second (0.3-0.8 s measured on Kafka at each unload)."""
        self._resume_assignment = self.pauses > 0 or self.cold.spells > 0
        self.cold.forget()
        self.paused = False
        self._seen = {}
        self._last_activity = self._clock()
        if self._cooperative:
            self._consumer.incremental_assign(list(partitions))  # resumes the kept ones
            time.sleep(RESUME_APPLIED_S)
            wake_fetchers(self._consumer)
            self._wake_after_poll = True  # again, should the resume have come later

    def after_poll(self, records: Sequence[Message]) -> None:
        """Called after every poll with what it brought: counts the quiet, pauses, probes."""
        if self._resume_assignment:
            self._resume_assignment = False
            self._resume()
        if self._wake_after_poll:
            self._wake_after_poll = False
            wake_fetchers(self._consumer)
        if records:
            self._busy()
            self.cold.tick(self._last_activity)
            return
        now = self._clock()
        if not self.paused:
            self.cold.tick(now)
        if self._idle_after_s <= 0:
            return
        if self.paused:
            if now >= self._next_probe:
                self._next_probe = now + self._probe_every_s
                probe = self._entry_probe
                if now >= self._next_rest_probe:
                    self._next_rest_probe = now + max(REST_PROBE_EVERY_S, self._probe_every_s)
                    probe = self._all_probe
                if probe and self._news(probe):
                    self.active()
            return
        if now - self._last_activity >= self._idle_after_s:
            self._pause(now)

    def wait_s(self, wanted_s: float) -> float:
        """How long the next poll may block: no later than the next probe is due."""
        if not self.paused:
            return wanted_s
        return max(0.0, min(wanted_s, self._next_probe - self._clock()))

    def _pause(self, now: float) -> None:
        try:
            partitions = self._consumer.assignment()
            if not partitions:
                return
            seen = self._read_up_to(partitions)
            if seen is None:
                self._last_activity = now  # cannot tell yet: look again after a while
                return
            self._consumer.pause(partitions)
        except KafkaException:
            return  # mid-rebalance: the assignment that follows starts the count again
        self.cold.forget()  # paused with the rest
        self._seen = seen
        entry = self._entry()
        self._all_probe = [TopicPartition(t, p, OFFSET_END) for t, p in seen]
        self._entry_probe = [tp for tp in self._all_probe if tp.topic in entry]
        self.paused = True
        self.pauses += 1
        self._next_probe = now + self._probe_every_s
        self._next_rest_probe = now + max(REST_PROBE_EVERY_S, self._probe_every_s)

    def _read_up_to(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int] | None:
        """Where each partition was read to: its position, or (nothing consumed since the
        assignment) where consuming starts: the committed offset, else the start. Not
        the last fetch's high watermark: tansu may report one its fetch does not serve
        yet. None when the committed offsets cannot be read now."""
        seen: dict[tuple[str, int], int] = {}
        unread: list[TopicPartition] = []
        for position in self._consumer.position(partitions):
            if position.offset >= 0:
                seen[(position.topic, position.partition)] = position.offset
            else:
                unread.append(TopicPartition(position.topic, position.partition))
        if unread:
            try:
                committed = self._consumer.committed(unread, timeout=COMMITTED_TIMEOUT_S)
            except KafkaException:
                return None
            for tp in committed:
                # No commit: auto.offset.reset=earliest, and tansu deletes nothing.
                seen[(tp.topic, tp.partition)] = max(tp.offset, 0)
        return seen

    def _news(self, probe: list[TopicPartition]) -> bool:
        """Has any of `probe`'s partitions grown past where it was read? (Unsure counts as yes.)"""
        try:
            latest = self._latest(probe)
        except Exception as error:  # the broker did not answer: fetching will tell
            log.debug("idle probe failed, resuming: %s", error)
            return True
        seen = self._seen
        for tp in probe:
            key = (tp.topic, tp.partition)
            if latest.get(key, seen[key] + 1) > seen[key]:
                return True
        return False

    def _resume(self) -> None:
        try:
            held = self._held()
            partitions = [
                tp for tp in self._consumer.assignment() if (tp.topic, tp.partition) not in held
            ]
            resume_now(self._consumer, partitions)
        except KafkaException:
            pass  # mid-rebalance: the assignment that follows calls active() again


def wake_fetchers(consumer: Consumer) -> None:
    """Have the broker threads look at their partitions now (`resume_now` says why),
    without waiting: one ListOffsets request to each broker leading an assigned
    partition, its answer left unread (on Kafka it may queue behind a waiting fetch)."""
    try:
        assigned = consumer.assignment()
        if assigned:
            probe = [TopicPartition(tp.topic, tp.partition, OFFSET_END) for tp in assigned]
            consumer.offsets_for_times(probe, timeout=0)
    except KafkaException:
        pass  # timed out: the requests are sent, which is all this wanted


def resume_now(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    """Resume `partitions` and have them fetched now.

    librdkafka applies a resume on its main thread and does not wake the broker thread
    that fetches, which looks at its partitions again only when its own timer ends (up
    to a second: measured 0.2-1.1 s from a record's arrival to its consumption). Any
    request to that broker wakes it: one ListOffsets for one partition (tansu is one
    broker) brought it to 20-80 ms, probe interval included.
    """
    if not partitions:
        return
    consumer.resume(partitions)
    with contextlib.suppress(KafkaException):
        consumer.get_watermark_offsets(partitions[0], timeout=WAKE_TIMEOUT_S, cached=False)
