"""What `Delivery.produce` writes is what a keyword `produce()` call would write.

The worker's hot path passes produce()'s arguments by position (topic, value, key,
partition, callback, on_delivery, timestamp, headers), relying on confluent-kafka's
own defaults for the partition (-1: the partitioner picks), the callback (the
producer's) and the timestamp (0: now). A client whose signature moved would write
records without their headers, or all to one partition: this reads them back.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, TIMESTAMP_CREATE_TIME, Consumer, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.runtime.delivery import Delivery
from engine.runtime.records import Outgoing
from engine.runtime.settings import WorkerSettings

from .helpers import DEADLINE_S, Kafka, new_id

PARTITIONS = 4
Read = dict[str, tuple[int, bytes, list[tuple[str, bytes]], int, int]]
"""Key -> (partition, value, headers, timestamp type, timestamp ms)."""


def _headers(rid: str) -> list[tuple[str, bytes]]:
    return [("x-request-id", rid.encode()), ("pipeline", b"p"), ("step", b"s"), ("v", b"1")]


def _read(settings: KafkaSettings, topic: str, count: int) -> Read:
    consumer = Consumer(settings.consumer_config(f"reader-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.assign([KafkaPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        found: Read = {}
        deadline = time.monotonic() + DEADLINE_S
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=0.05):
                if message.error() is None:
                    kind, stamp = message.timestamp()
                    found[(message.key() or b"").decode()] = (
                        message.partition(),
                        message.value() or b"",
                        message.headers() or [],
                        kind,
                        stamp,
                    )
        return found
    finally:
        consumer.close()


def test_records_keep_key_value_headers_creation_time_and_the_default_partition(
    kafka_settings: KafkaSettings, kafka: Kafka
):
    ours, theirs = (
        kafka.topics.step_outputs("p", "positional"),
        kafka.topics.step_outputs("p", "kw"),
    )
    TopicAdmin(kafka_settings).ensure([ours, theirs], partitions=PARTITIONS)
    ids = [new_id() for _ in range(24)]
    written_after_ms = int(time.time() * 1000) - 1000  # the broker's clock may lag ours a bit
    delivery = Delivery(kafka_settings, WorkerSettings(), kafka.topics)
    try:
        delivery.produce([Outgoing(ours, rid, f"v-{rid}".encode(), _headers(rid)) for rid in ids])
    finally:
        delivery.close()
    producer = Producer(kafka_settings.producer_config())
    for rid in ids:
        producer.produce(theirs, f"v-{rid}".encode(), rid, headers=_headers(rid))
    assert producer.flush(10) == 0

    got, expected = _read(kafka_settings, ours, len(ids)), _read(kafka_settings, theirs, len(ids))
    assert set(got) == set(expected) == set(ids)
    for rid in ids:
        partition, value, headers, kind, stamp = got[rid]
        assert (partition, value, headers) == expected[rid][:3], rid
        assert kind == TIMESTAMP_CREATE_TIME and stamp >= written_after_ms, rid
    assert len({got[rid][0] for rid in ids}) > 1, "every key on one partition: nothing tested"
