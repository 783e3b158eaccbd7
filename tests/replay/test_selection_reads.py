"""Range reads in a row on one reader: each read's records are its own, whatever the
read before it left on the way (a read returns at its first chance, so the EOF and the
records past the end of the one before may still come)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.replay.reading import RangeReader

RECORDED = 500
ROUNDS = 5


def _offsets(reader: RangeReader, topic: str, start: int, end: int | None) -> list[int]:
    return [m.offset() for m in reader.read({(topic, 0): (start, end)})]


def test_each_of_several_reads_of_the_same_partition_sees_its_own_records(
    kafka_settings: KafkaSettings,
):
    topic = kafka_settings.topics().pipeline_inputs("reads")
    TopicAdmin(kafka_settings).ensure([topic])
    producer = Producer(kafka_settings.producer_config(**{"linger.ms": 5}))
    for i in range(RECORDED):
        producer.produce(topic, b"recorded", f"r-{i}")
    assert producer.flush(30) == 0
    stop = threading.Event()

    def live() -> None:  # traffic keeps coming: every read ends before the partition does
        i = 0
        while not stop.is_set():
            producer.produce(topic, b"live", f"live-{i}")
            producer.poll(0)
            i += 1
            time.sleep(0.002)

    feeder = threading.Thread(target=live)
    feeder.start()
    reader = RangeReader(kafka_settings)
    try:
        for _ in range(ROUNDS):
            # ends_now stops at the first record written after its moment: that
            # partition's EOF is still to come when the range read after it starts.
            end = reader.ends_now(topic, 1, time.time_ns() // 1_000_000)[0]
            assert end >= RECORDED
            assert _offsets(reader, topic, 0, end) == list(range(end))
            # A read that ends with records past its end fetched already, twice.
            assert _offsets(reader, topic, 0, 10) == list(range(10))
            assert _offsets(reader, topic, 5, 20) == list(range(5, 20))
            # To the EOF from near the end, after reads that stopped far before it.
            tail = _offsets(reader, topic, end - 1, None)
            assert tail[:1] == [end - 1] and tail == list(range(end - 1, end - 1 + len(tail)))
    finally:
        stop.set()
        feeder.join()
        producer.flush(30)
        reader.close()


def test_a_range_with_nothing_left_in_it_ends(kafka_settings: KafkaSettings):
    # Its EOF comes before any record of the read: the read checks it once and ends.
    topic = kafka_settings.topics().pipeline_inputs("empty-tail")
    TopicAdmin(kafka_settings).ensure([topic])
    producer = Producer(kafka_settings.producer_config())
    for i in range(3):
        producer.produce(topic, b"v", f"k-{i}")
    assert producer.flush(30) == 0
    reader = RangeReader(kafka_settings)
    try:
        assert _offsets(reader, topic, 3, None) == []
        assert _offsets(reader, topic, 0, None) == [0, 1, 2]
        assert _offsets(reader, topic, 3, None) == []
    finally:
        reader.close()
