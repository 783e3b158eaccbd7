"""The worker: one confluent-kafka consumer driving every agent it runs.

Workers of one namespace form a consumer group over the same topic set with
the range assignor, so partition i of every co-partitioned topic lands on
one worker and a request's records always meet there. Consumption and
production are batched; model calls are batched across requests ready in the
same chunk. Offsets are committed only after what the records caused was
delivered and only up to the first record an agent still holds.

The loop delegates: the planner (`plan.py`) says which agents run, the model
pool (`models.py`) keeps the models, delivery (`delivery.py`) writes, turns
refusals into error records and commits; here are the loop and rebalancing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import Consumer, KafkaError, TopicPartition

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.runtime import metrics
from engine.runtime.delivery import Delivery
from engine.runtime.models import ModelPool
from engine.runtime.offsets import OffsetTracker
from engine.runtime.plan import Plan, Status, plan
from engine.runtime.records import Outgoing, chunk_by_topic
from engine.runtime.settings import WorkerSettings
from engine.runtimes import ModelRoots, load_model
from engine.topology.graph import Topology

__all__ = ["Status", "Worker", "group_id"]

log = logging.getLogger("tensorflux.worker")


def group_id(settings: KafkaSettings) -> str:
    """Stable: derived from the namespace, never from a counter."""
    return f"{settings.topic_prefix}.{settings.namespace}.workers"


class Worker:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        worker_settings: WorkerSettings | None = None,
        on_status: Callable[[list[Status]], None] | None = None,
        model_roots: ModelRoots | None = None,
    ) -> None:
        """`model_roots`: where models may be loaded from; None loads any path (for a
        caller that hands the worker its own topologies, never the control topic's)."""
        self.settings = settings
        self.worker_settings = worker_settings or WorkerSettings()
        self.topics = settings.topics()
        self.admin = TopicAdmin(settings)
        self.tracker = OffsetTracker()
        report = on_status or (lambda statuses: None)

        def on_each_status(statuses: list[Status]) -> None:
            metrics.observe_statuses(statuses)  # tensorflux_model_state
            report(statuses)

        self.on_status = on_each_status
        self.models = ModelPool(partial(load_model, roots=model_roots))
        self.delivery = Delivery(settings, self.worker_settings, self.topics)
        self._consumer = Consumer(
            self.worker_settings.consumer_config(settings, group_id(settings))
        )
        self._chunk = self.worker_settings.chunk
        self._max_wait_s = self.worker_settings.max_wait_ms / 1000
        self._commit_interval_s = self.worker_settings.commit_interval_ms / 1000
        self._plan = Plan()
        self._subscription: list[str] = []
        self._assigned: set[tuple[str, int]] = set()
        self._ready_announced = False
        self._last_commit = time.monotonic()
        self._lag = metrics.ConsumerLag()

    # -- loading -----------------------------------------------------------------------

    def apply(self, topology: Topology) -> list[Status]:
        """Run exactly the models and pipelines of `topology` (hot: no restart)."""
        models = self.models.sync(topology.models)
        new = plan(topology, models, self.topics, self.tracker, self._plan)
        self.admin.ensure(new.topics)
        # Commit before the retired agents let go: no further than what they hold.
        self.commit(force=True)
        rewind: dict[tuple[str, int], int] = {}
        for agent in new.retired:
            # Its pipeline changed or went. What it held (half-joined, waiting for a
            # batch) is consumed again, so the agent replacing it answers those requests.
            for topic, partition, offset in agent.abandon():
                tp = (topic, partition)
                rewind[tp] = min(offset, rewind.get(tp, offset))
        for (topic, partition), offset in rewind.items():
            self.tracker.rewind(topic, partition, offset)
        self._plan = new
        statuses = list(new.statuses)
        subscription = new.subscription()
        if subscription != self._subscription:
            self._subscription = subscription
            self._ready_announced = False
            if subscription:
                self._consumer.subscribe(
                    subscription, on_assign=self._on_assign, on_revoke=self._on_revoke
                )
            else:
                self._consumer.unsubscribe()
        else:
            # Same subscription, no rebalance: go back to the released records ourselves.
            # (A rebalance instead commits no further than them and restarts there.)
            for (topic, partition), offset in rewind.items():
                if (topic, partition) in self._assigned:
                    self._consumer.seek(TopicPartition(topic, partition, offset))
            if self._ready_announced:
                # Same topics, so no on_assign to come: the agents already consume,
                # and what did not fail is Ready now.
                statuses = new.ready()
        self.on_status(statuses)
        return statuses

    def ready(self) -> bool:
        """Serving: its consumer has joined the group (even with no partitions, as a
        spare worker does), or it has nothing to consume."""
        return self._ready_announced or not self._subscription

    # -- the loop ----------------------------------------------------------------------

    def run(
        self, stop: threading.Event, *, between_chunks: Callable[[], None] | None = None
    ) -> None:
        try:
            while not stop.is_set():
                if between_chunks is not None:
                    between_chunks()
                self.step()
        finally:
            self.close()

    def step(self) -> None:
        """Consume one chunk, run the agents, write the results, commit when due."""
        if not self._subscription:
            time.sleep(self._max_wait_s)
            return
        # consume(n, timeout) waits out its whole timeout unless n records come; poll
        # returns at the first record, then consume(timeout=0) takes what is buffered.
        first = self._consumer.poll(self._wait_s())
        if first is None:
            messages = []
        else:
            messages = [first, *self._consumer.consume(self._chunk - 1, timeout=0)]
        now_ms = _now_ms()
        out: list[Outgoing] = []
        routes = self._plan.routes
        # Agents take a chunk's records topic by topic, so a step can answer many at once.
        by_topic, last_offsets = chunk_by_topic(messages, partition_eof=KafkaError._PARTITION_EOF)
        consumed = self.tracker.consumed
        for (topic, partition), offset in last_offsets.items():
            consumed(topic, partition, offset)
        for topic, records in by_topic.items():
            metrics.RECORDS_CONSUMED.labels(topic).inc(len(records))
            for agent, index in routes.get(topic, ()):
                agent.process_chunk(index, records, now_ms, out)
        for agent in self._plan.agents:
            agent.tick(now_ms, out, end_of_chunk=True)
        self.delivery.produce(out)
        self.commit()

    def _wait_s(self) -> float:
        deadlines = [
            d for d in (agent.next_deadline_ms() for agent in self._plan.agents) if d is not None
        ]
        if not deadlines:
            return self._max_wait_s
        return max(0.0, min(self._max_wait_s, (min(deadlines) - _now_ms()) / 1000))

    def commit(self, *, force: bool = False) -> None:
        """Commit what is safe once the commit interval passed (or now, with `force`)."""
        if not force and time.monotonic() - self._last_commit < self._commit_interval_s:
            return
        self._last_commit = time.monotonic()
        metrics.HELD_RECORDS.set(self.tracker.held_count())
        due = self.tracker.committable()
        offsets = [TopicPartition(t, p, o) for (t, p), o in due.items() if (t, p) in self._assigned]
        if self.delivery.commit_when_delivered(self._consumer, offsets):
            self.tracker.mark_committed({(o.topic, o.partition): o.offset for o in offsets})
            self._lag.committed((o.topic, o.partition, o.offset) for o in offsets)
        self._lag.update(self._consumer, self._assigned)

    # -- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        if not self._ready_announced:
            self._ready_announced = True
            statuses = self._plan.ready()
            ready = [s for s in statuses if s.state != "Failed"]
            self.on_status(ready + [s for s in statuses if s.state == "Failed"])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit(force=True)
        revoked = [(p.topic, p.partition) for p in partitions]
        numbers = {p for _, p in revoked}
        for agent in self._plan.agents:
            agent.drop_partitions(numbers)
        self.tracker.forget(revoked)
        self._assigned -= set(revoked)

    def close(self) -> None:
        # Requests still held (half-joined, waiting for a batch) stay uncommitted:
        # the next owner of their partitions consumes them again.
        try:
            self.commit(force=True)
        finally:
            self._consumer.close()
            self.delivery.close()
            self.models.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
