"""The worker: one confluent-kafka consumer and producer driving every agent it runs.

Workers of one namespace form a consumer group over the same topic set with
the range assignor, so partition i of every co-partitioned topic lands on
one worker and a request's records always meet there. Consumption and
production are batched; model calls are batched across requests ready in the
same chunk. Offsets are committed only after what the records caused was
delivered and only up to the first record an agent still holds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from engine import headers as h
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.messages import ErrorRecord
from engine.runtime import metrics
from engine.runtime.agent import NodeAgent, Outgoing
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Record, error_outgoing
from engine.runtimes import load_model
from engine.runtimes.base import ModelRuntime
from engine.topology.graph import Node, PipelineGraph, Source, TensorRef, Topology
from engine.topology.specs import ModelSpec
from engine.topology.topics import TopicNames

log = logging.getLogger("tensorflux.worker")

CHUNK = int(os.environ.get("TENSORFLUX_WORKER_CHUNK", "1000"))
"""Records consumed per loop turn (and the most one batched model call sees)."""
# Client defaults chosen with `make bench BENCH_ARGS=--sweep` (README "Performance");
# a librdkafka setting the user passes (TENSORFLUX_KAFKA_LINGER_MS, a config file) wins.
PRODUCER_DEFAULTS = {"linger.ms": 2, "batch.num.messages": 10000}
CONSUMER_DEFAULTS = {"fetch.wait.max.ms": 10, "fetch.min.bytes": 1}
MAX_WAIT_S = 0.1
COMMIT_INTERVAL_S = 1.0


@dataclass
class Status:
    """What a worker says about one model or pipeline."""

    kind: str  # "model" | "pipeline"
    name: str
    state: str  # "Loading" | "Ready" | "Failed"
    reason: str = ""


@dataclass
class _Plan:
    agents: list[NodeAgent] = field(default_factory=list)
    routes: dict[str, list[tuple[NodeAgent, int]]] = field(default_factory=dict)
    statuses: dict[tuple[str, str], Status] = field(default_factory=dict)


def group_id(settings: KafkaSettings) -> str:
    """Stable: derived from the namespace, never from a counter."""
    return f"{settings.topic_prefix}.{settings.namespace}.workers"


def model_node(model: str, topics: TopicNames) -> Node:
    """Direct inference over Kafka: a one-step node reading the model's inputs topic."""
    source = Source(TensorRef("", model, "inputs", None), topics.model_inputs(model), ())
    return Node(
        pipeline="",
        name=model,
        kind="step",
        model=model,
        inputs=(source,),
        triggers=(),
        inputs_join="inner",
        triggers_join="inner",
        join_window_ms=0,
        batch=None,
        request_topic=None,
        output_topic=topics.model_outputs(model),
    )


def fused_output_step(graph: PipelineGraph) -> str | None:
    """The step whose answers the pipeline's output passes on unchanged, if that is all it does."""
    output = graph.output_node
    if graph.allow_cycles or len(output.inputs) != 1 or output.triggers:
        return None
    source = output.inputs[0]
    ref = source.ref
    if ref.pipeline != graph.name or ref.step is None or ref.port != "outputs":
        return None
    if ref.tensor is not None or source.renames:
        return None
    return ref.step


class Worker:
    def __init__(
        self,
        settings: KafkaSettings,
        *,
        on_status: Callable[[list[Status]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topics = settings.topics()
        self.admin = TopicAdmin(settings)
        self.tracker = OffsetTracker()
        self.on_status = on_status or (lambda statuses: None)
        self._models: dict[str, tuple[ModelSpec, ModelRuntime | Exception]] = {}
        self._plan = _Plan()
        self._subscription: list[str] = []
        self._assigned: set[tuple[str, int]] = set()
        self._ready_announced = False
        user = settings.librdkafka
        self._refused: list[tuple[Outgoing, KafkaError]] = []
        self._lost = 0
        """Records Kafka never took, not even as error records: commits stop (at least once)."""
        self._producer = Producer(
            settings.producer_config(
                **{k: v for k, v in PRODUCER_DEFAULTS.items() if k not in user},
                # Only failures are reported: a successful delivery costs no callback.
                **{"delivery.report.only.error": True, "on_delivery": self._on_delivery},
            )
        )
        self._consumer = Consumer(
            settings.consumer_config(
                group_id(settings),
                **{k: v for k, v in CONSUMER_DEFAULTS.items() if k not in user},
            )
        )
        self._last_commit = time.monotonic()

    # -- loading -----------------------------------------------------------------------

    def apply(self, topology: Topology) -> list[Status]:
        """Run exactly the models and pipelines of `topology` (hot: no restart)."""
        statuses: dict[tuple[str, str], Status] = {}
        for name, spec in topology.models.items():
            runtime = self._load(name, spec)
            state = ("Failed", str(runtime)) if isinstance(runtime, Exception) else ("Loading", "")
            statuses[("model", name)] = Status("model", name, *state)
        for name in set(self._models) - set(topology.models):
            _, runtime = self._models.pop(name)
            if not isinstance(runtime, Exception):
                runtime.close()

        plan = _Plan(statuses=statuses)
        errors = self.topics.errors()
        needed = {errors}
        for name in topology.models:
            _, runtime = self._models[name]
            if isinstance(runtime, Exception):
                continue
            node = model_node(name, self.topics)
            self._add(plan, self._agent(node, node.output_topic, runtime, None))
            needed |= {node.inputs[0].topic, node.output_topic}
        for name, graph in topology.pipelines.items():
            failed = self._failed_models(graph)
            if failed:
                statuses[("pipeline", name)] = Status("pipeline", name, "Failed", failed)
                continue
            fused = fused_output_step(graph)
            for node in graph.nodes():
                if fused is not None and node is graph.output_node:
                    continue  # the step writes the output itself (see NodeAgent.fuse_output)
                model = self._models[node.model][1] if node.model else None
                max_visits = graph.max_step_revisits + 1 if graph.allow_cycles else None
                agent = self._agent(node, graph.output_topic, model, max_visits)
                agent.fused_output = None
                if node.kind == "step" and node.name == fused:
                    agent.fuse_output(graph.output_node)
                self._add(plan, agent)
            needed |= graph.owned_topics() | graph.read_topics()
            statuses[("pipeline", name)] = Status("pipeline", name, "Loading")
        self.admin.ensure(needed)
        self._flush_and_commit(force=True)
        kept = {id(agent) for agent in plan.agents}
        rewind: dict[tuple[str, int], int] = {}
        for agent in self._plan.agents:
            if id(agent) not in kept:
                # Its pipeline changed or went. What it held (half-joined, waiting for a
                # batch) is consumed again, so the agent replacing it answers those requests.
                for topic, partition, offset in agent.abandon():
                    tp = (topic, partition)
                    rewind[tp] = min(offset, rewind.get(tp, offset))
        for (topic, partition), offset in rewind.items():
            self.tracker.rewind(topic, partition, offset)
        self._plan = plan
        subscription = sorted(plan.routes)
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
                for key, status in statuses.items():
                    if status.state != "Failed":
                        statuses[key] = Status(status.kind, status.name, "Ready")
        self.on_status(list(statuses.values()))
        return list(statuses.values())

    def _agent(
        self, node: Node, failure_topic: str, model: ModelRuntime | None, max_visits: int | None
    ) -> NodeAgent:
        """The running agent when nothing about it changed (its join state lives on), else a new one."""
        for agent in self._plan.agents:
            if (
                agent.node == node
                and agent.model is model
                and agent.failure_topic == failure_topic
                and agent.max_visits == max_visits
            ):
                return agent
        return NodeAgent(
            node,
            errors_topic=self.topics.errors(),
            failure_topic=failure_topic,
            tracker=self.tracker,
            model=model,
            max_visits=max_visits,
        )

    def _load(self, name: str, spec: ModelSpec) -> ModelRuntime | Exception:
        known = self._models.get(name)
        if known is not None and known[0] == spec:
            return known[1]
        if known is not None and not isinstance(known[1], Exception):
            known[1].close()
        try:
            runtime: ModelRuntime | Exception = load_model(spec)
        except Exception as error:  # a model that fails to load fails alone
            log.error("model %s failed to load: %s", name, error)
            runtime = error
        self._models[name] = (spec, runtime)
        return runtime

    def _failed_models(self, graph: PipelineGraph) -> str:
        reasons = []
        for model in sorted(graph.models()):
            entry = self._models.get(model)
            if entry is None:
                reasons.append(f"model '{model}' is not loaded")
            elif isinstance(entry[1], Exception):
                reasons.append(f"model '{model}' failed to load: {entry[1]}")
        return "; ".join(reasons)

    @staticmethod
    def _add(plan: _Plan, agent: NodeAgent) -> None:
        plan.agents.append(agent)
        for index, source in enumerate(agent.sources):
            plan.routes.setdefault(source.topic, []).append((agent, index))

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
            time.sleep(MAX_WAIT_S)
            return
        # consume(n, timeout) waits out its whole timeout unless n records come; poll
        # returns at the first record, then consume(timeout=0) takes what is buffered.
        first = self._consumer.poll(self._wait_s())
        messages = [] if first is None else [first, *self._consumer.consume(CHUNK - 1, timeout=0)]
        now_ms = _now_ms()
        out: list[Outgoing] = []
        routes = self._plan.routes
        # Agents take a chunk's records topic by topic, so a step can answer many at once.
        by_topic: dict[str, list[Record]] = {}
        last_offsets: dict[tuple[str, int], int] = {}  # per partition, in consumed order
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            last_offsets[(topic, partition)] = offset
            key = message.key()
            record = Record(
                topic,
                partition,
                offset,
                key.decode("utf-8", "replace") if key else "",
                message.value() or b"",
                message.headers() or [],
            )
            records = by_topic.get(topic)
            if records is None:
                by_topic[topic] = [record]
            else:
                records.append(record)
        consumed = self.tracker.consumed
        for (topic, partition), offset in last_offsets.items():
            consumed(topic, partition, offset)
        for topic, records in by_topic.items():
            metrics.RECORDS_CONSUMED.labels(topic).inc(len(records))
            for agent, index in routes.get(topic, ()):
                agent.process_chunk(index, records, now_ms, out)
        for agent in self._plan.agents:
            agent.tick(now_ms, out, end_of_chunk=True)
        self._produce(out)
        self._flush_and_commit()

    def _wait_s(self) -> float:
        deadlines = [
            d for d in (agent.next_deadline_ms() for agent in self._plan.agents) if d is not None
        ]
        if not deadlines:
            return MAX_WAIT_S
        return max(0.0, min(MAX_WAIT_S, (min(deadlines) - _now_ms()) / 1000))

    def _produce(self, out: list[Outgoing]) -> None:
        produce = self._producer.produce
        refused: set[int] = set()  # one answer written to two topics fails once, not twice
        for item in out:
            try:
                produce(item.topic, item.value, item.key, headers=item.headers)
            except BufferError:
                self._producer.poll(0.5)  # the local queue is full: let deliveries drain
                produce(item.topic, item.value, item.key, headers=item.headers)
            except KafkaException as error:
                if id(item.value) not in refused:
                    refused.add(id(item.value))
                    self._produce_failed(item, error)
        self._producer.poll(0)
        produced = Counter(item.topic for item in out)
        metrics.count_by_topic(metrics.RECORDS_PRODUCED, produced)
        errors_topic = self.topics.errors()
        for item in out if errors_topic in produced else ():
            if item.topic == errors_topic:
                metrics.ERROR_RECORDS.labels(
                    h.header_value(item.headers, h.PIPELINE) or "",
                    h.header_value(item.headers, h.STEP) or "",
                    h.header_value(item.headers, h.ERROR) or "",
                ).inc()

    def _produce_failed(self, item: Outgoing, error: KafkaException) -> None:
        """A record Kafka refuses (too large, ...) becomes an error record; the stream goes on."""
        pipeline = h.header_value(item.headers, h.PIPELINE) or ""
        step = h.header_value(item.headers, h.STEP) or ""
        record = ErrorRecord(
            pipeline=pipeline,
            step=step,
            request_id=item.key,
            stage="produce",
            reason=f"cannot write to {item.topic}: {error.args[0].str()} ({len(item.value)} bytes)",
            kind="bad-input"
            if error.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE
            else "internal",
            error_type="KafkaException",
        )
        failure_topic = (
            self.topics.pipeline_outputs(pipeline) if pipeline else self.topics.model_outputs(step)
        )
        for out in error_outgoing(record, item.headers, self.topics.errors(), failure_topic):
            self._producer.produce(out.topic, out.value, out.key, headers=out.headers)

    def _flush_and_commit(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_commit < COMMIT_INTERVAL_S:
            return
        self._last_commit = time.monotonic()
        metrics.HELD_RECORDS.set(self.tracker.held_count())
        due = self.tracker.committable()
        # Everything produced so far must be durable before its inputs are committed
        # (and deliveries refused meanwhile are reported here, even with nothing due).
        remaining = self._producer.flush(30)
        if self._refused:
            # Refused after the fact (broker-side size limit, authorisation, timeout):
            # each becomes an error record, and only then are its inputs committed.
            refused, self._refused = self._refused, []
            for item, error in refused:
                self._produce_failed(item, KafkaException(error))
            remaining = self._producer.flush(30)
        if remaining or self._lost:
            log.warning(
                "%d records not delivered, %d lost; offsets not committed",
                remaining,
                self._lost,
            )
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in due.items() if (t, p) in self._assigned]
        if not offsets:
            return
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
            self.tracker.mark_committed({(o.topic, o.partition): o.offset for o in offsets})
        except KafkaException as error:
            log.warning("commit failed (will retry): %s", error)

    def _on_delivery(self, error: KafkaError | None, message: object) -> None:
        """librdkafka reports a record it finally could not deliver."""
        if error is None:
            return
        topic = message.topic()  # type: ignore[attr-defined]
        log.error("record for %s not delivered: %s", topic, error.str())
        owner = self.topics.parse(topic)
        pipeline = owner.pipeline if owner else ""
        step = (owner.step or owner.model) if owner else ""
        if topic == self.topics.errors() or (
            pipeline and topic == self.topics.pipeline_outputs(pipeline) and step == ""
        ):
            self._lost += 1  # where error records go failed: nothing left to tell anyone
            return
        # Delivery reports carry no headers: who wrote the record follows from its topic.
        headers = [(h.PIPELINE, pipeline.encode()), (h.STEP, step.encode())]
        key = (message.key() or b"").decode("utf-8", "replace")  # type: ignore[attr-defined]
        value = message.value() or b""  # type: ignore[attr-defined]
        self._refused.append((Outgoing(topic, key, value, headers), error))

    # -- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned |= {(p.topic, p.partition) for p in partitions}
        if not self._ready_announced:
            self._ready_announced = True
            ready = [
                Status(s.kind, s.name, "Ready")
                for s in self._plan.statuses.values()
                if s.state != "Failed"
            ]
            self.on_status(ready + [s for s in self._plan.statuses.values() if s.state == "Failed"])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._flush_and_commit(force=True)
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
            self._flush_and_commit(force=True)
        finally:
            self._consumer.close()
            self._producer.flush(10)
            for _, runtime in self._models.values():
                if not isinstance(runtime, Exception):
                    runtime.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
