"""The worker: one confluent-kafka consumer driving every agent it runs.

Workers of one namespace form a consumer group over the same topic set with
the range assignor, so partition i of every co-partitioned topic lands on
one worker and a request's records always meet there. Consumption and
production are batched; model calls are batched across requests ready in the
same chunk. Offsets are committed only after what the records caused was
delivered and only up to the first record an agent still holds.

Exactly once (`processing_guarantee`), each chunk is one transaction: its
records and its consumed offsets (with where to resume, `resume.py`) commit
together. A failed transaction, like an undeliverable record at least once,
makes the worker drop what its agents hold and consume again from the
committed offsets (`_rewind`): never half-answered, never skipped.

The loop delegates: to the planner (`plan.py`), the model pool (`models.py`), the
call pool (`model_calls.py`: calls off the loop), delivery (`delivery.py`: writes,
refusals as error records, commits), `pauses.py`, `idling.py` and `draining.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from engine.admin import TopicAdmin
from engine.config import KafkaSettings, broker_kind
from engine.group_protocol import group_protocol
from engine.runtime import metrics, resume
from engine.runtime.control import new_worker_id
from engine.runtime.delivery import Delivery, Fenced
from engine.runtime.draining import Drain
from engine.runtime.idling import IdlePause, entry_topics
from engine.runtime.model_calls import INLINE, CallPool, InlineCalls
from engine.runtime.models import ModelPool
from engine.runtime.offsets import OffsetTracker
from engine.runtime.pauses import Pauses
from engine.runtime.plan import Plan, Status, holder_name, plan
from engine.runtime.records import Outgoing, Record, chunk_by_topic
from engine.runtime.settings import WorkerSettings
from engine.runtimes import ModelHosts, ModelRoots, load_model
from engine.topology.graph import Topology

__all__ = ["Status", "Worker", "group_id"]

log = logging.getLogger("tensorflux.worker")

COMMITTED_TIMEOUT_S = 30.0
CLUSTER_ID_TIMEOUT_S = 5.0
"""Asking which broker serves (its fetch defaults differ) waits no longer at the start."""
REWIND_PAUSE_S = 1.0
"""A failure that lasts (a topic refusing every answer) redoes the work once a second, not in a spin."""


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
        model_hosts: ModelHosts | None = None,
        worker_id: str | None = None,
        kafka_reachable: Callable[[], bool] = lambda: True,
    ) -> None:
        """`model_roots`/`model_hosts`: where models may load from / call (None: any; for
        a caller that hands the worker its own topologies, never the control topic's).
        `worker_id` names its transactional producer, so a restarted worker of that id
        fences the one it replaces. `kafka_reachable` is False while Kafka is down: no
        commit is tried then (its flush would hold the loop, deaf to the outage, 30 s)."""
        self.kafka_reachable = kafka_reachable
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
        self.models = ModelPool(partial(load_model, roots=model_roots, hosts=model_hosts))
        threads = self.worker_settings.model_threads
        limit = self.worker_settings.model_max_in_flight
        self.calls: CallPool | InlineCalls = (
            CallPool(self.tracker, threads=threads, max_in_flight=limit) if threads else INLINE
        )
        """Model calls, off the loop (`model_calls.py`)."""
        self.exactly_once = self.worker_settings.processing_guarantee == "exactly-once"
        self.delivery = Delivery(
            settings,
            self.worker_settings,
            self.topics,
            transactional_id=f"{group_id(settings)}.{worker_id or new_worker_id()}"
            if self.exactly_once
            else None,
        )
        cluster_id = self.admin.cluster_id(CLUSTER_ID_TIMEOUT_S)
        self.broker = broker_kind(cluster_id)
        self.group_protocol = group_protocol(settings, self.broker)
        self._consumer = Consumer(self.worker_settings.consumer_config(
            settings, group_id(settings), self.broker, self.group_protocol
        ))  # fmt: skip
        self.pauses = Pauses(self._consumer)
        """Partitions paused while the model they feed holds too much."""
        self.draining = Drain(self._consumer, self.topics)
        self.idle = IdlePause(
            self._consumer,
            lambda: entry_topics(self._plan.routes, self.topics),
            **self.worker_settings.idle_timings(self.broker),
            held=lambda: self.pauses.paused | self.draining.held,
            cooperative=self.group_protocol == "consumer",
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
        self._holders: dict[int, str] = {}
        """id(agent) -> the name its holds go by (stable across workers: pipeline/node)."""
        self._resume: dict[tuple[str, int], resume.Resume] = {}
        """Partitions replaying from their committed offset: which records go to whom."""
        self._to_resume: set[tuple[str, int]] = set()
        """Assigned partitions whose committed metadata is still to be read."""
        self._reseek = False  # a rewind: seek `_to_resume` to their committed offsets
        self._sent: dict[tuple[str, int], tuple[int, str]] = {}
        """Exactly once: the offset and metadata last committed per partition."""
        self.revoked = 0
        """Partitions taken from this worker by rebalances so far (tests read it)."""
        self.rewinds = 0
        """How often work was consumed again after a failed delivery or transaction."""
        if self.exactly_once and cluster_id is not None and self.broker == "tansu":
            log.warning(
                "exactly-once on tansu: it accepts transactions but does not hide aborted "
                "records from read_committed consumers, so answers may repeat; the "
                "guarantee holds on Apache Kafka"
            )

    # -- loading -----------------------------------------------------------------------

    def apply(self, topology: Topology, ensured: frozenset[str] = frozenset()) -> list[Status]:
        """Run exactly the models and pipelines of `topology` (hot: no restart); `ensured`
        topics were made already (`WorkerService` prepares off the loop)."""
        models = self.models.sync(topology.models)
        self.calls.configure(topology.models)
        new = plan(topology, models, self.topics, self.tracker, self._plan, self.calls)
        self.admin.ensure(new.topics - ensured)
        # Commit before the retired agents let go: no further than what they hold.
        self.commit(force=True)
        rewind: dict[tuple[str, int], int] = {}
        replay: dict[tuple[str, int], dict[str, set[int]]] = {}
        for agent in new.retired:
            # Its pipeline changed or went. What it held (half-joined, waiting for a
            # batch) is consumed again, so the agent replacing it answers those requests.
            self.tracker.holder = self._holders.get(id(agent), "")
            for topic, partition, offset in agent.abandon():
                tp = (topic, partition)
                rewind[tp] = min(offset, rewind.get(tp, offset))
                replay.setdefault(tp, {}).setdefault(self.tracker.holder, set()).add(offset)
        self._holders = {id(agent): holder_name(agent) for agent in new.agents}
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
                    end = self.tracker.next_offset((topic, partition))
                    if self.exactly_once and end is not None:
                        # Only the replacing agent (same name) gets them again: the
                        # others used them already, in committed transactions.
                        held = {k: frozenset(v) for k, v in replay[(topic, partition)].items()}
                        self._resume[(topic, partition)] = resume.Resume(end, held)
                    self._consumer.seek(TopicPartition(topic, partition, offset))
            if self._ready_announced:
                # Same topics, so no on_assign to come: the agents already consume,
                # and what did not fail is Ready now.
                statuses = new.ready()
        self.idle.active()  # a new subscription or a seek: fetch now, not at the next probe
        self.on_status(statuses)
        return statuses

    def recover(self) -> None:
        """After Kafka was unreachable: create this worker's topics again (a broker that
        kept nothing, as the embedded one, has lost them; a producer would otherwise
        have them created with the broker's own partition count) and subscribe anew, so
        the group forms over them and the statuses are announced again on assignment.
        Offsets and held records of the old partitions are forgotten: their records
        went with the broker, or are consumed again from the committed offsets."""
        self.admin.ensure(self._plan.topics)
        self.delivery.renew()
        assigned = sorted(self._assigned)
        numbers = {partition for _, partition in assigned}
        for agent in self._plan.agents:
            agent.drop_partitions(numbers)
        self.tracker.forget(assigned)
        self._assigned.clear()
        self._resume.clear()
        self._sent.clear()
        self._to_resume.clear()
        self._ready_announced = False
        if self._subscription:
            self._consumer.unsubscribe()
            self._consumer.subscribe(
                self._subscription, on_assign=self._on_assign, on_revoke=self._on_revoke
            )

    def ready(self) -> bool:
        """Serving: its consumer has joined the group (even with no partitions, as a
        spare worker does), or it has nothing to consume."""
        return self._ready_announced or not self._subscription

    # -- the loop ----------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        *,
        between_chunks: Callable[[], None] | None = None,
        grace_s: float = 0.0,
    ) -> None:
        try:
            while not stop.is_set():
                if between_chunks is not None:
                    between_chunks()
                self.step()
            self.idle.never_pause()
            busy = lambda: bool(self.tracker.held_count() or self.calls.in_flight())  # noqa: E731
            self.draining.run(self._assigned, grace_s, self.step, busy)
        finally:
            self.close()

    def step(self) -> int:
        """Consume one chunk, run the agents, write the results, commit when due; how many
        records came."""
        if not self._subscription:
            time.sleep(self._max_wait_s)
            return 0
        # consume(n, timeout) waits out its whole timeout unless n records come; poll
        # returns at the first record, then consume(timeout=0) takes what is buffered.
        first = self._consumer.poll(self.idle.wait_s(self._wait_s()))
        if first is None:
            messages = []
        else:
            messages = [first, *self._consumer.consume(self._chunk - 1, timeout=0)]
        self.idle.after_poll(messages)
        if self._to_resume and not self._read_resume_points():
            return 0  # the chunk is consumed again once the coordinator answers
        now_ms = _now_ms()
        out: list[Outgoing] = []
        routes = self._plan.routes
        tracker, holders = self.tracker, self._holders
        # Agents take a chunk's records topic by topic, so a step can answer many at once.
        by_topic, last_offsets = chunk_by_topic(messages, partition_eof=KafkaError._PARTITION_EOF)
        consumed = tracker.consumed
        for (topic, partition), offset in last_offsets.items():
            consumed(topic, partition, offset)
        for topic, records in by_topic.items():
            metrics.RECORDS_CONSUMED.labels(topic).inc(len(records))
            for agent, index in routes.get(topic, ()):
                tracker.holder = holders.get(id(agent), "")
                chunk = self._replayed(tracker.holder, records) if self._resume else records
                if chunk:
                    agent.process_chunk(index, chunk, now_ms, out)
        for agent in self._plan.agents:
            tracker.holder = holders.get(id(agent), "")
            agent.tick(now_ms, out, end_of_chunk=True)
        self.calls.turn(out)  # answers of model calls that returned, in order per agent
        if self._resume:
            self._resume = {
                tp: plan
                for tp, plan in self._resume.items()
                if (tracker.next_offset(tp) or 0) < plan.end
            }
        self.delivery.produce(out)
        self.commit()
        if self.delivery.must_rewind:
            self._rewind()
        full = self.calls.full_agents()
        if full or self.pauses.paused:
            topics = {source.topic for agent in full for source in agent.sources}  # type: ignore[attr-defined]
            self.pauses.update(topics, self._assigned)
        return len(messages)

    def _replayed(self, holder: str, records: list[Record]) -> list[Record]:
        """What of a chunk `holder` gets while partitions replay (see `resume.py`)."""
        plans = self._resume
        return [
            r
            for r in records
            if (how := plans.get((r.topic, r.partition))) is None or how.wanted(holder, r.offset)
        ]

    def _wait_s(self) -> float:
        deadlines = [
            d for d in (agent.next_deadline_ms() for agent in self._plan.agents) if d is not None
        ]
        calls = self.calls.wait_s()  # answers of model calls are due
        longest = self._max_wait_s if calls is None else min(calls, self._max_wait_s)
        if not deadlines:
            return longest
        return max(0.0, min(longest, (min(deadlines) - _now_ms()) / 1000))

    def commit(self, *, force: bool = False) -> None:
        """Commit what is safe once the commit interval passed (or now, with `force`);
        exactly once, every chunk's transaction."""
        if not self.kafka_reachable():
            return
        if self.exactly_once:
            self._commit_transaction()
            return
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

    def _commit_transaction(self) -> None:
        metrics.HELD_RECORDS.set(self.tracker.held_count())
        marks = resume.marks(self.tracker, self._assigned)
        due = [
            mark for tp, mark in marks.items() if self._sent.get(tp) != (mark.offset, mark.metadata)
        ]
        if self.delivery.commit_when_delivered(self._consumer, due):
            self._sent.update({(m.topic, m.partition): (m.offset, m.metadata) for m in due})
            self._lag.committed((m.topic, m.partition, m.offset) for m in due)
        self._lag.update(self._consumer, self._assigned)

    def _rewind(self) -> None:
        """Drop what the agents hold and consume again from the committed offsets, read at
        the next step: a coordinator that does not answer now (its broker just died) delays
        the redo, never ends the loop or skips records."""
        self.rewinds += 1
        assigned = sorted(self._assigned)
        for agent in self._plan.agents:
            agent.drop_partitions({partition for _, partition in assigned})
        self.tracker.forget(assigned)
        self._sent.clear()
        self._resume.clear()
        self._to_resume = set(assigned)
        self._reseek = True
        self.delivery.rewound()
        log.warning("consuming %d partitions again from their committed offsets", len(assigned))
        time.sleep(REWIND_PAUSE_S)

    def _read_resume_points(self) -> bool:
        """Where assigned or rewound partitions resume; False: drop the chunk just polled."""
        if not self.exactly_once and not self._reseek:
            self._to_resume.clear()
            return True
        partitions = sorted(self._to_resume & self._assigned)
        try:
            found = resume.read(self._consumer, partitions, COMMITTED_TIMEOUT_S)
        except KafkaException as error:
            # What this chunk brought must not be used without them: back to the committed.
            log.warning("committed offsets unreadable (will retry): %s", error)
            self._rewind()
            return False
        for (topic, partition), (offset, how) in found.items():
            if self._reseek:
                position = offset if offset >= 0 else OFFSET_BEGINNING
                self._consumer.seek(TopicPartition(topic, partition, position))
                self.idle.active()  # a seek: fetch now, not at the next probe
            if how is not None and self.exactly_once:
                self._resume[(topic, partition)] = how
        self._to_resume.clear()
        reseeked, self._reseek = self._reseek, False
        return not reseeked

    # -- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        self._to_resume |= {(p.topic, p.partition) for p in partitions}
        self.idle.assigned(partitions)  # librdkafka keeps partitions paused across a rebalance
        if not self._ready_announced:
            self._ready_announced = True
            statuses = self._plan.ready()
            ready = [s for s in statuses if s.state != "Failed"]
            self.on_status(ready + [s for s in statuses if s.state == "Failed"])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.commit(force=True)
        revoked = [(p.topic, p.partition) for p in partitions]
        self.revoked += len(revoked)
        # Only agents reading a revoked topic forget (KIP-848 revokes increments).
        for agent, numbers in self._plan.readers(revoked):
            agent.drop_partitions(numbers)
        self.tracker.forget(revoked)
        self.pauses.forget(revoked)
        self._assigned -= set(revoked)
        for tp in revoked:
            self._resume.pop(tp, None)
            self._sent.pop(tp, None)
            self._to_resume.discard(tp)

    def close(self) -> None:
        # Requests still held (half-joined, waiting for a batch) stay uncommitted:
        # the next owner of their partitions consumes them again.
        try:
            self.commit(force=True)
        except Fenced:
            log.error("fenced: this worker's transaction is left to the one that took over")
        finally:
            self._consumer.close()
            self.delivery.close()
            self.calls.close()
            self.models.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
