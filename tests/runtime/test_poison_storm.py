"""A flood of poison mixed with good traffic (issue 18): 10k bad records (random bytes,
truncated Avro, wrong shapes, broken JSON, wrong datatypes, shape/data mismatches)
among 10k good ones (half Avro, half JSON) on one input topic. Every good request is
answered right, every bad record becomes exactly one error record, the worker goes on."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest

from engine import headers as h
from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage

from .helpers import MODELS, PIPELINES, Kafka, RunningWorker, compile_specs, int32, new_id, tensors

GOOD, BAD = 10_000, 10_000  # as issue 18 asks: a flood, not a few
ROW = list(range(1, 17))


@pytest.fixture(scope="module")
def settings(module_kafka_settings: KafkaSettings) -> KafkaSettings:
    return module_kafka_settings


@pytest.fixture(scope="module")
def worker(settings: KafkaSettings) -> Iterator[RunningWorker]:
    running = RunningWorker(settings, compile_specs(settings, [MODELS, PIPELINES]))
    running.wait_ready("pipeline", "tfsimples")
    yield running
    running.stop()


def _poison(rng: random.Random, rid: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """One bad record of a random kind: garbage, truncated Avro, a wrong shape, bad JSON."""
    good = encode_avro(
        InferenceMessage(
            rid,
            tensors(INPUT0=int32(*ROW, shape=(1, 16)), INPUT1=int32(*ROW, shape=(1, 16))),
            "request",
        )  # fmt: skip
    )
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200)), []
    if kind == 1:
        return good[: rng.randrange(1, len(good) - 1)], []
    if kind == 2:
        short = InferenceMessage(rid, tensors(INPUT0=int32(1, 2, shape=(1, 2)), INPUT1=int32(1, 2, shape=(1, 2))), "request")  # fmt: skip
        return encode_avro(short), []
    if kind == 3:
        return b'{"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [1, 16]', [
            (h.CONTENT_TYPE, b"application/json")
        ]
    if kind == 4:
        return b'{"inputs": "not a list"}', [(h.CONTENT_TYPE, b"application/json")]
    bad_item = (
        {"name": "INPUT0", "datatype": "NOPE", "shape": [1, 16], "data": ROW},  # datatype
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": [1, 2, 3]},  # shape
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": ["a"] * 16},  # data
    )[kind - 5]
    item = {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": ROW}
    document = {"id": rid, "inputs": [bad_item, item]}
    return json.dumps(document).encode(), [(h.CONTENT_TYPE, b"application/json")]


def _good_json(rid: str) -> bytes:
    items = [{"name": n, "datatype": "INT32", "shape": [1, 16], "data": ROW} for n in ("INPUT0", "INPUT1")]  # fmt: skip
    return json.dumps({"id": rid, "inputs": items}).encode()


def test_a_poison_flood_mixed_with_good_traffic(worker: RunningWorker, settings: KafkaSettings):
    kafka = Kafka(settings)
    rng = random.Random(18)
    topic = kafka.topics.pipeline_inputs("tfsimples")
    kinds = ["good"] * GOOD + ["bad"] * BAD
    rng.shuffle(kinds)
    good_ids, bad_ids = [], []
    request = encode_avro
    for kind in kinds:
        rid = new_id(kind)
        if kind == "good" and len(good_ids) % 2:  # good traffic is half JSON
            good_ids.append(rid)
            headers = [(h.CONTENT_TYPE, b"application/json")]
            kafka.producer.produce(topic, _good_json(rid), rid, headers=headers)
        elif kind == "good":
            good_ids.append(rid)
            value = request(InferenceMessage(rid, tensors(INPUT0=int32(*ROW, shape=(1, 16)), INPUT1=int32(*ROW, shape=(1, 16))), "request"))  # fmt: skip
            kafka.producer.produce(topic, value, rid)
        else:
            bad_ids.append(rid)
            value, headers = _poison(rng, rid)
            kafka.producer.produce(topic, value, rid, headers=headers)
        kafka.producer.poll(0)
    kafka.producer.flush(30)
    try:
        answers = kafka.outputs("tfsimples", good_ids + bad_ids, deadline_s=120)
        errors = kafka.collect(kafka.topics.errors(), bad_ids, deadline_s=60)
        on_errors_topic = _count(settings, kafka.topics.errors(), at_least=BAD)
    finally:
        kafka.close()
    doubled = [[2 * v for v in ROW]]
    for rid in good_ids:
        assert not answers[rid].is_error, answers[rid].error()
        assert answers[rid].arrays()["OUTPUT0"] == doubled
    for rid in bad_ids:
        assert answers[rid].is_error, rid
        error = errors[rid].error()
        assert error.request_id == rid and error.kind == "bad-input" and error.reason
    assert on_errors_topic == BAD  # one error record each, none for good traffic
    worker.check_alive()


def _count(settings: KafkaSettings, topic: str, at_least: int) -> int:
    """Records on partition 0 of `topic`, read to an end of partition seen after at least
    `at_least` of them (the embedded broker may report an end before its last batch)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(settings.consumer_config(new_id("count"), **{"enable.partition.eof": True}))
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    count = 0
    try:
        while True:
            message = consumer.poll(10)
            assert message is not None, f"no end of {topic} in sight"
            if message.error() is not None:
                if message.error().code() == KafkaError._PARTITION_EOF and count >= at_least:
                    return count
                continue
            count += 1
    finally:
        consumer.close()
