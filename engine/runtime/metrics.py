"""Prometheus metrics of a worker, counted per consumed chunk (never per record on the hot path).

`tensorflux worker --metrics-port N` serves them; `tensorflux up` serves them
at the gateway's `/metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

RECORDS_CONSUMED = Counter(
    "tensorflux_records_consumed_total", "Records the worker consumed", ["topic"]
)
RECORDS_PRODUCED = Counter(
    "tensorflux_records_produced_total", "Records the worker produced", ["topic"]
)
ERROR_RECORDS = Counter(
    "tensorflux_error_records_total",
    "Failures turned into error records",
    ["pipeline", "step", "kind"],
)
MODEL_CALL_SECONDS = Histogram(
    "tensorflux_model_call_seconds",
    "Time of one model call (several requests when batched)",
    ["model"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
MODEL_CALL_REQUESTS = Histogram(
    "tensorflux_model_call_requests",
    "Requests merged into one model call",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
HELD_RECORDS = Gauge(
    "tensorflux_held_records",
    "Records kept by joins and batches, not yet committable",
)

MODEL_HELD_REQUESTS = Gauge(
    "tensorflux_model_held_requests",
    "Requests handed to a model and not yet answered (running, queued or waiting their turn)",
    ["model"],
)
PAUSED_PARTITIONS = Gauge(
    "tensorflux_paused_partitions",
    "Partitions not fetched because the model they feed holds too many requests",
)


def count_by_topic(counter: Counter, counts: dict[str, int]) -> None:
    for topic, count in counts.items():
        counter.labels(topic).inc(count)


def observe_model_call(model: str, seconds: float, requests: int) -> None:
    MODEL_CALL_SECONDS.labels(model).observe(seconds)
    MODEL_CALL_REQUESTS.labels(model).observe(requests)


class ModelCalls:
    """`observe_model_call` for one model, its label children looked up once (a lane calling
    an unbatchable model once a request would look them up for every request)."""

    def __init__(self, model: str) -> None:
        self.seconds = MODEL_CALL_SECONDS.labels(model)
        self.requests = MODEL_CALL_REQUESTS.labels(model)

    def observe(self, seconds: float, requests: int) -> None:
        self.seconds.observe(seconds)
        self.requests.observe(requests)


STEP_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
)  # fmt: skip
STEP_REQUESTS = Counter(
    "tensorflux_step_requests_total",
    "Requests a step finished, by outcome: ok (answered) or the error record's kind",
    ["pipeline", "step", "outcome"],
)
PIPELINE_REQUESTS = Counter(
    "tensorflux_pipeline_requests_total",
    "Requests a pipeline finished on its outputs topic, by outcome: ok or the error's kind",
    ["pipeline", "outcome"],
)
STEP_SECONDS = Histogram(
    "tensorflux_step_seconds",
    "From a request's arrival at a step (its chunk consumed) to the step's answer",
    ["pipeline", "step"],
    buckets=STEP_BUCKETS,
)
JOIN_WAIT_SECONDS = Histogram(
    "tensorflux_join_wait_seconds",
    "How long a joining step waited for a request's last input after its first",
    ["pipeline", "step"],
    buckets=STEP_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "tensorflux_consumer_lag",
    "Records of a topic-partition the worker's group has not committed yet (end - committed)",
    ["topic", "partition"],
)
MODEL_STATE = Gauge(
    "tensorflux_model_state",
    "1 for a model's load state as the worker last reported it (Loading, Ready, Failed)",
    ["model", "state"],
)


def observe_many(histogram: Any, seconds: float, count: int) -> None:
    """`count` observations of the same value at once: a fast-lane chunk's requests all
    arrived and were answered together (prometheus_client observes one at a time)."""
    histogram._sum.inc(seconds * count)
    for bucket, bound in zip(histogram._buckets, histogram._upper_bounds, strict=True):
        if seconds <= bound:
            bucket.inc(count)
            break


class NodeMetrics:
    """A node's label children, looked up once (a `.labels()` call per chunk costs more than
    the increment)."""

    def __init__(self, pipeline: str, step: str, output_pipeline: str | None) -> None:
        self.pipeline, self.step = pipeline, step
        self.output_pipeline = output_pipeline
        """The pipeline whose outputs this node writes (an output node, or a fused step)."""
        self.ok = STEP_REQUESTS.labels(pipeline, step, "ok")
        self.seconds = STEP_SECONDS.labels(pipeline, step)
        self.join_wait = JOIN_WAIT_SECONDS.labels(pipeline, step)
        self.answers = PIPELINE_REQUESTS.labels(output_pipeline, "ok") if output_pipeline else None

    def answered(self, count: int, seconds: float) -> None:
        """`count` requests answered `seconds` after they arrived."""
        self.ok.inc(count)
        observe_many(self.seconds, seconds, count)
        if self.answers is not None:
            self.answers.inc(count)

    def output(self, count: int = 1) -> None:
        if self.answers is not None:
            self.answers.inc(count)

    def failed(self, kind: str) -> None:
        STEP_REQUESTS.labels(self.pipeline, self.step, kind).inc()
        if self.pipeline:
            PIPELINE_REQUESTS.labels(self.pipeline, kind).inc()


def observe_statuses(statuses: Iterable[Any]) -> None:
    """Each model's load state from the worker's status reports (one state set to 1)."""
    for status in statuses:
        if status.kind != "model":
            continue
        for state in ("Loading", "Ready", "Failed"):
            MODEL_STATE.labels(status.name, state).set(1 if status.state == state else 0)


class ConsumerLag:
    """`tensorflux_consumer_lag` of the partitions a worker is assigned.

    The end of a partition is the larger of the high watermark (as last fetched, no
    broker round trip) and the worker's own position: the embedded broker's watermark
    is the last batch's base offset + 1, below the true end, and a partition the
    worker read past it has at least that many records. The committed offset is the
    worker's last commit there, or its position before it committed any.
    """

    def __init__(self) -> None:
        self._committed: dict[tuple[str, int], int] = {}
        self._shown: set[tuple[str, int]] = set()

    def committed(self, offsets: Iterable[tuple[str, int, int]]) -> None:
        for topic, partition, offset in offsets:
            self._committed[(topic, partition)] = offset

    def update(self, consumer: Any, assigned: set[tuple[str, int]]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        for tp in self._shown - assigned:
            CONSUMER_LAG.remove(tp[0], str(tp[1]))
            self._committed.pop(tp, None)
        self._shown &= assigned
        if not assigned:
            return
        try:
            positions = consumer.position([TopicPartition(t, p) for t, p in sorted(assigned)])
        except KafkaException:  # mid-rebalance: the next commit sets it
            return
        for position in positions:
            tp = (position.topic, position.partition)
            _, high = consumer.get_watermark_offsets(position, cached=True)
            ahead = position.offset if position.offset >= 0 else -1
            end = max(high, ahead)
            committed = self._committed.get(tp, ahead)
            if end < 0 or committed < 0:
                continue
            CONSUMER_LAG.labels(tp[0], str(tp[1])).set(max(0, end - committed))
            self._shown.add(tp)
