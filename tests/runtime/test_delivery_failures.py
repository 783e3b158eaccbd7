"""A record Kafka refuses after produce() returned becomes an error record; if even that
fails, the worker stops committing (at least once: nothing is lost, work is redone)."""

from __future__ import annotations

from engine import headers as h
from engine.runtime.records import Outgoing
from engine.runtime.worker import Worker

from .helpers import Kafka, new_id

INVALID = "bad step!"  # a name produce() accepts in a topic and the broker refuses


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
