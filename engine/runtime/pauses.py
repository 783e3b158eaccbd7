"""Partitions paused because the model they feed holds too many requests (`CallPool.full_agents`).

A paused partition is not fetched: what it has waits in Kafka, not in the
worker's memory. Resumed once the model has answered half of what it held.
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from engine.runtime import metrics

Partition = tuple[str, int]


class Pauses:
    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer
        self.paused: set[Partition] = set()
        self.ever_paused = 0
        """How many times partitions were paused (for tests and the bench)."""

    def update(self, topics: set[str], assigned: Iterable[Partition]) -> None:
        """Pause exactly the assigned partitions of `topics`."""
        wanted = {tp for tp in assigned if tp[0] in topics} if topics else set()
        if wanted == self.paused:
            return
        pause, resume = wanted - self.paused, self.paused - wanted
        if pause:
            self._consumer.pause([TopicPartition(t, p) for t, p in sorted(pause)])
            self.ever_paused += len(pause)
        if resume:
            self._consumer.resume([TopicPartition(t, p) for t, p in sorted(resume)])
        self.paused = wanted
        metrics.PAUSED_PARTITIONS.set(len(wanted))

    def forget(self, revoked: Iterable[Partition]) -> None:
        """Revoked partitions: a new assignment starts unpaused."""
        self.paused -= set(revoked)
        metrics.PAUSED_PARTITIONS.set(len(self.paused))
