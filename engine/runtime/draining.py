"""A stopping worker's last work: no new request in, the ones already inside finished.

The inputs topics of pipelines and models (where requests come in from outside) are
paused and stay paused whoever else resumes partitions (the idle pause asks `held`);
the step topics go on being consumed for up to the grace, until a chunk brings
nothing and nothing is held. Their offsets commit with the rest; what is unfinished
after the grace is consumed again by the partitions' next owner.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, TopicPartition

from engine.topology.topics import TopicNames

Partition = tuple[str, int]

QUIET_S = 0.5
"""How long nothing consumed and nothing in progress ends the drain."""


class Drain:
    def __init__(self, consumer: Consumer, topics: TopicNames) -> None:
        self._consumer = consumer
        self._topics = topics
        self.held: set[Partition] = set()
        """The entry partitions paused for good while draining."""

    def is_entry(self, topic: str) -> bool:
        """Where requests come in from outside: a pipeline's or a model's inputs topic."""
        owner = self._topics.parse(topic)
        return owner is not None and owner.kind in ("pipeline", "model") and owner.port == "inputs"

    def run(
        self,
        assigned: Iterable[Partition],
        grace_s: float,
        step: Callable[[], int],
        busy: Callable[[], bool],
    ) -> None:
        """Step until nothing comes and nothing is `busy` (records held, model calls out)
        for QUIET_S, or the grace is up."""
        assigned = sorted(assigned)
        if grace_s <= 0 or not assigned:
            return
        self.held = {tp for tp in assigned if self.is_entry(tp[0])}
        if self.held:
            self._consumer.pause([TopicPartition(t, p) for t, p in sorted(self.held)])
        deadline = quiet_since = time.monotonic() + grace_s
        while (now := time.monotonic()) < deadline:
            # Quiet for a while, not for one turn: the turn that wrote a model's last
            # answer to a step topic is quiet itself, and reading it back takes a fetch
            # (and, after a quiet second, an idle probe).
            if step() or busy():
                quiet_since = deadline
            elif quiet_since == deadline:
                quiet_since = now
            elif now - quiet_since >= QUIET_S:
                return
