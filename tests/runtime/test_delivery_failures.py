"""A record Kafka refuses after produce() returned becomes an error record; if even that
fails, the worker stops committing (at least once: nothing is lost, work is redone)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from engine import headers as h
from engine.config import KafkaSettings
from engine.runtime import worker as worker_module
from engine.runtime.records import Outgoing
from engine.runtime.settings import WorkerSettings
from engine.runtime.worker import Worker

from .helpers import DEADLINE_S, MODELS, PIPELINES, Kafka, compile_specs, int32, new_id

INVALID = "bad step!"  # a name produce() accepts in a topic and the broker refuses
CHAIN_BASE = PIPELINES / "chain-base.yaml"  # one step: tfsimple1
ROW = int32(*range(1, 17), shape=(1, 16))


def test_a_refused_delivery_becomes_an_error_record(kafka_settings, kafka: Kafka):
    worker = Worker(kafka_settings)
    try:
        rid = new_id()
        refused_topic = kafka.topics.step_outputs("somepipe", INVALID)
        worker.admin.ensure([kafka.topics.errors(), kafka.topics.pipeline_outputs("somepipe")])
        worker.delivery.produce([Outgoing(refused_topic, rid, b"payload", [])])
        worker.commit(force=True)
        assert worker.delivery.lost == 0
        error = kafka.collect(kafka.topics.errors(), [rid])[rid].error()
        assert (error.pipeline, error.step, error.stage) == ("somepipe", INVALID, "produce")
        assert refused_topic in error.reason
        assert kafka.collect(kafka.topics.pipeline_outputs("somepipe"), [rid])[rid].is_error
    finally:
        worker.close()


def test_a_lost_error_record_stops_commits(kafka_settings, kafka: Kafka):
    worker = Worker(kafka_settings)
    try:
        # An error record to a pipeline whose outputs topic the broker refuses.
        refused_topic = kafka.topics.pipeline_outputs(INVALID)
        worker.delivery.produce(
            [Outgoing(refused_topic, "r", b"error record", [(h.ERROR, b"internal")])]
        )
        worker.tracker.consumed("some-topic", 0, 41)
        worker._assigned.add(("some-topic", 0))
        worker.commit(force=True)
        assert worker.delivery.lost == 1
        # Nothing was committed: the tracker still has the offset due.
        assert worker.tracker.committable() == {("some-topic", 0): 42}
    finally:
        worker.close()


def test_an_error_record_refused_on_the_spot_stops_commits_too(kafka_settings, kafka: Kafka):
    # Once librdkafka has learnt that a topic is unknown, it refuses records for it in
    # produce() itself: the error record is then lost on the spot, not in a delivery
    # report, and the worker must stop committing just the same instead of crashing.
    worker = Worker(kafka_settings)
    try:
        worker.admin.ensure([kafka.topics.errors()])  # Kafka makes no topic on a produce
        refused_topic = kafka.topics.pipeline_outputs(INVALID)
        error_record = Outgoing(refused_topic, "r", b"error record", [(h.ERROR, b"internal")])
        worker.delivery.produce([error_record])
        worker.commit(force=True)  # the broker's refusal teaches librdkafka the topic
        assert worker.delivery.lost == 1
        worker.delivery.rewound()
        worker.delivery.produce([error_record])
        worker.tracker.consumed("some-topic", 0, 41)
        worker._assigned.add(("some-topic", 0))
        worker.commit(force=True)
        assert worker.delivery.lost == 1
        assert worker.delivery.must_rewind
        assert worker.tracker.committable() == {("some-topic", 0): 42}
    finally:
        worker.close()


def test_a_record_refused_on_the_spot_names_its_writer_from_its_topic(kafka_settings, kafka: Kafka):
    # Over message.max.bytes: librdkafka refuses it in produce() itself, before any
    # delivery report; without headers, the error must still say whose record it was.
    worker = Worker(kafka_settings)
    try:
        rid = new_id()
        topic = kafka.topics.step_outputs("somepipe", "big")
        worker.admin.ensure(
            [kafka.topics.errors(), topic, kafka.topics.pipeline_outputs("somepipe")]
        )
        worker.delivery.produce([Outgoing(topic, rid, b"x" * 8_000_000, [])])
        worker.commit(force=True)
        error = kafka.collect(kafka.topics.errors(), [rid])[rid].error()
        assert (error.pipeline, error.step, error.stage) == ("somepipe", "big", "produce")
        assert error.kind == "bad-input"
    finally:
        worker.close()


@pytest.mark.parametrize("guarantee", ["at-least-once", "exactly-once"])
def test_a_rewind_while_committed_offsets_are_unreadable_skips_nothing(
    kafka_settings, kafka: Kafka, monkeypatch, guarantee
):
    """The worker must consume again from its committed offsets (a delivery failed, a
    transaction aborted) just when the group coordinator does not answer (its broker
    died): the loop goes on, rewinding again, and once the coordinator answers every
    request is answered; none was skipped."""
    worker = Worker(kafka_settings, worker_settings=WorkerSettings(processing_guarantee=guarantee))
    outputs = _Seen(kafka_settings, kafka.topics.pipeline_outputs("chain-base"))
    try:
        worker.apply(compile_specs(kafka_settings, [MODELS / "tfsimple1.yaml", CHAIN_BASE]))
        _drive(worker, lambda: worker.ready() and bool(worker._assigned))
        before, during = [new_id("before") for _ in range(5)], [new_id("during") for _ in range(5)]
        for rid in before:
            kafka.infer("chain-base", rid, INPUT0=ROW, INPUT1=ROW)
        _drive(worker, lambda: outputs.read() >= set(before))
        worker.commit(force=True)
        # No answer in time from the coordinator, as while its broker is gone.
        monkeypatch.setattr(worker_module, "COMMITTED_TIMEOUT_S", 0.0)
        for rid in during:
            kafka.infer("chain-base", rid, INPUT0=ROW, INPUT1=ROW)
        rewinds = worker.rewinds
        worker._rewind()
        for _ in range(3):
            worker.step()
        assert worker.rewinds > rewinds + 1, "the committed offsets were read: nothing tested"
        monkeypatch.undo()
        _drive(worker, lambda: outputs.read() >= set(during))
    finally:
        worker.close()
        outputs.close()


class _Seen:
    """The request ids answered on `topic` so far, read without blocking the test's loop."""

    def __init__(self, settings: KafkaSettings, topic: str) -> None:
        self._consumer = Consumer(settings.consumer_config(f"seen-{uuid.uuid4().hex[:8]}"))
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.ids: set[str] = set()

    def read(self) -> set[str]:
        for message in self._consumer.consume(100, timeout=0.05):
            if message.error() is None:
                self.ids.add((message.key() or b"").decode())
        return self.ids

    def close(self) -> None:
        self._consumer.close()


def _drive(worker: Worker, until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not until():
        assert time.monotonic() < deadline, "the worker never got there"
        worker.step()
